"""How long a cell may take: the budget declared to the agent before it.

While a cell is measured the controller sends nothing (no ping, no SSH
keepalive): on a single-CPU target every message would wake sshd and the
agent on the measured CPU, in the middle of timed values.  The agent holds
its lease for the declared budget instead (remote/agent/lease.py), so the
budget must not be too short (the lease would lapse under a live
controller: a failed run), and too long only delays noticing a cell that
hangs while the controller is gone too.  So it is generous: three times the
longest cell of the same method seen so far in this run, and never less
than an estimate from the profile that allows each Python process a slow
start (an emulated guest starts one in seconds).

The controller's own quiet window is tighter: twice its longest cell of the
method plus 10 s (the profile's estimate until one was seen).  Too short,
it lets a keepalive into the tail of a slow cell (noise, not a failure);
too long, it delays noticing a network that died during a cell (the
keepalive asks only when the window ends).

Two clocks: the agent counts the budget in the target's seconds (under
QEMU icount they pass several times slower than ours while the guest is
busy), the controller its quiet window in its own; each is learnt from its
own clock's durations (the agent's elapsed_s, our wall time).

Each method estimates its own cells from the profile (its file in
analysis/methods/: Method.estimate); this module adds the slack and learns.
"""
import dataclasses

from analysis import methods

# What one Python process may take to start on a slow target: a quick
# pyperf cell (4 processes) took up to 24.7 s in the TCG lab on a busy host
# (results/lab/debian-6.1-tcg-quick), about 6 s a process.
STARTUP_S = 15.0
# Growth room over the longest cell of the method seen so far.
FACTOR = 3.0
# The controller's quiet window over its longest cell of the method.
QUIET_FACTOR = 2.0
QUIET_SLACK_S = 10.0
# Added to every budget: fixed costs nobody estimated (bcc's first attach,
# a page cache miss on the target's disk).
SLACK_S = 30.0


def estimate(profile, method):
    """Seconds one cell of `method` should take at most, from the profile
    alone (before any cell of that method has run); an unknown method is a
    ValueError."""
    return methods.get(method).estimate(profile, STARTUP_S) + SLACK_S


@dataclasses.dataclass
class Budget:
    agent_s: float  # the target's seconds: the agent holds its lease this long
    quiet_s: float  # our seconds: we send nothing this long, or until the answer


class CellBudget:
    """Budgets for the cells of one run, learnt as its cells complete."""

    def __init__(self, profile):
        self.profile = profile
        self.longest = {}  # method -> (agent seconds, our seconds) of its longest cell

    def for_cell(self, method):
        base = estimate(self.profile, method)
        seen_agent, seen_ours = self.longest.get(method, (0.0, 0.0))
        quiet = QUIET_FACTOR * seen_ours + QUIET_SLACK_S if seen_ours else base
        return Budget(agent_s=round(max(base, FACTOR * seen_agent + SLACK_S), 1),
                      quiet_s=round(quiet, 1))

    def record(self, method, agent_s, ours_s):
        a, o = self.longest.get(method, (0.0, 0.0))
        self.longest[method] = (max(a, float(agent_s or 0.0)), max(o, float(ours_s or 0.0)))
