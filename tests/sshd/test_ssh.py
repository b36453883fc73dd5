"""remote/ssh.py against a real sshd on loopback (tests/sshfixture.py)."""
import concurrent.futures
import dataclasses
import os
import signal
import stat
import subprocess
import time

import pytest

from remote.errors import (AuthFailed, CommandTimeout, ConnectFailed, ConnectionLost,
                           HostKeyMismatch, HostKeyUnknown, HostNotFound, NoRoot)
from remote.ssh import SSHTarget, connect, open_ssh_target, resolve
from sshfixture import proc_stat

pytestmark = pytest.mark.sshd

NASTY = ["a b", "'", '"', "it's \"quoted\"", "$HOME", "${PATH}", "$(id)", "`id`", "a;b", "a && b",
         "x\ny", "", "*", "~", "\\", "\\n", "-n", "--", "%s%d", "é ü 日本", "a\tb", "!x", "#c",
         "a|b", "> /tmp/x", "'\"'\"'"]


@pytest.fixture(scope="module")
def root(sshd):
    t = open_ssh_target("bench-root", config_path=sshd.config_path)
    yield t
    t.close()


@pytest.fixture(scope="module")
def noroot(sshd):
    t = open_ssh_target("bench-noroot", config_path=sshd.config_path)
    yield t
    t.close()


def remote_pids(target, pattern):
    """Pids whose command line matches.  The pattern must not match itself
    ('^sleep 1$', '[s]leep'), or it finds the pgrep command line too."""
    r = target.run(["pgrep", "-f", pattern], timeout=10)
    return r.text.split()


# -- resolve -------------------------------------------------------------------

def test_resolve_direct(sshd):
    spec = resolve("bench-root", sshd.config_path)
    assert (spec.alias, spec.hostname, spec.port, spec.user) == \
        ("bench-root", "127.0.0.1", sshd.port, "root")
    assert spec.identity_files == [sshd.client_key]
    assert spec.known_hosts_files == [sshd.known_hosts]
    assert spec.connect_timeout == 5
    assert (spec.alive_interval, spec.alive_count) == (30, 3)  # from `Host *`, default
    assert spec.proxy_command is None and spec.proxy_jump == []
    assert resolve("bench-noroot", sshd.config_path).user == "benchnoroot"


def test_resolve_proxies(sshd):
    jump = resolve("bench-jump", sshd.config_path)
    assert jump.proxy_jump == [resolve("bench-root", sshd.config_path)]
    assert jump.proxy_command is None
    cmd = resolve("bench-proxycmd", sshd.config_path)
    # %h and %p are expanded from the alias' own HostName and Port.
    assert cmd.proxy_command == f"ssh -F {sshd.config_path} -W 127.0.0.1:{sshd.port} bench-root"
    assert cmd.proxy_jump == []


def test_resolve_config_from_env(sshd, monkeypatch):
    monkeypatch.setenv("BENCH_SSH_CONFIG", sshd.config_path)
    assert resolve("bench-root").port == sshd.port


def test_resolve_unknown_names(sshd):
    # Only `Host *` matches: not a configured host.
    with pytest.raises(HostNotFound, match="unknown host 'no-such-host'"):
        resolve("no-such-host", sshd.config_path)
    with pytest.raises(HostNotFound):
        resolve("root@127.0.0.1", sshd.config_path)


def test_resolve_plain(sshd):
    spec = resolve("alice@10.1.2.3:2222", sshd.config_path, allow_plain=True)
    assert (spec.hostname, spec.port, spec.user) == ("10.1.2.3", 2222, "alice")
    assert spec.known_hosts_files == [os.path.expanduser("~/.ssh/known_hosts")]
    assert spec.connect_timeout == 10
    assert resolve("[::1]:23", sshd.config_path, allow_plain=True).hostname == "::1"


