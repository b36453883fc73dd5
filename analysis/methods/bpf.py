"""bpf: bcc probes count and time the syscall in the kernel.

The collector (remote/agent/bpfmethod.py, bpfprobe.py; its workload
remote/agent/callloop.py) attaches to raw_syscalls sys_enter and sys_exit,
filtered on the workload's process and the syscall, and sums the time of
each call between them: a run is one fresh process making exactly `calls`
calls, and the probe's count must equal it.  A cell is `processes` runs.
"""
import json
import time

from .. import packages
from . import Method, answer

# The check mode the probes bring when pyperf is planned too: pyperf's loop
# with the probes attached, tracer off; its overhead against off is the
# probes' own cost per call (bench/plan.py plans it, checks.probe_cost).
PROBE_MODE = "off-probe"
# getppid at its slowest (function-all under TCG), seconds per call, for the
# budget of the first cell.
CALL_S = 20e-6
# getppid's syscall number is known on these (remote/agent/bpfmethod.py).
ARCHES = ("aarch64", "x86_64", "riscv64")

_FUNCTION_ALL = ("under function-all the tracer also traces the bpf probe's own kernel work inside its "
                 "window (the map update after the entry timestamp, the tracepoint dispatch and map "
                 "lookup before the exit timestamp), which inflates bpf's figure")


class Bpf(Method):
    name = "bpf"
    rank = 2
    needs = "the distribution's bcc, the running kernel's headers and raw_syscalls tracepoints"

    def applies(self, mode, tracefs_mode):
        return mode != PROBE_MODE  # there pyperf measures, with the probes on

    def check_modes(self, methods):
        return [PROBE_MODE] if "pyperf" in methods else []

    def available(self, facts, caps, module):
        """bcc, the running kernel's headers (bcc compiles against them at run
        time), raw_syscalls tracepoints and a known syscall number; the
        reason names what to install."""
        b = caps.get("bcc") or {}
        arch = facts.get("arch")
        config = facts.get("kernel_config") or {}
        # A kernel without them cannot load the probes, whatever bcc and the
        # headers say (the lab's own regs-6.1 and fallback-6.1 are built so).
        missing = [name for name in ("CONFIG_BPF_SYSCALL", "CONFIG_BPF_EVENTS")
                   if config and config.get(name, "n") == "n"]
        if missing:
            return answer(False, None, "the kernel is built without " + " and ".join(missing)
                          + f" ({facts.get('kernel_config_source')}): bcc cannot load its probes "
                          "there; boot a kernel with them")
        if b.get("probed") is False or not b.get("ok"):
            return bcc(caps, facts)
        if not b.get("headers") and b.get("kheaders_without_xz"):
            return answer(False, None, "the kernel carries its headers (/sys/kernel/kheaders.tar.xz) but "
                                       "bcc cannot unpack them without xz: " + packages.install(facts, "xz")
                                       + ", or " + packages.package(facts, "headers"))
        if not b.get("headers"):
            return answer(False, None, f"bcc needs the running kernel's headers and there are none at "
                                       f"{b.get('headers_wanted')}: " + packages.install(facts, "headers")
                                       + ", or boot a kernel with CONFIG_IKHEADERS")
        if b.get("raw_syscalls") is False:
            return answer(False, None, "no raw_syscalls tracepoints in tracefs (CONFIG_FTRACE_SYSCALLS)")
        if arch not in ARCHES:
            return answer(False, None, f"the bpf method does not know getppid's syscall number on {arch}")
        return answer(True, b.get("python"), f"bcc {b.get('version')} under {b.get('python')}, "
                                             f"headers at {b.get('headers')}")

    def plan_fields(self, profile):
        return {"bpf_calls": profile.bpf_calls}

    def estimate(self, profile, startup_s):
        p = profile
        return p.processes * (startup_s + p.bpf_calls * CALL_S)

    def work(self, profile):
        # one fresh process per run; a probed getppid takes about a
        # microsecond on hardware (CALL_S above is its slowest, for budgets)
        p = profile
        return p.processes, p.processes * p.bpf_calls * 1e-6

    def start(self, client, run):
        """Compile and load the program.  A target that cannot (bcc present
        but its program refused) loses the bpf method, with the reason, and
        the run goes on with the other methods."""
        t0 = time.monotonic()
        try:
            ready = client.request("bpf_start", syscall=run.plan.workload, timeout=1800)
        except run.agent_error as e:
            if e.kind != "unsupported":
                raise
            run.drop_method(self.name, str(e))
            return
        run.bundle.data["bpf"] = ready
        # our seconds, and the target's (an icount guest's clock runs slower)
        run.ui.step(f"bpf probes compiled in {time.monotonic() - t0:.0f} s ({ready['compile_s']} s "
                    f"of the target's clock; bcc {ready['bcc']}, "
                    f"{ready['python']}), getppid = syscall {ready['nr']}")
        run.bundle.save()

    def measure(self, client, run, cell, quiet):
        # the kernel's own sys_enter -> sys_exit times, exact call count
        tmode = run.tracefs_mode(cell.mode)
        before = client.request("set_mode", mode=tmode, function=run.function, timeout=120)
        run.check_mode(tmode, run.function, before)
        calls, reps = run.plan.profile.bpf_calls, run.plan.profile.processes
        t0 = time.monotonic()
        b = client.request("bpf_measure", calls=calls, reps=reps, timeout=3600, **quiet)
        host_s = time.monotonic() - t0
        after = client.request("verify", function=run.function, timeout=60)
        run.check_mode(tmode, run.function, after)
        rel = run.bundle.write_raw(self.raw_file(cell.id), json.dumps(
            {"cell": cell.id, "calls": calls, "runs": b["runs"]}, indent=1).encode())
        return dict(file=rel, elapsed_s=round(b["elapsed_s"], 2), calls=calls,
                    counts=[r["count"] for r in b["runs"]], tracefs={"before": before, "after": after},
                    **({"cpus": b["cpus"]} if b.get("cpus") else {}),
                    **({"trace_events": b["trace_events"]} if b.get("trace_events") else {}),
                    host_s=host_s)

    def read(self, path):
        """Per-call ns of each run (the kernel's sum / count of sys_enter ->
        sys_exit times), and their count."""
        with open(path) as f:
            runs = json.load(f)["runs"]
        means = [r["sum_ns"] / r["count"] for r in runs]
        return means, len(means)

    def disagreement(self, metric, mode):
        return _FUNCTION_ALL if metric == "overhead" and mode == "function-all" else None


def bcc(caps, facts=None):
    """bench check's bcc line: does the distribution's binding import?  The
    reason names the package of the target's distribution (analysis/packages.py)."""
    b = caps.get("bcc") or {}
    if b.get("probed") is False:
        return answer(None, None, "not probed: the run did not ask for the bpf method "
                                  "(bench check probes it)")
    if b.get("ok"):
        return answer(True, b.get("version"), f"the distribution's bcc imports in {b.get('python')}")
    return answer(False, None, "no bcc binding for the system python: "
                               + packages.install(facts or {}, "bcc")
                               + f" (never PyPI's 'bcc', an unrelated project): {b.get('error')}")


METHOD = Bpf()
