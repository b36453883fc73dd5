"""Ship the agent to a target and talk to it.

The payload is the agent's own files plus a pyperf the target's own python3
can run (pure Python; psutil is optional for it and not shipped): the
controller's installed pyperf, or a pinned older release where the
controller's needs a newer Python (remote/pyperf_ship.py).  It goes into a
private temporary directory on the target; nothing is pip-installed there.
"""
import base64
import itertools
import json
import os
import pathlib
import shlex
import threading
import time

from . import pyperf_ship
from .errors import AgentError, ConnectionLost, NoRoot, RemoteError, TargetUnsupported
from .protocol import transfer

AGENT_DIR = pathlib.Path(__file__).parent / "agent"
# The declared protocol both sides share: shipped as the package `protocol`
# next to agent.py.
PROTOCOL_DIR = pathlib.Path(__file__).parent / "protocol"
KMOD_DIR = pathlib.Path(__file__).parent / "kmod"
# A file the agent's stderr is copied to as it comes (set by the test suite).
STDERR_COPY_ENV = "FTRACE_REGS_BENCH_AGENT_STDERR"
KMOD_FILES = ("ftrace_regs_bench.c", "Makefile")


def payload(python_version=None):
    """{relative path: bytes} of everything the agent needs on the target.
    python_version: the target's python3 ((major, minor) or "3.9.2"), for
    the pyperf shipped (pyperf_ship.choose(); TargetUnsupported where none
    fits); None ships the controller's own (a LAVA job, made before its
    device's Python is known)."""
    files = {}
    # Everything of the agent's package and of the protocol, found rather
    # than listed: a new agent file cannot be forgotten.
    for path in sorted(AGENT_DIR.glob("*.py")):
        if path.name != "__init__.py":
            files[path.name] = path.read_bytes()
    for path in sorted(PROTOCOL_DIR.rglob("*.py")):
        files[str(pathlib.Path("protocol") / path.relative_to(PROTOCOL_DIR))] = path.read_bytes()
    for name in KMOD_FILES:
        if (KMOD_DIR / name).exists():
            files["kmod/" + name] = (KMOD_DIR / name).read_bytes()
    if python_version is None:
        own = pyperf_ship.controller_pyperf()[0]
        choice = pyperf_ship.Choice(own, "controller", "the controller's pyperf " + own)
    else:
        choice = pyperf_ship.choose(python_version)
    files.update(pyperf_ship.files(choice))
    if python_version is not None:
        files.update(bytecode(files, python_version))
    return files


def bytecode(files, python_version):
    """{__pycache__ path: .pyc bytes} for every module in files, where the
    target's python3 is the controller's own version (CPython both): what
    the target would otherwise compile at every run, in every new agent
    directory, before it can do anything.  Measured in the icount lab
    (Python 3.11, guest seconds): importing pyperf 0.36 uncompiled, 0.22
    compiled; the agent's modules 0.16 and 0.11.

    Unchecked-hash pycs (PEP 552): the target's Python loads them without
    comparing the source's mtime (which the unpack sets to its own time) and
    would rewrite nothing; they are compiled from exactly the bytes shipped
    beside them.  Scripts run by path (agent.py) are always compiled from
    source, so theirs would never be read and is not shipped.  Another
    version gets none (its magic number differs; it compiles as before)."""
    import importlib.util
    import marshal
    import sys

    if isinstance(python_version, str):
        python_version = python_version.split(".")
    if (tuple(int(x) for x in python_version[:2]) != sys.version_info[:2]
            or sys.implementation.name != "cpython"):
        return {}
    out = {}
    for rel, source in files.items():
        if not rel.endswith(".py") or rel == "agent.py":
            continue
        code = compile(source, rel, "exec", dont_inherit=True)
        flags = 0b01  # hash-based, source not checked
        out[importlib.util.cache_from_source(rel)] = (
            importlib.util.MAGIC_NUMBER + flags.to_bytes(4, "little")
            + importlib.util.source_hash(source) + marshal.dumps(code))
    return out


PAYLOAD_NAME = "payload.tar"

# Run on the target by the interpreter that becomes the agent: unpack the
# payload into the agent's directory (regular files only, relative paths,
# none there before, mode 0600), drop the archive, then exec agent.py in the
# same process (same pid: what the controller knows it by).  Python 3.9's
# tarfile has no extraction filter, hence the checks by hand.
_UNPACK_AND_START = """\
import os, sys, tarfile
d = sys.argv[1]
archive = os.path.join(d, "payload.tar")
with tarfile.open(archive) as t:
    for m in t.getmembers():
        name = os.path.normpath(m.name)
        if not m.isfile() or os.path.isabs(name) or name.split(os.sep)[0] == "..":
            sys.exit("agent payload: refusing member %r" % m.name)
        path = os.path.join(d, name)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(t.extractfile(m).read())
os.unlink(archive)
os.execv(sys.executable, [sys.executable, os.path.join(d, "agent.py")] + sys.argv[2:])
"""


