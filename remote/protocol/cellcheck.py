"""The proof that a cell's mode is in effect, as words: what tracefs shows
(the agent's verify view) against what the mode's file expects (modes/).

Here, not in bench/, because two callers run it: the controller
(bench/modecheck.py, which raises its MeasurementError with these words) and
the standalone runner on the target (remote/agent/runner.py: a LAVA job has
no controller while it measures).  Standard library only.
"""
from . import modes
from .kmod import IDLE, TRACEE


def mode_problem(mode, function, v):
    """None when tracefs shows `mode` in effect for `function`, else the one-line reason."""
    ok, want = modes.get(mode).expect(v, function)
    if ok:
        return None
    return ("mode %r is not in effect on the target: tracefs shows current_tracer=%r, "
            "tracing_on=%s, %s enabled function(s), %s: %r; expected %s"
            % (mode, v["current_tracer"], v["tracing_on"], v["enabled_functions_count"], function,
               v["target_line"], want))


def kernel_problem(mode, v, settings):
    """None when a kernel-method cell's ops show in tracefs as its mode claims
    (settings: what the cell registered; modes.expect_kernel), else the reason.
    A mode without kernel-method cells is a planning bug (ValueError)."""
    if modes.get(mode).kernel is None:
        raise ValueError("mode %r has no kernel-method cells" % mode)
    ok, want = modes.expect_kernel(v, settings)
    if ok:
        return None
    idle = ", %s: %r" % (IDLE, v.get("idle_line")) if settings.get("irrelevant") else ""
    return ("kernel-method mode %r is not in effect on the target: tracefs shows "
            "current_tracer=%r, %s enabled function(s), %s: %r%s; expected %s"
            % (mode, v["current_tracer"], v["enabled_functions_count"], TRACEE, v["target_line"], idle,
               want))
