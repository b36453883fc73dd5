"""The agent: runs on the target, as root, on the target's own python3 (>= 3.9).

It imports nothing from the controller: only the stdlib and the files shipped
next to it (tracefs.py, facts.py, workload.py and a vendored pyperf).

Protocol: one JSON object per line.  The controller sends requests
``{"id": N, "op": "...", ...}``; the agent answers ``{"id": N, "ok": true,
"result": ...}`` or ``{"id": N, "ok": false, "kind": "...", "error": "..."}``
and may send events ``{"event": "progress", ...}`` in between.  ``ping``
requests are answered by the reader thread at once, even during a
measurement: they renew the lease.  The ops are this class's op_* and the
measurement methods' own, each in its file next to this one
(pyperfmethod.py, kernelmethod.py, bpfmethod.py: method_files()).  Files
move through ops too (file_read, file_write: protocol/transfer.py), confined
to the agent's directory: the login user may not be root.

A quiet harness: a measuring request (measure, bpf_measure, kmod_time) may
declare ``budget_s``, the most the cell should take.  The controller then
sends nothing until the answer (no pings), the lease holds for the budget
(lease.py), the watchdog sleeps until its deadline, pyperf's output goes to a
file and is forwarded after the cell, and under --tune the agent's threads
sit on the other CPUs: nothing of the harness runs during a timed value.

The agent owns the target's state.  Before its first write it snapshots
every tracefs knob it may touch, to memory and to ``state.json``.  It
restores that snapshot, removes its directory and exits when: the
controller says ``bye``; stdin reaches EOF (the SSH session is gone); the
lease lapses (no request for ``--lease`` seconds: the controller hung or the
network is cut); or it gets SIGTERM/SIGINT/SIGHUP.  A guardian process,
detached from the session, restores from ``state.json`` if the agent itself
dies without restoring (kill -9).
"""
import argparse
import functools
import importlib
import importlib.util
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import capabilities  # noqa: E402
import facts as facts_mod  # noqa: E402
import kmod as kmod_mod  # noqa: E402
import lease as lease_mod  # noqa: E402
import lock as lock_mod  # noqa: E402
import precondition as precondition_mod  # noqa: E402
import tracefs as tracefs_mod  # noqa: E402
import tune as tune_mod  # noqa: E402

try:  # on the target: shipped next to this file as the package `protocol`
    from protocol import PROTOCOL
    from protocol import PROTOCOL
    from protocol import modes as modes_mod
    from protocol import transfer as transfer_mod
    from protocol.errors import BenchError
except ImportError:  # in the source tree, imported as remote.agent.agent
    from remote.protocol import PROTOCOL
    from remote.protocol import modes as modes_mod
    from remote.protocol import transfer as transfer_mod
    from remote.protocol.errors import BenchError


def method_files():
    """The measurement methods' agent files: every *method.py next to this
    one, found rather than listed (a new method's file cannot be
    forgotten).  Each declares OPS ({op: handler(agent, req)}, served as
    the agent's own ops) and QUIET_OPS (those that measure: a cell's
    budget); restore(agent), where there is one, runs first on restore."""
    names = sorted(f[:-len(".py")] for f in os.listdir(HERE) if f.endswith("method.py"))
    return [importlib.import_module(name) for name in names]


METHOD_FILES = method_files()
FUNCTION_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
# user@host pid N, as the controller describes itself for the target lock
HOLDER_RE = re.compile(r"^[A-Za-z0-9_.@:/ -]{1,200}$")
# How long the guardian may take to start (the target's seconds: a Python
# importing this file; about 0.3 s in the icount lab).
GUARDIAN_START_S = 120

# The syscall handler's symbol per architecture (arch/*/include/asm/syscall_wrapper.h).
SYSCALL_PREFIX = {
    "aarch64": "__arm64_sys_",
    "x86_64": "__x64_sys_",
    "riscv64": "__riscv_sys_",
    "s390x": "__s390x_sys_",
    "ppc64le": "sys_",
}


def pyperf_version():
    """The shipped pyperf's version, read from its __init__.py: importing it
    here cost 0.44 s of an icount guest's clock in every run (its imports,
    compiled afresh in each new payload), more than the facts themselves."""
    try:
        spec = importlib.util.find_spec("pyperf")
        with open(spec.origin) as f:
            m = re.search(r"^VERSION = \(([0-9, ]+)\)", f.read(), re.M)
        if m:
            return ".".join(x.strip() for x in m.group(1).split(",") if x.strip())
        import pyperf
        return pyperf.__version__
    except Exception:  # a broken vendored copy must not stop facts
        return None


