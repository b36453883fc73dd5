"""`bench run --resume BUNDLE`: measure only what an interrupted run left out.

An incomplete bundle holds its plan: profile, modes, methods, seed and the
order of every cell.  The order is a seeded shuffle (bench/plan.py), so the
same seed gives the same order: the plan is made again from the bundle's
request on the host as it is now, and it must come out identical, cell for
cell.  A host that now supports other modes or methods (headers removed, a
different kernel) gives another plan and is refused, as is another machine
or kernel: figures from two machines or kernels are never pooled in one
bundle.

The missing cells are the plan's cells that the bundle does not hold, run
in the plan's order.  A run stops at its first failure, so they are usually
the tail of the order, beginning inside one round: that round's cells then
come from two sessions (minutes or days apart).  Overhead is paired per
round (mode - off in the same round), so every cell records its session and
the bundle keeps each session's start, boot id and tracefs snapshot.
"""
from analysis import methods
from analysis.bundle import Bundle
from remote.protocol.errors import BenchError

from .errors import UsageError
from .plan import PROFILES

# Facts that must match for a bundle to be resumed on a target.  A reboot
# (boot_id) is allowed and noted: same machine, same kernel build.
# The CPU count too: --tune measures on the last CPU and moves the harness
# to the others, so cells measured on another count do not compare.
HOST_KEYS = ("hostname", "machine_id", "arch", "cpu_model", "cpu_count")
KERNEL_KEYS = ("kernel_release", "kernel_version")
LAB_KEYS = ("kernel", "accel", "icount", "cpu_model", "smp")


class ResumeMismatch(BenchError):
    kind = "resume-mismatch"


def load(path):
    """The bundle to resume; refuses one that is complete or has no plan."""
    b = Bundle.load(path)
    if b.data.get("complete"):
        raise UsageError(f"{b.path} is complete: nothing to resume",
                         hint="give the bundle of an interrupted or failed run")
    plan = b.data.get("plan") or {}
    if not plan.get("order") or plan.get("seed") is None:
        raise BenchError(f"{b.path} has no plan to resume (the run stopped before planning)",
                         kind="bundle", hint="start a new run instead")
    return b


def request_of(bundle):
    """The request that made the bundle's plan: its modes and methods plus
    those skipped on the host, the profile, the seed."""
    plan = bundle.data["plan"]
    name = plan["profile"]["name"]
    if name not in PROFILES:
        raise ResumeMismatch(f"{bundle.path} was made with profile {name!r}, unknown to this bench")
    skipped = plan.get("skipped") or []
    modes = list(plan["modes"]) + [s["mode"] for s in skipped if s.get("mode")]
    methods = list(plan["methods"]) + [s["method"] for s in skipped if s.get("method")]
    # A resumed run is tuned as the first session was (tuned and untuned cells
    # in one bundle would measure two machines).
    tuned = bool((bundle.data.get("noise") or {}).get("tuned"))
    return {"profile": PROFILES[name], "modes": modes, "methods": methods, "seed": plan["seed"],
            "tune": tuned, "ops": [tuple(p) for p in plan.get("ops") or []]}


def check_request(bundle, given):
    """given: {option: value} for the plan options typed on the command line;
    each must agree with the bundle's."""
    want = request_of(bundle)
    for opt, value in given.items():
        key = opt.lstrip("-")
        have = want[key].name if key == "profile" else want[key]
        same = set(value) == set(have) if isinstance(have, list) else value == have
        if not same:
            shown = (" ".join("%d,%d" % p for p in have) or "none") if key == "ops" else \
                ",".join(have) if isinstance(have, list) else have
            raise ResumeMismatch(f"{opt} differs from the plan of {bundle.path} ({shown})",
                                 hint=f"drop {opt}: --resume takes the plan from the bundle")


def check_target(bundle, facts):
    """Refuse another machine or kernel; return notes (a reboot)."""
    old = bundle.data.get("facts") or {}

    def compare(keys, a, b, what):
        for k in keys:
            if k in a and k in b and a[k] != b[k]:
                raise ResumeMismatch(
                    f"the {what} differs from the one {bundle.path} was measured on: {k} was "
                    f"{a[k]!r}, is {b[k]!r}",
                    hint="resume on the same host and kernel, or start a new run")

    compare(HOST_KEYS, old, facts, "host")
    compare(KERNEL_KEYS, old, facts, "kernel")
    compare(LAB_KEYS, old.get("lab") or {}, facts.get("lab") or {}, "lab setup")
    notes = []
    if old.get("boot_id") and facts.get("boot_id") and old["boot_id"] != facts["boot_id"]:
        notes.append(f"resumed after a reboot of the host (boot id {old['boot_id']} -> "
                     f"{facts['boot_id']}): same machine and kernel build")
    return notes


def check_plan(bundle, plan):
    """The plan made now must be the bundle's, cell for cell."""
    old, new = bundle.data["plan"], plan.to_dict()
    for key in ("profile", "modes", "methods", "workload", "seed", "ops", "order"):
        if old.get(key) != new.get(key):
            skipped = "; ".join(s["reason"] for s in plan.skipped) or "nothing skipped"
            raise ResumeMismatch(f"the plan made on the host now differs from the bundle's ({key}): "
                                 f"now skipped: {skipped}",
                                 hint="resume where the same modes and methods are possible")


def missing(bundle, plan):
    """The plan's cells the bundle does not hold, in the plan's order."""
    done = {c["id"] for c in bundle.data["cells"] if c.get("status") == "ok"}
    return [c for c in plan.cells if c.id not in done]


def clear_orphans(bundle, cells):
    """A raw file written for a cell that never reached bundle.json (the run
    stopped between the two writes) is not a result; it is replaced."""
    notes = []
    for c in cells:
        for rel in (m.raw_file(c.id) for m in methods.every()):
            p = bundle.path / rel
            if p.exists():
                p.unlink()
                notes.append(f"{rel}: written but never recorded by the interrupted run; measured again")
    return notes
