"""function-all: the function tracer on every function the kernel can trace."""
NAME = "function-all"
ORDER = 30
DESCRIPTION = "the function tracer on every function"
NEEDS = ("function tracer",)
KERNEL = None  # the kernel method times its own tracee, not the handler
KNOBS = ("tracing_on", "current_tracer")
ENTRY_PATHS = {}


def enter(tracing, function):
    tracing.write("tracing_on", "1")
    tracing.write("current_tracer", "function")


def expect(view, function):
    ok = (view["current_tracer"] == "function" and view["enabled_functions_count"] > 1
          and view["tracing_on"] == "1")
    return ok, "function tracer on every function"
