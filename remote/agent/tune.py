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
and moves its own threads to the other CPUs (housekeeping_cpus), so that
answering the controller never runs on the measured CPU.
"""
import os


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def online_cpus():
    return sorted(os.sched_getaffinity(0))


def isolated_cpus():
    """'2-3,6' -> [2, 3, 6] from /sys/devices/system/cpu/isolated."""
    try:
        text = _read("/sys/devices/system/cpu/isolated").decode().strip()
    except OSError:
        return []
    cpus = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


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
