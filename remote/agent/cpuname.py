"""CPU names from the MIDR (stdlib only, python >= 3.9).

/proc/cpuinfo on arm64 has no 'model name': it prints each CPU's MIDR_EL1
fields (arch/arm64/kernel/cpuinfo.c, c_show()), and
/sys/devices/system/cpu/cpuN/regs/identification/midr_el1 holds the whole
register ('0x00000000413fd0c1').  The MIDR names the core, not the product:
one Neoverse-N1 is in AWS Graviton2 and in Ampere Altra.  So the core is
named from the MIDR alone, and the product only where something else says
which it is (DMI's sys_vendor, the SMCCC SoC ID, the device tree's model),
with that evidence recorded next to it.
"""
import glob
import os
import re

# (implementer, part) -> core name.  Values from the kernel's
# arch/arm64/include/asm/cputype.h (Debian's 6.1.192 source; the Apple M2
# and AMPERE1A parts from mainline's later cputype.h, which adds
# APPLE_CPU_PART_M2_* 0x032-0x039 and AMPERE_CPU_PART_AMPERE1A 0xAC4).
MIDR_PARTS = {
    (0x41, 0xd03): "Cortex-A53",
    (0x41, 0xd04): "Cortex-A35",
    (0x41, 0xd05): "Cortex-A55",
    (0x41, 0xd07): "Cortex-A57",
    (0x41, 0xd08): "Cortex-A72",
    (0x41, 0xd09): "Cortex-A73",
    (0x41, 0xd0a): "Cortex-A75",
    (0x41, 0xd0b): "Cortex-A76",
    (0x41, 0xd0c): "Neoverse-N1",
    (0x41, 0xd0d): "Cortex-A77",
    (0x41, 0xd40): "Neoverse-V1",
    (0x41, 0xd41): "Cortex-A78",
    (0x41, 0xd44): "Cortex-X1",
    (0x41, 0xd46): "Cortex-A510",
    (0x41, 0xd47): "Cortex-A710",
    (0x41, 0xd48): "Cortex-X2",
    (0x41, 0xd49): "Neoverse-N2",
    (0x41, 0xd4f): "Neoverse-V2",
    (0x41, 0xd80): "Cortex-A520",
    (0x41, 0xd81): "Cortex-A720",
    (0x41, 0xd84): "Neoverse-V3",
    (0x41, 0xd8e): "Neoverse-N3",
    # QEMU's '-cpu max' (the lab) reports implementer 0x00, part 0x051.
    (0x00, 0x051): "QEMU max",
    (0x61, 0x022): "Apple Icestorm (M1)",
    (0x61, 0x023): "Apple Firestorm (M1)",
    (0x61, 0x024): "Apple Icestorm (M1 Pro)",
    (0x61, 0x025): "Apple Firestorm (M1 Pro)",
    (0x61, 0x028): "Apple Icestorm (M1 Max)",
    (0x61, 0x029): "Apple Firestorm (M1 Max)",
    (0x61, 0x032): "Apple Blizzard (M2)",
    (0x61, 0x033): "Apple Avalanche (M2)",
    (0x61, 0x034): "Apple Blizzard (M2 Pro)",
    (0x61, 0x035): "Apple Avalanche (M2 Pro)",
    (0x61, 0x038): "Apple Blizzard (M2 Max)",
    (0x61, 0x039): "Apple Avalanche (M2 Max)",
    (0xc0, 0xac3): "Ampere1",
    (0xc0, 0xac4): "Ampere1A",
    (0x51, 0xc00): "Qualcomm Falkor",
    (0x48, 0xd01): "HiSilicon TSV110 (Kunpeng 920)",
    (0x46, 0x001): "Fujitsu A64FX",
    (0x43, 0x0af): "Cavium ThunderX2",
}

# The Apple chip each part belongs to (an M1 Ultra is two M1 Max dies).
APPLE_CHIPS = {0x022: "M1", 0x023: "M1", 0x024: "M1 Pro", 0x025: "M1 Pro", 0x028: "M1 Max or M1 Ultra",
               0x029: "M1 Max or M1 Ultra", 0x032: "M2", 0x033: "M2", 0x034: "M2 Pro", 0x035: "M2 Pro",
               0x038: "M2 Max or M2 Ultra", 0x039: "M2 Max or M2 Ultra"}

