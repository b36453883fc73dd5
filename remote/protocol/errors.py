"""The one exception base of the suite, on both sides.

Every error the suite raises on purpose is a BenchError: the controller's
(bench/errors.py, remote/errors.py, analysis/) and the agent's (agent.py,
tracefs.py, kmod.py, bpfmethod.py, lock.py).  Each carries a stable ``kind``:
the agent sends it with the error, and only bench/cli.py turns a kind into an
exit code (the table lives there and in the README).  Messages are one line
and say what is wrong; ``hint`` says what to do.

Standard library only (shipped with the agent).
"""


class BenchError(Exception):
    kind = "bench"

    def __init__(self, message, *, hint=None, kind=None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if kind:
            self.kind = kind

    def __str__(self):
        return "%s; %s" % (self.message, self.hint) if self.hint else self.message