class Fatal(BenchError):
    kind = "agent"


def known_mode(name):
    try:
        return modes_mod.get(name)
    except modes_mod.UnknownMode as e:
        raise Fatal(str(e), kind="usage")


class ModeWriter:
    """What a mode's enter() may do on the target (remote/protocol/modes):
    write the tracefs knobs its file declares, which the snapshot and the
    restore cover, and attach the module's ops if it needs the module."""

    def __init__(self, mode, tracefs, kmod):
        self.mode, self.tracefs, self.kmod = mode, tracefs, kmod

    def write(self, knob, value):
        if knob not in self.mode.knobs:
            raise Fatal("mode %s writes %s, which its file does not declare in KNOBS"
                        % (self.mode.name, knob))
        self.tracefs.write(knob, value)

    def attach(self, function, save_regs):
        if "module" not in self.mode.needs:
            raise Fatal("mode %s attaches the module's ops but does not declare that it needs "
                        "the module" % self.mode.name)
        try:
            self.kmod.attach(function, save_regs=save_regs)
        except kmod_mod.KmodError as e:
            raise Fatal("mode %s: %s" % (self.mode.name, e), kind="unsupported")


class Traceable:
    """available_filter_functions ('sym' or 'sym [module]' per line) as read,
    searched in place: a set of its 37,000 names cost 0.09 s of an icount
    guest's clock per run, on top of the kernel's 0.21 s to list them."""

    def __init__(self, text):
        self.text = "\n" + text + ("" if text.endswith("\n") else "\n")

    def __contains__(self, name):
        return any(("\n%s%s" % (name, end)) in self.text for end in ("\n", " ["))

    def ending_with(self, suffix):
        """The names that end with suffix (str.find: a regex over the whole
        text cost more than the set did)."""
        names = []
        for end in ("\n", " ["):
            i = self.text.find(suffix + end)
            while i != -1:
                names.append(self.text[self.text.rfind("\n", 0, i) + 1:i + len(suffix)])
                i = self.text.find(suffix + end, i + 1)
        return sorted(set(names))


