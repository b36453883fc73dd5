"""The plan: which cells a run measures, in which order, with which effort.

A cell is one (round, mode, workload, method).  Every mode is measured once
per round and the order of modes changes from round to round (a seeded
shuffle recorded in the plan), so slow drift of the machine spreads over all
modes instead of passing for the overhead of one.

Two check modes join every round (plan["check_modes"]); both are
planning-level variants of the baseline mode 'off' (measured in its tracefs
state, by the methods that measure it):
- ``off-aa``: off measured a second time with every method (the A/A check:
  its overhead against off must not differ from zero);
- ``off-probe``: pyperf's loop with the bpf method's probes attached to every
  process (planned when both pyperf and bpf are): its overhead against off
  is the probes' own cost.

The kernel method's cells may carry an ops point (--ops, --ops-sweep): R
ops attached to the module's tracee and I attached elsewhere, instead of
the mode's own one ops (Mark Rutland's samples/ftrace/ftrace-ops.c
measures the same two numbers).  A point is one more cell of its mode per
round, shuffled with the modes; off (no ops) stays one cell per round, the
baseline of every point.  Cell.ops is None for the mode's own settings
(1+0), so a plan without points is the plan it always was.

The modes themselves are declared one file each in remote/protocol/modes.
"""
import dataclasses
import random

from analysis import methods as methods_reg
from analysis.methods.bpf import PROBE_MODE
from remote.protocol import modes as mode_registry
from remote.protocol.kmod import MAX_OPS

from .errors import UsageError

WORKLOADS = ("getppid",)
METHODS = tuple(methods_reg.names())  # one file each: analysis/methods/
AA_MODE = "off-aa"
CHECK_MODES = (AA_MODE, PROBE_MODE)


def tracefs_mode(mode):
    """The tracefs state a cell's mode needs (check modes measure the baseline's)."""
    return mode_registry.BASELINE if mode in CHECK_MODES else mode


def kernel_settings(mode, ops=None):
    """The module settings a kernel-method cell of this (tracefs) mode
    registers: the mode's own, or its ops point's counts (ops: (relevant,
    irrelevant)); irrelevant is always given (0 by default)."""
    settings = mode_registry.get(mode).kernel
    if settings is None:
        raise ValueError(f"mode {mode!r} has no kernel-method cells")  # a planning bug
    settings = dict(settings, irrelevant=0)
    if ops is not None:
        if not settings["relevant"]:
            raise ValueError(f"mode {mode!r} registers no ops: it has no ops point")  # a planning bug
        settings.update(relevant=int(ops[0]), irrelevant=int(ops[1]))
    return settings


def takes_points(mode, method):
    """Does a cell of this mode and method carry the plan's ops points?  The
    kernel method's cells of a mode that registers ops (noregs, regs)."""
    if method != "kernel" or mode in CHECK_MODES:
        return False
    k = mode_registry.get(mode).kernel
    return bool(k and k["relevant"])


def workload_of(method, workload):
    """The workload a method times when the run's is `workload`."""
    return methods_reg.get(method).workload(workload)


def applies(mode, method):
    """A method says which modes it measures (analysis/methods/), from what
    the mode files declare (the kernel method: a mode with KERNEL settings)."""
    return methods_reg.get(method).applies(mode, tracefs_mode(mode))


def check_modes_of(methods):
    """The check modes a plan of `methods` measures: off-aa always, and
    those the methods bring (bpf with pyperf: off-probe)."""
    brought = [m for name in methods for m in methods_reg.get(name).check_modes(methods)]
    return [AA_MODE] + list(dict.fromkeys(brought))


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    rounds: int
    processes: int  # pyperf worker processes per cell
    values: int  # values per worker
    warmups: int
    min_time: float  # seconds per value (pyperf calibrates loops to reach it)
    description: str
    # bpf method: getppid calls per run (a prime: the probe's count must equal
    # it exactly); a cell is `processes` runs, each in a fresh process.
    bpf_calls: int = 100003


PROFILES = {
    p.name: p
    for p in (
        # smoke: the whole path (connect, agent, module, every check, restore)
        # with the least measuring that still gives a CI per figure (2 rounds);
        # for checking a host or the suite itself, not for figures to publish.
        Profile("smoke", rounds=2, processes=1, values=2, warmups=1, min_time=0.02,
                description="a host checked end to end in about a minute; figures too rough "
                            "to publish", bpf_calls=1009),
        Profile("quick", rounds=4, processes=2, values=3, warmups=1, min_time=0.05,
                description="a few minutes in the TCG lab, under 2 minutes on hardware",
                bpf_calls=10007),
        Profile("standard", rounds=5, processes=8, values=3, warmups=1, min_time=0.1,
                description="the default: 5 rounds x 8 workers x 3 values per mode"),
        Profile("rigorous", rounds=10, processes=20, values=3, warmups=1, min_time=0.1,
                description="pyperf's own default effort (20 workers x 3 values), in 10 rounds"),
    )
}


