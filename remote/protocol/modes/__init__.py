"""The modes a cell can measure in: a registry, one file per mode.

Every other module of this package declares one mode, whole (off.py is the
shortest example):

  NAME         the mode's name (--modes, cell ids, bundles)
  ORDER        a number: modes are planned, tabled and plotted in ORDER
  DESCRIPTION  one line (bench run --help)
  NEEDS        what it needs from the host, in HOST_NEEDS' terms (bench
               check answers each), in order of precedence: the first unmet
               one is the reason bench check gives, all met the last one's
  KERNEL       for the kernel method (which times the module's own tracee,
               not the workload): the module's settings for this mode,
               {"save_regs": bool, "relevant": number of ops}; None if the
               kernel method does not measure it.  Which methods measure a
               mode is the methods' say (analysis/methods/): a new method
               touches no mode file
  KNOBS        the tracefs knobs enter() writes (the agent refuses others:
               its snapshot and restore cover remote/agent/tracefs.py KNOBS)
  ENTRY_PATHS  {ftrace variant: the entry path a traced call takes} where
               the mode stands for one (analysis/summary.py)
  enter(tracing, function)   what the agent does to enter it, after it has
               left the previous mode (current_tracer nop, the module's ops
               detached, every filter list of filter_knobs() emptied);
               tracing.write(knob, text) writes a knob of KNOBS,
               tracing.attach(function, save_regs) attaches the module's ops
  expect(view, function)     what tracefs must show once it is in effect:
               (ok, the expected state in words) from the agent's verify
               view (remote/protocol/tracefs_text.py enabled_view, plus
               current_tracer, tracing_on, set_ftrace_filter)
  BASELINE     True for the one mode overheads are differences against

Standard library only: the package is shipped to the target with the agent,
and the files are found in the package itself, so the shipped copy finds
the same modes.
"""
import dataclasses
import importlib
import pkgutil

from ..kmod import IDLE, TRACEE
from ..kmod import NAME as KMOD_NAME

# What a mode may need from the host: the terms bench check answers
# (bench/check.py mode_needs).
HOST_NEEDS = ("tracefs", "function tracer", "module", "regs caller")


class UnknownMode(LookupError):
    """A mode no file declares (the message lists the known ones)."""


class ModeFileError(Exception):
    """A mode file that does not declare its mode as this package says."""


@dataclasses.dataclass(frozen=True)
class Mode:
    """One mode as its file declares it: a field per attribute, lower-cased."""
    name: str
    order: float
    description: str
    needs: tuple
    kernel: object  # {"save_regs": bool, "relevant": int} or None
    knobs: tuple
    entry_paths: dict
    enter: object
    expect: object
    baseline: bool = False


REQUIRED = ("NAME", "ORDER", "DESCRIPTION", "NEEDS", "KERNEL", "KNOBS", "ENTRY_PATHS",
            "enter", "expect")


def from_module(module):
    """The Mode a mode file declares; ModeFileError says what is wrong with it."""
    where = getattr(module, "__file__", None) or module.__name__
    missing = [a for a in REQUIRED if not hasattr(module, a)]
    if missing:
        raise ModeFileError("mode file %s does not declare %s" % (where, ", ".join(missing)))
    m = Mode(name=module.NAME, order=module.ORDER, description=module.DESCRIPTION,
             needs=tuple(module.NEEDS), kernel=module.KERNEL,
             knobs=tuple(module.KNOBS), entry_paths=dict(module.ENTRY_PATHS), enter=module.enter,
             expect=module.expect, baseline=bool(getattr(module, "BASELINE", False)))
    unknown = [n for n in m.needs if n not in HOST_NEEDS]
    if not m.needs or unknown:
        raise ModeFileError("mode %s needs %s: bench check answers only %s"
                            % (m.name, ", ".join(unknown), ", ".join(HOST_NEEDS)))
    if m.kernel is not None and set(m.kernel) != {"save_regs", "relevant"}:
        raise ModeFileError("mode %s: KERNEL must be {'save_regs': bool, 'relevant': int}" % m.name)
    return m


