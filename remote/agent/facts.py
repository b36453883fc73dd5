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
    """The CPU's names from the MIDR, per cluster (cpuname.py), and what
    names the machine around it."""
    import cpuname

    machine = cpuname.machine_ids()
    out = cpuname.describe(_read("/proc/cpuinfo") or "", cpuname.sysfs_midrs(), machine)
    # DMI's product_name on EC2 is the instance type ('c7g.16xlarge').
    out["instance_type"] = machine["product_name"] if machine["sys_vendor"] == "Amazon EC2" else None
    out["machine_model"] = machine["dt_model"] or " ".join(
        v for v in (machine["sys_vendor"], machine["product_name"]) if v) or None
    return out


def os_release(text):
    """{KEY: value} of /etc/os-release (quotes removed)."""
    out = {}
    for line in text.splitlines():
        m = re.match(r'^([A-Z0-9_]+)=(.*)$', line.strip())
        if m:
            value = m.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            out[m.group(1)] = value
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
    # os-release(5): /etc first, /usr/lib as the fallback.
    osr = os_release(_read("/etc/os-release") or _read("/usr/lib/os-release") or "")
    facts["os_release"] = osr.get("PRETTY_NAME")
    # ID and ID_LIKE choose the package names bench check suggests (analysis/packages.py).
    facts["os_id"] = osr.get("ID")
    facts["os_id_like"] = osr.get("ID_LIKE")
    facts["os_version_id"] = osr.get("VERSION_ID")
    return facts
