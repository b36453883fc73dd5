"""The agent's side of the kernel method: the module times its own tracee.

Runs on the target (stdlib only).  The module itself (build, load, unload,
attach for the noregs and regs modes) is kmod.py's and the agent's; these
ops drive its timing for a cell.  The agent serves OPS as its own
(agent.py: every *method.py next to it); each op gets the agent as a plain
object and raises agent.Fatal.
"""
import os
import threading
import time

try:  # on the target: shipped next to agent.py as the package `protocol`
    from protocol.kmod import IDLE, MAX_OPS, TRACEE
    from protocol.tracefs_text import enabled_view
    import pmumethod
    import tune as tune_mod
except ImportError:  # in the source tree, imported as remote.agent.kernelmethod
    from remote.protocol.kmod import IDLE, MAX_OPS, TRACEE
    from remote.protocol.tracefs_text import enabled_view
    from remote.agent import pmumethod
    from remote.agent import tune as tune_mod


def _loaded(agent, op):
    if agent.kmod is None or not agent.kmod.loaded_by_us:
        raise agent.Fatal("%s before kmod_load" % op)
    return agent.kmod


def time_calls(agent, req):
    """reps timings of `calls` calls of the tracee with the given ops, in the kernel."""
    k = _loaded(agent, "kmod_time")
    calls = int(req["calls"])
    reps = int(req.get("reps", 1))
    relevant = int(req.get("relevant", 1))
    irrelevant = int(req.get("irrelevant", 0))
    if not (1 <= calls <= 10**9 and 1 <= reps <= 10000 and 0 <= relevant <= MAX_OPS
            and 0 <= irrelevant <= MAX_OPS):
        raise agent.Fatal("kmod_time arguments out of range", kind="usage")
    t0 = time.monotonic()
    with agent.state_lock:
        # The module times its loop in this thread: under --tune it goes
        # to the measuring CPU for the timing alone, then back.  A mask of
        # one CPU is what keeps the loop there: the module does not disable
        # preemption, and cond_resched() between chunks may migrate it.
        if agent.tune_cpu is not None and agent.housekeeping:
            os.sched_setaffinity(0, {agent.tune_cpu})
        try:
            mask = sorted(os.sched_getaffinity(0))
            args = (calls, bool(req.get("save_regs")), relevant, irrelevant)
            runs = (pmumethod.count_reps(lambda: k.time(*args, reps=1)[0], reps) if req.get("pmu")
                    else k.time(*args, reps=reps))
            last = tune_mod.last_cpu(os.getpid(), threading.get_native_id())
        except pmumethod.PmuError as e:
            raise agent.Fatal("kmod_time: %s" % e, kind="measure")
        finally:
            if agent.tune_cpu is not None and agent.housekeeping:
                os.sched_setaffinity(0, agent.housekeeping)
    # Where it ran: the timing thread's mask and the CPU it was on at the
    # end; the harness's parts as they are now (this thread back with them).
    cpus = {"workload": mask, "ran_on": [last] if last is not None else [],
            "harness": agent.placement()}
    return {"runs": runs, "elapsed_s": time.monotonic() - t0, "cpus": cpus}


def _settings(agent, req):
    save_regs = req.get("save_regs")
    relevant, irrelevant = int(req.get("relevant", 1)), int(req.get("irrelevant", 0))
    if not (isinstance(save_regs, bool) and 0 <= relevant <= MAX_OPS and 0 <= irrelevant <= MAX_OPS):
        raise agent.Fatal("kmod settings out of range", kind="usage")
    return save_regs, relevant, irrelevant


def hold(agent, req):
    """Register the ops of a kernel-method cell and keep them across its
    timings; returns what tracefs shows, the module's tracee included
    (the controller checks it, as for every other cell)."""
    k = _loaded(agent, "kmod_hold")
    save_regs, relevant, irrelevant = _settings(agent, req)
    with agent.state_lock:
        k.hold(save_regs, relevant, irrelevant)
        return verify(agent, req)


def verify(agent, req):
    """verify's view of the tracee, plus the irrelevant ops' function
    (idle_line, idle_flags, idle_count, idle_module: an ops point's
    irrelevant ops show there, remote/protocol/modes expect_kernel)."""
    with agent.state_lock:
        view = agent.op_verify({"function": TRACEE})
        t = agent.tracefs
        enabled = t.lines("enabled_functions") if t.exists("enabled_functions") else []
        idle = enabled_view(enabled, IDLE)
        view.update({k.replace("target_", "idle_"): v for k, v in idle.items() if k.startswith("target_")})
        return view


def release(agent, req):
    if agent.kmod is not None and agent.kmod.loaded_by_us:
        with agent.state_lock:
            agent.kmod.release()
    return None


OPS = {"kmod_time": time_calls, "kmod_hold": hold, "kmod_verify": verify, "kmod_release": release}
QUIET_OPS = ("kmod_time",)
