"""What the target can do, probed on the target (stdlib only, python >= 3.9).

Raw observations only; the controller (bench/check.py) turns them into
answers with reasons.  Nothing here changes the target, except mounting
debugfs/securityfs for a read when they are not mounted (and unmounting).
"""
import os
import platform
import shutil
import subprocess

KALLSYMS_OF_INTEREST = ("ftrace_caller", "ftrace_regs_caller", "ftrace_common", "_mcount",
                        "ftrace_ops_list_func", "ftrace_call_adjust", "arch_ftrace_ops_list_func")


def kallsyms():
    """Which ftrace entry symbols the running kernel has (names; addresses
    may read as zeros without CAP_SYSLOG, the names are enough)."""
    try:
        with open("/proc/kallsyms") as f:
            text = f.read()
    except OSError:
        return None
    # 'ffff800008011234 T ftrace_regs_caller\n' (a module's symbols end in
    # '\t[name]'): one substring search per name, not a split per line, which
    # cost 0.15 s of an icount guest's clock on Debian's 45,000 symbols.
    return sorted(name for name in KALLSYMS_OF_INTEREST if " %s\n" % name in text)


def _run(argv, timeout=30):
    try:
        p = subprocess.run(argv, capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    out = (p.stdout + p.stderr).decode("utf-8", "replace").strip()
    return p.returncode, out


def compiler(config_cc=None):
    """The C compiler kbuild will use.  Debian's headers name a versioned one
    ('CC = $(CROSS_COMPILE)gcc-12' in .kernelvariables), so look for the
    version the kernel was built with (CONFIG_CC_VERSION_TEXT) first."""
    names = []
    if config_cc and "gcc" in config_cc:
        # '"gcc-12 (Debian 12.2.0-14) 12.2.0"' -> gcc-12
        first = config_cc.strip('"').split()[0]
        names.append(first)
    names += ["gcc", "cc"]
    for cc in names:
        path = shutil.which(cc)
        if path:
            rc, out = _run([path, "--version"])
            return {"path": path, "version": out.splitlines()[0] if out else None}
    return None


def module_build(config_cc=None):
    release = platform.release()
    build = "/lib/modules/%s/build" % release
    return {
        "build_dir": build,
        "build_dir_ok": os.path.exists(os.path.join(build, "Makefile")),
        "compiler": compiler(config_cc),
        "make": shutil.which("make"),
    }


def module_load():
    sig = None
    try:
        with open("/sys/module/module/parameters/sig_enforce") as f:
            sig = f.read().strip()
    except OSError:
        pass
    return {
        "modules_supported": os.path.exists("/proc/modules"),
        "sig_enforce": sig,
        "insmod": shutil.which("insmod"),
        "rmmod": shutil.which("rmmod"),
        "modules_disabled": _read("/proc/sys/kernel/modules_disabled"),
    }


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def bcc(probe=True):
    """Can the bpf method run: a python that imports the distribution's bcc,
    the running kernel's headers (bcc compiles against them at run time; BTF
    alone does not do), and the raw_syscalls tracepoints.  probe=False: the
    import is not tried (a run without the bpf method), ok is None."""
    import bpfmethod

    py, version_or_error = bpfmethod.bcc_python() if probe else (None, None)
    out = {"ok": py is not None if probe else None, "probed": probe,
           "python": py, "headers": bpfmethod.kernel_headers(),
           "headers_wanted": "/lib/modules/%s/build" % platform.release(),
           "kheaders_without_xz": bpfmethod.kheaders_without_xz(),
           "raw_syscalls": any(os.path.isdir(os.path.join(r, "events/raw_syscalls"))
                               for r in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"))}
    if py is not None:
        out["version"] = version_or_error
    elif probe:
        out["error"] = version_or_error
    return out


def pmu():
    """What perf_event_open gives for the pmu method's events (pmumethod.probe)."""
    import pmumethod

    try:
        return pmumethod.probe()
    except Exception as e:  # a probe must not cost the whole check
        return {"error": "%s: %s" % (type(e).__name__, e)}


def tracefs_files(root):
    names = ("enabled_functions", "touched_functions", "available_filter_functions",
             "available_filter_functions_addrs", "dyn_ftrace_total_info", "kprobe_events",
             "dynamic_events", "set_ftrace_filter")
    present = {n: os.path.exists(os.path.join(root, n)) for n in names}
    total = _read(os.path.join(root, "dyn_ftrace_total_info"))
    return {"present": present, "dyn_ftrace_total_info": total}


def collect(tracefs_root, config_cc=None, probe_bcc=True):
    return {
        "kallsyms": kallsyms(),
        "tracefs": tracefs_files(tracefs_root) if tracefs_root else None,
        "module_build": module_build(config_cc),
        "module_load": module_load(),
        "bcc": bcc(probe_bcc),
        "pmu": pmu(),
    }
