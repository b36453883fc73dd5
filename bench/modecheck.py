"""The controller's proof that a cell's mode is in effect: what tracefs
shows (the agent's verify view) against what the mode's file expects
(remote/protocol/modes).  An unknown mode is an error, never passed."""
from remote.protocol import modes
from remote.protocol.kmod import IDLE, TRACEE

from .errors import MeasurementError


def check_mode(mode, function, v):
    """Refuse a cell whose tracefs state is not what its mode claims."""
    ok, want = modes.get(mode).expect(v, function)
    if not ok:
        raise MeasurementError(
            f"mode {mode!r} is not in effect on the target: tracefs shows current_tracer="
            f"{v['current_tracer']!r}, tracing_on={v['tracing_on']}, "
            f"{v['enabled_functions_count']} enabled function(s), {function}: "
            f"{v['target_line']!r}; expected {want}")


def check_kernel_cell(mode, v, settings):
    """Refuse a kernel-method cell whose ops tracefs does not show as its mode
    claims (settings: the module settings the cell registered; see
    remote/protocol/modes expect_kernel).  The same proof a pyperf cell gives
    for the syscall handler."""
    if modes.get(mode).kernel is None:
        raise ValueError(f"mode {mode!r} has no kernel-method cells")  # a planning bug
    ok, want = modes.expect_kernel(v, settings)
    if not ok:
        idle = f", {IDLE}: {v.get('idle_line')!r}" if settings.get("irrelevant") else ""
        raise MeasurementError(
            f"kernel-method mode {mode!r} is not in effect on the target: tracefs shows "
            f"current_tracer={v['current_tracer']!r}, {v['enabled_functions_count']} enabled "
            f"function(s), {TRACEE}: {v['target_line']!r}{idle}; expected {want}")
