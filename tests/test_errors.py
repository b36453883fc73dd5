"""Rows of the README's error table not covered elsewhere, and the security
promises, against a real sshd on loopback (tests/sshfixture.py; the target
behind bench-root is this machine) and in-process.

Which test covers which row is in the README table's last column.
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
            "ac.payload = lambda: (print('shipping', flush=True), time.sleep(600)); "
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


def test_lab_not_running_is_exit_9(tmp_path):
    env = dict(os.environ, FTRACE_REGS_BENCH_LAB_RUN=str(tmp_path / "no-lab"))
    r = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--host", "lab", "--out",
                        str(tmp_path / "b")], capture_output=True, text=True, env=env)
    assert r.returncode == EXIT_CODES["lab"][0] == 9, r.stderr
    assert r.stderr.strip() == ("bench: error: the lab is not running; start it with "
                                "'bench lab up'")


def test_mode_not_in_effect_is_exit_10():
    from bench.errors import MeasurementError
    from bench.modecheck import check_mode

    v = {"current_tracer": "nop", "tracing_on": "1", "enabled_functions_count": 0,
         "target_line": None, "target_flags": None}
    with pytest.raises(MeasurementError) as e:
        check_mode("function", "__arm64_sys_getppid", v)
    assert str(e.value).startswith("mode 'function' is not in effect on the target: tracefs shows "
                                   "current_tracer='nop'")
    assert exit_code(e.value.kind) == 10


def test_a_bug_is_one_line_exit_1(monkeypatch):
    import bench.plan

    def broken(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(bench.plan, "select_profile", broken)
    r = CliRunner().invoke(cli, ["run", "--host", "local"])
    assert r.exit_code == 1
    assert one_line(r) == ("bench: internal error: ZeroDivisionError: division by zero (run with "
                           "--debug for the traceback, and please report it)")


# -- no secrets in bundles or logs ------------------------------------------------

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
                        lambda: {"agent.py": b"import sys\nsys.exit('agent: cannot run here')\n"})
    before = agent_dirs()
    r = CliRunner().invoke(cli, ["run", "--host", "bench-root", "--ssh-config", sshd.config_path,
                                 "--out", str(tmp_path / "b")])
    assert r.exit_code == EXIT_CODES["agent"][0] == 10, r.output
    assert one_line(r).endswith("bench-root: the agent did not start: agent: cannot run here")
    time.sleep(1)
    assert agent_dirs() == before and not (tmp_path / "b").exists()


# -- rows that need the lab's kernel ----------------------------------------------

def guest_python(target, code):
    """Run code in the lab's python3 next to the agent's tracefs.py and
    kmod.py and the package `protocol` they import, as the agent's payload
    lays them out; returns its stdout."""
    from remote.agent_client import payload

    d = target.run(["mktemp", "-d", "/tmp/bench-test.XXXXXXXX"], timeout=60).text.strip()
    try:
        for rel, data in payload().items():
            if rel in ("tracefs.py", "kmod.py") or rel.startswith("protocol/"):
                if os.path.dirname(rel):
                    target.run(["mkdir", "-p", f"{d}/{os.path.dirname(rel)}"], timeout=60)
                target.write_file(f"{d}/{rel}", data)
        r = target.run(["python3", "-c", f"import sys; sys.path.insert(0, {d!r})\n" + code],
                       timeout=300)
        assert r.returncode == 0, r.err
        return r.text
    finally:
        target.run(["rm", "-rf", d], timeout=60)


@pytest.mark.lab
def test_tracefs_rejected_value_and_other_errors(lab_target):
    """EINVAL is 'invalid' (exit 6), any other errno 'tracefs' (exit 6);
    the rejected write changes nothing."""
    out = guest_python(lab_target, """
import tracefs
t = tracefs.Tracefs.find()
for f in (lambda: t.write("current_tracer", "no_such_tracer"), lambda: t.read("no_such_knob")):
    try:
        f()
    except tracefs.TracefsError as e:
        print(e.kind + "|" + str(e))