def payload_tar(python_version=None):
    """payload() as one uncompressed tar, in a stable order: about 470 KB;
    1.2 MB with the bytecode for a target on the controller's Python."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for rel, data in sorted(payload(python_version).items()):
            info = tarfile.TarInfo(rel)
            info.size, info.mode = len(data), 0o600
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def lock_holder():
    """Who this controller is, for the target lock: user@host pid N (no secrets)."""
    import getpass
    import re
    import socket

    try:
        user = getpass.getuser()
    except Exception:  # no user name for this uid
        user = str(os.getuid())
    text = f"{user}@{socket.gethostname()} pid {os.getpid()}"
    return re.sub(r"[^A-Za-z0-9_.@:/ -]", "_", text)[:200]


# The agent's directory is made by a process that lives as long as our
# connection: if we vanish while shipping the agent (kill -9, network cut),
# its read ends (or it gets SIGHUP) and the half-filled directory goes.  Once
# the agent runs it owns the directory (and removes it), and we say 'keep'.
# The directory is the login user's, but what the agent unpacked into it is
# root's (0700 directories): for a sudo login, what rm cannot remove is
# removed through the same sudo that started the agent.
def workdir_holder(root_prefix):
    rm = 'rm -rf "$d" 2>/dev/null'
    if root_prefix:
        rm += ' || ' + shlex.join(list(root_prefix) + ["rm", "-rf"]) + ' "$d"'
    return ('d=$(mktemp -d /tmp/ftrace-regs-bench.XXXXXXXX) || exit 1; '
            f'trap \'{{ {rm}; }}; exit 1\' HUP TERM INT PIPE; chmod 0700 "$d"; echo "$d"; '
            f'read -r answer; [ "$answer" = keep ] || {{ {rm}; }}')


def ping_wait(now, due, quiet_until):
    """Seconds the pinger waits before its next ping (0: ping now): until the
    ping is due and no quiet window is open.  A window that closes on the
    cell's answer moves `due` a full interval on (request()); one that
    expires first leaves `due` in the past: the pinger pings at once."""
    if quiet_until is not None and now < quiet_until:
        return quiet_until - now
    return max(0.0, due - now)


class AgentClient:
    """One agent process on one target, for one run."""

    def __init__(self, target, *, lease=30.0, on_event=None, lock=False):
        self.target = target
        self.lease = lease
        self.lock = lock  # take the target lock (bench run does; bench check changes nothing)
        self.ready = None  # the agent's 'ready' event
        self.on_event = on_event or (lambda ev: None)
        self.proc = None
        self.workdir = None
        self.pyperf = None  # the pyperf_ship.Choice shipped, once start() chose it
        self._ids = itertools.count(1)
        self._send_lock = threading.Lock()
        self._pending = {}
        self._responses = {}
        self._cond = threading.Condition()
        self._closed = False
        self._eof = False
        self._lost = None  # the RemoteError that ended the connection, if any
        # While a cell with a declared budget runs, nothing is sent (no ping):
        # until this moment (time.monotonic()), or until its answer.
        self._quiet_until = None
        self._ping_cond = threading.Condition()
        self._ping_interval = max(1.0, lease / 4)
        self._ping_due = None

    # -- lifecycle ------------------------------------------------------------
    def start(self):
        prefix = self.target.root_prefix()
        python = self.target.python()
        # Chosen before anything is made on the target: where no pyperf fits
        # its Python, the refusal (exit 6) leaves nothing behind.
        try:
            self.pyperf = pyperf_ship.choose(self.target.python_version())
        except TargetUnsupported as e:
            raise TargetUnsupported(f"{self.target.name}: {e.message}", hint=e.hint) from None
        holder = self.target.start(["sh", "-c", workdir_holder(prefix)])
        try:
            line = holder.readline(timeout=60)
            if not line or not line.startswith(b"/tmp/ftrace-regs-bench."):
                raise TargetUnsupported(f"{self.target.name}: cannot create a temporary directory: "
                                        f"{holder.stderr_text().strip()}")
            self.workdir = line.decode().strip()
            self._ship_and_start(prefix, python)
            holder.send(b"keep\n")  # the agent runs: the directory is its own now
        finally:
            holder.close_stdin()
            holder.wait(timeout=15)
        return self

    def _ship_and_start(self, prefix, python):
        # One archive and one process, not a write per file: each file costs
        # several SFTP round trips (a far host's network latency, a context
        # switch in an emulated guest), and there are three dozen of them.
        tar = payload_tar(self.target.python_version())
        self.target.write_file(self.workdir + "/" + PAYLOAD_NAME, tar, mode=0o600)
        argv = prefix + [python, "-c", _UNPACK_AND_START, self.workdir,
                         "--workdir", self.workdir, "--lease", str(self.lease)]
        if self.lock:
            argv += ["--lock-holder", lock_holder()]
        self.proc = self.target.start(argv)
        threading.Thread(target=self._reader, daemon=True).start()
        if os.environ.get(STDERR_COPY_ENV):
            threading.Thread(target=self._copy_stderr, args=(os.environ[STDERR_COPY_ENV],),
                             daemon=True).start()
        ready = self.ready = self._wait_event("ready", timeout=60)
        if ready is None:
            err = self.proc.stderr_text().strip().splitlines()
            if any("a password is required" in l or "sudo" in l for l in err):
                raise NoRoot(f"{self.target.name}: sudo refused to start the agent: {err[-1]}")
            raise AgentError(f"{self.target.name}: the agent did not start"
                             + (f": {err[-1]}" if err else ""))
        threading.Thread(target=self._pinger, daemon=True).start()

    def _copy_stderr(self, path):
        """Append the agent's stderr to `path` as it comes (twice a second), so
        that a run that fails, or a controller killed mid-run, leaves the
        agent's last words behind.  The test suite sets it; nothing secret
        passes through the agent's stderr."""
        done = 0
        header = f"== {time.strftime('%H:%M:%S')} agent on {self.target.name} in {self.workdir}\n"
        while True:
            finished = self._closed or self._eof
            text = self.proc.stderr_text()
            if len(text) > done or header:
                try:
                    with open(path, "a") as f:
                        f.write(header + text[done:])
                except OSError:
                    return
                done, header = len(text), ""
            if finished:
                return
            time.sleep(0.5)

    def _reader(self):
        while True:
            try:
                line = self.proc.readline(timeout=1.0)
            except RemoteError as e:
                # The connection is gone: waiters must hear it, not wait out
                # their timeouts (an hour for a measurement).
                self._lost = e
                line = b""
            if line is None:
                if self._closed:
                    return
                continue
            if line == b"":
                with self._cond:
                    self._eof = True
                    self._cond.notify_all()
                return
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "event" in msg:
                if msg["event"] == "fatal":
                    with self._cond:
                        self._responses["fatal"] = msg
                        self._cond.notify_all()
                self.on_event(msg)
                with self._cond:
                    self._responses.setdefault("event:" + msg["event"], msg)
                    self._cond.notify_all()
            else:
                with self._cond:
                    self._responses[msg.get("id")] = msg
                    self._cond.notify_all()

    def _wait_event(self, name, timeout):
        deadline = time.monotonic() + timeout
        with self._cond:
            while "event:" + name not in self._responses:
                if "fatal" in self._responses:
                    fatal = self._responses["fatal"]
                    if fatal.get("kind") == "no-root":
                        raise NoRoot(f"{self.target.name}: {fatal.get('error')}")
                    raise AgentError(f"{self.target.name}: {fatal.get('error')}",
                                     kind=fatal.get("kind"))
                if self._eof or time.monotonic() > deadline:
                    return None
                self._cond.wait(0.5)
            return self._responses.pop("event:" + name)

    def _pinger(self):
        # Renew the lease well before it lapses; the agent answers pings from
        # its reader thread even while a measurement runs.  During a quiet
        # cell (request(..., budget_s=...)) it sends nothing: the agent holds
        # the lease for the cell's budget; it pings again a full interval
        # after the cell's answer, or at once when the cell outlives the
        # controller's own quiet window.
        with self._ping_cond:
            self._ping_due = time.monotonic() + self._ping_interval
            while not self._closed and not self._eof:
                wait = ping_wait(time.monotonic(), self._ping_due, self._quiet_until)
                if wait > 0:
                    self._ping_cond.wait(wait)
                    continue
                try:
                    self._send({"id": "ping", "op": "ping"})
                except Exception:
                    return
                self._ping_due = time.monotonic() + self._ping_interval

    def _send(self, obj):
        with self._send_lock:
            self.proc.send((json.dumps(obj) + "\n").encode())

    # -- requests -------------------------------------------------------------
    def request(self, op, timeout=300.0, budget_s=None, quiet_s=None, **kw):
        """Send one request and wait for its answer.

        budget_s (a measuring op): the most the cell should take on the
        target's clock; the agent holds its lease that long, and nothing is
        sent to it until the answer, or for at most quiet_s seconds of ours
        (then pings and SSH keepalives resume: a cell that overruns must not
        hide a dead network for good)."""
        if budget_s is None:
            return self._request(op, timeout, kw)
        kw["budget_s"] = round(float(budget_s), 1)
        quiet_s = float(quiet_s if quiet_s is not None else budget_s)
        with self._ping_cond:
            self._quiet_until = time.monotonic() + quiet_s
        try:
            with self.target.quiet(quiet_s):
                return self._request(op, timeout, kw)
        finally:
            with self._ping_cond:
                self._quiet_until = None
                # The answer came (or the request failed): a full interval
                # before the next ping, so none lands in the next cell's start.
                self._ping_due = time.monotonic() + self._ping_interval
                self._ping_cond.notify_all()

    def _request(self, op, timeout, kw):
        rid = next(self._ids)
        self._send(dict(kw, id=rid, op=op))
        deadline = time.monotonic() + timeout
        with self._cond:
            while rid not in self._responses:
                if self._eof:
                    if self._lost is not None:
                        raise ConnectionLost(f"{self._lost.message} during {op!r}",
                                             hint=self._lost.hint)
                    err = self.proc.stderr_text().strip().splitlines()
                    raise ConnectionLost(f"{self.target.name}: the agent went away during {op!r}"
                                         + (f": {err[-1]}" if err else ""))
                if time.monotonic() > deadline:
                    raise AgentError(f"{self.target.name}: the agent did not answer {op!r} "
                                     f"within {timeout:.0f} s")
                self._cond.wait(0.5)
            msg = self._responses.pop(rid)
        if not msg.get("ok"):
            raise AgentError(f"{self.target.name}: {msg.get('error')}", kind=msg.get("kind"))
        return msg.get("result")

    # -- files, through the agent (remote/protocol/transfer.py) --------------
    def fetch(self, path, timeout=120.0):
        """The bytes of a file in the agent's directory (absolute, or
        relative to it), read by the agent: root's files, whoever we log in as."""
        chunks, offset, size = [], 0, None
        while size is None or offset < size:
            got = self.request("file_read", path=path, offset=offset, timeout=timeout)
            data = base64.b64decode(got["data"])
            if size is None:
                size = got["size"]
            elif got["size"] != size:
                raise AgentError(f"{self.target.name}: {path} changed size while being fetched "
                                 f"({size} -> {got['size']} bytes)")
            if not data and offset < size:
                raise AgentError(f"{self.target.name}: {path} ended at {offset} of {size} bytes")
            chunks.append(data)
            offset += len(data)
        if offset != size:
            raise AgentError(f"{self.target.name}: fetched {offset} bytes of {path}, "
                             f"which has {size}")
        return b"".join(chunks)

    def upload(self, rel, data, timeout=120.0):
        """Write `data` as `rel` (relative to the agent's directory; its
        directory must exist there), by the agent: mode 0600, root's."""
        if len(data) > transfer.MAX_FILE_BYTES:
            raise AgentError(f"{self.target.name}: {rel} is {len(data)} bytes, over the "
                             f"{transfer.MAX_FILE_BYTES}-byte limit of a transfer")
        offset = 0
        while True:  # at least one chunk: an empty file is still created
            chunk = data[offset:offset + transfer.CHUNK_BYTES]
            got = self.request("file_write", path=rel, offset=offset,
                               data=base64.b64encode(chunk).decode("ascii"), timeout=timeout)
            offset += len(chunk)
            if got.get("size") != offset:
                raise AgentError(f"{self.target.name}: {rel} has {got.get('size')} bytes on the "
                                 f"target after {offset} were sent")
            if offset >= len(data):
                return offset

    def close(self, timeout=120.0, abort=False):
        """Ask the agent to restore and leave; returns restore problems (list).
        abort=True first stops a measurement that is still running."""
        if self.proc is None or self._closed:
            return []
        problems = []
        try:
            if abort and not self._eof:
                self._send({"id": "abort", "op": "abort"})
            if not self._eof:
                problems = self.request("bye", timeout=timeout).get("problems", [])
        finally:
            self._closed = True
            self.proc.close_stdin()
            if self.proc.wait(timeout=15) is None:
                self.proc.kill()
        return problems

    def abandon(self):
        """Drop the connection without 'bye': the agent restores on EOF."""
        self._closed = True
        if self.proc is not None:
            self.proc.close_stdin()
            self.proc.wait(timeout=30)