def select_profile(name):
    try:
        return PROFILES[name]
    except KeyError:
        raise UsageError(f"unknown profile {name!r}", hint="choose one of: " + ", ".join(PROFILES))


def parse_list(text, known, what):
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise UsageError(f"no {what} given", hint="choose from: " + ", ".join(known))
    for x in items:
        if x not in known:
            raise UsageError(f"unknown {what[:-1]} {x!r}", hint="choose from: " + ", ".join(known))
    return list(dict.fromkeys(items))


# The sweep --ops-sweep measures without a value (issue 14 section 3):
# 1, 2, 4 and 8 relevant ops, each with 0 and with 8 irrelevant ones.
DEFAULT_SWEEP = "1,2,4,8x0,8"
# The point a mode's own settings stand for (remote/protocol/modes KERNEL).
DEFAULT_OPS = (1, 0)


def _ops_int(text, what, lo):
    try:
        n = int(text)
    except ValueError:
        n = None
    if n is None or not lo <= n <= MAX_OPS:
        raise UsageError(f"{what} must be a number from {lo} to {MAX_OPS}, not {text.strip()!r}",
                         hint="--ops RELEVANT[,IRRELEVANT], e.g. --ops 4,8")
    return n


def parse_ops(text):
    """--ops R[,I]: R ops on the tracee (1..16), I elsewhere (0..16, default 0)."""
    parts = text.split(",")
    if len(parts) > 2 or not text.strip():
        raise UsageError(f"--ops takes RELEVANT[,IRRELEVANT], not {text!r}", hint="e.g. --ops 4,8")
    relevant = _ops_int(parts[0], "the number of relevant ops", 1)
    irrelevant = _ops_int(parts[1], "the number of irrelevant ops", 0) if len(parts) == 2 else 0
    return (relevant, irrelevant)


def parse_sweep(text):
    """--ops-sweep RS[xIS]: every R of RS with every I of IS (default 0),
    e.g. '1,2,4,8x0,8'; in that order, relevant first."""
    rel, sep, irr = text.partition("x")
    rs = [_ops_int(t, "the number of relevant ops", 1) for t in rel.split(",")]
    is_ = [_ops_int(t, "the number of irrelevant ops", 0) for t in irr.split(",")] if sep else [0]
    return list(dict.fromkeys((r, i) for i in is_ for r in rs))


def ops_points(ops=(), sweep=None):
    """The plan's ops points from --ops (repeatable) and --ops-sweep, in the
    order given, each once; [] when neither was given."""
    points = [parse_ops(t) for t in ops or ()]
    if sweep is not None:
        points += parse_sweep(sweep)
    return list(dict.fromkeys(points))


def point_of(ops):
    """A plan's point as a cell carries it: None for the mode's own (1+0)."""
    return None if ops is None or tuple(ops) == DEFAULT_OPS else tuple(ops)


@dataclasses.dataclass
class Cell:
    round: int
    mode: str
    workload: str
    method: str
    ops: tuple = None  # (relevant, irrelevant) of a kernel cell's ops point; None: the mode's own

    @property
    def id(self):
        point = f"-ops{self.ops[0]}-{self.ops[1]}" if self.ops else ""
        return f"r{self.round:02d}-{self.mode}{point}-{self.workload}-{self.method}"


