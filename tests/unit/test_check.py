"""bench check's decisions on real kernel configs (tests/data) and probe results."""
import pathlib

from bench.check import report
from test_kernel import parse_config

DATA = pathlib.Path(__file__).parent.parent / "data"
CFG61 = parse_config((DATA / "config-6.1.0-56-cloud-arm64").read_text())


def facts(config, arch="aarch64", **kw):
    f = {"arch": arch, "kernel_release": "6.1.0-56-cloud-arm64", "kernel_version": "#1 SMP Debian",
         "kernel_config": config, "kernel_config_source": "/boot/config-6.1.0-56-cloud-arm64",
         "cpu_model": "Neoverse-N1 (Graviton2)", "cpu_implementer": "0x41", "cpu_part": "0xd0c",
         "lockdown": "none", "governor": "performance", "smt_control": None, "cpus_isolated": ""}
    f.update(kw)
    return f


def caps(syms=("ftrace_caller", "ftrace_regs_caller"), headers=True):
    return {"kallsyms": list(syms),
            "module_build": {"build_dir": "/lib/modules/6.1.0-56-cloud-arm64/build",
                             "build_dir_ok": headers, "make": "/usr/bin/make",
                             "compiler": {"path": "/usr/bin/gcc", "version": "gcc (Debian 12.2.0-14) 12.2.0"}},
            "module_load": {"modules_supported": True, "sig_enforce": "N", "insmod": "/sbin/insmod",
                            "modules_disabled": "0"},
            "bcc": {"ok": False, "error": "ModuleNotFoundError: No module named 'bcc'"}}


PRE = {"tracefs": "/sys/kernel/tracing", "available_tracers": ["function", "nop"], "errors": []}


def test_bookworm_arm64_can_do_everything():
    r = report(facts(CFG61), caps(), PRE, "root")
    assert r["ftrace_era"]["value"] == "regs" and r["ftrace_era"]["ok"]
    assert all(a["ok"] for a in r["modes"].values())
    assert r["bcc"]["ok"] is False and "python3-bpfcc" in r["bcc"]["reason"]
    assert r["kprobes_on_ftrace"]["ok"] is False and "arm64" in r["kprobes_on_ftrace"]["reason"]


def test_args_era_skips_regs_but_not_noregs():
    cfg = dict(CFG61, CONFIG_DYNAMIC_FTRACE_WITH_REGS="n", CONFIG_DYNAMIC_FTRACE_WITH_ARGS="y",
               CONFIG_DYNAMIC_FTRACE_WITH_CALL_OPS="y")
    r = report(facts(cfg), caps(syms=("ftrace_caller",)), PRE, "root")
    assert r["ftrace_era"]["value"] == "call-ops"
    assert r["modes"]["regs"]["ok"] is False and "no regs caller" in r["modes"]["regs"]["reason"]
    assert r["modes"]["noregs"]["ok"] is True


def test_real_6_12_config_skips_regs_with_the_reason():
    cfg = parse_config((DATA / "config-6.12.117+deb12-cloud-arm64").read_text())
    f = facts(cfg, kernel_release="6.12.117+deb12-cloud-arm64")
    r = report(f, caps(syms=("ftrace_caller",)), PRE, "root")
    assert r["ftrace_era"]["value"] == "direct-calls" and r["ftrace_era"]["ok"]
    assert r["regs_caller"]["ok"] is False
    assert "no regs caller" in r["modes"]["regs"]["reason"]
    assert r["modes"]["noregs"]["ok"] and r["methods"]["kernel"]["ok"]


def test_config_contradicting_kallsyms_is_flagged():
    r = report(facts(CFG61), caps(syms=("ftrace_caller",)), PRE, "root")
    assert r["ftrace_era"]["ok"] is False and "contradicts" in r["ftrace_era"]["reason"]


def test_no_headers_names_the_package_and_lockdown_refuses_loading():
    r = report(facts(CFG61, lockdown="integrity"), caps(headers=False), PRE, "sudo")
    assert "linux-headers-6.1.0-56-cloud-arm64" in r["module_build"]["reason"]
    assert r["module_load"]["ok"] is False and "lockdown" in r["module_load"]["reason"]
    assert r["methods"]["kernel"]["ok"] is False
    assert r["root"]["value"] == "sudo"


def bcc_caps(ok=True, headers="/lib/modules/6.1.0-56-cloud-arm64/build"):
    c = caps()
    c["bcc"] = ({"ok": True, "python": "/usr/bin/python3", "version": "0.26.0", "headers": headers,
                 "headers_wanted": "/lib/modules/6.1.0-56-cloud-arm64/build", "raw_syscalls": True}
                if ok else {"ok": False, "python": None, "headers": headers,
                            "error": "/usr/bin/python3: ModuleNotFoundError: No module named 'bcc'"})
    return c


def test_bpf_method_needs_bcc_and_names_the_package():
    r = report(facts(CFG61), bcc_caps(ok=False), PRE, "root")
    a = r["methods"]["bpf"]
    assert a["ok"] is False
    assert "python3-bpfcc" in a["reason"] and "never PyPI" in a["reason"]


def test_bpf_method_needs_the_running_kernels_headers():
    r = report(facts(CFG61), bcc_caps(headers=None), PRE, "root")
    a = r["methods"]["bpf"]
    assert a["ok"] is False and r["bcc"]["ok"] is True
    assert "install linux-headers-6.1.0-56-cloud-arm64" in a["reason"]


def test_bpf_method_names_xz_when_the_kernels_own_headers_cannot_be_unpacked():
    # regs-6.1 and fallback-6.1 in the lab: CONFIG_IKHEADERS, no headers
    # package, and the image has no xz (bcc unpacks the archive with tar -J).
    c = bcc_caps(headers=None)
    c["bcc"]["kheaders_without_xz"] = True
    a = report(facts(CFG61), c, PRE, "root")["methods"]["bpf"]
    assert a["ok"] is False and "install xz-utils" in a["reason"], a


def test_bpf_method_needs_a_kernel_with_bpf():
    # regs-6.1 and fallback-6.1 in the lab are built without BPF (less to
    # compile): said before bcc's or the headers' absence.
    config = dict(CFG61, CONFIG_BPF_SYSCALL="n")
    config.pop("CONFIG_BPF_EVENTS")
    a = report(facts(config), bcc_caps(headers=None), PRE, "root")["methods"]["bpf"]
    assert a["ok"] is False and "built without CONFIG_BPF_SYSCALL and CONFIG_BPF_EVENTS" in a["reason"], a
    # No config to read: the probe's own findings decide, as before.
    a = report(facts({}), bcc_caps(), PRE, "root")["methods"]["bpf"]
    assert a["ok"] is True, a


def test_bpf_method_with_bcc_and_headers():
    r = report(facts(CFG61), bcc_caps(), PRE, "root")
    assert r["methods"]["bpf"]["ok"] is True and "0.26.0" in r["methods"]["bpf"]["reason"]


def test_noise_notes_name_what_makes_numbers_noisy():
    from bench.check import noise_notes

    f = facts(CFG61, governor="powersave", smt_control="on", cpus_isolated="", loadavg=["3.1", "2", "1"],
              cpu_count=2)
    notes = " | ".join(noise_notes(f))
    assert "powersave" in notes and "SMT on" in notes and "no isolated CPUs" in notes
    assert "load average 3.10" in notes
    quiet = facts(CFG61, governor="performance", smt_control="off", cpus_isolated="3",
                  loadavg=["0.0", "0", "0"], cpu_count=4)
    assert noise_notes(quiet) == []
