"""off: no tracing at all, the baseline every overhead is measured against."""
NAME = "off"
ORDER = 10
BASELINE = True
DESCRIPTION = "no tracing, current_tracer nop and enabled_functions empty; the baseline, always measured"
NEEDS = ("tracefs",)
KERNEL = {"save_regs": False, "relevant": 0}  # the module's timing with no ops at all
KNOBS = ()
ENTRY_PATHS = {}


def enter(tracing, function):
    pass  # leaving the previous mode is all there is to it


def expect(view, function):
    return (view["current_tracer"] == "nop" and view["enabled_functions_count"] == 0,
            "current_tracer nop and enabled_functions empty")
