"""The bpf method's workload: exactly N getppid() calls, when told.

Started by the agent as ``python3 callloop.py N [CPU]``.  It prints
``ready PID`` and waits for a line on stdin, so that the collector can be
attached to this very process before the first call; then it makes exactly N
calls (20 unrolled per loop iteration, the rest one by one), prints ``done
CPU MASK`` (the CPU it ended on, the CPUs it could run on) and exits.  Nothing else in this process calls getppid, so the collector's
count must equal N exactly (run a prime N): any other count is a
measurement error.
"""
import os
import sys

INNER = 20


def calls(n):
    g = os.getppid
    for _ in range(n // INNER):
        g(); g(); g(); g(); g(); g(); g(); g(); g(); g()  # noqa: E702
        g(); g(); g(); g(); g(); g(); g(); g(); g(); g()  # noqa: E702
    for _ in range(n % INNER):
        g()


def last_cpu():
    """The CPU this process is on now (/proc/self/stat field 39; stdlib
    Python has no sched_getcpu)."""
    with open("/proc/self/stat", "rb") as f:
        return int(f.read().decode("latin-1").rpartition(")")[2].split()[36])


def main(argv):
    n = int(argv[1])
    if len(argv) > 2:
        os.sched_setaffinity(0, {int(argv[2])})
    sys.stdout.write("ready %d\n" % os.getpid())
    sys.stdout.flush()
    if not sys.stdin.readline():
        return 1  # the agent went away before 'go'
    calls(n)
    # Where the calls ran: this process's mask and the CPU it is on now.
    mask = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    sys.stdout.write("done %d %s\n" % (last_cpu(), mask))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
