"""`bench check`: what a host can do, each answer with its reason.

The agent reports raw observations (remote/agent/capabilities.py and
facts.py); this module decides.  The JSON keys are stable (docs/method.md,
"bench check"): every answer is {"ok": true|false|null, "value": ..., "reason": "..."}.
"""
from analysis import methods as methods_reg
from analysis import packages
from analysis.methods import answer
from analysis.methods.bpf import bcc
from remote import pyperf_ship
from remote.errors import TargetUnsupported
from remote.protocol import modes as mode_registry

from .kernel import ERA_PLAIN, REGS_KERNEL_ADVICE, ftrace_era


def era(facts, caps):
    config = facts.get("kernel_config") or {}
    arch = facts.get("arch")
    era_name = ftrace_era(config, arch)
    syms = caps.get("kallsyms")
    source = facts.get("kernel_config_source") or "no kernel config found"
    reason = f"from {source}"
    ok = True
    if syms is not None:
        has_regs = "ftrace_regs_caller" in syms
        reason += f"; /proc/kallsyms {'has' if has_regs else 'has no'} ftrace_regs_caller"
        # Cross-check: on arm64 the regs era is exactly the kernels with that symbol.
        if arch == "aarch64" and era_name in ("regs", "args", "call-ops", "direct-calls", "mcount"):
            if (era_name == "regs") != has_regs:
                ok = False
                reason += f" (contradicts the config's {era_name!r})"
        if era_name == "unknown" and arch == "aarch64":
            era_name = "regs" if has_regs else ("mcount" if "_mcount" in syms else "unknown")
            reason += "; era taken from kallsyms"
    if arch == "aarch64" and era_name in ERA_PLAIN:
        reason = f"{ERA_PLAIN[era_name]} ({reason})"
    return answer(ok, era_name, reason)


def has_regs_caller(facts, era_answer):
    arch = facts.get("arch")
    v = era_answer["value"]
    if arch == "aarch64":
        if v == "regs":
            return True, ("arm64 with DYNAMIC_FTRACE_WITH_REGS: ftrace_regs_caller exists, so this kernel "
                          "measures the regs gain as it is")
        return False, (f"{facts.get('kernel_release')} is in arm64 ftrace era {v!r}: it has no regs caller "
                       "(a SAVE_REGS ops is refused), so the regs mode is skipped and the other modes run; "
                       + REGS_KERNEL_ADVICE)
    if (facts.get("kernel_config") or {}).get("CONFIG_DYNAMIC_FTRACE_WITH_REGS") == "y":
        return True, f"{arch}: DYNAMIC_FTRACE_WITH_REGS=y"
    return False, f"{arch}: no DYNAMIC_FTRACE_WITH_REGS in the kernel config"


def module_build(caps, facts, prebuilt=None):
    """prebuilt: a .ko the controller keeps for exactly this kernel build
    (the lab's own kernels get theirs cross-built with the kernel), shipped
    instead of building on the target."""
    mb = caps.get("module_build") or {}
    if not mb.get("build_dir_ok") and prebuilt:
        return answer(True, str(prebuilt), f"no kernel headers at {mb.get('build_dir')}, but the "
                                           f"module built for exactly this kernel is cached: {prebuilt}")
    if not mb.get("build_dir_ok"):
        return answer(False, None, f"no kernel headers at {mb.get('build_dir')}: "
                                   + packages.install(facts, "headers"))
    cc = mb.get("compiler")
    if not cc:
        return answer(False, None, "no C compiler (gcc) on the target: " + packages.install(facts, "compiler"))
    if not mb.get("make"):
        return answer(False, None, "no make on the target: " + packages.install(facts, "make"))
    want = (facts.get("kernel_config") or {}).get("CONFIG_CC_VERSION_TEXT", "").strip('"')
    reason = f"headers at {mb['build_dir']}, {cc['version']}"
    if want and cc.get("version") and want.split()[-1] not in cc["version"]:
        reason += f" (the kernel was built with {want}; kbuild may refuse another version)"
    return answer(True, mb["build_dir"], reason)


def module_load(caps, facts):
    ml = caps.get("module_load") or {}
    if not ml.get("modules_supported"):
        return answer(False, None, "the kernel has no loadable module support (CONFIG_MODULES)")
    if ml.get("modules_disabled") == "1":
        return answer(False, None, "module loading is disabled (kernel.modules_disabled=1)")
    if not ml.get("insmod"):
        return answer(False, None, "no insmod on the target: " + packages.install(facts, "kmod"))
    lock = facts.get("lockdown")
    if ml.get("sig_enforce") == "Y" or (lock and lock != "none"):
        why = []
        if ml.get("sig_enforce") == "Y":
            why.append("module signatures are enforced (module.sig_enforce=Y)")
        if lock and lock != "none":
            why.append(f"kernel lockdown is {lock!r} (Secure Boot?)")
        return answer(False, None, "an unsigned module will be refused: " + "; ".join(why))
    return answer(True, None, f"modules load (sig_enforce={ml.get('sig_enforce')}, "
                              f"lockdown={lock or 'unknown'}); an unsigned module taints the kernel")


def kprobes_on_ftrace(facts):
    config = facts.get("kernel_config") or {}
    on = config.get("CONFIG_KPROBES_ON_FTRACE") == "y"
    if on:
        return answer(True, True, "CONFIG_KPROBES_ON_FTRACE=y: a kprobe at a function's entry "
                                  "registers an ftrace ops with SAVE_REGS")
    why = "no CONFIG_KPROBES_ON_FTRACE: a kprobe at a function's entry uses a breakpoint, not ftrace"
    if facts.get("arch") == "aarch64":
        why += " (never merged for arm64)"
    elif config.get("CONFIG_KPROBES") != "y":
        why = "no CONFIG_KPROBES"
    return answer(False, False, why)


