"""The suite's kernel module as both sides name it (remote/kmod/)."""
NAME = "ftrace_regs_bench"
# The module's timed function, as enabled_functions names it
# ('frb_tracee [ftrace_regs_bench] (1) R').
TRACEE = "frb_tracee"
# The most ops of either kind one kernel-method cell may register (the
# module's FRB_MAX_OPS).
MAX_OPS = 16
# The function the module's irrelevant ops are filtered to: never called,
# so they only lengthen the list a traced call walks ('frb_idle
# [ftrace_regs_bench] (8)' in enabled_functions while they are held).
IDLE = "frb_idle"


def ops_label(relevant, irrelevant):
    """An ops point as tables and cell ids show it: 'R+I' (R ops attached to
    the tracee, I attached elsewhere)."""
    return "%d+%d" % (relevant, irrelevant)