_modes = {}
MODES = ()  # the names in ORDER; kept current by register() and unregister()
BASELINE = None  # the name of the mode whose file says BASELINE = True


def _reorder():
    global MODES
    MODES = tuple(sorted(_modes, key=lambda n: _modes[n].order))


def register(mode):
    """Add a mode (a Mode or a mode file's module); returns the Mode.  The
    package's own files are registered on import; tests register more."""
    global BASELINE
    if not isinstance(mode, Mode):
        mode = from_module(mode)
    if mode.name in _modes:
        raise ModeFileError("mode %s is declared twice" % mode.name)
    clash = [n for n, m in _modes.items() if m.order == mode.order]
    if clash:
        raise ModeFileError("modes %s and %s have the same ORDER %r" % (clash[0], mode.name, mode.order))
    if mode.baseline:
        if BASELINE is not None:
            raise ModeFileError("modes %s and %s both say BASELINE" % (BASELINE, mode.name))
        BASELINE = mode.name
    _modes[mode.name] = mode
    _reorder()
    return mode


def unregister(name):
    if get(name).baseline:
        raise ModeFileError("the baseline mode %s cannot be unregistered" % name)
    del _modes[name]
    _reorder()


def names():
    """The registered modes' names, in ORDER (read at call time: a mode a
    test registers is in it)."""
    return MODES


def get(name):
    try:
        return _modes[name]
    except KeyError:
        raise UnknownMode("unknown mode %r (known: %s)" % (name, ", ".join(MODES))) from None


def filter_knobs():
    """The filter lists (set_ftrace_*) some mode writes: entering any mode
    empties them all first, so that no mode inherits another's filter."""
    return tuple(sorted({k for m in _modes.values() for k in m.knobs if k.startswith("set_ftrace_")}))


def expect_kernel(view, settings):
    """What tracefs must show while a kernel-method cell holds its ops
    (settings: what it registered): with no ops, nothing; else the module's
    tracee alone in enabled_functions with as many ops as the cell
    registered, and the R flag (FTRACE_FL_REGS: the call site goes to
    ftrace_regs_caller) exactly with SAVE_REGS.  With irrelevant ops (an ops
    point of the plan), the module's IDLE function too, with that many ops
    (the view's idle_* keys: the kernel method's kmod_verify).  (ok, the
    expected state in words)."""
    relevant, flags = settings["relevant"], view.get("target_flags") or []
    irrelevant = settings.get("irrelevant", 0)
    regs = "with" if settings["save_regs"] else "without"
    if not relevant and not irrelevant:
        return (view["current_tracer"] == "nop" and view["enabled_functions_count"] == 0,
                "current_tracer nop and enabled_functions empty")
    ok = (view["current_tracer"] == "nop"
          and view["enabled_functions_count"] == bool(relevant) + bool(irrelevant))
    if relevant:
        ok = ok and (view.get("target_module") == KMOD_NAME and view.get("target_count") == relevant
                     and ("R" in flags) == settings["save_regs"])
    if not irrelevant:
        return ok, ("%s [%s] alone with %d ops, %s the R (regs) flag" % (TRACEE, KMOD_NAME, relevant, regs))
    ok = ok and (view.get("idle_module") == KMOD_NAME and view.get("idle_count") == irrelevant
                 and ("R" in (view.get("idle_flags") or [])) == settings["save_regs"])
    tracee = "%s [%s] with %d ops and " % (TRACEE, KMOD_NAME, relevant) if relevant else ""
    return ok, ("%s%s [%s] with %d ops, nothing else, %s the R (regs) flag"
                % (tracee, IDLE, KMOD_NAME, irrelevant, regs))


def _discover():
    for info in pkgutil.iter_modules(__path__):
        register(importlib.import_module("%s.%s" % (__name__, info.name)))
    if BASELINE is None:
        raise ModeFileError("no mode file says BASELINE = True")


_discover()
