"""Facts about the target, gathered by the agent (stdlib only, python >= 3.9).

Everything is read from the running system; a value that cannot be read is
None and its key is still present, so bundles from different hosts have the
same keys.
"""
import glob
import gzip
import os
import platform
import re
import subprocess
import sys

# arm64 MIDR fields -> names.  /proc/cpuinfo on arm64 has no 'model name'.
# (implementer, part) from Arm's TRMs; the Graviton generation in brackets.
ARM_PARTS = {
    (0x41, 0xd03): "Cortex-A53",
    (0x41, 0xd07): "Cortex-A57",
    (0x41, 0xd08): "Cortex-A72",
    (0x41, 0xd0b): "Cortex-A76",
    (0x41, 0xd0c): "Neoverse-N1 (Graviton2)",
    (0x41, 0xd40): "Neoverse-V1 (Graviton3)",
    (0x41, 0xd49): "Neoverse-N2",
    (0x41, 0xd4f): "Neoverse-V2 (Graviton4)",
    (0x41, 0xd84): "Neoverse-V3 (Graviton5)",
    (0x41, 0xd8e): "Neoverse-N3",
    (0x00, 0x051): "QEMU max",  # QEMU's '-cpu max' reports implementer 0x00, part 0x051
    (0x61, 0x022): "Apple M1 Icestorm",
    (0x61, 0x023): "Apple M1 Firestorm",
    (0x51, 0xc00): "Qualcomm Falkor",
    (0x48, 0xd01): "HiSilicon Kunpeng-920",
    (0xc0, 0xac3): "Ampere-1",
}

CONFIG_PATTERN = re.compile(
    r"^(# )?CONFIG_[A-Z0-9_]*(FTRACE|FUNCTION_TRACER|FUNCTION_GRAPH|KPROBE|FPROBE|RETHOOK|"
    r"LIVEPATCH|BPF|TRACING|MCOUNT|PATCHABLE_FUNCTION|PTR_AUTH|LOCK_DOWN|MODULE_SIG|MODULES|"
    r"IKHEADERS|DEBUG_INFO_BTF|CC_VERSION|GCC_VERSION|CLANG_VERSION)[A-Z0-9_]*[= ]"
)


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _first_line(path):
    text = _read(path)
    return text.strip().splitlines()[0] if text and text.strip() else None


def kernel_config():
    """(source, {name: value}) of the ftrace-related kernel config lines."""
    release = platform.release()
    candidates = [
        "/proc/config.gz",
        "/boot/config-%s" % release,
        "/lib/modules/%s/build/.config" % release,
        "/lib/modules/%s/config" % release,
    ]
    for path in candidates:
        try:
            if path.endswith(".gz"):
                with gzip.open(path, "rt") as f:
                    text = f.read()
            else:
                with open(path) as f:
                    text = f.read()
        except OSError:
            continue
        lines = {}
        for line in text.splitlines():
            if CONFIG_PATTERN.match(line):
                if line.startswith("# "):
                    # '# CONFIG_FOO is not set'
                    lines[line[2:].split()[0]] = "n"
                else:
                    name, _, value = line.partition("=")
                    lines[name] = value
        return path, lines
    return None, {}


def cpu():
    info = _read("/proc/cpuinfo") or ""
    out = {"cpu_model": None, "cpu_implementer": None, "cpu_part": None, "cpu_variant": None,
           "cpu_revision": None}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        # x86: 'model name : Intel(R) Xeon(R) ...'
        if key == "model name" and out["cpu_model"] is None:
            out["cpu_model"] = value
        # arm64: 'CPU implementer : 0x41', 'CPU part : 0xd0c'
        elif key == "CPU implementer" and out["cpu_implementer"] is None:
            out["cpu_implementer"] = value
        elif key == "CPU part" and out["cpu_part"] is None:
            out["cpu_part"] = value
        elif key == "CPU variant" and out["cpu_variant"] is None:
            out["cpu_variant"] = value
        elif key == "CPU revision" and out["cpu_revision"] is None:
            out["cpu_revision"] = value
    if out["cpu_model"] is None and out["cpu_implementer"] and out["cpu_part"]:
        key = (int(out["cpu_implementer"], 16), int(out["cpu_part"], 16))
        out["cpu_model"] = ARM_PARTS.get(key, "arm64 implementer %s part %s" % (
            out["cpu_implementer"], out["cpu_part"]))
    return out


