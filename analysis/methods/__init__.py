"""The measurement methods: one file each in this package, found by name.

A method's file holds everything the controller and the analysis know about
it: its name, what it needs from the host and whether a host has it (bench
check), the modes it applies to and the workload it times (the plan), the
check modes it brings, how a cell is measured through the agent client, how
its raw files are read into per-cell values, what it explains of a
disagreement with another method, and its cell budget.  Its other half runs
on the target: its agent file(s) in remote/agent/ (docs/method.md, "Adding
a method").

Why here, under analysis/: the analysis reads bundles without the
controller (analysis imports nothing from bench), yet it must read a
method's raw files; with the reader in the method's file, the file must
live where analysis can import it.  The controller reaches down to it
(bench -> analysis), and what the measuring part needs of the run it gets
as plain objects: the agent client (anything with request() and fetch())
and the run (bench/run.py's Harness: the bundle, the plan, the traced
function and the controller's proofs that a mode is in effect).  So no
method file imports bench or remote.

Every module of this package is a method: it sets METHOD, an instance of a
Method subclass; a test may register() one of its own.  Its rank orders
it in listings (bench run's default --methods, bench check): pyperf,
kernel, bpf.
"""
import importlib
import pkgutil


class UnknownMethod(ValueError):
    """A name no method answers to (bench run --methods checks names first)."""


def answer(ok, value, reason):
    """One bench check answer (bench/check.py: stable keys)."""
    return {"ok": ok, "value": value, "reason": reason}


class Method:
    """What every method says; the defaults are the common case."""

    name = None
    rank = 0
    needs = ""  # what it needs from the host, in words
    needs_module = False  # the suite's kernel module must be loaded
    samples = "runs"  # what a cell's values are, in words (one value each)

    def raw_file(self, cell_id):
        """Where a cell's raw file goes in the bundle (bench/bundle.py)."""
        return f"{self.name}/{cell_id}.json"

    def applies(self, mode, tracefs_mode):
        """Is a cell of `mode` (whose tracefs state is `tracefs_mode`) measured by this method?"""
        return True

    def workload(self, workload):
        """The workload it times when the run's workload is `workload`."""
        return workload

    def check_modes(self, methods):
        """Check modes it brings to a plan of `methods` (every plan has off-aa)."""
        return []

    def available(self, facts, caps, module):
        """bench check's answer for this host; `module`: the answer for the
        suite's module (builds and loads)."""
        raise NotImplementedError

    def plan_fields(self, profile):
        """What the plan keeps of this method's effort when it is planned."""
        return {}

    def estimate(self, profile, startup_s):
        """Seconds a cell should take at most from the profile alone, before
        bench/budget.py's slack; startup_s: one Python process's start."""
        raise NotImplementedError

    def work(self, profile):
        """What a cell typically costs, for the run's time estimate
        (bench/eta.py), not a bound: (Python processes it starts on the
        target, seconds of the target's clock it spends timing).  None: the
        method does not say, and the estimate falls back to estimate()."""
        return None

    def start(self, client, run):
        """Before the module is prepared (once per run)."""

    def calibrate(self, client, run):
        """After the module is loaded (once per run)."""

    def measure(self, client, run, cell, quiet):
        """Measure one cell; returns the record's fields in order (file
        first, host_s: our seconds around the measuring request).  quiet:
        the measuring request's cell id and budget (bench/budget.py)."""
        raise NotImplementedError

    def read(self, path):
        """A cell's raw file -> (its per-worker or per-run means in the
        clock's ns, how many values they average)."""
        raise NotImplementedError

    def series(self, path, unit):
        """Every figure a cell's raw file gives: [(label, unit, per-worker or
        per-run means per call)].  The first is the method's own (read(),
        in the clock's `unit`); a method that also counts events adds one
        series each, labelled like a method ('pmu/cycles') and in its own
        unit (analysis/methods/pmu.py)."""
        return [(self.name, unit, self.read(path)[0])]

    def disagreement(self, metric, mode):
        """Why this method's figure is known to differ from another's, or None."""
        return None


_REGISTRY = {}


def register(method):
    """Make `method` (a Method instance) known by its name; returns it."""
    _REGISTRY[method.name] = method
    return method


def unregister(name):
    _REGISTRY.pop(name, None)


def _discover():
    for info in pkgutil.iter_modules(__path__):
        register(importlib.import_module(f"{__name__}.{info.name}").METHOD)


def every():
    """Every method, in rank order."""
    return sorted(_REGISTRY.values(), key=lambda m: m.rank)


def names():
    """Every method's name, in rank order."""
    return [m.name for m in every()]


def find(name):
    """The method called `name`, or None (a foreign bundle's cell)."""
    return _REGISTRY.get(name)


def get(name):
    """The method called `name`; an unknown name is a one-line error listing the known ones."""
    method = _REGISTRY.get(name)
    if method is None:
        raise UnknownMethod(f"unknown method {name!r}: known methods are {', '.join(names())}")
    return method


_discover()