print("tracer|" + t.read("current_tracer").strip())
""")
    lines = dict(l.split("|", 1) for l in out.splitlines())
    assert lines["invalid"] == ("the kernel refused to write 'no_such_tracer' to "
                                "/sys/kernel/tracing/current_tracer: Invalid argument")
    assert lines["tracefs"] == ("the kernel refused to read /sys/kernel/tracing/no_such_knob: "
                                "No such file or directory")
    assert lines["tracer"] == "nop"
    assert exit_code("invalid") == exit_code("tracefs") == 6


@pytest.mark.lab
def test_a_leftover_module_that_cannot_be_removed_is_exit_7(lab, lab_target, lab_module, tmp_path):
    """A module from an earlier run, held open by a process (rmmod: in use):
    one line, exit 7, tracefs restored, nothing left of ours."""
    lab_target.write_file("/tmp/leftover.ko", lab_module.read_bytes())
    lab_target.run(["sh", "-c", "mountpoint -q /sys/kernel/debug || mount -t debugfs nodev "
                    "/sys/kernel/debug; insmod /tmp/leftover.ko"], timeout=120)
    holder = lab_target.start(["sh", "-c", "exec 3</sys/kernel/debug/ftrace_regs_bench/info; "
                               "echo held; exec sleep 600"])
    try:
        assert holder.readline(60) == b"held\n"
        r = CliRunner().invoke(cli, ["run", "--host", "lab", "--profile", "quick", "--modes",
                                     "off,noregs", "--methods", "kernel", "--out", str(tmp_path / "b")])
        assert r.exit_code == EXIT_CODES["module-busy"][0] == 7, r.output
        assert ("a ftrace_regs_bench module from an earlier run is loaded and cannot be removed: "
                "rmmod ftrace_regs_bench failed") in one_line(r)
        assert not (tmp_path / "b").exists()
        left = lab_target.run(["sh", "-c", "ls -d /tmp/ftrace-regs-bench.* /run/ftrace-regs-bench.lock"
                               " 2>/dev/null; pgrep -af '[a]gent.py'; cat /sys/kernel/tracing/"
                               "current_tracer"], timeout=60).text.split()
        assert left == ["nop"], left
    finally:
        holder.kill()  # by its pid
        lab_target.run(["sh", "-c", "sleep 1; rmmod ftrace_regs_bench; rm -f /tmp/leftover.ko"],
                       timeout=60)
    assert "ftrace_regs_bench" not in lab_target.run(["cat", "/proc/modules"], timeout=60).text


@pytest.mark.lab
def test_a_module_that_does_not_build_is_exit_6(lab, lab_target, tmp_path, monkeypatch):
    from remote import agent_client, cache

    src = tmp_path / "kmod"
    src.mkdir()
    (src / "Makefile").write_bytes((agent_client.KMOD_DIR / "Makefile").read_bytes())
    (src / "ftrace_regs_bench.c").write_text("#error this source is broken on purpose\n")
    monkeypatch.setattr(agent_client, "KMOD_DIR", src)
    monkeypatch.setattr(cache, "ROOT", tmp_path / "cache")
    r = CliRunner().invoke(cli, ["run", "--host", "lab", "--profile", "quick", "--modes", "off,noregs",
                                 "--methods", "kernel", "--out", str(tmp_path / "b")])
    assert r.exit_code == EXIT_CODES["module-build"][0] == 6, r.output
    line = one_line(r)
    assert "building the module failed: " in line and "broken on purpose" in line, line
    assert not (tmp_path / "b").exists()


@pytest.mark.lab
def test_a_module_build_that_takes_too_long_is_exit_10(lab_target):
    """kind 'module': the build's time limit (here 1 s) is enforced."""
    out = guest_python(lab_target, """
import os, kmod, shutil, tempfile
src = tempfile.mkdtemp()
open(os.path.join(src, "Makefile"), "w").write("obj-m += slow.o\\n")
open(os.path.join(src, "slow.c"), "w").write("int x;\\n")
try:
    kmod.Kmod(src, src).prepare(build_timeout=1)
except kmod.KmodError as e:
    print(e.kind + "|" + str(e))
shutil.rmtree(src)
""")
    kind, msg = out.strip().split("|", 1)
    assert (kind, msg) == ("module", "building the module took over 1 s")
    assert exit_code(kind) == 10