def governors():
    govs = sorted({(_read(p) or "").strip()
                   for p in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor")})
    return ",".join(govs) if govs else None


def dmesg_lines():
    try:
        out = subprocess.run(["dmesg"], capture_output=True, timeout=20).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.TimeoutExpired):
        return []
    return out.splitlines()


def timer_frequency(lines):
    """The arch timer / TSC frequency from the boot log, never assumed.

    arm64: '[    0.000000] arch_timer: cp15 timer(s) running at 62.50MHz (virt).'
    x86:   '[    0.000016] tsc: Detected 2100.000 MHz processor'
    """
    for line in lines:
        m = re.search(r"arch_timer: .*running at ([0-9.]+)\s*MHz", line)
        if m:
            return float(m.group(1)) * 1e6, line.split("] ", 1)[-1].strip()
    for line in lines:
        m = re.search(r"tsc: (?:Refined TSC clocksource calibration|Detected): ([0-9.]+) MHz", line) or \
            re.search(r"tsc: Detected ([0-9.]+) MHz", line)
        if m:
            return float(m.group(1)) * 1e6, line.split("] ", 1)[-1].strip()
    return None, None


def lockdown():
    from tracefs import lockdown_state
    return lockdown_state()


def machine_id():
    """An app-specific digest of /etc/machine-id, not the id itself.

    systemd asks that the machine id be treated as confidential (it keys
    other identifiers); bundles get published.  An HMAC under this suite's
    name still tells one machine from another (bench run --resume checks it).
    """
    import hashlib
    import hmac

    mid = _first_line("/etc/machine-id")
    if not mid:
        return None
    return hmac.new(b"ftrace-regs-bench", mid.encode(), hashlib.sha256).hexdigest()[:32]


def collect(pyperf_version=None):
    uname = os.uname()
    config_source, config = kernel_config()
    dm = dmesg_lines()
    freq, freq_line = timer_frequency(dm)
    loadavg = _read("/proc/loadavg")
    facts = {
        "hostname": uname.nodename,
        "arch": uname.machine,
        "kernel_release": uname.release,
        "kernel_version": uname.version,
        "kernel_config_source": config_source,
        "kernel_config": config,
        "cpu_count": os.cpu_count(),
        "cpus_online": _first_line("/sys/devices/system/cpu/online"),
        "cpus_isolated": _first_line("/sys/devices/system/cpu/isolated") or "",
        "smt_control": _first_line("/sys/devices/system/cpu/smt/control"),
        "governor": governors(),
        "cmdline": _first_line("/proc/cmdline"),
        "clocksource": _first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
        "timer_frequency_hz": freq,
        "timer_frequency_source": freq_line,
        "lockdown": lockdown(),
        "boot_id": _first_line("/proc/sys/kernel/random/boot_id"),
        "machine_id": machine_id(),
        "loadavg": loadavg.split()[:3] if loadavg else None,
        "memory_kb": None,
        "python_version": platform.python_version(),
        "python_executable": sys.executable,
        "pyperf_version": pyperf_version,
        "os_release": None,
    }
    facts.update(cpu())
    meminfo = _read("/proc/meminfo") or ""
    m = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.M)
    if m:
        facts["memory_kb"] = int(m.group(1))
    osr = _read("/etc/os-release") or ""
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', osr, re.M)
    if m:
        facts["os_release"] = m.group(1)
    return facts
