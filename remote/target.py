"""Targets: the machine a run measures.

A target runs argv lists (never shell strings built from user input), ships
files, and starts the long-lived agent process.  ``LocalTarget`` runs on this
machine; ``remote.ssh.SSHTarget`` runs over paramiko; the lab is an SSH target
whose connection details come from the lab's state file.  Which --host name
opens which target: remote/hosts/.

Side effects are kept apart from their description: callers build argv lists,
targets run them.
"""
import abc
import contextlib
import dataclasses
import os
import queue
import shlex
import subprocess
import threading

from .errors import CommandTimeout, NoRoot, TargetUnsupported


@dataclasses.dataclass
class Completed:
    argv: list
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self):
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self):
        return self.stderr.decode("utf-8", "replace")


class Process(abc.ABC):
    """A started process with line-oriented stdout (the agent protocol)."""

    @abc.abstractmethod
    def send(self, data: bytes) -> None: ...

    @abc.abstractmethod
    def readline(self, timeout: float):
        """Return one line (bytes, with newline), b'' at EOF, None on timeout."""

    @abc.abstractmethod
    def stderr_text(self) -> str: ...

    @abc.abstractmethod
    def close_stdin(self) -> None: ...

    @abc.abstractmethod
    def wait(self, timeout: float):
        """Exit status, or None if still running after timeout."""

    @abc.abstractmethod
    def kill(self) -> None: ...


class Target(abc.ABC):
    """A machine to measure.  ``name`` is what the user typed (--host)."""

    kind = "abstract"

    def __init__(self, name):
        self.name = name
        self._root_prefix = None
        self._python_found = None  # (path, (major, minor)) of the target's python3, once asked

    # -- to implement -------------------------------------------------------
    @abc.abstractmethod
    def run(self, argv, *, timeout=60.0, input=None) -> Completed:
        """Run argv (a list of str) without a shell; capture both streams."""

    @abc.abstractmethod
    def start(self, argv) -> Process:
        """Start a long-lived process (the agent) with stdin/stdout pipes."""

    @abc.abstractmethod
    def write_file(self, path, data: bytes, mode=0o600) -> None: ...

    @abc.abstractmethod
    def read_file(self, path) -> bytes: ...

    def close(self):
        pass

    @contextlib.contextmanager
    def quiet(self, seconds):
        """Send nothing of our own accord (keepalives) for up to `seconds`
        while the body runs: a cell is being measured.  Nothing to silence
        here; SSHTarget overrides it."""
        yield

    def describe(self) -> dict:
        """Facts about how we reach the target (no secrets)."""
        return {"kind": self.kind, "name": self.name}

    # -- shared -------------------------------------------------------------
    def root_prefix(self):
        """[] when the login user is root, ['sudo', '-n', '--'] when sudo works
        without a password, else NoRoot."""
        if self._root_prefix is not None:
            return self._root_prefix
        r = self.run(["id", "-u"], timeout=30)
        if r.returncode == 0 and r.text.strip() == "0":
            self._root_prefix = []
            return []
        r = self.run(["sudo", "-n", "true"], timeout=30)
        if r.returncode == 0:
            self._root_prefix = ["sudo", "-n", "--"]
            return self._root_prefix
        user = self.run(["id", "-un"], timeout=30).text.strip() or "?"
        raise NoRoot(
            f"{self.name}: user {user!r} is not root and 'sudo -n' is refused",
            hint="log in as root or allow passwordless sudo for this user",
        )

    def python(self):
        """Path of a python3 >= 3.9 on the target."""
        return self._python()[0]

    def python_version(self):
        """(major, minor) of that python3 (for the pyperf shipped to it)."""
        return self._python()[1]

    def _python(self):
        if self._python_found is not None:
            return self._python_found
        r = self.run(["python3", "-c",
                      "import sys; print(sys.executable); print('%d.%d' % sys.version_info[:2])"],
                     timeout=60)
        if r.returncode != 0:
            raise TargetUnsupported(f"{self.name}: no python3 found",
                                    hint="install python3 (>= 3.9) on the target")
        exe, ver = r.text.split()[:2]
        major, minor = (int(x) for x in ver.split("."))
        if (major, minor) < (3, 9):
            raise TargetUnsupported(f"{self.name}: python3 is {ver}, the agent needs >= 3.9",
                                    hint="install a newer python3 on the target")
        self._python_found = (exe, (major, minor))
        return self._python_found

    def mkdtemp(self):
        """A private (0700) temporary directory on the target."""
        r = self.run(["mktemp", "-d", "/tmp/ftrace-regs-bench.XXXXXXXX"], timeout=30)
        if r.returncode != 0:
            raise TargetUnsupported(f"{self.name}: cannot create a temporary directory: {r.err.strip()}")
        path = r.text.strip()
        self.run(["chmod", "0700", path], timeout=30)
        return path


class _PopenProcess(Process):
    def __init__(self, popen):
        self.p = popen
        self._lines = queue.Queue()
        self._err = []
        threading.Thread(target=self._pump_out, daemon=True).start()
        self._err_pump = threading.Thread(target=self._pump_err, daemon=True)
        self._err_pump.start()

    def _pump_out(self):
        for line in iter(self.p.stdout.readline, b""):
            self._lines.put(line)
        self._lines.put(b"")

    def _pump_err(self):
        for line in iter(self.p.stderr.readline, b""):
            self._err.append(line.decode("utf-8", "replace"))

    def send(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def readline(self, timeout):
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line == b"":
            self._lines.put(b"")  # stay at EOF
        return line

    def stderr_text(self):
        if self.p.poll() is not None:  # exited: let the reader catch up (see ssh.py)
            self._err_pump.join(5)
        return "".join(self._err)

    def close_stdin(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass

    def wait(self, timeout):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        try:
            self.p.kill()
        except OSError:
            pass


class LocalTarget(Target):
    """The machine bench runs on (--host local): no SSH."""

    kind = "local"

    def run(self, argv, *, timeout=60.0, input=None):
        try:
            p = subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout)
        except FileNotFoundError as e:
            return Completed(list(argv), 127, b"", str(e).encode())
        except subprocess.TimeoutExpired:
            raise CommandTimeout(f"local: {shlex.join(argv)} did not finish in {timeout:.0f} s")
        return Completed(list(argv), p.returncode, p.stdout, p.stderr)

    def start(self, argv):
        p = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
        return _PopenProcess(p)

    def write_file(self, path, data, mode=0o600):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    def read_file(self, path):
        with open(path, "rb") as f:
            return f.read()
