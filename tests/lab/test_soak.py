"""A short soak (3 smoke runs in one process against the lab) leaves
nothing behind on either side; tests/perf/soak.py runs the full 30.

The kernel method, its module uploaded from the cache (lab_module) and
loaded and unloaded by every run: with pyperf the four runs took 196 CPU-s
of the lab's QEMU in a warm CI run (8295fac), most of it pyperf's imports
in the guest."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "perf"))


@pytest.mark.lab
def test_three_runs_leave_nothing_behind(lab, lab_module, full_run, tmp_path):
    """full_run: its runs in the background are this process's children while
    they last; the soak counts children, so it waits until they are over."""
    from soak import soak

    f = soak(3, out_root=tmp_path, profile="smoke", methods="kernel")
    c = f["controller"]
    assert f["ok"] == 3, f["codes"]
    assert f["target_leftovers"] == []
    assert c["fds"][1] <= c["fds"][0], c
    assert c["threads"][1] <= c["threads"][0], c
    assert c["children"] == [] and c["new_tmp"] == [], c
