"""What kind of ftrace a kernel has, from its config (docs/lab.md, "The eras of
arm64 ftrace", which cites the kernel sources).

Eras on arm64:
  mcount        DYNAMIC_FTRACE without WITH_REGS/ARGS (-pg, bl _mcount)
  regs          DYNAMIC_FTRACE_WITH_REGS (5.5-6.1): ftrace_caller and ftrace_regs_caller
  args          DYNAMIC_FTRACE_WITH_ARGS (6.2): one ftrace_caller, no regs caller
  call-ops      + DYNAMIC_FTRACE_WITH_CALL_OPS (6.3+)
  direct-calls  + DYNAMIC_FTRACE_WITH_DIRECT_CALLS (6.4+)
Other architectures are classified by the same options; x86_64 has both
REGS and ARGS, and its regs caller is what matters here, so REGS wins there.
"""


def _on(config, name):
    return config.get("CONFIG_" + name) == "y"


def ftrace_era(config, arch):
    """The era's name (above; 'unknown' without a config, 'none' without the
    function tracer, 'static' without DYNAMIC_FTRACE).  Bundles record it as
    facts["ftrace_variant"], a published key."""
    if not config:
        return "unknown"
    if not _on(config, "FUNCTION_TRACER"):
        return "none"
    if not _on(config, "DYNAMIC_FTRACE"):
        return "static"
    if arch == "aarch64":
        if _on(config, "DYNAMIC_FTRACE_WITH_CALL_OPS"):
            return "direct-calls" if _on(config, "DYNAMIC_FTRACE_WITH_DIRECT_CALLS") else "call-ops"
        if _on(config, "DYNAMIC_FTRACE_WITH_ARGS"):
            return "args"
        if _on(config, "DYNAMIC_FTRACE_WITH_REGS"):
            return "regs"
        return "mcount"
    if _on(config, "DYNAMIC_FTRACE_WITH_REGS"):
        return "regs"
    if _on(config, "DYNAMIC_FTRACE_WITH_ARGS"):
        return "args"
    return "mcount"