# On an EC2 instance (DMI sys_vendor 'Amazon EC2') the core says which
# Graviton it is: Graviton (a1) Cortex-A72, Graviton2 Neoverse-N1, Graviton3
# and 3E Neoverse-V1, Graviton4 Neoverse-V2, Graviton5 Neoverse-V3.
GRAVITON = {0xd08: "AWS Graviton", 0xd0c: "AWS Graviton2", 0xd40: "AWS Graviton3",
            0xd4f: "AWS Graviton4", 0xd84: "AWS Graviton5"}
# Graviton3E (a V1 too) is in these instance families only.
GRAVITON3E_FAMILIES = ("c7gn", "hpc7g")
# SMCCC SoC ID (drivers/firmware/smccc/soc_id.c: 'jep106:BBII' family,
# 'jep106:BBII:SSSS' soc_id): JEP106 bank 11, id 0x16 is Ampere Computing
# (an Altra reads 'jep106:0a16:0001').
AMPERE_JEP106 = "jep106:0a16"


def midr_fields(midr):
    """'0x00000000413fd0c1' (sysfs) -> (implementer, variant, part, revision)."""
    v = int(midr, 16)
    return (v >> 24) & 0xff, (v >> 20) & 0xf, (v >> 4) & 0xfff, v & 0xf


def parse_cpuinfo(text):
    """{cpu number: (implementer, variant, part, revision)} of /proc/cpuinfo's
    arm64 blocks; {} on other architectures.

    'processor\\t: 0' starts a block; then 'CPU implementer\\t: 0x41',
    'CPU variant\\t: 0x3', 'CPU part\\t: 0xd0c', 'CPU revision\\t: 1'.
    """
    out, cpu, fields = {}, None, {}

    def close():
        if cpu is not None and {"CPU implementer", "CPU part"} <= set(fields):
            out[cpu] = (int(fields["CPU implementer"], 16), int(fields.get("CPU variant", "0"), 16),
                        int(fields["CPU part"], 16), int(fields.get("CPU revision", "0"), 0))

    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor" and value.isdigit():
            close()
            cpu, fields = int(value), {}
        elif key.startswith("CPU "):
            fields[key] = value
    close()
    return out


def sysfs_midrs(root="/sys/devices/system/cpu"):
    """{cpu number: MIDR fields} from cpuN/regs/identification/midr_el1,
    where the kernel has them (arm64 4.11+)."""
    out = {}
    for path in glob.glob(os.path.join(root, "cpu[0-9]*", "regs", "identification", "midr_el1")):
        m = re.search(r"cpu(\d+)/regs", path)
        try:
            with open(path) as f:
                out[int(m.group(1))] = midr_fields(f.read().strip())
        except (OSError, ValueError):
            continue
    return out


def core_name(implementer, part):
    return MIDR_PARTS.get((implementer, part),
                          "arm64 implementer 0x%02x part 0x%03x" % (implementer, part))


def _ranges(cpus):
    """[0, 1, 2, 3, 6] -> '0-3,6' (the kernel's cpulist format)."""
    out, start, prev = [], None, None
    for c in sorted(cpus) + [None]:
        if start is not None and (c is None or c != prev + 1):
            out.append(str(start) if start == prev else "%d-%d" % (start, prev))
            start = None
        if c is not None and start is None:
            start = c
        prev = c
    return ",".join(out)


def clusters(midrs):
    """The kinds of core, in the order of their first CPU: one entry per
    (implementer, part, variant, revision), with the CPUs that have it."""
    kinds = {}
    for cpu in sorted(midrs):
        kinds.setdefault(midrs[cpu], []).append(cpu)
    return [{"name": core_name(imp, part), "implementer": "0x%02x" % imp, "part": "0x%03x" % part,
             "variant": "0x%x" % var, "revision": str(rev), "cpus": _ranges(cpus), "count": len(cpus)}
            for (imp, var, part, rev), cpus in kinds.items()]


