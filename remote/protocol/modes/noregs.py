"""noregs: the suite's module's one ftrace_ops on the handler, without
FTRACE_OPS_FL_SAVE_REGS (enabled_functions shows no R)."""
NAME = "noregs"
ORDER = 40
DESCRIPTION = "the suite's module: one ftrace_ops on the handler without SAVE_REGS"
NEEDS = ("module",)
KERNEL = {"save_regs": False, "relevant": 1}
KNOBS = ()  # the module registers its ops itself; unloading it removes them
# The caller an ops without SAVE_REGS goes through, by ftrace variant
# (docs/lab.md, "The eras of arm64 ftrace").
ENTRY_PATHS = {
    "mcount": "mcount (fallback) ftrace_caller",
    "regs": "ftrace_caller (regs era)",
    "args": "ftrace_caller (args)",
    "call-ops": "ftrace_caller (call-ops)",
    "direct-calls": "ftrace_caller (call-ops, direct calls)",
}


def enter(tracing, function):
    tracing.attach(function, save_regs=False)


def expect(view, function):
    ok = (view["current_tracer"] == "nop" and view["target_line"] is not None
          and view["enabled_functions_count"] == 1 and "R" not in (view.get("target_flags") or []))
    return ok, "the module's ops alone on %s, without the R (regs) flag" % function
