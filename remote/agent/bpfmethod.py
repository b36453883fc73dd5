"""The agent's side of the bpf method: start the collector, drive exact runs.

Runs on the target (stdlib only).  The collector (bpfprobe.py) runs under the
first interpreter that can ``import bcc``: the agent's own, then
/usr/bin/python3 (the distribution's binding is installed for the
distribution's python, which is often not the one running the agent).
"""
import json
import os
import platform
import shutil
import queue
import signal
import subprocess
import sys
import threading
import time

try:  # on the target: shipped next to agent.py as the package `protocol`
    from protocol.errors import BenchError
except ImportError:  # in the source tree, imported as remote.agent.bpfmethod
    from remote.protocol.errors import BenchError

HERE = os.path.dirname(os.path.abspath(__file__))

# getppid's number per architecture: arm64 and riscv64 use the generic table
# (include/uapi/asm-generic/unistd.h: '#define __NR_getppid 173'), x86_64 its
# own (arch/x86/entry/syscalls/syscall_64.tbl: '110 common getppid').
SYSCALL_NR = {
    "getppid": {"aarch64": 173, "riscv64": 173, "x86_64": 110},
}


class BpfError(BenchError):
    kind = "measure"


def syscall_nr(name, machine=None):
    machine = machine or platform.machine()
    nr = SYSCALL_NR.get(name, {}).get(machine)
    if nr is None:
        raise BpfError("the bpf method does not know the number of syscall %r on %s"
                       % (name, machine), kind="unsupported")
    return nr


