"""How long a run will take: said before its first cell, and after each cell.

Before the first cell, the estimate comes from the plan alone: each method
says what one of its cells typically costs (Method.work: Python processes it
starts on the target, seconds of the target's clock it spends timing), and
the host's kind says what that costs in our seconds (SPEEDS: a lab under
QEMU is many times slower per instruction than hardware, and starts a Python
process in seconds).  The setup before the cells (agent, bcc's compile, the
module's build) is a rough figure per kind.  It is a guess, and says so.

While the cells run, the estimate of what is left tightens as they finish
(Progress): a method's remaining cells cost its own cells' mean so far; a
method not yet seen costs its guess scaled by how far the guesses were off
for the cells already measured (same host, same slowness).  The figures are
our wall seconds, not the target's (an icount guest's clock runs slower than
ours).

Not a budget: bench/budget.py's figures are upper bounds for the agent's
lease; these are typical durations, to tell a user what to expect.
"""
import dataclasses

from analysis import methods


@dataclasses.dataclass(frozen=True)
class Speed:
    """What a kind of host costs in our seconds."""

    label: str  # in words, for the estimate's line
    start_s: float  # one Python process started on the target
    slowdown: float  # our seconds per second of the target's clock while it is busy
    cell_s: float  # a cell's fixed cost: its requests (set_mode, verify), the raw file's fetch
    setup_s: float  # agent start, facts, checks, snapshot, pid floor
    compile_s: float  # bcc compiling the bpf program
    build_s: float  # the module built on the target (nothing when one is cached)


# Rough figures, from runs: the lab's from the bundles in results/lab and
# docs/lab.md ("How long the first command takes": agent 35 s, the module
# built in the guest 68-155 s, a kernel quick cell ~4 s, a pyperf quick
# cell ~12 s under icount on the 2-core development machine); hardware's
# from what a Python process and an SSH round trip cost on a small arm64
# server (not yet measured by this project).
SPEEDS = {
    "hardware": Speed("a real host", start_s=0.15, slowdown=1.0, cell_s=1.0, setup_s=10.0,
                      compile_s=15.0, build_s=30.0),
    # TCG without icount: the guest's clock keeps ours; a pyperf quick cell
    # (4 processes, 0.6 s timed) took 9.7 s on average (debian-6.1-tcg-quick),
    # bcc's compile 42 s (debian-6.1-tcg-bpf-quick).
    "lab-tcg": Speed("the lab under QEMU TCG", start_s=2.0, slowdown=1.0, cell_s=2.0, setup_s=35.0,
                     compile_s=45.0, build_s=150.0),
    # icount (shift=0: one guest ns per instruction): the guest's second
    # lasts several of ours while it is busy; a process start is ~0.3 s of
    # the guest's clock.
    "lab-icount": Speed("the lab under QEMU icount", start_s=2.0, slowdown=6.0, cell_s=3.0,
                        setup_s=35.0, compile_s=30.0, build_s=150.0),
}


def host_kind(facts):
    """'hardware', 'lab-tcg' or 'lab-icount' from the run's facts."""
    lab = (facts or {}).get("lab")
    if not lab:
        return "hardware"
    return "lab-icount" if lab.get("icount") else "lab-tcg"


def cell_guess(profile, method, kind):
    """Our seconds one cell of `method` should typically take on a host of
    `kind`, from the profile alone."""
    speed = SPEEDS[kind]
    m = methods.get(method)
    work = m.work(profile)
    if work is None:  # a method that does not say: its budget's figure, an upper bound
        return m.estimate(profile, speed.start_s) * speed.slowdown + speed.cell_s
    starts, timed = work
    return speed.cell_s + starts * speed.start_s + timed * speed.slowdown


def setup_guess(kind, methods_planned, module_cached):
    """Our seconds before the first cell: the agent and its checks, bcc's
    compile when bpf is planned, the module's build when the kernel method is
    planned and no module is cached for this kernel."""
    speed = SPEEDS[kind]
    s = speed.setup_s
    if "bpf" in methods_planned:
        s += speed.compile_s
    if any(methods.get(m).needs_module for m in methods_planned) and not module_cached:
        s += speed.build_s
    return s


def load_note(kind, load, cpus):
    """For a lab (QEMU runs on this machine): a word when the machine is
    busier than its CPUs, which stretches every guess above (a smoke run at
    load 9 on 2 CPUs took 3.3 times its guess: docs/lab.md); '' otherwise."""
    if kind == "hardware" or load is None or not cpus or load <= cpus:
        return ""
    return f"; this machine's load is {load:.1f} on {cpus} CPUs, which stretches a lab's run"


def counts(cells):
    """{method: number of cells} in plan order."""
    out = {}
    for c in cells:
        out[c.method] = out.get(c.method, 0) + 1
    return out


def plan_guess(profile, cells, kind, module_cached):
    """(setup seconds, cells' seconds) of a plan on a host of `kind`."""
    n = counts(cells)
    return (setup_guess(kind, list(n), module_cached),
            sum(k * cell_guess(profile, m, kind) for m, k in n.items()))


def duration(seconds):
    """'~40 s', '~3 min', '~1 h 10 min': rounded as a guess deserves."""
    s = max(0.0, float(seconds))
    if s < 90:
        return f"~{max(10, round(s / 10) * 10):.0f} s"
    m = round(s / 60)
    if m < 90:
        return f"~{m} min"
    return f"~{m // 60} h {m % 60:02d} min"


class Progress:
    """What is left of a run's cells, learnt as they finish."""

    def __init__(self, profile, cells, kind):
        self.kind = kind
        self.left = counts(cells)  # method -> cells not yet measured
        self.guess = {m: cell_guess(profile, m, kind) for m in self.left}
        self.seen = {}  # method -> (cells measured, their seconds)

    def done(self, method, seconds):
        self.left[method] = max(0, self.left.get(method, 0) - 1)
        n, s = self.seen.get(method, (0, 0.0))
        self.seen[method] = (n + 1, s + float(seconds))

    def drop(self, method):
        """A method dropped during the run: its cells will not come."""
        self.left.pop(method, None)

    def scale(self):
        """How far the guesses were off for the cells measured so far (1
        before any): observed seconds over guessed seconds."""
        guessed = sum(n * self.guess[m] for m, (n, _) in self.seen.items() if m in self.guess)
        taken = sum(s for m, (_, s) in self.seen.items() if m in self.guess)
        return taken / guessed if guessed else 1.0

    def per_cell(self, method):
        """Our seconds a remaining cell of `method` should take."""
        n, s = self.seen.get(method, (0, 0.0))
        if n:
            return s / n
        return self.guess.get(method, 0.0) * self.scale()

    def remaining(self):
        return sum(k * self.per_cell(m) for m, k in self.left.items())

    def text(self):
        """'~3 min left (pyperf 9 s/cell, kernel 2 s/cell measured)'; ''
        when nothing is left."""
        left = {m: k for m, k in self.left.items() if k}
        if not left:
            return ""
        basis = []
        for m in left:
            n, s = self.seen.get(m, (0, 0.0))
            basis.append(f"{m} {s / n:.0f} s/cell" if n else f"{m} guessed")
        return f"{duration(self.remaining())} left ({', '.join(basis)})"
