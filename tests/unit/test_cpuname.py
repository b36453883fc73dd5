"""CPU names from the MIDR (remote/agent/cpuname.py), on /proc/cpuinfo text
built the way arm64's c_show() prints it (arch/arm64/kernel/cpuinfo.c) from
published MIDR values.  The names depend on implementer and part only
(arch/arm64/include/asm/cputype.h); variant and revision are those of the
cores' Technical Reference Manuals where cited, r0p0 otherwise."""
import pytest

from remote.agent import cpuname


def cpuinfo(*midrs):
    """/proc/cpuinfo of CPUs 0.. with these MIDRs, in c_show()'s format."""
    blocks = []
    for i, midr in enumerate(midrs):
        imp, var, part, rev = cpuname.midr_fields(midr)
        blocks.append(f"processor\t: {i}\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes pmull\n"
                      f"CPU implementer\t: 0x{imp:02x}\nCPU architecture: 8\nCPU variant\t: 0x{var:x}\n"
                      f"CPU part\t: 0x{part:03x}\nCPU revision\t: {rev}\n\n")
    return "".join(blocks)


EC2 = {"sys_vendor": "Amazon EC2"}

# (MIDR, count, machine ids, cpu_model)
CASES = {
    # Neoverse-N1 r3p1 (N1 TRM), Graviton2 and Altra alike
    "graviton2": ("0x413fd0c1", 4, dict(EC2, product_name="c6g.xlarge"), "Neoverse-N1 (AWS Graviton2)"),
    # Neoverse-V1 r1p1
    "graviton3": ("0x411fd401", 4, dict(EC2, product_name="c7g.16xlarge"), "Neoverse-V1 (AWS Graviton3)"),
    "graviton3e": ("0x411fd401", 4, dict(EC2, product_name="c7gn.large"), "Neoverse-V1 (AWS Graviton3E)"),
    # Neoverse-V2 r0p1
    "graviton4": ("0x410fd4f1", 2, dict(EC2, product_name="m8g.large"), "Neoverse-V2 (AWS Graviton4)"),
    "graviton5": ("0x410fd840", 2, EC2, "Neoverse-V3 (AWS Graviton5)"),
    # Ampere Altra: the same N1; its firmware's SMCCC SoC ID says Ampere
    "altra": ("0x413fd0c1", 8, {"sys_vendor": "GIGABYTE", "soc_id": "jep106:0a16:0001"},
              "Neoverse-N1 (Ampere Altra or Altra Max)"),
    "n1-elsewhere": ("0x413fd0c1", 8, {"sys_vendor": "Hetzner"}, "Neoverse-N1 (likely Ampere Altra)"),
    "n1-no-evidence": ("0x413fd0c1", 8, {}, "Neoverse-N1"),
    "ampereone": ("0xc00fac30", 8, {"sys_vendor": "Ampere"}, "Ampere1 (AmpereOne)"),
    # Raspberry Pi 4: Cortex-A72 r0p3; Pi 5: Cortex-A76 r4p1
    "rpi4": ("0x410fd083", 4, {"dt_model": "Raspberry Pi 4 Model B Rev 1.4"},
             "Cortex-A72 (Raspberry Pi 4 Model B Rev 1.4)"),
    "rpi5": ("0x414fd0b1", 4, {"dt_model": "Raspberry Pi 5 Model B Rev 1.0"},
             "Cortex-A76 (Raspberry Pi 5 Model B Rev 1.0)"),
    "a72-board": ("0x410fd083", 4, {"dt_model": "Some A72 board"}, "Cortex-A72"),
    "graviton1": ("0x410fd083", 4, dict(EC2, product_name="a1.large"), "Cortex-A72 (AWS Graviton)"),
    # The lab: QEMU's -cpu max
    "qemu-max": ("0x000f0510", 1, {}, "QEMU max"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cores_and_products(case):
    midr, n, machine, model = CASES[case]
    imp, var, part, rev = cpuname.midr_fields(midr)
    out = cpuname.describe(cpuinfo(*[midr] * n), machine=machine)
    assert out["cpu_model"] == model
    assert (out["cpu_implementer"], out["cpu_part"]) == (f"0x{imp:02x}", f"0x{part:03x}")
    assert out["cpu_clusters"] == [{"name": cpuname.core_name(imp, part), "implementer": f"0x{imp:02x}",
                                    "part": f"0x{part:03x}", "variant": f"0x{var:x}", "revision": str(rev),
                                    "cpus": f"0-{n - 1}" if n > 1 else "0", "count": n}]
    assert (out["cpu_product"] is None) == (out["cpu_product_evidence"] is None)


def test_the_same_core_is_not_given_a_product_without_evidence():
    # The brief's trap: one N1 is a Graviton2 or an Altra; the MIDR alone says neither.
    out = cpuname.describe(cpuinfo("0x413fd0c1"))
    assert out["cpu_model"] == "Neoverse-N1" and out["cpu_product"] is None


def test_apple_m1_under_asahi_lists_both_clusters():
    # M1: 4 Icestorm (0x022) then 4 Firestorm (0x023), implementer 0x61
    text = cpuinfo(*["0x610f0220"] * 4 + ["0x610f0230"] * 4)
    out = cpuname.describe(text, machine={"dt_model": "Apple MacBook Air (M1, 2020)"})
    assert out["cpu_model"] == "Apple Icestorm (M1) x4 + Apple Firestorm (M1) x4 (Apple M1)"
    assert [(c["name"], c["cpus"]) for c in out["cpu_clusters"]] == [
        ("Apple Icestorm (M1)", "0-3"), ("Apple Firestorm (M1)", "4-7")]
    assert "0x022, 0x023" in out["cpu_product_evidence"]
    m2 = cpuname.describe(cpuinfo(*["0x610f0320"] * 4 + ["0x610f0330"] * 4))
    assert m2["cpu_product"] == "Apple M2"


def test_big_little_board_named_per_cluster():
    # RK3588-style: 4 Cortex-A55 (r2p0) and 4 Cortex-A76 (r4p0)
    out = cpuname.describe(cpuinfo(*["0x412fd050"] * 4 + ["0x414fd0b0"] * 4))
    assert out["cpu_model"] == "Cortex-A55 x4 + Cortex-A76 x4"
    assert [c["cpus"] for c in out["cpu_clusters"]] == ["0-3", "4-7"]
    assert out["cpu_part"] == "0xd05"  # the first CPU's, as before


def test_sysfs_midr_fills_cpus_missing_from_cpuinfo(tmp_path):
    for cpu, midr in ((0, "0x00000000413fd0c1"), (1, "0x00000000413fd0c1"), (2, "0x00000000414fd0b1")):
        d = tmp_path / f"cpu{cpu}" / "regs" / "identification"
        d.mkdir(parents=True)
        (d / "midr_el1").write_text(midr + "\n")  # sysfs: '0x%016llx\n'
    sysfs = cpuname.sysfs_midrs(str(tmp_path))
    assert sysfs[2] == (0x41, 4, 0xd0b, 1)
    out = cpuname.describe(cpuinfo("0x413fd0c1"), sysfs)
    assert [(c["name"], c["cpus"]) for c in out["cpu_clusters"]] == [("Neoverse-N1", "0-1"),
                                                                     ("Cortex-A76", "2")]


def test_x86_keeps_model_name_and_unknown_parts_are_spelled_out():
    x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n"
    assert cpuname.describe(x86)["cpu_model"] == "Intel(R) Xeon(R) CPU @ 2.20GHz"
    assert cpuname.describe(x86)["cpu_clusters"] == []
    assert cpuname.describe(cpuinfo("0x41afd990"))["cpu_model"] == "arm64 implementer 0x41 part 0xd99"


def test_machine_ids_read_dmi_soc_and_device_tree(tmp_path):
    (tmp_path / "sys/class/dmi/id").mkdir(parents=True)
    (tmp_path / "sys/class/dmi/id/sys_vendor").write_text("Amazon EC2\n")
    (tmp_path / "sys/class/dmi/id/product_name").write_text("c7g.16xlarge\n")
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\x00")
    ids = cpuname.machine_ids(str(tmp_path))
    assert ids == {"sys_vendor": "Amazon EC2", "product_name": "c7g.16xlarge", "soc_id": None,
                   "dt_model": "Raspberry Pi 5 Model B Rev 1.0"}


def test_names_match_the_kernels_cputype_h():
    # Spot checks against arch/arm64/include/asm/cputype.h (6.1.192)
    for (imp, part), name in {(0x41, 0xd0c): "Neoverse-N1", (0x41, 0xd40): "Neoverse-V1",
                              (0x41, 0xd4f): "Neoverse-V2", (0x41, 0xd84): "Neoverse-V3",
                              (0x41, 0xd08): "Cortex-A72", (0x41, 0xd0b): "Cortex-A76",
                              (0xc0, 0xac3): "Ampere1", (0x61, 0x022): "Apple Icestorm (M1)",
                              (0x61, 0x023): "Apple Firestorm (M1)"}.items():
        assert cpuname.core_name(imp, part) == name


def test_the_reports_system_table_names_cores_product_and_machine(tmp_path):
    # A real bundle (the icount lab's) given the facts a Graviton2 instance's agent records.
    from analysis.bundle import Bundle
    from analysis.report import systems_table
    from bundlecopy import ICOUNT, copy_bundle

    cpu = cpuname.describe(cpuinfo(*["0x413fd0c1"] * 4),
                           machine={"sys_vendor": "Amazon EC2", "product_name": "c6g.xlarge"})

    def graviton(d):
        d["facts"].update(cpu, instance_type="c6g.xlarge", machine_model="Amazon EC2 c6g.xlarge")
        del d["facts"]["lab"]
    b = Bundle.load(copy_bundle(ICOUNT, tmp_path / "g2", graviton))
    rows = {r[0]: r[1] for r in systems_table([b], ["g2"], anonymous=True)["rows"]}
    assert rows["CPU"].startswith("Neoverse-N1 (AWS Graviton2) (implementer 0x41, part 0xd0c")
    assert rows["CPU cores"] == "Neoverse-N1 r3p1 on CPUs 0-3"
    assert rows["CPU product"] == ("AWS Graviton2 (DMI sys_vendor 'Amazon EC2', instance type c6g.xlarge)")
    assert rows["machine"] == "Amazon EC2 c6g.xlarge" and rows["instance type"] == "c6g.xlarge"
    lab = {r[0]: r[1] for r in systems_table([Bundle.load(ICOUNT)], ["lab"], anonymous=True)["rows"]}
    assert lab["CPU cores"] == "not recorded"  # a bundle from before cpu_clusters
