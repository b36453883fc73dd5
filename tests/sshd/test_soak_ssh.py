"""Thirty runs over SSH against the loopback sshd leave nothing behind on
either side; tests/perf/soak.py runs the full 30."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "perf"))


@pytest.mark.sshd
def test_thirty_runs_over_ssh_leave_nothing_behind(sshd, tmp_path):
    """30 runs against bench-root (this machine over the real sshd).  Where
    the kernel is locked down each run stops at the preflight with exit 6,
    after the whole connect / ship / lock / agent / guardian / cleanup path;
    elsewhere they measure."""
    from soak import soak

    f = soak(30, host="bench-root", ssh_config=sshd.config_path, out_root=tmp_path)
    c = f["controller"]
    print(f"30 runs over sshd: codes {sorted(set(f['codes']))}, wall mean {f['wall_mean_s']:.2f} s "
          f"[{f['wall_ci_s'][0]:.2f}, {f['wall_ci_s'][1]:.2f}], fds {c['fds']}, threads {c['threads']}")
    assert set(f["codes"]) <= {0, 6}, f["codes"]
    assert f["target_leftovers"] == []
    assert c["fds"][1] <= c["fds"][0], c
    assert c["threads"][1] <= c["threads"][0], c
    assert c["children"] == [] and c["new_tmp"] == [], c
