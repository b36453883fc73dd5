"""function-notrace: the function tracer on every function but the
workload's syscall handler.  Not one of the suite's modes: a mode file
written the way remote/protocol/modes/*.py are, which tests/unit/test_modes.py
registers to show that adding a mode is this one file."""
NAME = "function-notrace"
ORDER = 35
DESCRIPTION = "the function tracer on every function but the workload's syscall handler"
NEEDS = ("function tracer",)
KERNEL = None
KNOBS = ("set_ftrace_notrace", "tracing_on", "current_tracer")
ENTRY_PATHS = {}


def enter(tracing, function):
    tracing.write("set_ftrace_notrace", function + "\n")
    tracing.write("tracing_on", "1")
    tracing.write("current_tracer", "function")


def expect(view, function):
    ok = (view["current_tracer"] == "function" and view["target_line"] is None
          and view["enabled_functions_count"] > 1 and view["tracing_on"] == "1")
    return ok, "function tracer on every function but %s" % function
