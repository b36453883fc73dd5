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

The modes themselves are declared one file each in remote/protocol/modes.
"""
import dataclasses
import random

from analysis import methods as methods_reg
from analysis.methods.bpf import PROBE_MODE
from remote.protocol import modes as mode_registry

from .errors import UsageError

WORKLOADS = ("getppid",)
METHODS = tuple(methods_reg.names())  # one file each: analysis/methods/
AA_MODE = "off-aa"
CHECK_MODES = (AA_MODE, PROBE_MODE)


def tracefs_mode(mode):
    """The tracefs state a cell's mode needs (check modes measure the baseline's)."""
    return mode_registry.BASELINE if mode in CHECK_MODES else mode


def kernel_settings(mode):
    """The module settings a kernel-method cell of this (tracefs) mode registers."""
    settings = mode_registry.get(mode).kernel
    if settings is None:
        raise ValueError(f"mode {mode!r} has no kernel-method cells")  # a planning bug
    return dict(settings)


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


@dataclasses.dataclass
class Cell:
    round: int
    mode: str
    workload: str
    method: str

    @property
    def id(self):
        return f"r{self.round:02d}-{self.mode}-{self.workload}-{self.method}"


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

    @property
    def all_modes(self):
        return list(self.modes) + list(self.check_modes)

    @property
    def needs_module(self):
        return (any(methods_reg.get(m).needs_module for m in self.methods)
                or any("module" in mode_registry.get(m).needs for m in self.modes))

    @property
    def kernel_save_regs(self):
        """Whether a kernel-method cell of the plan registers its ops with SAVE_REGS."""
        return "kernel" in self.methods and any(
            (mode_registry.get(m).kernel or {}).get("save_regs") for m in self.modes)

    def drop_method(self, method, skipped):
        """Stop planning a method found impossible once the run began."""
        self.methods = [m for m in self.methods if m != method]
        wanted = check_modes_of(self.methods)
        self.check_modes = [m for m in self.check_modes if m in wanted]
        self.cells = [c for c in self.cells if c.method != method
                      and (c.mode in self.modes or c.mode in self.check_modes)]
        self.skipped.append(skipped)

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


def make_plan(profile, modes, workload="getppid", methods=("pyperf",), seed=None, skipped=()):
    if mode_registry.BASELINE not in modes:
        # Overhead is a difference against the baseline: without it there is no result.
        modes = [mode_registry.BASELINE] + list(modes)
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    rng = random.Random(seed)
    check_modes = check_modes_of(methods)
    cells = []
    for r in range(profile.rounds):
        order = list(modes) + check_modes
        rng.shuffle(order)
        for mode in order:
            for method in methods:
                if applies(mode, method):
                    cells.append(Cell(r, mode, workload_of(method, workload), method))
    return Plan(profile, list(modes), workload, list(methods), seed, cells, list(skipped),
                check_modes)
