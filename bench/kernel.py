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


# What each arm64 era means, said plainly (bench check's ftrace_era reason).
ERA_PLAIN = {
    "regs": "arm64 5.5-6.1 with DYNAMIC_FTRACE_WITH_REGS: ftrace_caller and ftrace_regs_caller",
    "args": "arm64 6.2 with DYNAMIC_FTRACE_WITH_ARGS: one ftrace_caller, no regs caller",
    "call-ops": "arm64 6.3+ with DYNAMIC_FTRACE_WITH_CALL_OPS: one ftrace_caller, no regs caller",
    "direct-calls": "arm64 6.4+ with CALL_OPS and DIRECT_CALLS: one ftrace_caller, no regs caller",
    "mcount": "DYNAMIC_FTRACE without WITH_REGS/ARGS (-pg, bl _mcount): no regs caller",
}

# What to do on an arm64 kernel without a regs caller (docs/hardware.md,
# "A kernel with a regs caller").
REGS_KERNEL_ADVICE = (
    "for regs versus noregs boot a 5.5-6.1 kernel built with DYNAMIC_FTRACE_WITH_REGS: a distribution's "
    "(Debian 12's 6.1, Amazon Linux 2023's 6.1, Ubuntu 22.04's 5.15) or one built by "
    "`bench kernel build --variant regs --config FRAGMENT` (FRAGMENT: the lab's fragment plus the "
    "machine's drivers), whose Image and modroot/lib/modules/<release> go onto the machine "
    "(docs/hardware.md)")
