"""A real OpenSSH server on loopback for the SSH integration tests.

``sshd`` (session scope) starts ``/usr/sbin/sshd -D -e`` on 127.0.0.1 with a
host key and a client key of its own, and writes a client-side ssh config
whose aliases cover every way a connection can go right or wrong:

    bench-root      root, key auth
    bench-noroot    the unprivileged user benchnoroot (no sudo)
    bench-sudo      the user benchsudo, root through passwordless sudo
    bench-jump      root again, through ``ProxyJump bench-root``
    bench-proxycmd  root again, through ``ProxyCommand ssh -W``
    bench-refused   a port where nothing listens
    bench-timeout   a port that accepts and never speaks
    bench-badkey    known_hosts holds another key for the server
    bench-unknown   empty known_hosts
    bench-nosession the same sshd on a second port where MaxSessions is 0:
                    it authenticates, then refuses every command channel

Needs root (sshd must switch users) and creates the system users benchnoroot
and benchsudo once if they are missing; the users are left in place
afterwards.  benchsudo's sudoers entry exists only while the fixture runs.
"""
import dataclasses
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

SSHD_BIN = "/usr/sbin/sshd"
NOROOT_USER = "benchnoroot"
SUDO_USER = "benchsudo"
SUDOERS = f"/etc/sudoers.d/ftrace-regs-bench-{SUDO_USER}"


@dataclasses.dataclass
class SSHServer:
    port: int
    config_path: str
    known_hosts: str
    client_key: str
    host_key_fingerprint: str  # 'SHA256:...', as ssh-keygen -l prints it
    tmpdir: str
    refused_port: int
    silent_port: int
    log_path: str

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


def _missing(reason):
    # On CI the parts are installed by .ci/run: a skip there would hide a failure.
    if os.environ.get("CI"):
        pytest.fail(f"sshd fixture: {reason}")
    pytest.skip(reason)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench-test",
                    "-f", path], check=True)
    with open(path + ".pub") as f:
        return f.read().strip()


def _ensure_noroot_user():
    try:
        pwd.getpwnam(NOROOT_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--shell", "/bin/sh", "--create-home",
                        NOROOT_USER], check=True)
    # The NoRoot test needs a user that really has no way up.
    groups = subprocess.run(["id", "-nG", NOROOT_USER], capture_output=True, text=True,
                            check=True).stdout.split()
    if set(groups) & {"sudo", "wheel", "admin", "root"}:
        pytest.fail(f"user {NOROOT_USER} is in an admin group ({' '.join(groups)}); remove it")
    if shutil.which("sudo"):
        r = subprocess.run(["sudo", "-n", "-l", "-U", NOROOT_USER], capture_output=True, text=True)
        if "may run" in r.stdout:
            pytest.fail(f"user {NOROOT_USER} has sudo rights: {r.stdout.strip()}")


def _ensure_sudo_user():
    try:
        pwd.getpwnam(SUDO_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--shell", "/bin/sh", "--create-home", SUDO_USER],
                       check=True)
    with open(SUDOERS, "w") as f:
        f.write(f"{SUDO_USER} ALL=(root) NOPASSWD: ALL\n")
    os.chmod(SUDOERS, 0o440)


class _SilentServer:
    """Accepts TCP connections and never sends a byte (no SSH banner)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed by stop()
                return
            self.conns.append(conn)

    def stop(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def proc_stat(pid):
    """(command name, parent pid) of a local process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        # '123 (sshd) S 45 ...': the name may hold spaces, hence the parentheses.
        head, _, tail = f.read().rpartition(")")
    return head.partition("(")[2], int(tail.split()[1])


def _children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if proc_stat(int(entry))[1] == pid:
                    kids.append(int(entry))
            except OSError:  # gone meanwhile
                pass
    return kids


