"""The suite's kernel module as both sides name it (remote/kmod/)."""
NAME = "ftrace_regs_bench"
# The module's timed function, as enabled_functions names it
# ('frb_tracee [ftrace_regs_bench] (1) R').
TRACEE = "frb_tracee"
