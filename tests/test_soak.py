"""A short soak (3 quick runs in one process against the lab) leaves
nothing behind on either side; tests/perf/soak.py runs the full 30."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent / "perf"))

pytestmark = pytest.mark.lab


def test_three_runs_leave_nothing_behind(lab, tmp_path):
    from soak import soak

    f = soak(3, out_root=tmp_path)
    c = f["controller"]
    assert f["ok"] == 3, f["codes"]
    assert f["target_leftovers"] == []
    assert c["fds"][1] <= c["fds"][0], c
    assert c["threads"][1] <= c["threads"][0], c
    assert c["children"] == [] and c["new_tmp"] == [], c
