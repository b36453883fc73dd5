"""SSH targets over paramiko.

Three steps, each usable alone:

    resolve(alias)  -> ConnectSpec     what ~/.ssh/config says about a host
    connect(spec)   -> SSHClient       TCP / ProxyCommand / ProxyJump, host key, auth
    SSHTarget(name, client, spec)      the Target interface over that client

paramiko only parses ssh_config: everything OpenSSH would do with the values
(ProxyJump, known_hosts, timeouts) is done here.  Host keys are never accepted
silently; an unknown key is accepted only when the user passed
--accept-new-host-key, a changed key never.
"""
import contextlib
import dataclasses
import getpass
import math
import os
import queue
import re
import select
import shlex
import socket
import subprocess
import threading
import time

import paramiko

from .errors import (AuthFailed, CommandTimeout, ConnectFailed, ConnectionLost, HostKeyMismatch,
                     HostKeyUnknown, HostNotFound, RemoteError)
from .target import Completed, Process, Target

DEFAULT_CONFIG = "~/.ssh/config"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
DEFAULT_CONNECT_TIMEOUT = 10.0
KEEPALIVE_INTERVAL = 15
# Watchdog defaults where the config sets no ServerAliveInterval/CountMax
# (OpenSSH's own default is no watchdog at all).
DEFAULT_ALIVE_INTERVAL = 15.0
DEFAULT_ALIVE_COUNT = 3
# run(): seconds between the remote TERM and KILL (timeout -k), and how much
# longer the client waits before giving up on the channel itself.
KILL_GRACE = 5
CLIENT_GRACE = 5
_CHUNK = 65536