class Agent:
    Fatal = Fatal  # what the methods' ops raise (they get the agent, not this module)

    def __init__(self, workdir, lease, lock_holder=None):
        self.workdir = workdir
        self.lease = lease_mod.Lease(lease)
        self.lock_holder = lock_holder
        self.lock = None  # the target lock (lock.py), held from start to exit
        self.out_lock = threading.Lock()
        self.state_lock = threading.RLock()  # held for every tracefs write
        self.requests = []
        self.req_cond = threading.Condition()
        self.eof = False
        self.tracefs = None
        self.workload = None  # the running pyperf Popen
        self.kmod = None
        self.method_state = {}  # each method's own, by its name (bpf: the collector)
        self.method_ops = {op: handler for m in METHOD_FILES for op, handler in m.OPS.items()}
        self.tune_cpu = None  # the measuring CPU under --tune
        self.housekeeping = None  # the other CPUs, where the agent's threads sit under --tune
        self.thread_ids = []  # native ids of the reader and watchdog threads (to pin them)
        self.pinned_others = {}  # pid -> CPUs before --tune moved it (guardian, connection)
        self._guardian = None  # the guardian's pid once looked up (0: not found)
        self.finished = False
        self.stop_reason = None

    # -- output ---------------------------------------------------------------
    def send(self, obj):
        data = (json.dumps(obj, sort_keys=True) + "\n").encode()
        with self.out_lock:
            try:
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
            except (BrokenPipeError, OSError):
                self.controller_gone("stdout closed")

    def log(self, text):
        # stderr goes to the SSH session, which may be gone: logging must
        # never raise (a BrokenPipeError here once skipped a restore).
        try:
            sys.stderr.write("agent: %s\n" % text)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    # -- input ----------------------------------------------------------------
    def reader(self):
        self.thread_ids.append(threading.get_native_id())
        for raw in iter(sys.stdin.buffer.readline, b""):
            self.lease.heard()
            try:
                req = json.loads(raw)
            except ValueError:
                self.send({"ok": False, "kind": "protocol", "error": "not JSON: %r" % raw[:80]})
                continue
            if req.get("op") == "ping":
                self.send({"id": req.get("id"), "ok": True, "result": {"t": time.time()}})
                continue
            if req.get("op") == "abort":
                # Ctrl-C on the controller: stop a running measurement now, so
                # that the 'bye' queued behind it restores at once.
                self.kill_workload()
                self.send({"id": req.get("id"), "ok": True, "result": {}})
                continue
            with self.req_cond:
                self.requests.append(req)
                self.req_cond.notify()
        with self.req_cond:
            self.eof = True
            self.req_cond.notify()
        self.controller_gone("stdin closed: the controller or its connection is gone")

    def watchdog(self):
        # Sleeps until the lease's deadline: no wake-up on a fixed period.
        self.thread_ids.append(threading.get_native_id())
        reason = self.lease.wait_lapse(lambda: self.finished)
        if reason:
            self.controller_gone(reason)

    def controller_gone(self, reason):
        # From any thread: stop the workload, restore, clean up, exit.
        self.shutdown(reason, exit_code=3)

    # -- lifecycle ------------------------------------------------------------
    def shutdown(self, reason, exit_code=0):
        """Restore, clean up and (exit_code != 0) exit; runs once, from any thread."""
        problems = []
        with self.state_lock:
            if self.finished:
                return problems
            self.finished = True
            self.stop_reason = reason
            self.lease.stop()
            try:
                if exit_code:
                    self.log("restoring and exiting: " + reason)
                self.kill_workload()
                problems = self.restore()
                self.remove_workdir()
                if self.lock is not None:
                    self.lock.release()  # last: the host is free once it is restored
            finally:
                if exit_code:
                    os._exit(exit_code)
        return problems

    def kill_workload(self):
        p = self.workload
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()

    def restore(self):
        problems = []
        for m in METHOD_FILES:
            if hasattr(m, "restore"):
                problems += m.restore(self)
        if self.kmod is not None:
            problems += self.kmod.unload()
        if self.tracefs is not None:
            if self.tracefs.snapshot is not None:
                problems += self.tracefs.restore()
                problems += tune_mod.restore(self.tracefs.snapshot.get("tune", {}))
                tune_mod.unpin_processes(self.pinned_others)
                for p in problems:
                    self.log("restore: " + p)
                state = os.path.join(self.workdir, "state.json")
                if not problems and os.path.exists(state):
                    os.unlink(state)
            if self.tracefs.mounted_by_us:
                subprocess.run(["umount", self.tracefs.root], capture_output=True)
                self.tracefs.mounted_by_us = False
        return problems

    def remove_workdir(self):
        # The controller fetched every result before 'bye'; on an abnormal
        # stop the results of completed cells are already on the controller.
        if os.path.basename(self.workdir).startswith("ftrace-regs-bench."):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def start_guardian(self):
        """A detached process that restores from state.json if we die unrestored.

        It blocks reading a pipe whose only write end we hold: the read returns
        (EOF) the moment we exit, however we exit, kill -9 included.
        """
        r, w = os.pipe()
        # The guardian is a new Python that imports this file from our
        # directory: until it has, we must not remove the directory (a run
        # refused at once did, and the guardian's imports wrote their
        # __pycache__ directories back into it, left on the target).  It says
        # it is ready on a second pipe.
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid:
            os.close(r)
            os.close(ready_w)
            self.guardian_pipe = w  # kept open for our whole life
            os.waitpid(pid, 0)
            ready, _, _ = select.select([ready_r], [], [], GUARDIAN_START_S)
            said = os.read(ready_r, 1) if ready else b""
            os.close(ready_r)
            if said != b"1":
                raise Fatal("the guardian (which restores the target if the agent dies) did not "
                            "start within %d s" % GUARDIAN_START_S)
            return
        try:
            os.close(w)
            os.close(ready_r)
            os.setsid()
            if os.fork():
                os._exit(0)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.set_inheritable(r, True)
            os.set_inheritable(ready_w, True)
            lock_args = []
            if self.lock is not None:  # the guardian holds the lock until it has restored
                lock_args = ["--lock-fd", str(self.lock.inheritable_fd())]
            os.execv(sys.executable, [sys.executable, os.path.join(HERE, "agent.py"),
                                      "--guard", str(r), "--guard-ready", str(ready_w),
                                      "--workdir", self.workdir] + lock_args)
        finally:
            os._exit(0)

    # -- ops ------------------------------------------------------------------
    def op_hello(self, req):
        return {"protocol": PROTOCOL, "pid": os.getpid(), "euid": os.geteuid(),
                "python": sys.version.split()[0], "workdir": self.workdir}

    def op_facts(self, req):
        return facts_mod.collect(pyperf_version=pyperf_version())

    def op_preflight(self, req):
        modes = [known_mode(m) for m in req.get("modes", [])]
        with self.state_lock:
            if self.tracefs is None:
                self.tracefs = tracefs_mod.Tracefs.find()
            t = self.tracefs
            tracers = t.read("available_tracers").split()
            if any("function tracer" in m.needs for m in modes) and "function" not in tracers:
                raise Fatal("the kernel offers no function tracer (available_tracers: %s); "
                            "it needs CONFIG_FUNCTION_TRACER" % " ".join(tracers), kind="unsupported")
            # tolerant (bench check): report what fails instead of failing.
            tolerant = bool(req.get("tolerant"))
            errors = []
            busy, function = [], None
            try:
                busy = t.busy_reasons()
            except tracefs_mod.TracefsError as e:
                if not tolerant:
                    raise
                errors.append(str(e))
            if busy and not req.get("force"):
                raise Fatal("tracing is already in use on this host: %s" % "; ".join(busy), kind="busy")
            try:
                function = self.resolve_function(req.get("syscall", "getppid"))
            except (Fatal, tracefs_mod.TracefsError) as e:
                if not tolerant:
                    raise
                errors.append(str(e))
            return {"tracefs": t.root, "mounted_by_us": t.mounted_by_us,
                    "available_tracers": tracers, "busy": busy, "function": function,
                    "lockdown": tracefs_mod.lockdown_state(), "errors": errors}

    def resolve_function(self, syscall):
        if not re.match(r"^[a-z0-9_]+$", syscall):
            raise Fatal("bad syscall name %r" % syscall, kind="usage")
        names = set(self.traceable().ending_with("sys_" + syscall))
        prefix = SYSCALL_PREFIX.get(os.uname().machine)
        preferred = [n for n in names if prefix and n == prefix + syscall]
        if preferred:
            return preferred[0]
        if not names:
            raise Fatal("0 functions matched: no traceable handler for syscall %r in "
                        "available_filter_functions" % syscall, kind="unsupported")
        return sorted(names)[0]

    def traceable(self):
        """Every function the kernel lets ftrace attach to (read once): a name
        the controller sends is written to tracefs or the module only if it
        is one of these."""
        if getattr(self, "_traceable", None) is None:
            self._traceable = Traceable(self.tracefs.read("available_filter_functions"))
        return self._traceable

    def op_file_read(self, req):
        """One chunk of a file in our directory, for the controller
        (protocol/transfer.py: SFTP as a sudo login cannot read root's files)."""
        return transfer_mod.read_chunk(self.workdir, req.get("path"), req.get("offset", 0),
                                       req.get("length", transfer_mod.CHUNK_BYTES))

    def op_file_write(self, req):
        """One chunk of a file the controller sends into our directory (a
        cached module), written as root, mode 0600."""
        return transfer_mod.write_chunk(self.workdir, req.get("path"), req.get("data"),
                                        req.get("offset", 0))

    def op_check(self, req):
        """Raw capabilities (bench/check.py decides); changes nothing."""
        root = self.tracefs.root if self.tracefs else None
        _, config = facts_mod.kernel_config()
        return capabilities.collect(root, config.get("CONFIG_CC_VERSION_TEXT"),
                                    probe_bcc=req.get("bcc", True))

    def op_kmod_prepare(self, req):
        if self.tracefs is None or self.tracefs.snapshot is None:
            raise Fatal("kmod_prepare before begin")
        self.kmod = kmod_mod.Kmod(self.workdir, os.path.join(self.workdir, "kmod"))
        prebuilt = req.get("prebuilt")
        if prebuilt is not None and not re.match(r"^kmod/[A-Za-z0-9_.-]+\.ko$", prebuilt):
            raise Fatal("bad prebuilt module path %r" % prebuilt, kind="usage")
        return self.kmod.prepare(os.path.join(self.workdir, prebuilt) if prebuilt else None)

    def op_kmod_load(self, req):
        with self.state_lock:
            info = self.kmod.load()
            # The guardian must unload it too if we die: record it with the snapshot.
            self.tracefs.snapshot["module"] = {"name": kmod_mod.NAME,
                                               "debugfs_mounted_by_us": self.kmod.debugfs_mounted_by_us}
            self.tracefs.save_snapshot(os.path.join(self.workdir, "state.json"))
            return info

    def op_precondition(self, req):
        """Out of the just-booted state before round 0 (precondition.py); says what it did."""
        return precondition_mod.run()

    def op_begin(self, req):
        """Snapshot everything we may touch; nothing is written before this."""
        with self.state_lock:
            snap = self.tracefs.take_snapshot()
            self.tracefs.save_snapshot(os.path.join(self.workdir, "state.json"))
            return {"snapshot": snap}

    def op_set_mode(self, req):
        mode, function = known_mode(req["mode"]), req.get("function")
        if function is not None and not FUNCTION_RE.match(function):
            raise Fatal("bad function name %r" % function, kind="usage")
        t = self.tracefs
        if t.snapshot is None:
            raise Fatal("set_mode before begin: refusing to write an unsnapshotted tracefs")
        if "module" in mode.needs and (self.kmod is None or not self.kmod.loaded_by_us):
            raise Fatal("mode %r needs the module: kmod_load first" % mode.name)
        if mode.name != modes_mod.BASELINE and function not in self.traceable():
            raise Fatal("%r is not traceable: it is not in available_filter_functions" % function,
                        kind="unsupported")
        with self.state_lock:
            # Leave the previous mode, whichever it was: the module's ops
            # detached, the tracer off, every filter list a mode writes empty.
            if self.kmod is not None and self.kmod.loaded_by_us:
                self.kmod.detach()
                self.kmod.release()
            t.write("current_tracer", "nop")
            for knob in modes_mod.filter_knobs():
                t.write(knob, "")
            mode.enter(ModeWriter(mode, t, self.kmod), function)
            return self.op_verify({"function": function})

    def op_verify(self, req):
        """What tracefs says is attached: the proof that a mode is what it claims."""
        function = req.get("function")
        t = self.tracefs
        with self.state_lock:
            enabled = t.lines("enabled_functions") if t.exists("enabled_functions") else []
            return dict(current_tracer=t.read("current_tracer").strip(),
                        tracing_on=t.read("tracing_on").strip(),
                        set_ftrace_filter=t.lines("set_ftrace_filter"),
                        **tracefs_mod.enabled_view(enabled, function))

    # -- noise control (--tune) -----------------------------------------------
    def op_tune(self, req):
        """Pin to one CPU and write the tuning files, each snapshotted first
        (into state.json: the guardian and the lease restore them too)."""
        with self.state_lock:
            if self.tracefs is None or self.tracefs.snapshot is None:
                raise Fatal("tune before begin: nothing may be written before the snapshot")
            cpu = req.get("cpu")
            cpu = tune_mod.choose_cpu() if cpu is None else int(cpu)
            saved = self.tracefs.snapshot.setdefault("tune", {})
            state = os.path.join(self.workdir, "state.json")
            changed = tune_mod.apply(cpu, saved, lambda: self.tracefs.save_snapshot(state))
            self.tune_cpu = cpu
            # The agent's threads (this one, the reader, the watchdog) and
            # what they start unpinned (pyperf's manager, the bpf collector)
            # go to the other CPUs; the workloads pin themselves to `cpu`
            # (pyperf --affinity, callloop), the module's timing moves there
            # for its duration (kernelmethod.time_calls).  With one CPU there is no
            # other: the harness keeps quiet during cells instead.
            # The guardian and the connection's sshd (and sudo) go there too:
            # every request and every byte of output passes through them.
            self.housekeeping = tune_mod.housekeeping_cpus(cpu)
            pinned = tune_mod.pin_threads([0] + self.thread_ids, self.housekeeping or {cpu})
            if self.housekeeping:
                self.pinned_others.update(tune_mod.pin_processes(self.helper_pids(),
                                                                 self.housekeeping))
            return {"cpu": cpu, "changed": changed, "housekeeping": sorted(self.housekeeping),
                    "agent_threads_pinned": pinned, "placement": self.placement()}

    def guardian_pid(self):
        # found once (a walk over /proc), not on every cell
        if self._guardian is None:
            self._guardian = tune_mod.find_guardian(self.workdir) or 0
        return self._guardian or None

    def helper_pids(self):
        """The processes that work for the agent besides its own threads:
        the guardian, the connection's sshd/sudo above it and their other
        children (sftp-server), the bpf collector."""
        pids = []
        guardian = self.guardian_pid()
        if guardian:
            pids.append(guardian)
        conn = tune_mod.connection_pids(os.getpid())
        for p in conn:
            pids.append(p)
            pids.extend(c for c in tune_mod.children(p) if c != os.getpid() and c not in conn)
        bpf = self.method_state.get("bpf")
        if bpf is not None and getattr(bpf, "proc", None) is not None:
            pids.append(bpf.proc.pid)
        return pids

    def placement(self, extra=None):
        """Where the harness may run now, by part: {part: sorted CPUs}, and
        under "all" their union (what the controller compares
        with the workload's CPUs).  extra: {part: pid} started for a cell
        (pyperf's manager)."""
        parts = {"agent_threads": tune_mod.process_cpus(os.getpid())}
        guardian = self.guardian_pid()
        if guardian:
            parts["guardian"] = tune_mod.process_cpus(guardian)
        conn = sorted({c for p in tune_mod.connection_pids(os.getpid())
                       for c in (tune_mod.process_cpus(p) or ())})
        if conn:
            parts["connection"] = conn
        bpf = self.method_state.get("bpf")
        if bpf is not None and getattr(bpf, "proc", None) is not None:
            parts["bpf_collector"] = tune_mod.process_cpus(bpf.proc.pid)
        for part, pid in (extra or {}).items():
            parts[part] = tune_mod.process_cpus(pid)
        parts = {k: v for k, v in parts.items() if v is not None}
        parts["all"] = sorted({c for v in parts.values() for c in v})
        return parts

    def op_restore(self, req):
        with self.state_lock:
            problems = self.tracefs.restore() if self.tracefs and self.tracefs.snapshot else []
            if self.tracefs and self.tracefs.snapshot:
                problems += tune_mod.restore(self.tracefs.snapshot.get("tune", {}))
            tune_mod.unpin_processes(self.pinned_others)
            self.pinned_others = {}
            after = {k: self.tracefs.read(k) for k in self.tracefs.snapshot["knobs"]} \
                if self.tracefs and self.tracefs.snapshot else {}
            return {"problems": problems, "after": after}

    # -- main loop ------------------------------------------------------------
    QUIET_OPS = tuple(op for m in METHOD_FILES for op in m.QUIET_OPS)

    def run_op(self, op, handler, req):
        """Run one request; a measuring one with a declared budget holds the
        lease for that budget (the controller keeps silent meanwhile)."""
        if "budget_s" not in req:
            return handler(req)
        budget = lease_mod.check_budget(req["budget_s"])
        if budget is None or op not in self.QUIET_OPS:
            raise Fatal("bad budget_s %r for %r (a measuring op, 0 < seconds <= 86400)"
                        % (req["budget_s"], op), kind="usage")
        self.lease.begin_quiet(budget, req.get("cell") or op)
        try:
            return handler(req)
        finally:
            self.lease.end_quiet()

    def serve(self):
        self.pid = os.getpid()
        os.umask(0o022)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda s, f: threading.Thread(
                target=self.shutdown, args=("signal %d" % s, 4)).start())
        if self.lock_holder is not None:
            try:
                self.lock = lock_mod.Lock().acquire(self.lock_holder, self.workdir)
            except (lock_mod.Busy, OSError) as e:
                # Nothing was touched: say who holds the host, leave no files.
                kind, error = (e.kind, str(e)) if isinstance(e, lock_mod.Busy) else (
                    "agent", "cannot take the target lock %s: %s" % (lock_mod.PATH, e))
                self.send({"event": "fatal", "kind": kind, "error": error})
                self.remove_workdir()
                return 7
        try:
            self.start_guardian()
        except Fatal as e:  # nothing was touched yet
            self.send({"event": "fatal", "kind": e.kind, "error": str(e)})
            if self.lock is not None:
                self.lock.release()
            self.remove_workdir()
            return 1
        threading.Thread(target=self.reader, daemon=True).start()
        threading.Thread(target=self.watchdog, daemon=True).start()
        self.send({"event": "ready", "protocol": PROTOCOL, "pid": os.getpid(),
                   "lock_recovered": self.lock.recovered if self.lock else None})
        while True:
            with self.req_cond:
                while not self.requests and not self.eof:
                    self.req_cond.wait()
                if not self.requests:
                    return  # EOF: the reader thread restores and exits
                req = self.requests.pop(0)
            op = req.get("op")
            if op == "bye":
                problems = self.shutdown("bye")
                self.send({"id": req.get("id"), "ok": True, "result": {"problems": problems}})
                return
            handler = getattr(self, "op_" + str(op).replace("-", "_"), None)
            if handler is None and op in self.method_ops:
                handler = functools.partial(self.method_ops[op], self)
            try:
                if handler is None:
                    raise Fatal("unknown op %r" % op, kind="protocol")
                result = self.run_op(op, handler, req)
                self.send({"id": req.get("id"), "ok": True, "result": result})
            except BenchError as e:  # Fatal, TracefsError, KmodError, BpfError: kind and message
                self.send({"id": req.get("id"), "ok": False, "kind": e.kind, "error": str(e)})
            except Exception as e:  # report, keep serving: the controller decides
                if isinstance(getattr(e, "kind", None), str):
                    # the errors that say what failed (TracefsError, KmodError, a
                    # method's own): their kind and message as they are
                    self.send({"id": req.get("id"), "ok": False, "kind": e.kind, "error": str(e)})
                else:
                    self.send({"id": req.get("id"), "ok": False, "kind": "agent",
                               "error": "%s: %s" % (type(e).__name__, e)})