def bcc_python():
    """(interpreter, error): the first python that imports bcc."""
    tried = []
    for py in dict.fromkeys([sys.executable, "/usr/bin/python3"]):
        if not py or not os.path.exists(py):
            continue
        try:
            p = subprocess.run([py, "-c", "import bcc; print(getattr(bcc, '__version__', '?'))"],
                               capture_output=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            tried.append("%s: %s" % (py, e))
            continue
        if p.returncode == 0:
            return py, p.stdout.decode().strip()
        err = p.stderr.decode("utf-8", "replace").strip().splitlines()
        tried.append("%s: %s" % (py, err[-1] if err else "exit %d" % p.returncode))
    return None, "; ".join(tried) or "no python3"


KHEADERS = "/sys/kernel/kheaders.tar.xz"


def kernel_headers():
    """Where bcc would find the running kernel's headers, or None.  bcc
    unpacks CONFIG_IKHEADERS' archive with tar, which needs the xz program:
    without it the archive is no use (bcc fails when it compiles)."""
    build = "/lib/modules/%s/build" % platform.release()
    if os.path.isdir(os.path.join(build, "include")):
        return build
    if os.path.exists(KHEADERS) and shutil.which("xz") and shutil.which("tar"):
        return KHEADERS
    return None


def kheaders_without_xz():
    """True when the kernel carries its headers (CONFIG_IKHEADERS) but this
    host cannot unpack them (no xz or tar)."""
    return os.path.exists(KHEADERS) and not (shutil.which("xz") and shutil.which("tar"))


class Lines:
    """A child's stdout as a queue of lines, read by a thread (timeouts on reads)."""

    def __init__(self, stream):
        self.q = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in iter(stream.readline, b""):
            self.q.put(line.decode("utf-8", "replace"))
        self.q.put(None)

    def get(self, timeout, what):
        try:
            line = self.q.get(timeout=timeout)
        except queue.Empty:
            raise BpfError("no answer from %s within %.0f s" % (what, timeout))
        if line is None:
            raise BpfError("%s exited" % what)
        return line


class Collector:
    """One bpfprobe.py process for a whole run: compiled once, attached per run."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.proc = None
        self.lines = None
        self.ready = None

    def start(self, syscall, timeout=900.0):
        py, version_or_error = bcc_python()
        if py is None:
            raise BpfError("no python on the target imports bcc (install python3-bpfcc on "
                           "Debian/Ubuntu, python3-bcc on Amazon Linux/Fedora): "
                           + version_or_error, kind="unsupported")
        nr = syscall_nr(syscall)
        self.stderr_path = os.path.join(self.workdir, "bpfprobe.stderr")
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([py, os.path.join(HERE, "bpfprobe.py"), "--nr", str(nr)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         start_new_session=True, cwd=self.workdir)
        with open(os.path.join(self.workdir, "bpf.pgid"), "w") as f:
            f.write(str(self.proc.pid))
        self.lines = Lines(self.proc.stdout)
        try:
            msg = json.loads(self.lines.get(timeout, "the bpf collector"))
        except BpfError as e:
            raise BpfError("the bpf collector did not start: %s%s" % (e, self._stderr_tail()))
        if msg.get("event") != "ready":
            self.stop()
            raise BpfError("the bpf program did not load: %s%s"
                           % (msg.get("error"), self._stderr_tail()), kind="unsupported")
        self.ready = dict(msg, syscall=syscall, nr=nr)
        return self.ready

    def _stderr_tail(self):
        try:
            with open(self.stderr_path, "rb") as f:
                lines = [l for l in f.read().decode("utf-8", "replace").splitlines()
                         if "error" in l.lower()]
        except OSError:
            return ""
        return (" (" + " | ".join(lines[-3:]) + ")") if lines else ""

    def call(self, op, timeout=120.0, **kw):
        if self.proc is None or self.proc.poll() is not None:
            raise BpfError("the bpf collector is not running" + self._stderr_tail())
        self.proc.stdin.write((json.dumps(dict(kw, op=op)) + "\n").encode())
        self.proc.stdin.flush()
        msg = json.loads(self.lines.get(timeout, "the bpf collector"))
        if not msg.get("ok"):
            raise BpfError("bpf collector: %s" % msg.get("error"))
        return msg.get("result")

    def attach(self, tgid):
        self.call("attach", tgid=int(tgid))

    def collect(self):
        return self.call("collect")

    def run_calls(self, calls, cpu=None, on_child=None, timeout=3600.0):
        """One exact run: a fresh process makes `calls` getppid calls with the
        probes on it alone.  A count other than `calls` is an error."""
        argv = [sys.executable, os.path.join(HERE, "callloop.py"), str(calls)]
        if cpu is not None:
            argv.append(str(int(cpu)))
        child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 start_new_session=True, cwd=self.workdir)
        if on_child:
            on_child(child)
        try:
            out = Lines(child.stdout)
            first = out.get(120, "the bpf workload")  # 'ready 1234'
            pid = int(first.split()[1])
            self.attach(pid)
            t0 = time.monotonic()
            child.stdin.write(b"go\n")
            child.stdin.flush()
            done = out.get(timeout, "the bpf workload").split()
            if not done or done[0] != "done":
                raise BpfError("the bpf workload did not finish")
            elapsed = time.monotonic() - t0
            result = self.collect()
        finally:
            if child.poll() is None:  # after 'done' it only has to exit
                child.kill()
            child.wait()
        if result["count"] != calls:
            raise BpfError("the bpf probe counted %d getppid calls in a process that made exactly "
                           "%d: the measurement is wrong (missed %d starts)"
                           % (result["count"], calls, result.get("missed_start", 0)))
        result.update(calls=calls, wall_s=round(elapsed, 3))
        if len(done) == 3:  # where the calls ran: the CPU it ended on, its mask
            result.update(cpu=int(done[1]), affinity=[int(c) for c in done[2].split(",")])
        return result

    def stop(self):
        p = self.proc
        self.proc = None
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)  # the kernel detaches its probes
            except OSError:
                pass
            p.wait()
        try:
            os.unlink(os.path.join(self.workdir, "bpf.pgid"))
        except OSError:
            pass


# -- the agent's ops ----------------------------------------------------------
# The agent serves OPS as its own (agent.py: every *method.py next to it);
# each op gets the agent as a plain object and raises agent.Fatal.  The
# collector is the agent's for the whole run: agent.method_state["bpf"].

def collector(agent):
    """The run's started collector (bpf_start first)."""
    c = agent.method_state.get("bpf")
    if c is None:
        raise agent.Fatal("bpf measurement before bpf_start")
    return c


def start(agent, req):
    """Compile and load the collector's program (probes detached until a run)."""
    syscall = req.get("syscall", "getppid")
    c = agent.method_state.get("bpf")
    if c is None:
        c = agent.method_state["bpf"] = Collector(agent.workdir)
        # bcc compiles in silence for seconds (hardware) to a minute or more
        # (the lab, a small board): the controller says it is happening.
        agent.send({"event": "compiling", "what": "bpf",
                    "text": "bcc is compiling the bpf probes on the target"})
        try:
            return c.start(syscall)
        except BpfError:
            c.stop()
            del agent.method_state["bpf"]
            raise
    return c.ready


def measure(agent, req):
    """reps exact runs of `calls` getppid calls, each in a fresh process."""
    calls, reps = int(req["calls"]), int(req.get("reps", 1))
    if not (1 <= calls <= 10**9 and 1 <= reps <= 10000):
        raise agent.Fatal("bpf_measure arguments out of range", kind="usage")
    c = collector(agent)
    before = agent.tracefs.events_per_cpu() if agent.tracefs is not None else {}
    t0 = time.monotonic()
    runs = []
    for _ in range(reps):
        def keep(child):
            agent.workload = child  # an abort kills it like a pyperf worker
        try:
            runs.append(c.run_calls(calls, cpu=agent.tune_cpu, on_child=keep))
        finally:
            agent.workload = None
    # Where the runs ran (each run's mask and last CPU) and where the
    # harness could run meanwhile (the collector included).
    cpus = {"workload": sorted({c for r in runs for c in r.get("affinity", ())}),
            "ran_on": sorted({r["cpu"] for r in runs if "cpu" in r}),
            "harness": agent.placement()}
    # The tracer's events per CPU over the runs (function modes: one per
    # traced call, in the buffer of the CPU that made it): their sum over
    # CPUs is what compares with reps x calls.
    after = agent.tracefs.events_per_cpu() if agent.tracefs is not None else {}
    events = {str(cpu): {k: after[cpu][k] - before[cpu][k] for k in after[cpu]}
              for cpu in after if cpu in before}
    return {"runs": runs, "elapsed_s": time.monotonic() - t0, "cpus": cpus,
            "trace_events": events}


def restore(agent):
    """On restore (first, before the module and tracefs): stop the
    collector, which detaches its probes; returns problems (none)."""
    c = agent.method_state.get("bpf")
    if c is not None:
        c.stop()
    return []


OPS = {"bpf_start": start, "bpf_measure": measure}
QUIET_OPS = ("bpf_measure",)