@dataclasses.dataclass
class Plan:
    profile: Profile
    modes: list
    workload: str
    methods: list
    seed: int
    cells: list
    skipped: list = dataclasses.field(default_factory=list)
    check_modes: list = dataclasses.field(default_factory=list)
    affinity: int = None  # the measuring CPU under --tune
    ops: list = dataclasses.field(default_factory=list)  # [(relevant, irrelevant)]: --ops points

    @property
    def all_modes(self):
        return list(self.modes) + list(self.check_modes)

    @property
    def needs_module(self):
        return (any(methods_reg.get(m).needs_module for m in self.methods)
                or any("module" in mode_registry.get(m).needs for m in self.modes))

    @property
    def heaviest_ops(self):
        """The point with the most ops (what the kernel method calibrates on)."""
        return max(self.ops or [DEFAULT_OPS], key=lambda p: (p[0] + p[1], p[0]))

    @property
    def kernel_save_regs(self):
        """Whether a kernel-method cell of the plan registers its ops with SAVE_REGS."""
        return "kernel" in self.methods and any(
            (mode_registry.get(m).kernel or {}).get("save_regs") for m in self.modes)

    def drop_method(self, method, skipped):
        """Stop planning a method found impossible once the run began."""
        self._drop(methods=[method], modes=[])
        self.skipped.append(skipped)

    def drop_module(self, reason):
        """The suite's module did not build or load once the run began: stop
        planning the methods that need it (kernel) and the modes that need
        it (noregs, regs: their ops are the module's), with the reason, one
        skipped record each; the others' cells stay.  Returns the records."""
        methods = [m for m in self.methods if methods_reg.get(m).needs_module]
        modes = [m for m in self.modes if "module" in mode_registry.get(m).needs]
        skipped = ([{"mode": None, "method": m, "reason": reason} for m in methods]
                   + [{"mode": m, "method": None, "reason": reason} for m in modes])
        self._drop(methods=methods, modes=modes)
        self.skipped += skipped
        return skipped

    def _drop(self, methods, modes):
        self.methods = [m for m in self.methods if m not in methods]
        self.modes = [m for m in self.modes if m not in modes]
        wanted = check_modes_of(self.methods)
        self.check_modes = [m for m in self.check_modes if m in wanted]
        self.cells = [c for c in self.cells if c.method in self.methods
                      and (c.mode in self.modes or c.mode in self.check_modes)]

    @property
    def nothing_left(self):
        """After drops: is nothing left of what was asked, no method, no cell,
        or no mode besides the baseline of a plan that had some?"""
        return not (self.methods and self.cells and (
            self._baseline_only or any(m != mode_registry.BASELINE for m in self.modes)))

    def __post_init__(self):
        # What was asked: a plan of the baseline alone stays one after a drop.
        self._baseline_only = all(m == mode_registry.BASELINE for m in self.modes)

    def pyperf_args(self):
        p = self.profile
        args = [f"--processes={p.processes}", f"--values={p.values}", f"--warmups={p.warmups}",
                f"--min-time={p.min_time}"]
        if self.affinity is not None:
            args.append(f"--affinity={self.affinity}")
        return args

    def method_fields(self):
        """Each known method's effort fields (bpf_calls), None where it is not planned."""
        fields = {}
        for m in methods_reg.every():
            for k, v in m.plan_fields(self.profile).items():
                fields[k] = v if m.name in self.methods else None
        return fields

    def to_dict(self):
        return {
            "profile": dataclasses.asdict(self.profile),
            "modes": self.modes,
            "check_modes": self.check_modes,
            "affinity": self.affinity,
            "workload": self.workload,
            "methods": self.methods,
            **self.method_fields(),
            "seed": self.seed,
            "rounds": self.profile.rounds,
            "pyperf_args": self.pyperf_args(),
            "order": [c.id for c in self.cells],
            "skipped": self.skipped,
            # --ops points (a plan without has none: the key is left out,
            # so that older plans compare equal on resume)
            **({"ops": [list(p) for p in self.ops]} if self.ops else {}),
        }


def restrict(modes, methods, check):
    """Keep what the host supports (a bench check report); say what is skipped and why."""
    skipped = []

    def keep(names, group):
        kept = []
        for name in names:
            a = check[group][name]
            if a["ok"]:
                kept.append(name)
            else:
                skipped.append({"mode": name if group == "modes" else None,
                                "method": name if group == "methods" else None,
                                "reason": a["reason"]})
        return kept

    return keep(modes, "modes"), keep(methods, "methods"), skipped


def make_plan(profile, modes, workload="getppid", methods=("pyperf",), seed=None, skipped=(), ops=()):
    if mode_registry.BASELINE not in modes:
        # Overhead is a difference against the baseline: without it there is no result.
        modes = [mode_registry.BASELINE] + list(modes)
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    rng = random.Random(seed)
    check_modes = check_modes_of(methods)
    points = [tuple(p) for p in ops or ()]
    cells = []
    for r in range(profile.rounds):
        order = list(modes) + check_modes
        rng.shuffle(order)
        if points:
            # Each point of a mode is shuffled with the modes, as a cell of
            # its own (a plan without points draws what it always drew).
            order = [(m, p) for m in order for p in (points if takes_points(m, "kernel") else [None])]
            rng.shuffle(order)
        else:
            order = [(m, None) for m in order]
        for mode, point in order:
            for method in methods:
                if not applies(mode, method):
                    continue
                if takes_points(mode, method):
                    cells.append(Cell(r, mode, workload_of(method, workload), method, point_of(point)))
                elif point is None or point == points[0]:
                    # (other methods measure such a mode once a round: at its first point's place)
                    cells.append(Cell(r, mode, workload_of(method, workload), method))
    return Plan(profile, list(modes), workload, list(methods), seed, cells, list(skipped),
                check_modes, ops=points)
