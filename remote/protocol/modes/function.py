"""function: the function tracer filtered to the workload's syscall handler."""
NAME = "function"
ORDER = 20
DESCRIPTION = "the function tracer on the workload's syscall handler alone, by set_ftrace_filter"
NEEDS = ("function tracer",)
KERNEL = None  # the kernel method times its own tracee, not the handler
KNOBS = ("set_ftrace_filter", "tracing_on", "current_tracer")
ENTRY_PATHS = {}


def enter(tracing, function):
    # The filter before the tracer: the tracer never runs on every function.
    tracing.write("set_ftrace_filter", function + "\n")
    tracing.write("tracing_on", "1")
    tracing.write("current_tracer", "function")


def expect(view, function):
    ok = (view["current_tracer"] == "function" and view["target_line"] is not None
          and view["enabled_functions_count"] == 1 and view["tracing_on"] == "1")
    return ok, "function tracer on %s alone (enabled_functions: 1 line)" % function
