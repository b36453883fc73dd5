"""`bench compare` on the committed lab bundles (results/lab/), and the Welch
interval against scipy's own Welch test."""
import json
import math
import pathlib
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats as st

from analysis import compare
from analysis.bundle import Bundle
from bench.cli import EXIT_CODES, cli

RESULTS = pathlib.Path(__file__).parent.parent.parent / "results" / "lab"
ICOUNT = RESULTS.parent.parent / "tests" / "data" / "stepped" / "debian-6.1-icount-standard"  # as first published
TCG = RESULTS / "debian-6.1-tcg-quick"


def test_a_bundle_against_itself_differs_by_nothing():
    res = compare.compare(ICOUNT, ICOUNT)
    assert res["unit"] == "instructions"
    cells = {(r["method"], r["mode"], r["metric"]) for r in res["rows"]}
    assert ("kernel", "regs", "regs_gain") in cells
    assert ("pyperf", "function-all", "overhead") in cells
    for r in res["rows"]:
        assert r["diff"] == pytest.approx(0, abs=1e-9)
        assert not r["significant"]
        assert r["n_a"] == r["n_b"] == 5


def test_figures_match_the_bundles_own_results():
    """The per-round figures recomputed from the raw files give back the
    bundle's own means and CIs (same method as summarize_bundle)."""
    res = compare.compare(ICOUNT, ICOUNT)
    own = {(r["method"], r["mode"], r["metric"]): r for r in Bundle.load(ICOUNT).data["results"]}
    for r in res["rows"]:
        o = own[(r["method"], r["mode"], r["metric"])]
        assert r["a"] == pytest.approx(o["value"], rel=1e-9)
        assert r["a_ci"][0] == pytest.approx(o["ci_low"], rel=1e-9)


def test_welch_interval_agrees_with_scipys_welch_test():
    rng = np.random.default_rng(7)
    for shift in (0.0, 0.5, 3.0):
        a, b = rng.normal(100, 1, 5), rng.normal(100 + shift, 2, 6)
        d, lo, hi = compare.welch(a, b)
        p = st.ttest_ind(b, a, equal_var=False).pvalue
        assert d == pytest.approx(b.mean() - a.mean())
        assert (lo > 0 or hi < 0) == (p < 0.05), (shift, lo, hi, p)
    assert all(math.isnan(x) for x in compare.welch([1.0], [2.0, 3.0])[1:])


def test_a_shifted_copy_is_significant(tmp_path):
    """B = A with every kernel cell's runs 5 ns slower: kernel per-call
    differences of +5 with a CI excluding 0; overheads and gains unchanged."""
    b = tmp_path / "b"
    shutil.copytree(ICOUNT, b)
    for f in (b / "kernel").glob("*.json"):
        d = json.loads(f.read_text())
        for run in d["runs"]:
            run["total_ns"] += 5 * run["calls"]
        f.write_text(json.dumps(d))
    res = compare.compare(ICOUNT, b)
    by = {(r["method"], r["mode"], r["metric"]): r for r in res["rows"]}
    assert by[("kernel", "noregs", "per_call")]["diff"] == pytest.approx(5, abs=1e-6)
    assert by[("kernel", "noregs", "per_call")]["significant"]
    assert by[("kernel", "regs", "regs_gain")]["diff"] == pytest.approx(0, abs=1e-6)
    assert not by[("pyperf", "off", "per_call")]["significant"]


def test_cells_only_one_bundle_has_are_listed(tmp_path):
    b = tmp_path / "b"
    shutil.copytree(ICOUNT, b)
    data = json.loads((b / "bundle.json").read_text())
    data["cells"] = [c for c in data["cells"] if c["mode"] != "regs"]
    (b / "bundle.json").write_text(json.dumps(data))
    res = compare.compare(ICOUNT, b)
    only = {(o["method"], o["mode"], o["metric"], o["in"]) for o in res["only_in_one"]}
    assert ("kernel", "regs", "regs_gain", "A") in only
    assert all(r["mode"] != "regs" for r in res["rows"])


def test_bundles_measured_differently_are_refused():
    r = CliRunner().invoke(cli, ["compare", str(ICOUNT), str(TCG)])
    assert r.exit_code == EXIT_CODES["bundle"][0]
    assert "measured differently" in r.output and "icount" in r.output


def test_cli_prints_both_figures_the_difference_and_significance():
    r = CliRunner().invoke(cli, ["compare", str(ICOUNT), str(ICOUNT)])
    assert r.exit_code == 0, r.output
    assert "B - A" in r.output and "significant" in r.output
    assert "instruction counts" in r.output and "emulated" in r.output
    r = CliRunner().invoke(cli, ["compare", "--json", str(ICOUNT), str(ICOUNT)])
    assert json.loads(r.output)["rows"]
