"""Rows of the README's error table that need no outside part (in-process).

Which test covers which row is in the README table's last column; the rows
that need the loopback sshd are in tests/sshd/test_errors_ssh.py, the lab's in
tests/lab/test_errors_lab.py.
"""
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from bench.cli import EXIT_CODES, cli, exit_code

def one_line(r):
    lines = [l for l in r.output.splitlines() if l.startswith("bench: ")]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    return lines[0]


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
