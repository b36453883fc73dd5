"""The agent's side of the pmu method: the CPU's own counters around the getppid loop.

Runs on the target (stdlib only: perf_event_open through ctypes, no `perf`
binary).  One counter group per measured thread: CPU cycles as the leader,
retired instructions as its member, user and kernel counted
(exclude_kernel=0: the syscall's kernel work is the point), the hypervisor
not (exclude_hv=1).  A group is scheduled on the PMU as a whole, so both
counts cover exactly the same time; read_format GROUP | TOTAL_TIME_ENABLED
| TOTAL_TIME_RUNNING gives both counts and the group's enabled and running
times in one read().  When running < enabled the kernel multiplexed the
group (more events than counters, e.g. another perf user or the NMI
watchdog): such a value is flagged, never scaled, and the controller
refuses the cell.

A cell is `processes` fresh worker processes started by one manager
process (``python3 pmumethod.py manager ...``), like pyperf's: the
workers' getppid() returns the manager's pid, which is created after the
pid floor (precondition.py) and so never a cached small int.  Each worker
opens its counters on itself (pid 0, any CPU, not inherited), calibrates
its loop count by doubling until one value lasts min_time, then takes
`warmups` + `values` values.  A value is: read the group, perf_counter_ns,
callloop.calls(loops * 20) (the same unrolled loop as workload.py and
callloop.py), perf_counter_ns, read the group; it keeps calls, cycles,
instructions, time_enabled, time_running and the clock's ns of the same
loop.

Counters for the kernel method (kernelmethod.py): the module's timing loop
runs in the agent thread that writes its `run` file, so a Counters opened
in that thread (pid 0 is the calling thread) and read around each
repetition counts it (Counters.around).

The agent serves OPS as its own (agent.py: every *method.py next to it);
each op gets the agent as a plain object and raises agent.Fatal.
"""
import ctypes
import errno
import json
import os
import platform
import re
import struct
import subprocess
import sys
import time

try:  # on the target, and next to agent.py (which puts its directory on sys.path)
    import callloop
except ImportError:  # in the source tree, imported as remote.agent.pmumethod
    from remote.agent import callloop

HERE = os.path.dirname(os.path.abspath(__file__))

# perf_event_open's number (include/uapi/asm-generic/unistd.h: 241 on arm64
# and riscv; arch/x86/entry/syscalls/syscall_64.tbl: 298).
SYSCALL_NR = {"aarch64": 241, "riscv64": 241, "x86_64": 298}

# include/uapi/linux/perf_event.h
PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1
PERF_COUNT_HW_CPU_CYCLES = 0
PERF_COUNT_HW_INSTRUCTIONS = 1
PERF_COUNT_SW_TASK_CLOCK = 1
PERF_FORMAT_TOTAL_TIME_ENABLED = 1 << 0
PERF_FORMAT_TOTAL_TIME_RUNNING = 1 << 1
PERF_FORMAT_GROUP = 1 << 3
PERF_FLAG_FD_CLOEXEC = 1 << 3
# struct perf_event_attr up to sample_max_stack (PERF_ATTR_SIZE_VER5, 4.8+):
# type, size, config, sample_period, sample_type, read_format, the flag
# bits, wakeup_events, bp_type, config1, config2, branch_sample_type,
# sample_regs_user, sample_stack_user, clockid, sample_regs_intr,
# aux_watermark, sample_max_stack, __reserved_2.  Every field is naturally
# aligned, so the packed form is the C layout.
ATTR_FORMAT = "=IIQQQQQIIQQQQIiQIHH"
ATTR_SIZE = struct.calcsize(ATTR_FORMAT)  # 112
# The flag bits' positions (the bitfield after read_format).
FLAG_BITS = {"disabled": 0, "inherit": 1, "pinned": 2, "exclusive": 3, "exclude_user": 4,
             "exclude_kernel": 5, "exclude_hv": 6, "exclude_idle": 7}
READ_FORMAT = PERF_FORMAT_GROUP | PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING

# The events, leader first.
EVENTS = (("cycles", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES),
          ("instructions", PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS))
INNER = callloop.INNER  # calls per loop iteration: the same unrolled loop
MAX_LOOPS = 1 << 24
EVENT_SOURCES = "/sys/bus/event_source/devices"
PARANOID = "/proc/sys/kernel/perf_event_paranoid"


class PmuError(OSError):
    """perf_event_open refused: errno and the event it was for."""

    def __init__(self, err, event):
        super().__init__(err, "perf_event_open(%s): %s" % (event, os.strerror(err)))
        self.event = event


