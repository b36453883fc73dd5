"""The agent's lease: when it stops waiting for a silent controller.

Runs on the target (stdlib only).  The controller renews the lease with
every line it sends.  Before a cell it may declare a budget (seconds the cell
should take at most): it then sends nothing while the cell runs (nothing of
the harness may wake on the measured CPU during a timed value), and the lease
holds for the whole budget.  The lease therefore lapses when

- nothing was heard for `seconds` outside a cell, or
- a cell overruns its budget by more than `seconds` and nothing was heard, or
- nothing is heard for `seconds` after a cell ends: a controller that died
  or hung during a cell is noticed at the cell's end plus the lease.

The watchdog thread sleeps until the deadline (a condition variable with a
timeout) instead of polling: on a single CPU a poll every second would run
on the measured CPU in the middle of timed values.
"""
import threading
import time


class Lease:
    def __init__(self, seconds, clock=time.monotonic, cond=None):
        self.seconds = float(seconds)
        self.clock = clock
        self.cond = cond if cond is not None else threading.Condition()
        self.since = clock()  # the lease runs from here (last word, or the end of a cell)
        self.quiet = None  # (start, budget seconds, cell) while a declared cell runs

    def heard(self):
        """A line from the controller.  The deadline only moves later, so the
        watchdog need not wake: it recomputes when its wait times out."""
        self.since = self.clock()

    def begin_quiet(self, budget, cell=None):
        with self.cond:
            self.quiet = (self.clock(), float(budget), cell)
            self.cond.notify_all()

    def end_quiet(self):
        """The cell is over: from now on the controller has the usual lease
        to say something (it will, at once: it waits for the result)."""
        with self.cond:
            self.quiet = None
            self.since = max(self.since, self.clock())
            self.cond.notify_all()  # the deadline may move earlier: wake the watchdog

    def deadline(self):
        d = self.since + self.seconds
        if self.quiet is not None:
            start, budget, _ = self.quiet
            d = max(d, start + budget + self.seconds)
        return d

    def lapsed_reason(self):
        if self.quiet is not None:
            _, budget, cell = self.quiet
            return ("cell %s overran its budget of %.0f s by more than the lease of %.0f s, "
                    "with no word from the controller" % (cell or "?", budget, self.seconds))
        return "lease of %.0f s lapsed: no word from the controller" % self.seconds

    def wait_lapse(self, finished):
        """Block until the lease lapses (returns the reason) or finished()
        is true (returns None).  Wakes at the deadline, and when a cell
        begins or ends; never on a fixed period."""
        with self.cond:
            while not finished():
                left = self.deadline() - self.clock()
                if left <= 0:
                    return self.lapsed_reason()
                self.cond.wait(left)
        return None

    def stop(self):
        """Wake the watchdog so that it sees finished()."""
        with self.cond:
            self.cond.notify_all()


def check_budget(value):
    """A budget from the controller: seconds, 0 < budget <= one day; else None."""
    try:
        b = float(value)
    except (TypeError, ValueError):
        return None
    return b if 0 < b <= 86400 else None
