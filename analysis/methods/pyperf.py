"""pyperf: the getppid loop timed by pyperf's worker processes on the target.

It sees the whole round trip (interpreter, syscall entry and exit, the
handler and whatever tracing adds), in every mode.  pyperf calibrates the
loop count so that each value lasts the profile's min_time, once per run: in
the first pyperf cell measured, by pyperf's own calibration worker; every
later cell of the run (a resume's included) is given that count (pyperf's
--loops), so that all cells time the same loop and none pays for a
calibration worker again (on one of the lab's icount vCPUs that worker was a
third of a smoke cell's cost).  Agent side: remote/agent/workload.py (the
loop pyperf runs) and the agent's measure op.
"""
import time

import numpy as np

from . import Method, answer
from .bpf import PROBE_MODE


class Pyperf(Method):
    name = "pyperf"
    rank = 0
    needs = "python3 >= 3.9 on the target"
    samples = "workers"

    def applies(self, mode, tracefs_mode):
        return True  # every mode, and the bpf method's off-probe: its loop with the probes on

    def available(self, facts, caps, module):
        # Which pyperf fits which Python is chosen before the agent starts
        # (remote/pyperf_ship.py); one that fits none refuses the target there.
        python, pyperf = facts.get("python_version"), facts.get("pyperf_version")
        if python and pyperf:
            return answer(True, None, f"python3 {python} on the target runs the pyperf {pyperf} shipped for it")
        return answer(True, None, "python3 on the target runs the shipped pyperf")

    def estimate(self, profile, startup_s):
        # a manager and `processes` workers; each worker warmups + values of
        # min_time (the run's one calibration worker is left out: once per run)
        p = profile
        processes = p.processes + 1
        timed = (p.processes + 1) * (p.warmups + p.values) * p.min_time
        return processes * startup_s + timed

    def work(self, profile):
        # the manager starts too (the one calibration of the run is not a
        # cell's typical cost)
        p = profile
        return p.processes + 1, p.processes * (p.warmups + p.values) * p.min_time

    def measure(self, client, run, cell, quiet):
        tmode = run.tracefs_mode(cell.mode)
        before = client.request("set_mode", mode=tmode, function=run.function, timeout=120)
        run.check_mode(tmode, run.function, before)
        plan = run.bundle.data["plan"]
        loops = plan.get("pyperf_loops")
        args = run.plan.pyperf_args() + ([f"--loops={loops}"] if loops else [])
        t0 = time.monotonic()
        m = client.request("measure", pyperf_args=args,
                           bpf_probe=cell.mode == PROBE_MODE, timeout=3600, **quiet)
        host_s = time.monotonic() - t0
        after = client.request("verify", function=run.function, timeout=60)
        run.check_mode(tmode, run.function, after)
        run.check_workload_pid(m.get("workload_pid"))
        rel = run.bundle.write_raw(self.raw_file(cell.id), client.fetch(m["file"]))
        if not loops:  # this cell calibrated: its count is the run's (kept in the plan)
            plan["pyperf_loops"] = loops = self.loops(run.bundle.path / rel)
            plan["pyperf_loops_from"] = cell.id
        fields = dict(file=rel, elapsed_s=round(m["elapsed_s"], 2), workload_pid=m.get("workload_pid"),
                      loops=loops, tracefs={"before": before, "after": after})
        if m.get("cpus"):
            fields["cpus"] = m["cpus"]  # where the workers and the harness could run
        if m.get("bpf_probe"):
            fields["bpf_probe"] = m["bpf_probe"]  # the probes' count over the cell: proof they ran
        return dict(fields, host_s=host_s)

    @staticmethod
    def loops(path):
        """The loop count pyperf's workers timed in a cell's raw file."""
        import pyperf

        counts = {run.get_loops() for run in pyperf.Benchmark.load(str(path)).get_runs() if run.values}
        if len(counts) != 1:
            raise ValueError(f"{path}: pyperf's workers timed {sorted(counts)} loops, not one count")
        return counts.pop()

    def read(self, path):
        """Mean of each worker's values, in ns, read with pyperf's own loader."""
        import pyperf

        bench = pyperf.Benchmark.load(str(path))
        means = []
        for run in bench.get_runs():
            if run.values:  # calibration runs carry warmups only
                means.append(float(np.mean(run.values)) * 1e9)
        return means, sum(len(r.values) for r in bench.get_runs())


METHOD = Pyperf()
