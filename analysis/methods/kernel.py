"""kernel: the suite's module times its own tracee in the kernel.

The module (remote/kmod/) calls its noinline tracee N times between two
ktime_get_ns() and reports total ns and calls per repetition, with no ops
(off), one ops without SAVE_REGS (noregs) or one with (regs), or, at an ops
point of the plan (bench/plan.py: --ops), R ops on the tracee and I on a
function never called.  Agent side:
remote/agent/kmod.py and the agent's kmod_* ops.
"""
import json
import time

from remote.protocol import modes

from . import Method
from .bpf import PROBE_MODE
from .pmu import check_counted, counter_series

# The slowest run the calibration tries (calls doubling from 1000).
MAX_CALLS = 10**8
# How many of our seconds one second of an icount guest may take while it
# is busy (docs/safety.md: up to ~10 on a loaded 2-core host).
ICOUNT_SLOWDOWN = 10

_TRACEE = ("the kernel method times its own tracee, a different function from getppid's handler, "
           "called from the kernel rather than through a system call")


class Kernel(Method):
    name = "kernel"
    rank = 1
    needs = "the suite's kernel module"
    needs_module = True

    def applies(self, mode, tracefs_mode):
        # The modes whose files give the module's settings (KERNEL): no ops
        # (off), an ops without SAVE_REGS (noregs) or one with (regs).
        return mode != PROBE_MODE and modes.get(tracefs_mode).kernel is not None

    def workload(self, workload):
        return "kmod-tracee"  # the module's own tracee, not the syscall

    def available(self, facts, caps, module):
        return module

    def estimate(self, profile, startup_s):
        # calls were calibrated so that one run lasts about min_time of the
        # target's seconds (with one ops, the slowest planned setting); a
        # cell is processes x values runs, in the agent's own process.  Our
        # seconds pass up to ~10 times faster than an icount guest's.
        p = profile
        return ICOUNT_SLOWDOWN * 2 * p.processes * p.values * p.min_time

    def work(self, profile):
        # no process: the agent asks the module; each run about min_time
        p = profile
        return 0, p.processes * p.values * p.min_time

    def calibrate(self, client, run):
        """Calls per in-kernel timing run, kept in the plan (a resumed run
        keeps its own): double until the slowest planned setting (one ops,
        with SAVE_REGS when a planned mode's kernel cells use it: a kernel
        without a regs caller refuses it) lasts min_time."""
        plan = run.bundle.data["plan"]
        if plan.get("kernel_calls") is None:
            # With ops points the heaviest one is the slowest setting.
            relevant, irrelevant = run.plan.heaviest_ops
            plan["kernel_calls"] = calibrate_calls(client, run.plan.profile.min_time,
                                                   save_regs=run.plan.kernel_save_regs,
                                                   relevant=relevant, irrelevant=irrelevant)

    def measure(self, client, run, cell, quiet):
        # The cell's ops stay registered ("held") across all its timings, so
        # that tracefs shows them before and after, as for the other methods.
        calls = run.bundle.data["plan"]["kernel_calls"]
        p = run.plan.profile
        reps = p.processes * p.values
        tmode = run.tracefs_mode(cell.mode)
        settings = run.kernel_settings(tmode, cell.ops)
        client.request("set_mode", mode="off", function=run.function, timeout=120)
        before = client.request("kmod_hold", timeout=120, **settings)
        run.check_kernel_cell(tmode, before, settings)
        # With the pmu method planned, each repetition is counted too (pmu.py).
        counted = {"pmu": True} if "pmu" in run.plan.methods else {}
        t0 = time.monotonic()
        k = client.request("kmod_time", calls=calls, reps=reps, timeout=3600, **settings, **counted,
                           **quiet)
        host_s = time.monotonic() - t0
        # (kmod_verify: verify's view plus the irrelevant ops' function)
        after = client.request("kmod_verify", timeout=60)
        client.request("kmod_release", timeout=120)
        run.check_kernel_cell(tmode, after, settings)
        if counted:
            check_counted(k["runs"], f"kernel cell {cell.id}")
        rel = run.bundle.write_raw(self.raw_file(cell.id),
                                   json.dumps({"cell": cell.id, "runs": k["runs"]}, indent=1).encode())
        return dict(file=rel, elapsed_s=round(k["elapsed_s"], 2), calls=calls,
                    tracefs={"before": before, "after": after},
                    **({"cpus": k["cpus"]} if k.get("cpus") else {}), host_s=host_s)

    def read(self, path):
        """Per-call ns of each repetition (total_ns / calls, as the module
        reported them), and their count."""
        with open(path) as f:
            runs = json.load(f)["runs"]
        means = [r["total_ns"] / r["calls"] for r in runs]
        return means, len(means)

    def series(self, path, unit):
        """The clock's figure, and the counters' where the runs were counted
        (pmu planned too: analysis/methods/pmu.py)."""
        with open(path) as f:
            runs = json.load(f)["runs"]
        check_counted([r for r in runs if "time_enabled" in r], str(path))
        return super().series(path, unit) + counter_series(self.name, [[r] for r in runs])

    def disagreement(self, metric, mode):
        return _TRACEE if metric == "overhead" else None


def calibrate_calls(client, min_time, save_regs, relevant=1, irrelevant=0):
    """Calls per in-kernel timing run: double from 1000 until one run with
    `relevant` ops on the tracee and `irrelevant` elsewhere (SAVE_REGS or
    not) lasts min_time, or MAX_CALLS."""
    calls = 1000
    while True:
        run = client.request("kmod_time", calls=calls, save_regs=save_regs, relevant=relevant,
                             irrelevant=irrelevant, reps=1, timeout=600)["runs"][0]
        if run["total_ns"] >= min_time * 1e9 or calls >= MAX_CALLS:
            return calls
        calls *= 2


METHOD = Kernel()
