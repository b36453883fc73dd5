"""remote/agent/runner.py's exit paths without a device: whatever ends the
run (an error, Ctrl-C, SIGTERM from a LAVA timeout, a cell without values),
the agent is told 'bye' (it restores the target) and the bundle is printed.
The agent is a stand-in here (the real one: tests/lab/test_lab_lava.py)."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from remote.agent import runner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAN = {"tool_version": "t", "clock": "icount", "device_type": "qemu", "unit": "instructions",
        "cells": [], "plan": {"methods": ["pyperf"], "modes": ["function"], "check_modes": [],
                              "profile": {"name": "smoke"}}}

# A stand-in for runner.Agent; `end` says how its first request ends the run.
SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    from remote.agent import runner

    END, CLOSED = sys.argv[1], sys.argv[2]

    class Agent:
        def __init__(self, workdir, lease):
            self.ready = {}

        def request(self, op, timeout=600, **kw):
            if END == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
                raise AssertionError("SIGTERM did not stop the run")
            if END == "interrupt":
                raise KeyboardInterrupt
            raise runner.RunnerError("the kernel refused", kind="refused")

        def close(self, abort=False):
            open(CLOSED, "w").write("abort, bye" if abort else "bye")
            return []

    runner.Agent = Agent
    sys.exit(runner.main(sys.argv[3:]))
""")


@pytest.mark.parametrize("end,code,status", [("error", 6, "failed"), ("interrupt", 130, "interrupted"),
                                             ("sigterm", 143, "interrupted")])
def test_every_end_says_bye_and_prints_the_bundle(tmp_path, end, code, status):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    closed = tmp_path / "closed"
    p = subprocess.run([sys.executable, "-c", SCRIPT, end, str(closed), "--plan", str(plan),
                        "--out", str(tmp_path / "out")], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT, TMPDIR=str(tmp_path)), timeout=300)  # a hang only
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    # the agent restores on bye; a measurement still running is stopped first
    assert closed.read_text() == "abort, bye"
    assert runner.BEGIN in p.stdout and runner.END in p.stdout and "Traceback" not in p.stderr
    rec = json.loads((tmp_path / "out" / "records.json").read_text())
    assert rec["status"] == status
    assert not list(tmp_path.glob("ftrace-regs-bench.*"))  # its workdir is gone


def test_a_cell_without_values_still_leaves_the_bundle(tmp_path, monkeypatch, capsys):
    """A pyperf file without values (a worker that wrote nothing) made the
    per-call mean a ZeroDivisionError: in the cell's progress line (an
    internal error), then again in the figures, after the agent had gone and
    before the bundle was printed, so the bundle was lost."""
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))

    class Agent:
        ready = {}

        def __init__(self, workdir, lease):
            pass

        def close(self, abort=False):
            return []

    def run_plan(agent, run, rec, kmod):
        rec["cells"].append({"id": "r00-function-getppid-pyperf", "round": 0, "mode": "function",
                             "method": "pyperf", "status": "ok", "worker_means_ns": []})
        return []

    # Its workdir in tmp_path: /tmp/ftrace-regs-bench.* is the sshd tier's to watch.
    monkeypatch.setattr(runner.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(runner, "Agent", Agent)
    monkeypatch.setattr(runner, "run_plan", run_plan)
    runner.main(["--plan", str(plan), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert runner.BEGIN in out and runner.END in out
    assert runner.figures([{"status": "ok", "method": "pyperf", "mode": "off", "round": 0,
                            "worker_means_ns": []}], "ns") == []


def test_the_sigterm_handler_is_the_callers_again_after_main(tmp_path, monkeypatch, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    monkeypatch.setattr(runner.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(runner, "Agent", lambda workdir, lease: (_ for _ in ()).throw(
        runner.RunnerError("no agent", kind="agent")))
    before = signal.getsignal(signal.SIGTERM)
    assert runner.main(["--plan", str(plan), "--out", str(tmp_path / "out")]) == 10
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("content, words", [
    (None, "cannot read the plan"),
    (b"\xff\xfe not text", "is not JSON"),
    (b"{not json", "is not JSON"),
    (b'{"plan": {"methods": []}, "cells": []}', "is not a plan of bench lava render (KeyError: 'modes')"),
    (b'{"plan": {"methods": [], "modes": [], "check_modes": [], "profile": {}}, "cells": 3}',
     "is not a plan of bench lava render (TypeError: cells is not a list)"),
])
def test_a_plan_file_that_is_missing_or_bad_is_one_line_exit_2(tmp_path, content, words):
    """Before the agent starts: one line that says what is wrong, usage's
    exit code, no traceback, no out directory made."""
    plan = tmp_path / "plan.json"
    if content is not None:
        plan.write_bytes(content)
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, os.path.join(ROOT, "remote", "agent", "runner.py"),
                        "--plan", str(plan), "--out", str(out)], capture_output=True, text=True)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    assert len(lines) == 1 and words in lines[0] and lines[0].startswith("ftrace-regs-bench: error: "), lines
    assert p.stderr == "" and not out.exists()