@dataclasses.dataclass
class ConnectSpec:
    alias: str
    hostname: str
    port: int = 22
    user: str = dataclasses.field(default_factory=getpass.getuser)
    identity_files: list = dataclasses.field(default_factory=list)
    proxy_command: "str | None" = None
    proxy_jump: list = dataclasses.field(default_factory=list)  # of ConnectSpec, outermost first
    known_hosts_files: list = dataclasses.field(
        default_factory=lambda: [os.path.expanduser(DEFAULT_KNOWN_HOSTS)])
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    alive_interval: float = DEFAULT_ALIVE_INTERVAL  # ServerAliveInterval; 0: no watchdog
    alive_count: int = DEFAULT_ALIVE_COUNT  # ServerAliveCountMax

    @property
    def host_key_name(self):
        """The name known_hosts files use for this host (OpenSSH's rule)."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"

    def where(self):
        """'alias (host:port via ...)' for messages."""
        via = ""
        if self.proxy_jump:
            via = " via " + " -> ".join(j.alias for j in self.proxy_jump)
        elif self.proxy_command:
            via = " via ProxyCommand"
        return f"{self.alias} ({self.hostname}:{self.port}{via})"


# -- resolve ------------------------------------------------------------------

def _config_path(config_path):
    return config_path or os.environ.get("BENCH_SSH_CONFIG") or DEFAULT_CONFIG


def _shown(path):
    home = os.path.expanduser("~")
    return "~" + path[len(home):] if path.startswith(home + os.sep) else path


def _load_config(path, explicit):
    full = os.path.expanduser(path)
    if not os.path.exists(full):
        if explicit:
            raise HostNotFound(f"ssh config {path} does not exist",
                               hint="fix the path given by --ssh-config or BENCH_SSH_CONFIG")
        return paramiko.SSHConfig(), ""
    with open(full) as f:
        text = f.read()
    try:
        return paramiko.SSHConfig.from_text(text), text
    except paramiko.ConfigParseError as e:
        raise HostNotFound(f"cannot parse {_shown(full)}: {e}") from None


def _explicitly_configured(config, name):
    """True when a Host block other than a bare `Host *` applies to name."""
    # SSHConfig has no public view of its blocks: get_hostnames() merges them
    # (losing per-block negation) and raises KeyError on Match blocks.
    for block in config._config:
        patterns = block.get("host", [])
        if any(p.startswith("!") and re.fullmatch(_glob(p[1:]), name) for p in patterns):
            continue
        if any(p != "*" and not p.startswith("!") and re.fullmatch(_glob(p), name)
               for p in patterns):
            return True
    return False


def _glob(pattern):
    # ssh_config patterns know only '*' and '?' (no [ranges], unlike fnmatch).
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


def _split_destination(text):
    """'[ssh://][user@]host[:port]' -> (user|None, host, port|None); IPv6 in brackets."""
    text = text.removeprefix("ssh://")
    user, at, host = text.rpartition("@")
    port = None
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", host)
    if m:
        host, port = m.group(1), m.group(2)
    elif host.count(":") == 1:
        host, port = host.split(":")
    return (user if at else None), host, (int(port) if port else None)


def _unknown_host(name, host, path, text, valid=()):
    hint = f"add a 'Host {host}' entry (HostName, User, IdentityFile) to {path}"
    if re.search(r"^\s*include\b", text, re.I | re.M):
        hint += "; entries in Include'd files are not seen (paramiko does not follow Include)"
    if valid:
        hint = "valid names: " + ", ".join(valid) + "; " + hint
    return HostNotFound(
        f"unknown host {name!r}: not 'lab', not 'local' and no Host entry in {path}", hint=hint)


def unknown_host(name, config_path=None, *, valid):
    """The error for a --host name no host kind claims (remote/hosts): the
    valid names, and how to make this one an alias."""
    path = _config_path(config_path)
    _, text = _load_config(path, explicit=path != DEFAULT_CONFIG)
    return _unknown_host(name, name, path, text, valid)


def aliases(config_path=None):
    """The host names the ssh config spells out, in its order: its Host
    patterns without wildcards or negation."""
    path = _config_path(config_path)
    config, _ = _load_config(path, explicit=path != DEFAULT_CONFIG)
    names = {}
    for block in config._config:  # (see _explicitly_configured)
        names.update((p, None) for p in block.get("host", []) if not any(c in p for c in "*?!"))
    return list(names)


def configured(name, config_path=None):
    """True when resolve(name) finds a Host entry of its own (a pattern such
    as 'Host board-*' counts)."""
    path = _config_path(config_path)
    config, _ = _load_config(path, explicit=path != DEFAULT_CONFIG)
    return bool(name) and not any(c.isspace() for c in name) and _explicitly_configured(config, name)


def resolve(alias, config_path=None, *, allow_plain=False) -> ConnectSpec:
    """Resolve a host name through the ssh config (``config_path``, else
    $BENCH_SSH_CONFIG, else ~/.ssh/config).

    The name must match a Host pattern of its own; ``allow_plain`` also
    accepts ``[user@]hostname[:port]`` that only ``Host *`` (or nothing) covers.
    """
    path = _config_path(config_path)
    config, text = _load_config(path, explicit=path != DEFAULT_CONFIG)
    return _resolve(alias, config, text, path, allow_plain, chain=())


def _resolve(name, config, text, path, allow_plain, chain):
    if name in chain:
        raise HostNotFound(f"ProxyJump loop in {path}: {' -> '.join(chain + (name,))}")
    user, host, port = _split_destination(name) if allow_plain else (None, name, None)
    if not host or any(c.isspace() for c in host) or not (
            allow_plain or _explicitly_configured(config, host)):
        raise _unknown_host(name, host, path, text)

    # lookup() already expands ~, %h, %p and %r in ProxyCommand and IdentityFile.
    opts = config.lookup(host)
    spec = ConnectSpec(
        alias=name,
        hostname=opts["hostname"],
        port=port or int(opts.get("port", 22)),
        user=user or opts.get("user") or getpass.getuser(),
        identity_files=[os.path.expanduser(p) for p in opts.get("identityfile", [])],
        connect_timeout=float(opts.get("connecttimeout", DEFAULT_CONNECT_TIMEOUT)),
        alive_interval=float(opts.get("serveraliveinterval", DEFAULT_ALIVE_INTERVAL)),
        alive_count=int(opts.get("serveralivecountmax", DEFAULT_ALIVE_COUNT)),
    )
    known = opts.get("userknownhostsfile", DEFAULT_KNOWN_HOSTS).split()
    spec.known_hosts_files = [os.path.expanduser(p) for p in known if p.lower() != "none"]

    jump = opts.get("proxyjump")
    command = opts.get("proxycommand")
    if jump and jump.lower() == "none":
        jump = None
    # As in OpenSSH, whichever of the two comes first in the config wins.
    if jump and command:
        keys = list(opts)
        if keys.index("proxyjump") < keys.index("proxycommand"):
            command = None
        else:
            jump = None
    spec.proxy_command = command
    if jump:
        spec.proxy_jump = [_resolve(j.strip(), config, text, path, True, chain + (name,))
                           for j in jump.split(",")]
    return spec


# -- connect ------------------------------------------------------------------

class _Client(paramiko.SSHClient):
    """An SSHClient that also owns the jump-host clients its socket runs through."""

    def __init__(self, jumps):
        super().__init__()
        self.jumps = jumps

    def close(self):
        super().close()
        for j in reversed(self.jumps):
            j.close()


def _fingerprint(key):
    return f"{key.get_name()} {key.fingerprint}"


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Refuse unknown host keys, or (when asked) trust one and record it."""

    def __init__(self, spec, accept_new):
        self.spec = spec
        self.accept_new = accept_new

    def missing_host_key(self, client, hostname, key):
        if not self.accept_new:
            raise HostKeyUnknown(
                f"{self.spec.alias} ({hostname}) offers an unknown host key {_fingerprint(key)}",
                hint="check the fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_*.pub), "
                     "then pass --accept-new-host-key to trust it once")
        client.get_host_keys().add(hostname, key.get_name(), key)
        if self.spec.known_hosts_files:  # else `UserKnownHostsFile none`: trust for now only
            _append_known_host(self.spec.known_hosts_files[0], hostname, key)


