"""What tracefs files say, parsed: the same reading on both sides.

The agent uses it to restore (same_state) and to report (enabled_view); the
controller uses it to check a cell's proof and to judge a restore
(kernel_expanded).  Standard library only (shipped with the agent).
"""
import re


def filter_entries(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def buffer_size(text):
    """'1408' -> 1408; '7 (expanded: 1408)' -> 1408 (the size it will get)."""
    text = text.strip()
    if "expanded:" in text:
        return int(text.split("expanded:")[1].strip(" )"))
    return int(text.split()[0])


def kernel_expanded(before, after):
    """True when buffer_size_kb went from '7 (expanded: 1408)' to what the
    kernel makes of 1408 KiB when it expands the buffer on first tracer use.

    The kernel rounds up to whole ring-buffer pages of PAGE_SIZE minus a
    16-byte header, then reports pages * (PAGE_SIZE - 16) / 1024: 1408 reads
    back as 1410 with 4 KiB pages.  The expansion happens once per boot
    (ring_buffer_expanded) and only a reboot undoes it; it is the kernel's
    doing, not the run's, and bundles note it.
    """
    if "expanded" not in before or "expanded" in after:
        return False
    want, got = buffer_size(before), int(after.split()[0])
    for page in (4096, 16384, 65536):
        data = page - 16
        pages = -(-want * 1024 // data)
        if got == pages * data // 1024:
            return True
    return got == want


def same_state(knob, before, after):
    if knob == "buffer_size_kb":
        if "expanded" in before and "expanded" not in after:
            return kernel_expanded(before, after)
        return before.strip() == after.strip()
    if knob in ("set_ftrace_filter", "set_ftrace_notrace"):
        return sorted(filter_entries(before)) == sorted(filter_entries(after))
    return before.strip() == after.strip()


def enabled_flags(line):
    """Flags of an enabled_functions line: 6.1 prints 'sym (count)' then one
    field per flag, 'R' (regs), 'I' (ipmodify), 'D' (direct), blank when
    unset; later kernels add 'O', 'M' and '\tops: ...' / '\tdirect-->...'.

    '__arm64_sys_getppid (1) R   ' -> ['R']
    """
    head, _, rest = line.partition(")")
    rest = rest.split("\t")[0]
    return [tok for tok in rest.split() if len(tok) == 1 and tok.isalpha()]


# 6.1 t_show(): print_rec() writes the symbol and, for a module function,
# ' [module]'; then ' (%ld)' is ftrace_rec_count(rec), the number of ops on
# the record, and the flag fields follow.
_ENABLED_LINE = re.compile(r"^(?P<symbol>\S+)(?: \[(?P<module>[^\]]+)\])? \((?P<count>\d+)\)")


def enabled_line(line):
    """One enabled_functions line, parsed; None if it is not one.

    'frb_tracee [ftrace_regs_bench] (1) R    ' ->
    {'symbol': 'frb_tracee', 'module': 'ftrace_regs_bench', 'count': 1, 'flags': ['R']}
    """
    m = _ENABLED_LINE.match(line)
    if not m:
        return None
    return {"symbol": m.group("symbol"), "module": m.group("module"),
            "count": int(m.group("count")), "flags": enabled_flags(line)}


def enabled_view(enabled, function):
    """What enabled_functions (its lines, stripped) says about one function:
    the part of a cell's tracefs proof that the checks read."""
    target = [l for l in enabled if function and l.split()[0] == function]
    parsed = enabled_line(target[0]) if target else None
    return {
        "enabled_functions_count": len(enabled),
        "target_line": target[0] if target else None,
        "target_flags": enabled_flags(target[0]) if target else None,
        # the ops count and the module of the record: what the kernel
        # method's proof needs (its tracee lives in the module)
        "target_count": parsed["count"] if parsed else None,
        "target_module": parsed["module"] if parsed else None,
    }
