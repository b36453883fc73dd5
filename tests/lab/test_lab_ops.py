"""The kernel method at ops points in the lab (issue 14, section 3): a small
sweep (two points, smoke profile, kernel method only) costs more with more
ops, gives a regs gain at each point, and each point's cells were proven
by tracefs with the ops counts they registered (6.1's enabled_functions
'(count)' on frb_tracee and, for irrelevant ops, on frb_idle)."""
import json

import pytest
from click.testing import CliRunner

from bench.cli import cli
from labtools import assert_same_tracefs, leftovers, module_loaded, read_tracefs

pytestmark = pytest.mark.lab


def test_a_two_point_sweep_rises_with_the_ops_and_tracefs_shows_their_counts(lab, lab_target, tmp_path):
    before = read_tracefs(lab_target)
    out = tmp_path / "ops"
    r = CliRunner().invoke(cli, ["run", "--host", "lab", "--profile", "smoke", "--methods", "kernel",
                                 "--modes", "off,noregs,regs", "--ops", "2", "--ops", "8,8",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "bundle.json").read_text())
    assert data["complete"] and data["format_version"] == 4 and data["plan"]["ops"] == [[2, 0], [8, 8]]

    # Every point's cell, before and after its timings: the counts it registered, R exactly for regs.
    points = [c for c in data["cells"] if c["mode"] in ("noregs", "regs")]
    assert sorted((c["mode"], c["ops"]["relevant"], c["ops"]["irrelevant"]) for c in points) == sorted(
        (m, rel, irr) for m in ("noregs", "regs") for rel, irr in ((2, 0), (8, 8)) for _ in range(2))
    for c in points:
        rel, irr = c["ops"]["relevant"], c["ops"]["irrelevant"]
        for when in ("before", "after"):
            v = c["tracefs"][when]
            assert v["target_count"] == rel and v["target_module"] == "ftrace_regs_bench", (c["id"], v)
            assert v["enabled_functions_count"] == (2 if irr else 1), (c["id"], v)
            assert v["idle_count"] == (irr or None), (c["id"], v)
            assert ("R" in v["target_flags"]) == (c["mode"] == "regs"), (c["id"], v)
            if irr:
                assert ("R" in v["idle_flags"]) == (c["mode"] == "regs"), (c["id"], v)

    rows = {(r["mode"], r["metric"], (r.get("ops") or {}).get("relevant")): r["value"]
            for r in data["results"]}
    for mode in ("noregs", "regs"):
        # 6 more ops on the tracee and 8 on the list: each call walks them all (no CALL_OPS in 6.1)
        assert rows[(mode, "per_call", 8)] > rows[(mode, "per_call", 2)] + 300 > rows[("off", "per_call", None)]
    for rel in (2, 8):
        # the regs caller's nine extra stores, whatever the ops count (icount)
        assert 8 < rows[("regs", "regs_gain", rel)] < 10, rows
    assert not module_loaded(lab_target)
    assert_same_tracefs(before, read_tracefs(lab_target))
    assert leftovers(lab_target) == []