def _append_known_host(path, hostname, key):
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        # Keep a file whose last line lacks its newline parseable.
        if size:
            f.seek(size - 1)
            lead = b"" if f.read(1) == b"\n" else b"\n"
        else:
            lead = b""
        f.write(lead + f"{hostname} {key.get_name()} {key.get_base64()}\n".encode())


def _reason(e, timeout, transport=None):
    """One line for why a connection attempt failed."""
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.gaierror):
        return f"cannot resolve the host name ({e.strerror})"
    if isinstance(e, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(e, paramiko.ChannelException):
        return f"the jump host could not open the connection ({e.text})"
    # paramiko wraps these in SSHException, keeping the original as __context__.
    if isinstance(e, EOFError) or isinstance(e.__context__, EOFError):
        return "the server closed the connection during the SSH handshake"
    # The banner and key-exchange timeouts race; either way paramiko's own
    # message ("No existing session") does not say what was missing.
    if transport is not None and not transport.remote_version:
        return f"no SSH banner within {timeout:g} s"
    if transport is not None and transport.is_active() and not transport.initial_kex_done:
        return f"SSH key exchange did not finish within {timeout:g} s"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror.lower()
    return str(e) or type(e).__name__


def _connect_failed(spec, e, timeout, transport=None):
    return ConnectFailed(f"cannot connect to {spec.where()}: {_reason(e, timeout, transport)}")


class _ProxyCommand(paramiko.ProxyCommand):
    """paramiko's ProxyCommand, run through the shell as OpenSSH does, and
    ending at EOF: paramiko's recv() spins until its timeout once the command
    has exited."""

    def __init__(self, command):
        super().__init__(shlex.join(["/bin/sh", "-c", "exec " + command]))

    def recv(self, size):
        ready, _, _ = select.select([self.process.stdout], [], [], self.timeout)
        if not ready:
            raise socket.timeout()
        return os.read(self.process.stdout.fileno(), size)  # b"" at EOF, as a socket's

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def exit_reason(self):
        """'ProxyCommand exited with status N: <last stderr line>', None while it runs."""
        try:
            status = self.process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            return None
        # Non-blocking: a child of the command may still hold stderr open.
        os.set_blocking(self.process.stderr.fileno(), False)
        try:
            lines = os.read(self.process.stderr.fileno(), 65536).decode("utf-8", "replace")
        except BlockingIOError:
            lines = ""
        last = lines.strip().splitlines()[-1:]
        return f"ProxyCommand exited with status {status}" + "".join(f": {x}" for x in last)


def _tunnel(via, spec, timeout):
    """A direct-tcpip channel from the jump client `via` to spec's host:port."""
    try:
        return via.get_transport().open_channel(
            "direct-tcpip", (spec.hostname, spec.port), ("127.0.0.1", 0), timeout=timeout)
    except (paramiko.SSHException, EOFError, OSError) as e:
        raise _connect_failed(spec, e, timeout) from None


def _open_socket(spec, accept_new_host_key, timeout):
    """(socket-like object to spec's sshd, jump clients it depends on)."""
    if spec.proxy_jump:
        # `ProxyJump a,b`: a is reached by its own config, b through a, the target through b.
        hops = [connect(spec.proxy_jump[0], accept_new_host_key=accept_new_host_key,
                        timeout=timeout)]
        try:
            for jump in spec.proxy_jump[1:]:
                hops.append(_handshake(jump, _tunnel(hops[-1], jump, timeout), [],
                                       accept_new_host_key, timeout))
            return _tunnel(hops[-1], spec, timeout), hops
        except BaseException:
            for h in reversed(hops):
                h.close()
            raise
    if spec.proxy_command:
        return _ProxyCommand(spec.proxy_command), []
    try:
        return socket.create_connection((spec.hostname, spec.port), timeout=timeout), []
    except OSError as e:
        raise _connect_failed(spec, e, timeout) from None


def _holding(spec):
    """The known_hosts file that has a key for spec's host."""
    for path in spec.known_hosts_files + [SYSTEM_KNOWN_HOSTS]:
        if os.access(path, os.R_OK) and paramiko.HostKeys(path).lookup(spec.host_key_name):
            return path
    return (spec.known_hosts_files or [SYSTEM_KNOWN_HOSTS])[0]


def _handshake(spec, sock, jumps, accept_new_host_key, timeout):
    client = _Client(jumps)
    try:
        # User files first: the first key found for a host is the one checked.
        for path in spec.known_hosts_files + [SYSTEM_KNOWN_HOSTS]:
            if os.access(path, os.R_OK):
                client.load_host_keys(path)
        client.set_missing_host_key_policy(_HostKeyPolicy(spec, accept_new_host_key))
        # OpenSSH skips IdentityFile entries that do not exist; paramiko would raise.
        keys = [p for p in spec.identity_files if os.path.exists(p)]
        try:
            client.connect(spec.hostname, spec.port, username=spec.user, sock=sock,
                           key_filename=keys or None, look_for_keys=not spec.identity_files,
                           allow_agent=True, timeout=timeout, banner_timeout=timeout,
                           auth_timeout=timeout, channel_timeout=timeout)
        except paramiko.BadHostKeyException as e:
            raise HostKeyMismatch(
                f"host key of {spec.where()} has changed: known_hosts has "
                f"{_fingerprint(e.expected_key)}, the server offers {_fingerprint(e.key)}",
                hint="find out why (reinstalled host? someone in the middle?); once the new key "
                     "is verified, remove the old one: ssh-keygen -R "
                     f"'{spec.host_key_name}' -f {_holding(spec)}") from None
        except paramiko.AuthenticationException as e:
            raise _auth_failed(spec, e) from None
        except (paramiko.SSHException, EOFError, OSError) as e:
            transport = client.get_transport()
            if transport is not None and transport.is_active() and transport.initial_kex_done:
                # Past the key exchange, paramiko's "No authentication methods available".
                raise _auth_failed(spec, e) from None
            if isinstance(sock, _ProxyCommand) and (reason := sock.exit_reason()):
                raise ConnectFailed(f"cannot connect to {spec.where()}: {reason}") from None
            raise _connect_failed(spec, e, timeout, transport) from None
        client.get_transport().set_keepalive(KEEPALIVE_INTERVAL)
        return client
    except BaseException:
        client.close()
        raise


def _auth_failed(spec, e):
    missing = [p for p in spec.identity_files if not os.path.exists(p)]
    hint = f"check IdentityFile / ssh-agent and {spec.user}'s authorized_keys on the host"
    if missing:
        hint = f"IdentityFile {', '.join(missing)} not found; " + hint
    return AuthFailed(f"{spec.user}@{spec.where()}: authentication failed ({e})", hint=hint)


def connect(spec, *, accept_new_host_key=False, timeout=None) -> paramiko.SSHClient:
    """An authenticated client for spec; closing it closes its jump hosts too.

    ``timeout`` (default: the spec's ConnectTimeout) bounds each stage: TCP,
    banner, key exchange, authentication, each jump channel.
    """
    timeout = spec.connect_timeout if timeout is None else timeout
    sock, jumps = _open_socket(spec, accept_new_host_key, timeout)
    return _handshake(spec, sock, jumps, accept_new_host_key, timeout)


# -- the target ---------------------------------------------------------------

# start() runs argv through this so that kill() knows the remote pid: sshd
# refuses "signal" channel requests in root sessions (no privilege separation
# there), and closing the channel alone leaves a busy process running.
_REPORT_PID = 'echo "bench-pid $$" >&2; exec "$@"'


class _ChannelProcess(Process):
    def __init__(self, target, chan):
        self._target = target
        self.chan = chan
        self._lines = queue.Queue()
        self._err = []
        self._pid = None
        self._pid_known = threading.Event()
        threading.Thread(target=self._pump_out, daemon=True).start()
        self._err_pump = threading.Thread(target=self._pump_err, daemon=True)
        self._err_pump.start()

    def _pump_out(self):
        for line in self.chan.makefile("rb"):
            self._lines.put(line)
        self._lines.put(b"")

    def _pump_err(self):
        lines = iter(self.chan.makefile_stderr("rb"))
        first = next(lines, b"")
        if first.startswith(b"bench-pid "):
            self._pid = int(first.split()[1])
        else:
            self._err.append(first.decode("utf-8", "replace"))
        self._pid_known.set()
        for line in lines:
            self._err.append(line.decode("utf-8", "replace"))

    def _check_alive(self):
        # A channel closed without an exit status, on a dead transport: the
        # process may still run, but we have lost it.
        if not self.chan.exit_status_ready() or self.chan.recv_exit_status() == -1:
            self._target.check_connection()

    def send(self, data):
        try:
            self.chan.sendall(data)
        except OSError:
            self._target.check_connection()
            raise BrokenPipeError(f"{self._target.name}: the process no longer reads its stdin")

    def readline(self, timeout):
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self._target.check_connection()
            return None
        if line == b"":
            self._lines.put(b"")  # stay at EOF
            self._check_alive()
        return line

    def stderr_text(self):
        # Once the process has exited, what it wrote is all there: give the
        # stderr thread a moment to finish reading (on a busy controller it
        # lags behind the exit status).
        if self.chan.exit_status_ready():
            self._err_pump.join(5)
        return "".join(self._err)

    def close_stdin(self):
        try:
            self.chan.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException):
            pass

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.chan.exit_status_ready():
            if time.monotonic() >= deadline:
                return None
            self._target.check_connection()
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        self._check_alive()
        return self.chan.recv_exit_status()

    def kill(self):
        """SIGKILL the process (not its children, as Popen.kill), then close the channel."""
        if self._pid_known.wait(5) and self._pid and not self.chan.exit_status_ready():
            try:
                self._target.run(["kill", "-KILL", str(self._pid)], timeout=10)
            except RemoteError:
                pass  # connection gone: the process sees EOF on stdin, all we can do
        self.chan.close()