def test_resolve_jump_forms(tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text("\n".join([
        "Host target", "  HostName 10.0.0.9", "  ProxyJump gw,bob@10.0.0.8:2200",
        "Host gw", "  HostName gw.example", "  User carol", "  Port 2022",
        "  ProxyCommand ~/bin/relay %h %p %r",
        "Host loop", "  ProxyJump loop2", "Host loop2", "  ProxyJump loop",
        "Host both", "  ProxyCommand relay", "  ProxyJump gw",
        "Host *", "  User dave", ""]))
    spec = resolve("target", str(cfg))
    gw, inner = spec.proxy_jump
    assert (gw.hostname, gw.port, gw.user) == ("gw.example", 2022, "carol")
    assert gw.proxy_command == os.path.expanduser("~/bin/relay gw.example 2022 carol")
    assert (inner.hostname, inner.port, inner.user) == ("10.0.0.8", 2200, "bob")
    assert spec.user == "dave"
    with pytest.raises(HostNotFound, match="ProxyJump loop"):
        resolve("loop", str(cfg))
    # The first of ProxyCommand and ProxyJump wins, as in OpenSSH.
    both = resolve("both", str(cfg))
    assert both.proxy_command == "relay" and both.proxy_jump == []


# -- run / start / files ---------------------------------------------------------

@pytest.mark.parametrize("alias", ["bench-root", "bench-noroot"])  # bash, then dash
def test_run_nasty_arguments(sshd, alias):
    t = open_ssh_target(alias, config_path=sshd.config_path)
    try:
        r = t.run(["printf", "%s\\n"] + NASTY, timeout=20)
        assert r.returncode == 0, r.err
        assert r.text == "".join(a + "\n" for a in NASTY)
    finally:
        t.close()


def test_exit_codes_and_stderr(root):
    r = root.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (r.returncode, r.stdout, r.stderr) == (3, b"out\n", b"err\n")
    assert root.run(["true"]).returncode == 0
    assert root.run(["no-such-command-xyz"]).returncode == 127
    assert root.run(["sh", "-c", "exit 124"], timeout=30).returncode == 124  # not a timeout


def test_large_output_on_both_streams(root):
    r = root.run(["sh", "-c", "seq 1 200000 >&2 & seq 1 750000; wait"], timeout=60)
    assert len(r.stdout) > 5_000_000
    assert r.stdout == "".join(f"{i}\n" for i in range(1, 750001)).encode()
    assert r.stderr == "".join(f"{i}\n" for i in range(1, 200001)).encode()


def test_stdin_round_trip(root):
    data = os.urandom(5_000_000)
    r = root.run(["cat"], input=data, timeout=60)
    assert r.returncode == 0 and r.stdout == data
    assert root.run(["cat"], timeout=10).stdout == b""  # no input: EOF, not a hang


def test_timeout_kills_remote_process(root):
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match="did not finish in 1 s"):
        root.run(["sh", "-c", "sleep 417; echo never"], timeout=1)
    assert time.monotonic() - started < 4
    assert remote_pids(root, "^sleep 417$") == []


def test_start_line_protocol(root):
    p = root.start(["cat"])
    p.send(b"hello\n")
    assert p.readline(5) == b"hello\n"
    assert p.readline(0.2) is None
    p.send(b"two\nlines\n")
    assert [p.readline(5), p.readline(5)] == [b"two\n", b"lines\n"]
    p.close_stdin()
    assert p.readline(5) == b""
    assert p.readline(1) == b""
    assert p.wait(5) == 0


def test_start_stderr_and_status(root):
    p = root.start(["sh", "-c", "echo oops >&2; read x; echo got $x; exit 7"])
    assert p.wait(0.2) is None
    p.send(b"it\n")
    assert p.readline(5) == b"got it\n"
    assert p.wait(5) == 7
    assert p.stderr_text() == "oops\n"


def test_kill(root):
    # Ignores SIGHUP and never reads stdin: closing the channel alone would leave it.
    p = root.start(["python3", "-c", "import signal, time; signal.signal(signal.SIGHUP, "
                    "signal.SIG_IGN); print('up', flush=True); time.sleep(418)"])
    try:
        assert p.readline(10) == b"up\n"
        assert remote_pids(root, "[t]ime.sleep.418")
    finally:
        p.kill()
    assert remote_pids(root, "[t]ime.sleep.418") == []
    assert p.readline(5) == b""


def test_files(root):
    d = root.mkdtemp()
    try:
        data = bytes(range(256)) * 1000
        root.write_file(f"{d}/blob", data, mode=0o640)
        assert root.read_file(f"{d}/blob") == data
        assert root.run(["stat", "-c", "%a", f"{d}/blob"]).text.strip() == "640"
        root.write_file(f"{d}/blob", b"short")  # truncates, default mode 0600
        assert root.read_file(f"{d}/blob") == b"short"
        assert root.run(["stat", "-c", "%a", f"{d}/blob"]).text.strip() == "600"
        with pytest.raises(FileNotFoundError):
            root.read_file(f"{d}/missing")
    finally:
        root.run(["rm", "-rf", d])


def test_root_prefix(root, noroot):
    assert root.root_prefix() == []
    with pytest.raises(NoRoot, match="benchnoroot"):
        noroot.root_prefix()


def test_describe(root):
    assert root.describe() == {"kind": "ssh", "name": "bench-root", "hostname": "127.0.0.1",
                               "port": root.spec.port, "user": "root", "via": "direct"}


# -- proxies -----------------------------------------------------------------------

@pytest.mark.parametrize("alias,via", [("bench-jump", "proxy-jump"),
                                       ("bench-proxycmd", "proxy-command")])
def test_proxies(sshd, alias, via):
    t = open_ssh_target(alias, config_path=sshd.config_path)
    try:
        assert t.run(["id", "-un"]).text == "root\n"
        assert t.describe()["via"] == via
        assert t.read_file("/etc/hostname")  # SFTP through the proxy too
        jumps = t.client.jumps
    finally:
        t.close()
    # Closing the target closes the jump host connections it ran through.
    assert all(not j.get_transport() or not j.get_transport().is_active() for j in jumps)


