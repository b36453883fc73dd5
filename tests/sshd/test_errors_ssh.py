"""Rows of the README's error table and the security promises, against a
real sshd on loopback (tests/sshfixture.py; the target behind bench-root is
this machine).
"""
import glob
import json
import os
import stat
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from bench.cli import EXIT_CODES, cli, exit_code
from remote.agent_client import AgentClient
from remote.errors import AgentError
from remote.ssh import open_ssh_target

LOCK = "/run/ftrace-regs-bench.lock"


def one_line(r):
    lines = [l for l in r.output.splitlines() if l.startswith("bench: ")]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    return lines[0]


@pytest.fixture
def root(sshd):
    t = open_ssh_target("bench-root", config_path=sshd.config_path)
    yield t
    t.close()


def agent_dirs():
    return sorted(glob.glob("/tmp/ftrace-regs-bench.*"))


@pytest.mark.sshd
def test_auth_refused_is_one_line_exit_3(sshd, tmp_path, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    cfg = tmp_path / "ssh_config"
    text = open(sshd.config_path).read().replace(sshd.client_key,
                                                 os.path.join(sshd.tmpdir, "other_host_key"))
    cfg.write_text(text)
    r = CliRunner().invoke(cli, ["run", "--host", "bench-root", "--ssh-config", str(cfg),
                                 "--out", str(tmp_path / "b")])
    assert r.exit_code == EXIT_CODES["auth"][0] == 3, r.output
    assert "root@bench-root" in one_line(r)
    assert not (tmp_path / "b").exists()


@pytest.mark.sshd
def test_a_refused_command_channel_is_a_remote_error_exit_10(sshd, tmp_path):
    """bench-nosession logs in (the key is accepted), then sshd refuses every
    session channel (MaxSessions 0): no command can start on the target."""
    before = agent_dirs()
    r = CliRunner().invoke(cli, ["run", "--host", "bench-nosession", "--ssh-config",
                                 sshd.config_path, "--out", str(tmp_path / "b")])
    assert r.exit_code == EXIT_CODES["remote"][0] == 10, r.output
    line = one_line(r)
    assert line.startswith("bench: error: bench-nosession: cannot start a command: the server "
                           "refused a session channel ("), line
    assert "MaxSessions" in line, line
    assert not (tmp_path / "b").exists()
    assert agent_dirs() == before and not os.path.exists(LOCK)


@pytest.mark.sshd
def test_agent_dir_is_private_and_removed_and_the_lock_named_and_released(root):
    before = agent_dirs()
    a = AgentClient(root, lock=True).start()
    try:
        assert stat.S_IMODE(os.stat(a.workdir).st_mode) == 0o700
        for dirpath, dirs, files in os.walk(a.workdir):
            for f in files:
                assert stat.S_IMODE(os.stat(os.path.join(dirpath, f)).st_mode) & 0o077 == 0, f
        info = json.loads(open(LOCK).read())
        assert info["agent_pid"] == a.ready["pid"] and info["workdir"] == a.workdir
        assert " pid " in info["holder"] and "@" in info["holder"]
        # A second run is refused, naming the first; it leaves no directory.
        b = AgentClient(root, lock=True)
        with pytest.raises(AgentError) as e:
            b.start()
        assert e.value.kind == "target-locked" and exit_code(e.value.kind) == 7
        assert f"another bench run holds this host: {info['holder']} (agent pid {info['agent_pid']}, " \
               "for " in str(e.value)
        time.sleep(0.5)
        assert agent_dirs() == sorted(before + [a.workdir])
        # An unknown request is a protocol error (exit 10), and the agent serves on.
        with pytest.raises(AgentError) as e:
            a.request("no_such_op")
        assert e.value.kind == "protocol" and exit_code("protocol") == 10
        assert a.request("hello")["pid"] == a.ready["pid"]
    finally:
        a.close()
    deadline = time.monotonic() + 5
    while (os.path.exists(LOCK) or agent_dirs() != before) and time.monotonic() < deadline:
        time.sleep(0.1)  # the guardian lets go when it sees the agent exit
    assert not os.path.exists(LOCK) and agent_dirs() == before


@pytest.mark.sshd
def test_controller_killed_while_shipping_the_agent_leaves_no_directory(sshd):
    """The directory is made by a process tied to the connection: a
    controller killed mid-upload (kill -9) leaves nothing."""
    before = agent_dirs()
    code = ("import sys, time; from remote.ssh import open_ssh_target; "
            "from remote import agent_client as ac; "
            f"t = open_ssh_target('bench-root', config_path={sshd.config_path!r}); "
            "ac.payload = lambda *_: (print('shipping', flush=True), time.sleep(600)); "
            "ac.AgentClient(t).start()")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=os.getcwd()))
    try:
        assert p.stdout.readline().strip() == "shipping"
        assert len(agent_dirs()) == len(before) + 1
    finally:
        p.kill()
        p.wait()
    deadline = time.monotonic() + 10
    while agent_dirs() != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert agent_dirs() == before


SECRET_MARKERS = ("PRIVATE KEY", "BEGIN OPENSSH", "password", "passphrase", "IdentityFile")


def secrets_in(text, key_files):
    found = [m for m in SECRET_MARKERS if m.lower() in text.lower()]
    for path in key_files:
        body = "".join(l for l in open(path).read().splitlines()
                       if "PRIVATE KEY" not in l)
        if body[:40] and body[:40] in text.replace("\n", ""):
            found.append(f"the key material of {path}")
    return found


@pytest.mark.sshd
def test_no_key_material_in_the_bundle_or_the_debug_log(sshd, tmp_path):
    """A run with --debug (every paramiko log line) against bench-root: the
    bundle (if any) and the whole output hold no key, password or path to a key."""
    out = tmp_path / "b"
    r = subprocess.run([sys.executable, "-m", "bench.cli", "--debug", "run", "--host", "bench-root",
                        "--ssh-config", sshd.config_path, "--profile", "quick", "--modes", "off",
                        "--methods", "pyperf", "--out", str(out)],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=os.getcwd()))
    log = r.stdout + r.stderr
    assert "paramiko" in log or "Connected" in log or r.returncode in (0, 6), log[-2000:]
    keys = [sshd.client_key, os.path.join(sshd.tmpdir, "host_key")]
    assert secrets_in(log, keys) == [], log[-2000:]
    for f in out.rglob("*") if out.exists() else []:
        if f.is_file():
            assert secrets_in(f.read_text(errors="replace"), keys) == [], f
    host = json.loads((out / "bundle.json").read_text())["host"] if (out / "bundle.json").exists() \
        else None
    if host:
        assert set(host) <= {"kind", "name", "hostname", "port", "user", "via"}


@pytest.mark.sshd
def test_an_agent_that_does_not_start_is_exit_10_and_leaves_nothing(sshd, tmp_path, monkeypatch):
    from remote import agent_client

    monkeypatch.setattr(agent_client, "payload",
                        lambda *_: {"agent.py": b"import sys\nsys.exit('agent: cannot run here')\n"})
    before = agent_dirs()
    r = CliRunner().invoke(cli, ["run", "--host", "bench-root", "--ssh-config", sshd.config_path,
                                 "--out", str(tmp_path / "b")])
    assert r.exit_code == EXIT_CODES["agent"][0] == 10, r.output
    assert one_line(r).endswith("bench-root: the agent did not start: agent: cannot run here")
    time.sleep(1)
    assert agent_dirs() == before and not (tmp_path / "b").exists()


# -- rows that need the lab's kernel ----------------------------------------------
