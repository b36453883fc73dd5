"""`bench run` against a real OpenSSH server on 127.0.0.1 (tests/sshfixture.py):
every way it can fail gives one line, a documented exit code, and leaves the
target unchanged.  The target behind bench-root is this machine, whose kernel
(locked down) refuses the function tracer."""
import glob
import subprocess

import pytest
from click.testing import CliRunner

from bench.cli import EXIT_CODES, cli
from labtools import AGENT_PROCESS

pytestmark = pytest.mark.sshd


def target_state(settle=False):
    """What a run could change on this machine: mounts, agent dirs, agent
    processes.  settle: give the agent's guardian a moment to see the agent
    exit (it wakes on EOF of a pipe)."""
    import time

    # Seconds, not one: on a loaded machine (CI runs labs and a kernel build
    # beside these tests) the guardian takes a while to notice.
    deadline = time.monotonic() + (30 if settle else 0)
    while True:
        state = _state()
        if not state[2] or time.monotonic() >= deadline:
            return state
        time.sleep(0.2)


def _state():
    mounts = sorted(l.split()[1] for l in open("/proc/mounts")
                    if l.split()[2] in ("tracefs", "securityfs", "debugfs"))
    dirs = sorted(glob.glob("/tmp/ftrace-regs-bench.*"))
    procs = subprocess.run(["pgrep", "-af", AGENT_PROCESS], capture_output=True, text=True).stdout
    return mounts, dirs, procs


def bench_run(sshd, alias, tmp_path, *extra):
    before = target_state(settle=True)  # an earlier test's guardian may still be finishing
    out = tmp_path / "out" / "bundle"
    r = CliRunner().invoke(cli, ["run", "--host", alias, "--ssh-config", sshd.config_path,
                                 "--profile", "quick", "--out", str(out), *extra])
    lines = [l for l in r.output.splitlines() if l.startswith("bench: ")]
    assert len(lines) == 1, r.output
    assert "Traceback" not in r.output
    assert target_state(settle=True) == before, "the target was changed"
    assert not out.exists(), "an empty bundle was left behind"
    return r.exit_code, lines[0]


@pytest.mark.parametrize("alias,code,words", [
    ("no-such-alias", EXIT_CODES["host-not-found"][0], "unknown host 'no-such-alias'"),
    ("bench-refused", EXIT_CODES["connect"][0], "refused"),
    ("bench-badkey", EXIT_CODES["host-key"][0], "changed"),
    ("bench-unknown", EXIT_CODES["host-key"][0], "--accept-new-host-key"),
    ("bench-noroot", EXIT_CODES["no-root"][0], "not root and 'sudo -n' is refused"),
])
def test_connection_errors(sshd, tmp_path, alias, code, words):
    got, line = bench_run(sshd, alias, tmp_path)
    assert got == code, line
    assert words in line, line


def test_connect_timeout(sshd, tmp_path):
    got, line = bench_run(sshd, "bench-timeout", tmp_path, "--connect-timeout", "3")
    assert got == EXIT_CODES["connect"][0], line


def test_kernel_refusing_the_function_tracer(sshd, tmp_path):
    lockdown = ""
    subprocess.run(["mount", "-t", "securityfs", "securityfs", "/sys/kernel/security"],
                   capture_output=True)
    try:
        lockdown = open("/sys/kernel/security/lockdown").read()
    except OSError:
        pass
    finally:
        subprocess.run(["umount", "/sys/kernel/security"], capture_output=True)
    if "[none]" in lockdown or not lockdown:
        pytest.skip("this machine's kernel is not locked down; the refusal path needs one that is")
    got, line = bench_run(sshd, "bench-root", tmp_path)
    assert got == EXIT_CODES["refused"][0], line
    assert "refused" in line and "lockdown" in line, line


def test_root_through_sudo_reaches_the_kernel(sshd, tmp_path):
    """benchsudo is not root: the agent starts through 'sudo -n' and gets as
    far as this kernel's refusal (not 'no root')."""
    got, line = bench_run(sshd, "bench-sudo", tmp_path)
    assert got in (EXIT_CODES["refused"][0], 0), line
    assert "lockdown" in line or got == 0, line


def test_unwritable_out(sshd, tmp_path):
    before = target_state()
    r = CliRunner().invoke(cli, ["run", "--host", "bench-root", "--ssh-config", sshd.config_path,
                                 "--out", "/proc/no/bundle"])
    assert r.exit_code == EXIT_CODES["output"][0], r.output
    assert "writable --out" in r.output
    assert target_state() == before