def test_jump_host_cannot_reach_target(sshd):
    spec = dataclasses.replace(resolve("bench-refused", sshd.config_path),
                               proxy_jump=[resolve("bench-root", sshd.config_path)])
    with pytest.raises(ConnectFailed, match="via bench-root.*jump host could not open"):
        connect(spec)


def test_failing_proxy_command(sshd):
    spec = dataclasses.replace(resolve("bench-root", sshd.config_path),
                               proxy_command="sh -c 'echo no route >&2; exit 3'")
    started = time.monotonic()
    with pytest.raises(ConnectFailed) as e:
        connect(spec, timeout=5)
    assert str(e.value).endswith("via ProxyCommand): ProxyCommand exited with status 3: no route")
    assert time.monotonic() - started < 2  # seen at EOF, not after the timeout


# -- failures ------------------------------------------------------------------------

def test_unknown_alias(sshd):
    with pytest.raises(HostNotFound, match="no Host entry"):
        open_ssh_target("bench-nope", config_path=sshd.config_path)


def test_refused(sshd):
    with pytest.raises(ConnectFailed) as e:
        open_ssh_target("bench-refused", config_path=sshd.config_path)
    assert str(e.value) == (f"cannot connect to bench-refused (127.0.0.1:{sshd.refused_port}): "
                            "connection refused")


def test_silent_server_times_out(sshd):
    started = time.monotonic()
    with pytest.raises(ConnectFailed, match="no SSH banner within 3 s"):
        open_ssh_target("bench-timeout", config_path=sshd.config_path, timeout=3)
    assert 2.5 < time.monotonic() - started < 6


def test_changed_host_key(sshd):
    for accept in (False, True):  # the flag must not let a changed key through
        with pytest.raises(HostKeyMismatch) as e:
            open_ssh_target("bench-badkey", config_path=sshd.config_path,
                            accept_new_host_key=accept)
        assert f"the server offers ssh-ed25519 {sshd.host_key_fingerprint}" in str(e.value)
        assert "known_hosts has ssh-ed25519 SHA256:" in str(e.value)


def test_unknown_host_key_refused(sshd):
    spec = resolve("bench-unknown", sshd.config_path)
    with pytest.raises(HostKeyUnknown) as e:
        connect(spec)
    msg = str(e.value)
    assert f"ssh-ed25519 {sshd.host_key_fingerprint}" in msg
    assert f"[127.0.0.1]:{sshd.port}" in msg and "--accept-new-host-key" in msg
    assert os.path.getsize(spec.known_hosts_files[0]) == 0


def test_accept_new_host_key(sshd, tmp_path):
    known = tmp_path / "ssh" / "known_hosts"
    spec = dataclasses.replace(resolve("bench-unknown", sshd.config_path),
                               known_hosts_files=[str(known)])
    connect(spec, accept_new_host_key=True).close()
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    assert stat.S_IMODE(known.parent.stat().st_mode) == 0o700
    with open(sshd.known_hosts) as f:  # the fixture's line for the real host key
        assert known.read_text().split() == f.read().split()[:3]
    connect(spec).close()  # trusted from now on, without the flag


def test_auth_failed(sshd, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    spec = dataclasses.replace(resolve("bench-root", sshd.config_path),
                               identity_files=[os.path.join(sshd.tmpdir, "other_host_key")])
    with pytest.raises(AuthFailed, match="root@bench-root"):
        connect(spec)


def test_hung_peer_is_detected(sshd):
    spec = dataclasses.replace(resolve("bench-root", sshd.config_path),
                               alive_interval=0.3, alive_count=2)
    t = SSHTarget("bench-root", connect(spec), spec)
    p = t.start(["sleep", "4711"])
    in_flight = concurrent.futures.ThreadPoolExecutor(1).submit(
        t.run, ["sleep", "4712"], timeout=60)
    pids = []
    session = None
    try:
        deadline = time.monotonic() + 5
        while len(pids) < 2 and time.monotonic() < deadline:
            out = subprocess.run(["pgrep", "-f", "^sleep 471[12]$"], capture_output=True, text=True)
            pids = [int(x) for x in out.stdout.split()]
        assert len(pids) == 2
        # The session's sshd process is the nearest sshd ancestor of a command.
        session = proc_stat(pids[0])[1]
        while proc_stat(session)[0] != "sshd":
            session = proc_stat(session)[1]
        os.kill(session, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(ConnectionLost, match="no answer from the server"):
            in_flight.result(timeout=10)
        assert time.monotonic() - started < 3
        with pytest.raises(ConnectionLost):
            t.run(["true"], timeout=10)
        with pytest.raises(ConnectionLost):
            p.readline(1)
    finally:
        if session:
            os.kill(session, signal.SIGCONT)
        for pid in pids:  # lost with the connection: end them here
            os.kill(pid, signal.SIGKILL)
        t.close()