class SSHTarget(Target):
    """A machine reached over SSH; one paramiko client for everything.

    A watchdog asks the server for a reply every ``spec.alive_interval``
    seconds and drops the connection after ``spec.alive_count`` intervals of
    silence, as OpenSSH's ServerAliveInterval/CountMax do: TCP keepalives
    alone do not notice a hung peer, and run()/readline() would wait forever.

    Inside ``quiet(seconds)`` (a cell is measured) neither the watchdog nor
    paramiko's transport keepalive sends anything: each would wake sshd on
    the target, on the measured CPU of a single-CPU guest.  A dead network is
    then noticed after the cell: the watchdog asks at once when the window
    ends, and gives up after the usual alive_interval x alive_count.
    """

    kind = "ssh"

    def __init__(self, name, client, spec):
        super().__init__(name)
        self.client = client
        self.spec = spec
        self._sftp = None
        self._lost = None
        self._closing = threading.Event()
        self._quiet = threading.Condition()
        self._quiet_until = None  # time.monotonic() until which nothing is sent
        if spec.alive_interval > 0:
            threading.Thread(target=self._watchdog, daemon=True).start()

    # -- connection health ----------------------------------------------------
    def _quiet_left(self):
        until = self._quiet_until
        return 0.0 if until is None else max(0.0, until - time.monotonic())

    @contextlib.contextmanager
    def quiet(self, seconds):
        transport = self.client.get_transport()
        with self._quiet:
            self._quiet_until = time.monotonic() + seconds
        if transport is not None:
            transport.set_keepalive(0)  # 0: paramiko sends no keepalive@lag.net
        try:
            yield
        finally:
            with self._quiet:
                self._quiet_until = None
                self._quiet.notify_all()
            if transport is not None and transport.is_active():
                transport.set_keepalive(KEEPALIVE_INTERVAL)

    def _watchdog(self):
        transport = self.client.get_transport()
        interval, count = self.spec.alive_interval, self.spec.alive_count
        while not self._closing.wait(interval):
            # A quiet window (a cell): wait it out.  Closed by the cell's
            # answer, the connection works: back to the usual schedule.
            # Expired with no answer: ask at once.
            waited = False
            with self._quiet:
                while (left := self._quiet_left()) > 0 and not self._closing.is_set():
                    waited = True
                    self._quiet.wait(left)
                answered_in_window = waited and self._quiet_until is None
            if self._closing.is_set():
                return
            if answered_in_window:
                continue
            if not transport.is_active():
                return
            answered = threading.Event()

            def ping():
                # OpenSSH answers unknown global requests with a failure: any answer will do.
                try:
                    transport.global_request("keepalive@openssh.com", wait=True)
                except (paramiko.SSHException, EOFError, OSError):
                    pass  # the transport died: the next round sees it
                finally:
                    answered.set()

            threading.Thread(target=ping, daemon=True).start()
            if not answered.wait(interval * count) and not self._closing.is_set():
                self._lost = f"no answer from the server for {interval * count:g} s"
                transport.close()
                return

    def check_connection(self):
        """Raise ConnectionLost when the SSH transport is gone."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            reason = self._lost or "closed by the peer or the network"
            raise ConnectionLost(f"{self.name}: SSH connection lost ({reason})",
                                 hint="check that the target is up, then run again")

    def _open(self, command):
        self.check_connection()
        try:
            chan = self.client.get_transport().open_session(timeout=self.spec.connect_timeout)
            chan.exec_command(command)
        except paramiko.ChannelException as e:
            self.check_connection()
            raise RemoteError(
                f"{self.name}: cannot start a command: the server refused a session channel "
                f"({e.text or 'code %d' % e.code}); check the server's MaxSessions and whether "
                "other sessions hold them all") from None
        except (paramiko.SSHException, EOFError, OSError) as e:
            self.check_connection()
            raise RemoteError(f"{self.name}: cannot start a command: {e}") from None
        return chan

    # -- Target -------------------------------------------------------------------
    def run(self, argv, *, timeout=60.0, input=None):
        argv = list(argv)
        command = shlex.join(argv)
        if timeout is not None:
            # The remote side must die with the timeout, not only our wait; `timeout`
            # signals its whole process group.  Integer seconds suit every timeout(1),
            # and 0 would mean "no limit" to it.
            limit = str(max(1, math.ceil(timeout)))
            command = shlex.join(["timeout", "-k", str(KILL_GRACE), limit] + argv)
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout + KILL_GRACE + CLIENT_GRACE
        chan = self._open(command)
        try:
            self._feed(chan, input)
            out, err = self._collect(chan, deadline, argv, timeout)
            rc = chan.recv_exit_status()
        finally:
            chan.close()
        # 124: timeout(1) sent TERM; 137: it had to send KILL.
        if timeout is not None and rc in (124, 137) and time.monotonic() - started >= timeout:
            raise self._timeout(argv, timeout)
        return Completed(argv, rc, out, err)

    def _timeout(self, argv, timeout):
        return CommandTimeout(f"{self.name}: {shlex.join(argv)} did not finish in {timeout:g} s")

    @staticmethod
    def _feed(chan, data):
        """Send stdin from a thread: a process that writes much before reading
        all its input would otherwise block us both."""
        if not data:
            chan.shutdown_write()
            return

        def write():
            try:
                chan.sendall(data)
                chan.shutdown_write()
            except OSError:
                pass  # the process exited without reading everything, as `head` does

        threading.Thread(target=write, daemon=True).start()

    def _collect(self, chan, deadline, argv, timeout):
        """Read stdout and stderr together until EOF and exit status."""
        out, err = bytearray(), bytearray()
        while True:
            # EOF is read before draining: data that precedes it is then in the buffers.
            eof = chan.eof_received or chan.closed
            while chan.recv_ready():
                out += chan.recv(_CHUNK)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(_CHUNK)
            # sshd may send the exit status before the last output, or after EOF.
            if eof and chan.exit_status_ready():
                if chan.recv_exit_status() == -1:
                    # Closed without a status: killed by a signal, or the link died.
                    self.check_connection()
                return bytes(out), bytes(err)
            if deadline is not None and time.monotonic() > deadline:
                raise self._timeout(argv, timeout)
            self.check_connection()
            select.select([chan], [], [], 0.2)

    def start(self, argv):
        command = shlex.join(["sh", "-c", _REPORT_PID, "sh"] + list(argv))
        return _ChannelProcess(self, self._open(command))

    def _sftp_client(self):
        self.check_connection()
        if self._sftp is None:
            self._sftp = self.client.open_sftp()
        return self._sftp

    def write_file(self, path, data, mode=0o600):
        sftp = self._sftp_client()
        with sftp.open(path, "wb") as f:
            # chmod before writing: the data never sits in a file with the umask's mode.
            sftp.chmod(path, mode)
            f.set_pipelined(True)  # do not wait for each 32 KiB write's acknowledgement
            f.write(data)

    def read_file(self, path):
        with self._sftp_client().open(path, "rb") as f:
            f.prefetch()
            return f.read()

    def close(self):
        self._closing.set()
        with self._quiet:
            self._quiet.notify_all()
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        self.client.close()

    def describe(self):
        via = "proxy-jump" if self.spec.proxy_jump else (
            "proxy-command" if self.spec.proxy_command else "direct")
        return {"kind": self.kind, "name": self.name, "hostname": self.spec.hostname,
                "port": self.spec.port, "user": self.spec.user, "via": via}


def open_ssh_target(name, *, config_path=None, accept_new_host_key=False, timeout=None,
                    allow_plain=False) -> SSHTarget:
    """resolve() + connect() + SSHTarget, the usual way in."""
    spec = resolve(name, config_path, allow_plain=allow_plain)
    client = connect(spec, accept_new_host_key=accept_new_host_key, timeout=timeout)
    return SSHTarget(name, client, spec)
