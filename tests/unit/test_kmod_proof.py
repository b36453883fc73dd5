"""The kernel method's tracefs proof (issue 12, section 4): a kernel-method
cell is reported only when enabled_functions shows the module's tracee with
the cell's ops and, for regs, the R flag.  The lines are real ones, read in
the debian-6.1 lab while the module held its ops (tests/data, with origins)."""
import pathlib

import pytest

from bench.cli import exit_code
from bench.errors import MeasurementError
from bench.modecheck import check_kernel_cell
from bench.plan import kernel_settings
from remote.protocol.tracefs_text import enabled_view

DATA = pathlib.Path(__file__).parent.parent / "data"
# module held save_regs=1; save_regs=0; the test build (FRB_TEST_DROP_SAVE_REGS=1) held save_regs=1
REGS_LINE, NOREGS_LINE, DROPPED_LINE = (
    DATA / "enabled_functions-6.1-lab-kmod.txt").read_text().splitlines()


def view(*lines, tracer="nop"):
    """What the agent's verify returns for these enabled_functions lines
    (it strips them, as Tracefs.lines does)."""
    return dict(current_tracer=tracer, tracing_on="1", set_ftrace_filter=[],
                **enabled_view([l.strip() for l in lines], "frb_tracee"))


@pytest.mark.parametrize("mode, lines", [("off", ()), ("noregs", (NOREGS_LINE,)),
                                         ("regs", (REGS_LINE,))])
def test_each_mode_passes_with_its_own_state(mode, lines):
    check_kernel_cell(mode, view(*lines), kernel_settings(mode))


def test_a_regs_cell_without_the_R_flag_is_an_error():
    # What the test build (FRB_TEST_DROP_SAVE_REGS=1) left in enabled_functions.
    with pytest.raises(MeasurementError) as e:
        check_kernel_cell("regs", view(DROPPED_LINE), kernel_settings("regs"))
    assert str(e.value) == (
        "kernel-method mode 'regs' is not in effect on the target: tracefs shows "
        "current_tracer='nop', 1 enabled function(s), frb_tracee: "
        "'frb_tracee [ftrace_regs_bench] (1)'; expected frb_tracee [ftrace_regs_bench] alone "
        "with 1 ops, with the R (regs) flag")
    assert "\n" not in str(e.value)
    assert exit_code(e.value.kind) == 10


@pytest.mark.parametrize("mode, v", [
    ("noregs", view(REGS_LINE)),                                  # R where none was asked for
    ("regs", view()),                                             # the ops are not there
    ("regs", view("frb_tracee [ftrace_regs_bench] (2) R")),       # someone else's ops too
    ("regs", view(REGS_LINE, "schedule (1)")),                    # another function traced
    ("regs", view("frb_tracee [other_module] (1) R")),            # not our module's tracee
    ("regs", view(REGS_LINE, tracer="function")),                 # a tracer in the ops list
    ("off", view(NOREGS_LINE)),                                   # off with an ops left
])
def test_anything_else_is_an_error(mode, v):
    with pytest.raises(MeasurementError, match=f"^kernel-method mode '{mode}' is not in effect"):
        check_kernel_cell(mode, v, kernel_settings(mode))
