"""The controller's own errors.  bench/cli.py maps kinds to exit codes.

BenchError, the base of every error of the suite, is the protocol's
(remote/protocol/errors.py): the agent's errors derive from it too.  Errors
of reading bundles and writing outputs are analysis/bundle.py's.
"""
from remote.protocol.errors import BenchError


class UsageError(BenchError):
    kind = "usage"


class MeasurementError(BenchError):
    kind = "measure"