def pack_attr(type_, config, read_format=READ_FORMAT, **flags):
    """struct perf_event_attr for counting (no sampling), as bytes.  flags:
    FLAG_BITS names; exclude_hv is set unless said otherwise."""
    flags.setdefault("exclude_hv", True)
    bits = 0
    for name, on in flags.items():
        if on:
            bits |= 1 << FLAG_BITS[name]
    return struct.pack(ATTR_FORMAT, type_, ATTR_SIZE, config, 0, 0, read_format, bits,
                       0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def unpack_attr(buf):
    """(type, size, config, read_format, {flag: bool}) of a packed attr (tests)."""
    f = struct.unpack(ATTR_FORMAT, buf)
    return f[0], f[1], f[2], f[5], {name: bool(f[6] >> bit & 1) for name, bit in FLAG_BITS.items()}


def parse_group_read(buf, names):
    """A read() of a group with READ_FORMAT: u64 nr, time_enabled,
    time_running, then nr values (leader first, members in the order they
    were opened) -> {time_enabled, time_running, name: value...}."""
    if len(buf) < 24:
        raise ValueError("short read of a counter group: %d bytes" % len(buf))
    nr, enabled, running = struct.unpack_from("=QQQ", buf)
    if nr != len(names) or len(buf) < 24 + 8 * nr:
        raise ValueError("counter group read gave %d values (%d bytes), expected %d"
                         % (nr, len(buf), len(names)))
    values = struct.unpack_from("=%dQ" % nr, buf, 24)
    out = {"time_enabled": enabled, "time_running": running}
    out.update(zip(names, values))
    return out


def delta(before, after):
    """after - before, field by field, and whether the group ran the whole
    time (multiplexed: running advanced less than enabled)."""
    d = {k: after[k] - before[k] for k in after}
    d["multiplexed"] = d["time_running"] != d["time_enabled"]
    return d


_libc = None


def perf_event_open(attr, pid=0, cpu=-1, group_fd=-1, flags=PERF_FLAG_FD_CLOEXEC, machine=None):
    """The system call, through libc's syscall(); returns an fd or raises
    PmuError (ENOSYS where its number is unknown)."""
    global _libc
    nr = SYSCALL_NR.get(machine or platform.machine())
    if nr is None:
        raise PmuError(errno.ENOSYS, "any")
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = _libc.syscall(ctypes.c_long(nr), buf, ctypes.c_long(pid), ctypes.c_long(cpu),
                       ctypes.c_long(group_fd), ctypes.c_ulong(flags))
    if fd < 0:
        raise PmuError(ctypes.get_errno(), "?")
    return fd


class Counters:
    """One counter group on the calling thread (pid 0) or a process:
    events[0] leads; a member the PMU does not support (ENOENT,
    EOPNOTSUPP, EINVAL: instructions under plain QEMU TCG) is left out and
    named in `unsupported` ({name: errno name}); a leader that cannot be
    opened raises PmuError."""

    def __init__(self, events=EVENTS, pid=0, cpu=-1):
        self.fds, self.names, self.unsupported = [], [], {}
        for name, type_, config in events:
            leader = self.fds[0] if self.fds else -1
            try:
                fd = perf_event_open(pack_attr(type_, config), pid, cpu, leader)
            except PmuError as e:
                if not self.fds:
                    self.close()
                    raise PmuError(e.errno, name)
                self.unsupported[name] = errno.errorcode.get(e.errno, str(e.errno))
                continue
            self.fds.append(fd)
            self.names.append(name)
        self.size = 24 + 8 * len(self.names)

    def read(self):
        return parse_group_read(os.read(self.fds[0], self.size), self.names)

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def around(self, fn):
        """fn() between two reads: (fn's result, delta)."""
        a = self.read()
        res = fn()
        return res, delta(a, self.read())


def count_reps(rep, reps, events=EVENTS):
    """The kernel method's repetitions, each between two reads of a group
    opened on this thread (the module's loop runs in it): rep() -> a run's
    dict, which gets the counts (cycles, instructions where supported,
    time_enabled, time_running, multiplexed).  A PMU that refuses the
    leader raises PmuError (the controller asked only when bench check
    said the PMU is usable)."""
    c = Counters(events)
    try:
        runs = []
        for _ in range(reps):
            run, d = c.around(rep)
            run.update(d)
            runs.append(run)
    finally:
        c.close()
    return runs


def one_value(counters, loops):
    """One timed value of the loop: counts, the clock and the calls."""
    a = counters.read()
    t0 = time.perf_counter_ns()
    callloop.calls(loops * INNER)
    t1 = time.perf_counter_ns()
    d = delta(a, counters.read())
    d.update(calls=loops * INNER, ns=t1 - t0)
    return d


def worker(warmups, values, min_time, cpu=None, events=EVENTS):
    """One worker process's values (its own counters on itself; events:
    the group, leader first)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    c = Counters(events)
    try:
        loops, calibration = 1, []
        while True:
            v = one_value(c, loops)
            calibration.append(v)
            if v["ns"] >= min_time * 1e9 or loops >= MAX_LOOPS:
                break
            loops *= 2
        warm = [one_value(c, loops) for _ in range(warmups)]
        vals = [one_value(c, loops) for _ in range(values)]
    finally:
        c.close()
    return {"pid": os.getpid(), "ppid": os.getppid(), "loops": loops, "counters": c.names,
            "unsupported": c.unsupported, "calibration": len(calibration), "warmups": warm,
            "values": vals, "affinity": sorted(os.sched_getaffinity(0)), "cpu": callloop.last_cpu()}


def manager(out, processes, warmups, values, min_time, cpu=None):
    """The cell: `processes` workers one after the other, this process
    their parent; their results into `out` (JSON)."""
    workers = []
    for _ in range(processes):
        argv = [sys.executable, os.path.abspath(__file__), "worker", str(warmups), str(values),
                repr(float(min_time))] + ([str(cpu)] if cpu is not None else [])
        p = subprocess.run(argv, capture_output=True, cwd=HERE)
        if p.returncode != 0:
            err = p.stderr.decode("utf-8", "replace").strip().splitlines()
            sys.stderr.write("pmu worker failed (exit %d): %s\n" % (p.returncode, err[-1] if err else ""))
            return 1
        workers.append(json.loads(p.stdout))
    with open(out, "w") as f:
        json.dump({"manager_pid": os.getpid(), "workers": workers}, f)
    return 0


# -- what bench check sees (capabilities.py) ----------------------------------

def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def probe():
    """Raw observations: the event sources (PMUs) the kernel lists,
    perf_event_paranoid, our uid, and what opening each event on this
    thread gives (an fd: 'ok' and a count over a short loop; or the errno
    name).  The controller (analysis/methods/pmu.py) turns them into an
    answer with a reason."""
    try:
        sources = sorted(os.listdir(EVENT_SOURCES))
    except OSError:
        sources = None
    out = {"machine": platform.machine(), "event_sources": sources, "paranoid": _read(PARANOID),
           "euid": os.geteuid(), "events": {}}
    for name, type_, config in EVENTS:
        try:
            c = Counters(events=((name, type_, config),))
        except PmuError as e:
            out["events"][name] = errno.errorcode.get(e.errno, str(e.errno))
            continue
        try:
            _, d = c.around(lambda: [os.getppid() for _ in range(1000)])
        finally:
            c.close()
        out["events"][name] = "ok"
        out.setdefault("counts", {})[name] = d[name]
    return out


# -- the agent's ops ----------------------------------------------------------

def measure(agent, req):
    """One cell: the manager and its workers; returns the results file."""
    cell = req["cell"]
    if not re.match(r"^[A-Za-z0-9_.-]+$", cell):
        raise agent.Fatal("bad cell id %r" % cell, kind="usage")
    processes, warmups, values = int(req["processes"]), int(req["warmups"]), int(req["values"])
    min_time = float(req["min_time"])
    if not (1 <= processes <= 1000 and 0 <= warmups <= 100 and 1 <= values <= 1000
            and 0 < min_time <= 10):
        raise agent.Fatal("pmu_measure arguments out of range", kind="usage")
    out_dir = os.path.join(agent.workdir, "results")
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, cell + ".pmu.json")
    cpu = agent.tune_cpu
    argv = [sys.executable, os.path.abspath(__file__), "manager", out, str(processes), str(warmups),
            str(values), repr(min_time)] + ([str(cpu)] if cpu is not None else [])
    t0 = time.monotonic()
    log = os.path.join(out_dir, cell + ".pmu.err")
    with open(log, "wb") as errf:
        agent.workload = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errf,
                                          stdin=subprocess.DEVNULL, start_new_session=True,
                                          cwd=agent.workdir)
    pid = agent.workload.pid
    # Where the harness could run while the workers count (the manager
    # inherits the agent's housekeeping mask; each worker pins itself).
    harness = agent.placement({"pmu_manager": pid})
    with open(os.path.join(agent.workdir, "workload.pgid"), "w") as f:
        f.write(str(pid))
    rc = agent.workload.wait()
    agent.workload = None
    if rc != 0 or not os.path.exists(out):
        with open(log, "rb") as f:
            tail = f.read().decode("utf-8", "replace").strip().splitlines()
        raise agent.Fatal("pmu workers failed for cell %s (exit %d): %s"
                          % (cell, rc, tail[-1] if tail else ""), kind="measure")
    with open(out) as f:
        workers = json.load(f)["workers"]
    cpus = {"workload": sorted({c for w in workers for c in w.get("affinity", ())}),
            "ran_on": sorted({w["cpu"] for w in workers if "cpu" in w}), "harness": harness}
    return {"file": out, "elapsed_s": time.monotonic() - t0, "workload_pid": pid, "cpus": cpus}


def start(agent, req):
    """Before the first cell: which counters a worker gets here."""
    return probe()


OPS = {"pmu_measure": measure, "pmu_start": start}
QUIET_OPS = ("pmu_measure",)


def main(argv):
    if argv[1] == "worker":
        cpu = int(argv[5]) if len(argv) > 5 else None
        json.dump(worker(int(argv[2]), int(argv[3]), float(argv[4]), cpu), sys.stdout)
        return 0
    if argv[1] == "manager":
        cpu = int(argv[7]) if len(argv) > 7 else None
        return manager(argv[2], int(argv[3]), int(argv[4]), int(argv[5]), float(argv[6]), cpu)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
