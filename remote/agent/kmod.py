"""The suite's kernel module on the target: build, load, drive, unload.

Runs on the target (stdlib only).  The module's sources travel with the agent
(kmod/ next to this file); it is built against the running kernel's own
headers (/lib/modules/$(uname -r)/build), unless the controller shipped a .ko
it built earlier on a target running exactly the same kernel build.

Its interface is a debugfs directory (remote/kmod/README.md):
    attach  'FUNC 0|1' / 'none'  one ops (SAVE_REGS or not) on FUNC
    run     'calls=N save_regs=S relevant=R irrelevant=I'  timed in the kernel
    hold    'save_regs=S relevant=R irrelevant=I' / 'none'  a run's ops kept
            registered across runs, so that tracefs can show them
    info    what the module was built for
"""
import os
import platform
import re
import subprocess
import time

try:  # on the target: shipped next to agent.py as the package `protocol`
    from protocol.errors import BenchError
    from protocol.kmod import NAME
except ImportError:  # in the source tree, imported as remote.agent.kmod
    from remote.protocol.errors import BenchError
    from remote.protocol.kmod import NAME

DEBUGFS = "/sys/kernel/debug"
DIR = DEBUGFS + "/" + NAME


class KmodError(BenchError):
    kind = "module"


def loaded():
    try:
        with open("/proc/modules") as f:
            return any(line.split()[0] == NAME for line in f)
    except OSError:
        return False


def _write(name, text):
    path = os.path.join(DIR, name)
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise KmodError("the module refused %r on %s: %s" % (text, path, os.strerror(e.errno)),
                        kind="module-refused")


def _read(name):
    with open(os.path.join(DIR, name)) as f:
        return f.read().strip()


def parse_line(line):
    """'calls=100 save_regs=1 ... total_ns=12345' -> dict of ints/strs."""
    out = {}
    for tok in line.split():
        k, _, v = tok.partition("=")
        out[k] = int(v) if re.match(r"^-?\d+$", v) else v
    return out


def unload(reason_log=None):
    """Detach and remove the module if it is loaded.  Returns a list of problems."""
    problems = []
    if not loaded():
        return problems
    # (module exit does both too; 'hold' is missing in a 1.0 module left behind)
    for name in ("attach", "hold"):
        if os.path.exists(os.path.join(DIR, name)):
            try:
                _write(name, "none")
            except KmodError as e:
                problems.append(str(e))
    r = subprocess.run(["rmmod", NAME], capture_output=True, text=True)
    if r.returncode != 0:
        problems.append("rmmod %s failed: %s" % (NAME, r.stderr.strip()))
    return problems


class Kmod:
    def __init__(self, workdir, src_dir):
        self.workdir = workdir
        self.src_dir = src_dir
        self.ko = None
        self.loaded_by_us = False
        self.debugfs_mounted_by_us = False

    def prepare(self, prebuilt=None, build_timeout=1800):
        """Remove a module an earlier crashed run left loaded, then build (or
        take the shipped prebuilt .ko).  Nothing is loaded yet."""
        report = {"leftover_removed": False, "built": False}
        if loaded():
            problems = unload()
            if loaded():
                raise KmodError("a %s module from an earlier run is loaded and cannot be removed: %s"
                                % (NAME, "; ".join(problems)), kind="module-busy")
            report["leftover_removed"] = True
        if prebuilt and os.path.exists(prebuilt):
            self.ko = prebuilt
            report["ko"] = prebuilt
            return report
        build = "/lib/modules/%s/build" % platform.release()
        if not os.path.exists(os.path.join(build, "Makefile")):
            raise KmodError("no kernel headers at %s: install linux-headers-%s (kernel-devel on "
                            "Amazon Linux/Fedora)" % (build, platform.release()), kind="unsupported")
        t0 = time.monotonic()
        argv = ["make", "-C", build, "M=" + self.src_dir, "modules"]
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=build_timeout)
        except FileNotFoundError:
            raise KmodError("no make on the target: install make and gcc", kind="unsupported")
        except subprocess.TimeoutExpired:
            raise KmodError("building the module took over %d s" % build_timeout, kind="module")
        ko = os.path.join(self.src_dir, NAME + ".ko")
        if r.returncode != 0 or not os.path.exists(ko):
            tail = " | ".join((r.stdout + r.stderr).strip().splitlines()[-4:])
            raise KmodError("building the module failed: %s" % tail, kind="module-build")
        self.ko = ko
        report.update(built=True, ko=ko, build_seconds=round(time.monotonic() - t0, 1),
                      build_log_tail=(r.stdout + r.stderr).strip().splitlines()[-5:])
        return report

    def load(self):
        if not os.path.ismount(DEBUGFS):
            if subprocess.run(["mount", "-t", "debugfs", "nodev", DEBUGFS],
                              capture_output=True).returncode == 0:
                self.debugfs_mounted_by_us = True
        r = subprocess.run(["insmod", self.ko], capture_output=True, text=True)
        if r.returncode != 0:
            err = r.stderr.strip()
            why = err
            if "Key was rejected" in err or "Required key not available" in err:
                why += " (module signatures are enforced or the kernel is locked down)"
            elif "Invalid module format" in err:
                why += " (built for another kernel: vermagic differs)"
            elif "Operation not permitted" in err:
                why += " (lockdown, modules_disabled, or no CAP_SYS_MODULE)"
            raise KmodError("the kernel refused to load %s: %s" % (NAME, why), kind="module-refused")
        self.loaded_by_us = True
        if not os.path.isdir(DIR):
            raise KmodError("the module loaded but %s is missing (is debugfs mounted?)" % DIR)
        return parse_line(_read("info"))

    def attach(self, function, save_regs):
        _write("attach", "%s %d" % (function, 1 if save_regs else 0))
        return parse_line(_read("attach"))

    def detach(self):
        if loaded() and os.path.exists(os.path.join(DIR, "attach")):
            _write("attach", "none")

    def hold(self, save_regs, relevant, irrelevant=0):
        _write("hold", "save_regs=%d relevant=%d irrelevant=%d"
               % (1 if save_regs else 0, relevant, irrelevant))
        return parse_line(_read("hold"))

    def release(self):
        if loaded() and os.path.exists(os.path.join(DIR, "hold")):
            _write("hold", "none")

    def time(self, calls, save_regs, relevant, irrelevant=0, reps=1):
        out = []
        for _ in range(reps):
            _write("run", "calls=%d save_regs=%d relevant=%d irrelevant=%d"
                   % (calls, 1 if save_regs else 0, relevant, irrelevant))
            res = parse_line(_read("run"))
            if res.get("hits") != calls * relevant:
                raise KmodError("the module's callback ran %s times for %d calls x %d ops"
                                % (res.get("hits"), calls, relevant), kind="measure")
            out.append(res)
        return out

    def unload(self):
        problems = []
        if self.loaded_by_us:
            problems = unload()
            self.loaded_by_us = False
        if self.debugfs_mounted_by_us:
            subprocess.run(["umount", DEBUGFS], capture_output=True)
            self.debugfs_mounted_by_us = False
        return problems
