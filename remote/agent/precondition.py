"""Bring the target out of a state that only a just-booted machine has, before round 0.

Runs on the target (stdlib only).  What is done is returned to the controller,
which keeps it in the bundle (``precondition``).

The pid floor.  pyperf's workers call ``os.getppid()``, which returns the pid
of the cell's pyperf manager.  CPython keeps the ints -5..256 as shared
objects (``_PY_NSMALLPOSINTS`` = 257): while the manager's pid is <= 256 each
call returns a cached int, above it each call allocates a new int and frees
it again.  In the icount lab that is 80 more guest instructions per call, in
every mode (issue 12: the early cells of the published icount bundles read 80
lower, until the harness's own processes had pushed the pid counter past
256).  A booted Debian lab guest starts near 200; a container or a fresh pid
namespace starts at 1.  The kernel hands out pids upwards and, when it wraps
at pid_max, starts again at RESERVED_PIDS (300, kernel/pid.c), so once a pid
>= 300 has been handed out in a namespace no later pid there is small: the
agent forks children that exit at once until one gets such a pid.  Every
cell then measures the allocating path, which is what a target that has been
up for a while (every real one) measures anyway.
"""
import os
import warnings

try:  # on the target: shipped next to agent.py as the package `protocol`
    from protocol.precondition import PID_FLOOR, SMALL_INT_MAX  # noqa: F401
except ImportError:  # in the source tree, imported as remote.agent.precondition
    from remote.protocol.precondition import PID_FLOOR, SMALL_INT_MAX  # noqa: F401


def _fork_and_reap():
    """One child that exits at once; returns its pid."""
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a process with threads (the
        # agent's reader and watchdog); the child only calls _exit.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def raise_pid_floor(floor=PID_FLOOR, fork=_fork_and_reap, limit=None):
    """Fork until a child's pid is >= floor.  Returns what was done:
    {floor, first_pid, last_pid, forks}.  fork() returns a new child's pid
    (a parameter so that the loop can be checked without forking 300 times).

    limit: forks at most (default: floor + 100; pids only grow until they
    wrap, and then they start at 300, so a sane kernel needs at most floor)."""
    limit = floor + 100 if limit is None else limit
    first = pid = fork()
    forks = 1
    while pid < floor:
        if forks >= limit:
            raise RuntimeError("pid floor: %d forks and the last child still got pid %d (< %d)"
                               % (forks, pid, floor))
        pid = fork()
        forks += 1
    return {"floor": floor, "first_pid": first, "last_pid": pid, "forks": forks}


def run():
    """Everything the agent does to a target before round 0 (agent.op_precondition)."""
    return {"pid_floor": raise_pid_floor()}
