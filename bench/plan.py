"""The plan: which cells a run measures, in which order, with which effort.

A cell is one (round, mode, workload, method).  Every mode is measured once
per round and the order of modes changes from round to round (a seeded
shuffle recorded in the plan), so slow drift of the machine spreads over all
modes instead of passing for the overhead of one.
"""
import dataclasses
import random

from .errors import UsageError

MODES = ("off", "function", "function-all", "noregs", "regs")
WORKLOADS = ("getppid",)
METHODS = ("pyperf", "kernel")
# The module's in-kernel timing measures its own tracee with its own ops:
# it has a figure for no ops (off), an ops without SAVE_REGS and one with.
KERNEL_MODES = ("off", "noregs", "regs")
MODULE_MODES = ("noregs", "regs")


def workload_of(method, workload):
    # The kernel method times the module's own tracee, not the syscall.
    return "kmod-tracee" if method == "kernel" else workload


def applies(mode, method):
    return method != "kernel" or mode in KERNEL_MODES


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    rounds: int
    processes: int  # pyperf worker processes per cell
    values: int  # values per worker
    warmups: int
    min_time: float  # seconds per value (pyperf calibrates loops to reach it)
    description: str


PROFILES = {
    p.name: p
    for p in (
        Profile("quick", rounds=4, processes=2, values=3, warmups=1, min_time=0.05,
                description="a few minutes in the TCG lab, under 2 minutes on hardware"),
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

    @property
    def needs_module(self):
        return "kernel" in self.methods or any(m in MODULE_MODES for m in self.modes)

    def pyperf_args(self):
        p = self.profile
        return [f"--processes={p.processes}", f"--values={p.values}", f"--warmups={p.warmups}",
                f"--min-time={p.min_time}"]

    def to_dict(self):
        return {
            "profile": dataclasses.asdict(self.profile),
            "modes": self.modes,
            "workload": self.workload,
            "methods": self.methods,
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
    if "off" not in modes:
        # Overhead is a difference against 'off': without it there is no result.
        modes = ["off"] + list(modes)
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    rng = random.Random(seed)
    cells = []
    for r in range(profile.rounds):
        order = list(modes)
        rng.shuffle(order)
        for mode in order:
            for method in methods:
                if applies(mode, method):
                    cells.append(Cell(r, mode, workload_of(method, workload), method))
    return Plan(profile, list(modes), workload, list(methods), seed, cells, list(skipped))
