"""The controller's exception base.  bench/cli.py maps kinds to exit codes."""


class BenchError(Exception):
    kind = "bench"

    def __init__(self, message, *, hint=None, kind=None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if kind:
            self.kind = kind

    def __str__(self):
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(BenchError):
    kind = "usage"


class OutputError(BenchError):
    kind = "output"


class BundleError(BenchError):
    kind = "bundle"


class MeasurementError(BenchError):
    kind = "measure"
