"""Noise control on the target (`bench run --tune`), undone afterwards, byte for byte.

Runs on the target (stdlib only).  pyperf's ``system tune`` inspired the
knobs; unlike pyperf's ``system reset`` (which writes 'powersave' whatever
the governor was), every file is read before it is written and the original
bytes are written back.  The originals go into the agent's state file before
the first write (see agent.op_tune), so the guardian and the lease restore
them too.

The settings, each only where the file exists and the value differs:
  scaling_governor of the measuring CPU   -> performance (if offered)
  cpufreq boost / intel_pstate no_turbo   -> off (frequency steadier)
  /proc/sys/kernel/perf_event_max_sample_rate -> 1 (pyperf: fewer perf
                                             interrupts during measurements)
Pinning the measuring processes to one CPU is process state, not a file:
the agent passes the CPU to pyperf (--affinity) and to its own workloads,
and moves its own threads, its guardian and the sshd (and sudo) processes
that carry the controller's connection to the other CPUs (housekeeping_cpus),
so that answering the controller never runs on the measured CPU.  Those
processes' masks are put back on restore (the connection's processes end
with the run anyway).  Interrupts are not moved: /proc/irq is left alone.
"""
import os


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def online_cpus():
    return sorted(os.sched_getaffinity(0))


def parse_cpu_list(text):
    """'2-3,6' -> [2, 3, 6] (the kernel's and pyperf's CPU list format)."""
    cpus = []
    for part in filter(None, text.strip().split(",")):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def isolated_cpus():
    """The CPUs in /sys/devices/system/cpu/isolated."""
    try:
        return parse_cpu_list(_read("/sys/devices/system/cpu/isolated").decode())
    except OSError:
        return []


def choose_cpu():
    """An isolated CPU if there is one, else the last CPU we may run on
    (CPU 0 takes more of the system's interrupts and housekeeping)."""
    allowed = online_cpus()
    iso = [c for c in isolated_cpus() if c in allowed] or isolated_cpus()
    return iso[0] if iso else allowed[-1]


def settings(cpu):
    """[(path, wanted bytes)] for the files that exist on this target."""
    out = []
    freq = "/sys/devices/system/cpu/cpu%d/cpufreq" % cpu
    gov = os.path.join(freq, "scaling_governor")
    if os.path.exists(gov):
        try:
            offered = _read(os.path.join(freq, "scaling_available_governors")).split()
        except OSError:
            offered = []
        if b"performance" in offered:
            out.append((gov, b"performance\n"))
    if os.path.exists("/sys/devices/system/cpu/intel_pstate/no_turbo"):
        out.append(("/sys/devices/system/cpu/intel_pstate/no_turbo", b"1\n"))
    elif os.path.exists("/sys/devices/system/cpu/cpufreq/boost"):
        out.append(("/sys/devices/system/cpu/cpufreq/boost", b"0\n"))
    if os.path.exists("/proc/sys/kernel/perf_event_max_sample_rate"):
        out.append(("/proc/sys/kernel/perf_event_max_sample_rate", b"1\n"))
    return out


def apply(cpu, saved, save):
    """Write the settings for `cpu`.  `saved` (a dict path -> original text,
    kept in the agent's state) gets each original before its file is
    written, and save() persists it first.  Returns [{path, before, after}]."""
    changed = []
    for path, want in settings(cpu):
        before = _read(path)
        if before.strip() == want.strip():
            continue
        if path not in saved:
            saved[path] = before.decode("latin-1")
            save()
        _write(path, want)
        changed.append({"path": path, "before": before.decode("latin-1").strip(),
                        "after": _read(path).decode("latin-1").strip()})
    return changed


def _write(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)  # as the shell does; sysfs ignores O_TRUNC
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def restore(saved):
    """Write every original back; returns problems (files that now differ)."""
    problems = []
    for path, text in saved.items():
        before = text.encode("latin-1")
        try:
            if _read(path) != before:
                _write(path, before)
            if _read(path) != before:
                problems.append("%s is %r, was %r" % (path, _read(path), before))
        except OSError as e:
            problems.append("cannot restore %s: %s" % (path, os.strerror(e.errno) if e.errno else e))
    return problems


