"""The step check on a run with a step put in on purpose (issue: numbers
that can be trusted, §1).

Halfway through a pyperf run of `off` in the icount lab, a CPU hog starts on
the target (a shell loop at nice 5, on the lab's one vCPU).  From then on
every timed value carries the hog's time slices, so the mode's level moves
once, inside the run: the A/A pairs off and off-aa of the same round and
cannot see it; the step check must, in the summary, in checks.steps of the
bundle and in the report.
"""
import json
import subprocess
import time

import pytest
from click.testing import CliRunner

from bench.cli import cli
from labtools import leftovers, popen_bench

pytestmark = pytest.mark.lab

HOG = "while :; do :; done"  # what pkill looks for afterwards


def cells_so_far(out):
    try:
        return json.loads((out / "bundle.json").read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return []


def test_a_step_put_in_halfway_is_flagged(lab, lab_target, tmp_path):
    out, log = tmp_path / "b", tmp_path / "run.log"
    p = popen_bench(["run", "--host", "lab", "--profile", "quick", "--modes", "off", "--methods", "pyperf",
                     "--out", str(out)], stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        # quick: 4 rounds of off and off-aa; the hog starts after round 1.
        deadline = time.monotonic() + 900
        while p.poll() is None and len(cells_so_far(out)) < 4 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert p.poll() is None, "the run ended before the step could be put in:\n" + log.read_text()
        hog_at = len(cells_so_far(out))
        r = lab_target.run(["sh", "-c", f"nohup nice -n 5 sh -c '{HOG}' </dev/null >/dev/null 2>&1 &"],
                           timeout=60)
        assert r.returncode == 0, r.err
        p.wait(timeout=1800)
    finally:
        if p.poll() is None:
            p.kill()
        lab_target.run(["pkill", "-f", HOG], timeout=60)
    output = log.read_text()
    assert p.returncode == 0, output

    data = json.loads((out / "bundle.json").read_text())
    flagged = [s for s in data["checks"]["steps"] if s["flagged"]]
    assert flagged, json.dumps(data["checks"]["steps"], indent=1)
    assert {s["method"] for s in flagged} == {"pyperf"}
    assert {s["mode"] for s in flagged} & {"off", "off-aa"}
    for s in flagged:
        assert s["unit"] == "instructions" and abs(s["step"]) > s["threshold"] > 0
        # the split separates the cells measured before the hog from those after
        orders = [c["order"] for c in s["cells"]]
        assert all(o >= hog_at for o in orders) or all(o < hog_at for o in orders), (hog_at, s)
    assert "step check FAILED (pyperf, off" in output

    r = CliRunner().invoke(cli, ["report", str(out), "--out", str(tmp_path / "report")])
    assert r.exit_code == 0, r.output
    report = (tmp_path / "report" / "report.md").read_text()
    assert "step check FAILED (pyperf, off" in report
    assert leftovers(lab_target) == []