def noise_notes(facts):
    """What makes numbers noisy on this target, one phrase each (warned
    about and recorded when the run is not --tune'd)."""
    gov = facts.get("governor")
    smt = facts.get("smt_control")
    iso = facts.get("cpus_isolated")
    load = facts.get("loadavg")
    cpus = facts.get("cpu_count") or 1
    notes = []
    if gov and gov != "performance":
        notes.append(f"governor {gov} (performance is steadier)")
    if smt == "on":
        notes.append("SMT on (a sibling thread shares the core)")
    if not iso:
        notes.append("no isolated CPUs")
    if load and float(load[0]) > 0.5 * cpus:
        notes.append(f"load average {float(load[0]):.2f} on {cpus} CPU(s) (the machine is busy)")
    return notes


def tuning(facts):
    gov = facts.get("governor")
    smt = facts.get("smt_control")
    iso = facts.get("cpus_isolated")
    notes = noise_notes(facts)
    return answer(not notes, {"governor": gov, "smt": smt, "isolated_cpus": iso,
                              "loadavg": (facts.get("loadavg") or [None])[0]},
                  "; ".join(notes) if notes else "performance governor, SMT off, isolated CPUs")


def mode_needs(pre, tracers, refused, module, regs_caller):
    """{need: (ok, reason)} for each of the terms modes state their needs in
    (remote/protocol/modes HOST_NEEDS).  'regs caller': arm64 5.5-6.1
    (DYNAMIC_FTRACE_WITH_REGS) or any arch whose ftrace saves regs on request."""
    fn_ok = "function" in tracers and not refused
    return {
        "tracefs": (not refused, refused or "tracefs at " + str(pre.get("tracefs"))),
        "function tracer": (fn_ok, "function tracer available" if fn_ok else
                            refused or "no function tracer in available_tracers (CONFIG_FUNCTION_TRACER)"),
        "module": module,
        "regs caller": regs_caller,
    }


def mode_answer(mode, needs):
    """A mode is possible when all it needs is there; the reason is that of
    its first unmet need, or of its last need when all are met."""
    for need in mode.needs:
        ok, reason = needs[need]
        if not ok:
            return answer(False, None, reason)
    return answer(True, None, needs[mode.needs[-1]][1])


def python_and_pyperf(facts):
    """The target's python3 and the pyperf shipped to it (remote/pyperf_ship.py):
    the one chosen for that Python, and the one the agent imported there."""
    ver = facts.get("python_version")
    if not ver:  # facts from before the agent reported its Python
        return answer(None, None, "not reported"), answer(None, facts.get("pyperf_version"), "not reported")
    python = answer(True, ver, facts.get("python_executable") or "")
    try:
        choice = pyperf_ship.choose(ver)
    except TargetUnsupported as e:  # the agent refuses to start first (AgentClient.start)
        return python, answer(False, None, e.message)
    got = facts.get("pyperf_version")
    if got != choice.version:
        return python, answer(False, got, f"the agent imported pyperf {got}, not the {choice.version} "
                                          f"chosen for it ({choice.reason})")
    return python, answer(True, got, choice.reason)


def report(facts, caps, pre, root_via, prebuilt=None):
    """The full check: stable keys, each an answer."""
    e = era(facts, caps)
    regs_ok, regs_why = has_regs_caller(facts, e)
    mb = module_build(caps, facts, prebuilt)
    ml = module_load(caps, facts)
    tracers = pre.get("available_tracers") or []
    refused_full = "; ".join(pre.get("errors") or [])
    # The full text goes on the tracefs line; the modes point to it.
    refused = "tracefs refused (see the tracefs line)" if refused_full else ""
    mod_ok = bool(mb["ok"] and ml["ok"]) and not refused
    mod_why = ("module builds and loads" if mod_ok else refused if refused
               else (mb["reason"] if not mb["ok"] else ml["reason"]))
    needs = mode_needs(pre, tracers, refused, (mod_ok, mod_why), (regs_ok, regs_why))
    modes = {name: mode_answer(mode_registry.get(name), needs) for name in mode_registry.names()}
    module = answer(mod_ok, None, mod_why)
    methods = {m.name: m.available(facts, caps, module) for m in methods_reg.every()}
    cpu = facts.get("cpu_model")
    python, pyperf = python_and_pyperf(facts)
    return {
        "arch": answer(True, facts.get("arch"), "uname -m"),
        "cpu": answer(True, cpu, (f"implementer {facts.get('cpu_implementer')} part {facts.get('cpu_part')}"
                                  + (f"; product from {facts['cpu_product_evidence']}"
                                     if facts.get("cpu_product_evidence") else ""))
                      if facts.get("cpu_part") else "/proc/cpuinfo model name"),
        "kernel_release": answer(True, facts.get("kernel_release"), facts.get("kernel_version") or ""),
        "ftrace_era": e,
        "regs_caller": answer(regs_ok, regs_ok, regs_why),
        "tracefs": answer(not refused, pre.get("tracefs"), refused_full or
                          ("mounted for this check and unmounted again" if pre.get("mounted_by_us")
                           else "mounted")),
        "root": answer(True, root_via, "login user is root" if root_via == "root" else "sudo -n works"),
        "python": python,
        "pyperf": pyperf,
        "lockdown": answer(facts.get("lockdown") in (None, "none"), facts.get("lockdown"),
                           "/sys/kernel/security/lockdown"),
        "module_build": mb,
        "module_load": ml,
        "kprobes_on_ftrace": kprobes_on_ftrace(facts),
        "bcc": bcc(caps, facts),
        "tuning": tuning(facts),
        "modes": modes,
        "methods": methods,
    }
