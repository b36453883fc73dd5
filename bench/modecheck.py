"""The controller's proof that a cell's mode is in effect: what tracefs
shows (the agent's verify view) against what the mode's file expects
(remote/protocol/modes).  An unknown mode is an error, never passed.  The
words are remote/protocol/cellcheck.py's, shared with the standalone runner
on the target (LAVA jobs)."""
from remote.protocol.cellcheck import kernel_problem, mode_problem

from .errors import MeasurementError


def check_mode(mode, function, v):
    """Refuse a cell whose tracefs state is not what its mode claims."""
    problem = mode_problem(mode, function, v)
    if problem:
        raise MeasurementError(problem)


def check_kernel_cell(mode, v, settings):
    """Refuse a kernel-method cell whose ops tracefs does not show as its mode
    claims (settings: the module settings the cell registered; see
    remote/protocol/modes expect_kernel).  The same proof a pyperf cell gives
    for the syscall handler."""
    problem = kernel_problem(mode, v, settings)
    if problem:
        raise MeasurementError(problem)