def product(kinds, machine):
    """(product, evidence) or (None, None): which chip the cores are in, only
    where the evidence says so; 'likely' where it only points that way.
    machine: {'sys_vendor', 'product_name', 'soc_id', 'dt_model'} (None where absent)."""
    parts = {(int(k["implementer"], 16), int(k["part"], 16)) for k in kinds}
    vendor = machine.get("sys_vendor") or ""
    if len(parts) == 1:
        imp, part = next(iter(parts))
        if vendor == "Amazon EC2" and imp == 0x41 and part in GRAVITON:
            name = GRAVITON[part]
            itype = machine.get("product_name") or ""
            if part == 0xd40 and itype.split(".")[0] in GRAVITON3E_FAMILIES:
                name = "AWS Graviton3E"
            return name, "DMI sys_vendor 'Amazon EC2'" + (", instance type %s" % itype if itype else "")
        if imp == 0xc0:
            return "AmpereOne", "MIDR implementer 0xc0 (Ampere) with an Ampere-designed core"
        if (imp, part) == (0x41, 0xd0c):
            soc = machine.get("soc_id") or ""
            if soc.startswith(AMPERE_JEP106):
                return "Ampere Altra or Altra Max", "SMCCC SoC ID %s (JEP106: Ampere)" % soc
            if vendor:
                return ("likely Ampere Altra", "a Neoverse-N1 outside EC2 (DMI sys_vendor %r); "
                        "no SoC ID to confirm" % vendor)
    if parts and all(imp == 0x61 for imp, _ in parts):
        chips = {APPLE_CHIPS.get(part) for _, part in parts}
        if len(chips) == 1 and None not in chips:
            return "Apple " + chips.pop(), "MIDR implementer 0x61 (Apple), parts " + ", ".join(
                "0x%03x" % p for _, p in sorted(parts))
    model = machine.get("dt_model") or ""
    if model.startswith("Raspberry Pi"):
        return model, "device tree model"
    return None, None


def machine_ids(root="/"):
    """What names the machine around the CPU, read-only and without root:
    DMI (ACPI machines, EC2), the SMCCC SoC ID, the device tree (boards)."""
    def read(rel):
        try:
            with open(os.path.join(root, rel), "rb") as f:
                return f.read().decode("utf-8", "replace").strip("\x00\n ").replace("\x00", " ") or None
        except OSError:
            return None

    return {"sys_vendor": read("sys/class/dmi/id/sys_vendor"),
            "product_name": read("sys/class/dmi/id/product_name"),
            "soc_id": read("sys/devices/soc0/soc_id"),
            "dt_model": read("proc/device-tree/model")}


def describe(cpuinfo_text, sysfs=None, machine=None):
    """The cpu facts: cpu_model (cores per cluster, the product in brackets
    where known), the first CPU's MIDR fields (cpu_implementer ...), every
    kind of core (cpu_clusters), cpu_product and its evidence."""
    machine = machine or {}
    midrs = dict(sysfs or {})
    midrs.update(parse_cpuinfo(cpuinfo_text))  # /proc/cpuinfo wins; sysfs fills CPUs it lacks
    out = {"cpu_model": None, "cpu_implementer": None, "cpu_part": None, "cpu_variant": None,
           "cpu_revision": None, "cpu_clusters": [], "cpu_product": None, "cpu_product_evidence": None}
    if not midrs:
        # x86: 'model name : Intel(R) Xeon(R) ...'
        m = re.search(r"^model name\s*:\s*(.*)$", cpuinfo_text, re.M)
        out["cpu_model"] = m.group(1).strip() if m else None
        return out
    kinds = clusters(midrs)
    first = kinds[0]
    out.update(cpu_implementer=first["implementer"], cpu_part=first["part"], cpu_variant=first["variant"],
               cpu_revision=first["revision"], cpu_clusters=kinds)
    names = []
    for k in kinds:  # one name per kind of core; variants of one core count together
        if names and names[-1][0] == k["name"]:
            names[-1][1] += k["count"]
        else:
            names.append([k["name"], k["count"]])
    model = names[0][0] if len(names) == 1 else " + ".join("%s x%d" % (n, c) for n, c in names)
    prod, evidence = product(kinds, machine)
    out.update(cpu_model=model + (" (%s)" % prod if prod else ""), cpu_product=prod,
               cpu_product_evidence=evidence)
    return out
