"""The errors of remote/: RemoteError and its kinds.

RemoteError is a BenchError (remote/protocol/errors.py, the one base): each
class carries a stable ``kind``; only bench/cli.py turns a kind into an exit
code (the table lives there and in the README).  Messages are one line and
say what is wrong and what to do.
"""
from .protocol.errors import BenchError


class RemoteError(BenchError):
    kind = "remote"


class HostNotFound(RemoteError):
    """The host name is not `lab`, not `local` and no Host alias in ~/.ssh/config."""
    kind = "host-not-found"


class ConnectFailed(RemoteError):
    """TCP connection refused, timed out, or name did not resolve."""
    kind = "connect"


class AuthFailed(RemoteError):
    kind = "auth"


class HostKeyUnknown(RemoteError):
    kind = "host-key"


class HostKeyMismatch(RemoteError):
    kind = "host-key"


class CommandTimeout(RemoteError):
    kind = "timeout"


class ConnectionLost(RemoteError):
    kind = "connection-lost"


class NoRoot(RemoteError):
    """Neither the login user is root nor `sudo -n` works."""
    kind = "no-root"


class TargetUnsupported(RemoteError):
    """The target lacks something the run needs (python3 >= 3.9, tracefs, a tracer)."""
    kind = "unsupported"


class TracingBusy(RemoteError):
    kind = "busy"


class AgentError(RemoteError):
    """The agent on the target reported an error; the message is its own and
    so is the kind (kind=, when the agent sent one)."""
    kind = "agent"


class LabError(RemoteError):
    kind = "lab"