def guard(pipe_fd, workdir, lock_fd=None):
    """Wait for the agent to exit; if it left state.json behind, restore it.
    Then drop the target lock (lock_fd, inherited from the agent)."""
    while True:
        try:
            if not os.read(pipe_fd, 64):
                break  # EOF: the agent is gone
        except InterruptedError:
            continue
    for name in ("workload.pgid", "bpf.pgid"):
        pgid_file = os.path.join(workdir, name)
        if os.path.exists(pgid_file):
            try:
                os.killpg(int(open(pgid_file).read()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
    state = os.path.join(workdir, "state.json")
    if os.path.exists(state):
        with open(state) as f:
            module = json.load(f).get("module")
        if module:
            kmod_mod.unload()
        t, problems = tracefs_mod.restore_from_file(state)
        tune_mod.restore(t.snapshot.get("tune", {}))
        if module and module.get("debugfs_mounted_by_us"):
            subprocess.run(["umount", kmod_mod.DEBUGFS], capture_output=True)
        if t.mounted_by_us:
            subprocess.run(["umount", t.root], capture_output=True)
    if os.path.basename(workdir).startswith("ftrace-regs-bench."):
        shutil.rmtree(workdir, ignore_errors=True)
    if lock_fd is not None:
        lock_mod.release_fd(lock_fd)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lease", type=float, default=30.0, help="seconds without a request before restoring")
    ap.add_argument("--workdir", default=HERE)
    ap.add_argument("--guard", type=int, metavar="FD", help=argparse.SUPPRESS)
    ap.add_argument("--guard-ready", type=int, metavar="FD", help=argparse.SUPPRESS)
    ap.add_argument("--lock-fd", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--lock-holder", help="take the target lock (%s) in this name" % lock_mod.PATH)
    ap.add_argument("--restore", metavar="STATE", help="restore a tracefs snapshot file and exit")
    ns = ap.parse_args(argv)
    if ns.guard is not None:
        if ns.guard_ready is not None:  # everything imported: the agent may go on
            os.write(ns.guard_ready, b"1")
            os.close(ns.guard_ready)
        guard(ns.guard, ns.workdir, ns.lock_fd)
        return 0
    if ns.restore:
        t, problems = tracefs_mod.restore_from_file(ns.restore)
        problems += tune_mod.restore(t.snapshot.get("tune", {}))
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    if os.geteuid() != 0:
        print(json.dumps({"event": "fatal", "kind": "no-root", "error": "the agent must run as root"}))
        return 5
    if ns.lock_holder is not None and not HOLDER_RE.match(ns.lock_holder):
        print(json.dumps({"event": "fatal", "kind": "usage", "error": "bad lock holder %r"
                          % ns.lock_holder[:80]}))
        return 2
    # Whatever we or our children (bcc, make, pyperf, python) would keep
    # under $HOME goes into our own directory, removed with it: sudo keeps
    # the login user's HOME on some systems (env_keep), and root's files must
    # not be left in a sudo user's home.
    os.environ["HOME"] = ns.workdir
    os.environ.pop("XDG_CACHE_HOME", None)
    return Agent(ns.workdir, ns.lease, ns.lock_holder).serve() or 0


if __name__ == "__main__":
    sys.exit(main())
