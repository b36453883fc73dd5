"""The target lock: one bench run per host at a time.

Runs on the target's own python3 (>= 3.9), stdlib only.

The lock is ``/run/ftrace-regs-bench.lock`` held with flock(2).  The kernel
drops a flock when the last descriptor of its open file goes, so a run that
dies (kill -9, power cut of the controller, a crashed agent) cannot leave a
lock that blocks the next run: a file that nobody holds is stale by
construction, whatever it says.  The agent takes the lock before it forks
its guardian; the guardian inherits the descriptor, so the host stays locked
until the guardian has restored what a killed agent left behind.

The file names its holder (the controller's user@host and pid, the agent's
pid, the boot id, the start time) so that a refused second run can say who
holds the host and for how long.  /run is a tmpfs, emptied at boot; the boot
id is recorded anyway, for the note when a stale lock is recovered.

The file is removed on release.  Removing a flock'ed file races with a
process that opened it just before: after taking the flock the holder checks
that the path still names the file it locked, and starts again if not.
"""
import fcntl
import json
import os
import time

try:  # on the target: shipped next to agent.py as the package `protocol`
    from protocol.errors import BenchError
except ImportError:  # in the source tree, imported as remote.agent.lock
    from remote.protocol.errors import BenchError

PATH = "/run/ftrace-regs-bench.lock"


class Busy(BenchError):
    """Another live run holds the lock; the message names it."""

    kind = "target-locked"


def _boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def _describe(info, now=None):
    now = time.time() if now is None else now
    age = now - float(info.get("started", now))
    return "%s (agent pid %s, for %.0f s)" % (info.get("holder") or "an unknown controller",
                                             info.get("agent_pid", "?"), max(0.0, age))


def _read_info(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    try:
        info = json.loads(data.decode("utf-8", "replace")) if data.strip() else None
    except ValueError:
        info = {"holder": "unreadable lock contents %r" % data[:60]}
    return info if isinstance(info, dict) or info is None else {"holder": repr(info)[:60]}


class Lock:
    def __init__(self, path=PATH):
        self.path = path
        self.fd = None
        self.recovered = None  # a note when a stale lock was found and taken over

    def acquire(self, holder, workdir):
        """Take the lock or raise Busy.  Returns self."""
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = _read_info(fd) or {}
                os.close(fd)
                raise Busy("another bench run holds this host: %s" % _describe(info))
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # released and removed between our open and flock: again
                os.close(fd)
                continue
            old = _read_info(fd)
            if old:
                why = ("the host rebooted since" if old.get("boot_id") != _boot_id()
                       else "its agent pid %s is gone" % old.get("agent_pid", "?"))
                self.recovered = "a stale lock was recovered: %s; %s" % (_describe(old), why)
            info = {"holder": holder, "agent_pid": os.getpid(), "boot_id": _boot_id(),
                    "started": time.time(), "workdir": workdir}
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(info, sort_keys=True) + "\n").encode())
            self.fd = fd
            return self
        raise Busy("the lock %s keeps changing under us" % self.path)

    def inheritable_fd(self):
        """The descriptor, made inheritable for the guardian's exec."""
        os.set_inheritable(self.fd, True)
        return self.fd

    def release(self):
        """Remove the file (still ours: we hold the flock) and drop the lock."""
        if self.fd is None:
            return
        release_fd(self.fd, self.path)
        self.fd = None


def release_fd(fd, path=PATH):
    """Remove the lock file if it is the one fd locks, then close fd.  The
    guardian calls this with the descriptor it inherited."""
    try:
        if os.fstat(fd).st_ino == os.stat(path).st_ino:
            os.unlink(path)
    except OSError:
        pass
    try:
        os.close(fd)
    except OSError:
        pass