def _stop_sshd(proc):
    # Sessions outlive the listener: end those of this sshd first.
    for kid in _children(proc.pid):
        try:
            os.kill(kid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_for_port(port, proc, log_path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log_path, errors="replace") as f:
                raise RuntimeError(f"sshd exited with {proc.returncode}: {f.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def _client_config(d, port, refused_port, silent_port, nosession_port):
    base = {"HostName": "127.0.0.1", "Port": port, "User": "root",
            "IdentityFile": d["client_key"], "IdentitiesOnly": "yes",
            "UserKnownHostsFile": d["known_hosts"], "BatchMode": "yes",
            "ConnectTimeout": 5}
    hosts = {
        "bench-root": {},
        "bench-noroot": {"User": NOROOT_USER},
        "bench-sudo": {"User": SUDO_USER},
        "bench-jump": {"ProxyJump": "bench-root"},
        "bench-proxycmd": {"ProxyCommand": f"ssh -F {d['config']} -W %h:%p bench-root"},
        "bench-refused": {"Port": refused_port},
        "bench-timeout": {"Port": silent_port},
        "bench-badkey": {"UserKnownHostsFile": d["known_hosts_bad"]},
        "bench-unknown": {"UserKnownHostsFile": d["known_hosts_empty"]},
        "bench-nosession": {"Port": nosession_port},
    }
    lines = []
    for alias, extra in hosts.items():
        lines.append(f"Host {alias}")
        lines += [f"    {k} {v}" for k, v in {**base, **extra}.items()]
        lines.append("")
    # A catch-all block must not make arbitrary names count as configured.
    lines += ["Host *", "    ServerAliveInterval 30", ""]
    return "\n".join(lines)


@pytest.fixture(scope="session")
def sshd():
    if not os.path.exists(SSHD_BIN):
        _missing(f"{SSHD_BIN} not found (apt-get install openssh-server)")
    if os.geteuid() != 0:
        _missing("the sshd fixture needs root (sshd must switch to two users)")
    _ensure_noroot_user()
    if not shutil.which("sudo"):
        _missing("sudo not found (apt-get install sudo)")
    _ensure_sudo_user()

    # Not under pytest's tmp_path: that tree is 0700 root, and sshd reads
    # authorized_keys as the user logging in, benchnoroot included.
    tmp = tempfile.mkdtemp(prefix="bench-sshd-")
    os.chmod(tmp, 0o711)
    silent = _SilentServer()
    proc = None
    try:
        d = {name: os.path.join(tmp, name) for name in (
            "config", "known_hosts", "known_hosts_bad", "known_hosts_empty", "client_key",
            "host_key", "other_host_key", "authorized_keys", "sshd_config", "sshd.pid",
            "sshd.log")}
        host_pub = _keygen(d["host_key"])
        other_pub = _keygen(d["other_host_key"])
        client_pub = _keygen(d["client_key"])
        with open(d["authorized_keys"], "w") as f:
            f.write(client_pub + "\n")
        os.chmod(d["authorized_keys"], 0o644)

        port, refused_port, nosession_port = _free_port(), _free_port(), _free_port()
        with open(d["sshd_config"], "w") as f:
            f.write("\n".join([
                f"Port {port}",
                f"Port {nosession_port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {d['host_key']}",
                f"PidFile {d['sshd.pid']}",
                f"AuthorizedKeysFile {d['authorized_keys']}",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                # Without PAM, sshd refuses benchnoroot: useradd leaves its password locked ('!').
                "UsePAM yes",
                "AllowTcpForwarding yes",
                "MaxSessions 50",
                "MaxStartups 50",
                "Subsystem sftp internal-sftp",
                "LogLevel VERBOSE",
                # bench-nosession: logged in, but no command can start.
                f"Match LocalPort {nosession_port}",
                "    MaxSessions 0",
                "",
            ]))
        with open(d["known_hosts"], "w") as f:
            f.write(f"[127.0.0.1]:{port} {host_pub}\n")
            f.write(f"[127.0.0.1]:{nosession_port} {host_pub}\n")
        with open(d["known_hosts_bad"], "w") as f:
            f.write(f"[127.0.0.1]:{port} {other_pub}\n")
        open(d["known_hosts_empty"], "w").close()
        with open(d["config"], "w") as f:
            f.write(_client_config(d, port, refused_port, silent.port, nosession_port))

        fingerprint = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", d["host_key"] + ".pub"],
            capture_output=True, text=True, check=True).stdout.split()[1]

        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
        log = open(d["sshd.log"], "wb")
        proc = subprocess.Popen([SSHD_BIN, "-D", "-e", "-f", d["sshd_config"]],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        _wait_for_port(port, proc, d["sshd.log"])
        _wait_for_port(nosession_port, proc, d["sshd.log"])

        yield SSHServer(port=port, config_path=d["config"], known_hosts=d["known_hosts"],
                   client_key=d["client_key"], host_key_fingerprint=fingerprint, tmpdir=tmp,
                   refused_port=refused_port, silent_port=silent.port, log_path=d["sshd.log"])
    finally:
        if proc is not None:
            _stop_sshd(proc)
        silent.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        if os.path.exists(SUDOERS):
            os.unlink(SUDOERS)
