"""regs: the same ops with FTRACE_OPS_FL_SAVE_REGS: the call goes through
the regs caller and enabled_functions shows R."""
NAME = "regs"
ORDER = 50
DESCRIPTION = "the same ops with SAVE_REGS: the call goes through the regs caller, ftrace_regs_caller"
# A kernel without a regs caller refuses a SAVE_REGS ops: that is the
# reason to give first, whatever else is missing.
NEEDS = ("regs caller", "module")
KERNEL = {"save_regs": True, "relevant": 1}
KNOBS = ()  # the module registers its ops itself; unloading it removes them
# Only the regs era has a regs caller (docs/lab.md, "The eras of arm64 ftrace").
ENTRY_PATHS = {"regs": "ftrace_regs_caller (regs era)"}


def enter(tracing, function):
    tracing.attach(function, save_regs=True)


def expect(view, function):
    ok = (view["current_tracer"] == "nop" and view["target_line"] is not None
          and view["enabled_functions_count"] == 1 and "R" in (view.get("target_flags") or []))
    return ok, "the module's ops alone on %s, with the R (regs) flag" % function