def housekeeping_cpus(cpu, allowed=None, isolated=None):
    """The CPUs the harness may use while `cpu` measures: every CPU we may run
    on but `cpu`, leaving out other isolated CPUs when that leaves any
    (someone isolated them for a reason).  Empty on a single-CPU target."""
    allowed = set(online_cpus() if allowed is None else allowed)
    isolated = set(isolated_cpus() if isolated is None else isolated)
    rest = allowed - {cpu}
    return (rest - isolated) or rest


def pin_threads(tids, cpus):
    """sched_setaffinity for each thread id (0: the calling thread); Linux
    pins threads one by one, a process's other threads keep their mask.
    Returns how many were pinned (a thread already gone is skipped)."""
    n = 0
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
            n += 1
        except ProcessLookupError:
            pass
    return n


def process_cpus(pid):
    """The CPUs any thread of a process may run on (the union of its
    threads' masks: Linux keeps one per thread), or None if it is gone."""
    try:
        tids = [int(t) for t in os.listdir("/proc/%d/task" % pid)]
    except OSError:
        return None
    cpus = set()
    for tid in tids:
        mask = affinity(tid)
        if mask is not None:
            cpus.update(mask)
    return sorted(cpus)


def stat_fields(pid, tid=None):
    """/proc/PID[/task/TID]/stat after the command name (which may hold
    spaces and parentheses): field 3 (state) is [0]."""
    path = "/proc/%d/stat" % pid if tid is None else "/proc/%d/task/%d/stat" % (pid, tid)
    with open(path, "rb") as f:
        text = f.read().decode("latin-1")
    return text[text.rindex(")") + 2:].split()


def last_cpu(pid, tid=None):
    """The CPU the task last ran on (stat field 39, 'processor'), or None."""
    try:
        return int(stat_fields(pid, tid)[36])
    except (OSError, IndexError, ValueError):
        return None


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid, "rb") as f:
            return f.read().decode("latin-1").strip()
    except OSError:
        return None


def parent(pid):
    try:
        return int(stat_fields(pid)[1])
    except (OSError, IndexError, ValueError):
        return None


SSHD = ("sshd", "sshd-session")
# What may stand between sshd and the agent: sudo, and the login shell that
# runs the command (dash, a common /bin/sh, does not exec the last command).
BETWEEN = ("sudo", "sh", "dash", "bash", "zsh", "ksh", "mksh", "ash", "busybox")


def connection_pids(pid):
    """The processes above `pid` that carry the controller's connection: its
    consecutive sshd, sudo and shell ancestors up to, not including, the
    topmost sshd (the daemon that listens for every connection, not only
    ours).  Empty when no sshd is above (the agent started locally)."""
    chain = []
    p = parent(pid)
    while p and p > 1 and comm(p) in SSHD + BETWEEN:
        chain.append(p)
        p = parent(p)
    daemons = [i for i, q in enumerate(chain) if comm(q) in SSHD]
    return chain[:daemons[-1]] if daemons else []


def children(pid):
    """Direct children of `pid` (the connection's sftp-server, for one)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and parent(int(name)) == pid:
            out.append(int(name))
    return out


def find_guardian(workdir):
    """The agent's guardian (agent.py --guard ... --workdir WORKDIR), or None:
    it is forked twice and detached, so its pid is found, not kept."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                argv = f.read().decode("latin-1").split("\0")
        except OSError:
            continue
        if "--guard" in argv and "--workdir" in argv and workdir in argv:
            return int(name)
    return None


def affinity(pid):
    """sorted CPUs a process (or thread id) may run on, or None if it is gone."""
    try:
        return sorted(os.sched_getaffinity(pid))
    except OSError:
        return None


def pin_processes(pids, cpus):
    """Every thread of each process to `cpus`; returns {pid: mask before}
    for those pinned (gone ones are skipped)."""
    before = {}
    for pid in pids:
        mask = affinity(pid)
        if mask is None:
            continue
        try:
            tids = [int(t) for t in os.listdir("/proc/%d/task" % pid)]
        except OSError:
            continue
        try:
            pin_threads(tids, cpus)
        except OSError:  # e.g. a cpuset that does not allow `cpus`: left as it was
            continue
        before[pid] = mask
    return before


def unpin_processes(before):
    """Put back the masks pin_processes() returned (best effort: a process of
    the connection may be gone, which is fine)."""
    for pid, mask in before.items():
        try:
            tids = [int(t) for t in os.listdir("/proc/%d/task" % pid)]
        except OSError:
            continue
        try:
            pin_threads(tids, set(mask))
        except OSError:
            pass
