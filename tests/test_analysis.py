"""analysis/ on the committed real bundles: loading, pooling guard, the
added statistics (bootstrap, Mann-Whitney, A/A) with known answers."""
import json
import math

import numpy as np
import pytest

from analysis import stats
from analysis.load import cells_frame, check_poolable, load_bundles
from analysis.summary import aa_from_cells, summarize_cells, variant_table
from bench.errors import BundleError
from bundlecopy import ICOUNT, TCG, copy_bundle


def test_summary_from_cells_matches_what_bench_run_stored():
    # Known answer: recomputing from the cells gives the bundle's own rows.
    for path in (ICOUNT, TCG):
        b = load_bundles([path])[0]
        frame, notes = cells_frame([b], ["x"])
        assert not notes and len(frame) == len(b.data["cells"])
        s = summarize_cells(frame)
        got = {(r["method"], r["mode"], r["metric"]): r for _, r in s.iterrows()}
        for r in b.data["results"]:
            g = got[(r["method"], r["mode"], r["metric"])]
            assert math.isclose(g["value"], r["value"], rel_tol=1e-12)
            assert math.isclose(g["ci_low"], r["ci_low"], rel_tol=1e-9)
            assert math.isclose(g["ci_high"], r["ci_high"], rel_tol=1e-9)
            assert g["n"] == r["n"]
        assert len(got) == len(b.data["results"])


def test_icount_regs_gain_and_units():
    frame, _ = cells_frame(load_bundles([ICOUNT]), ["icount"])
    s = summarize_cells(frame)
    gain = s[(s["metric"] == "regs_gain_ns") & (s["method"] == "kernel")].iloc[0]
    assert 9.0 < gain["value"] < 9.02 and gain["unit"] == "instructions"
    assert gain["boot_low"] <= gain["value"] <= gain["boot_high"]
    # 5 rounds each, every regs figure above every noregs one: the smallest exact p.
    assert math.isclose(gain["p_mw"], 2 / 252, rel_tol=1e-9)
    paths = set(variant_table(s)["path"])
    assert paths == {"ftrace_caller (regs era)", "ftrace_regs_caller (regs era)"}


def test_pooling_different_setups_is_refused_naming_the_key(tmp_path):
    bundles = load_bundles([ICOUNT, TCG])
    frame, _ = cells_frame(bundles, ["a", "b"])
    with pytest.raises(BundleError, match=r"icount differs \(False vs True\)") as e:
        summarize_cells(frame, group_by=[])
    assert "--group-by icount" in str(e.value)
    s = summarize_cells(frame, group_by=["icount"])  # grouped by it: fine
    assert set(s["group"]) == {"icount=True", "icount=False"}

    edits = {"kernel_release": lambda d: d["facts"].update(kernel_release="6.1.0-99-fallback"),
             "ftrace_variant": lambda d: d["facts"].update(ftrace_variant="mcount"),
             "host": lambda d: d["host"].update(name="board"),
             "lab_smp": lambda d: d["facts"]["lab"].update(smp=2)}
    for key, edit in edits.items():
        other = copy_bundle(ICOUNT, tmp_path / key, edit)
        frame, _ = cells_frame(load_bundles([ICOUNT, other]), ["a", "b"])
        with pytest.raises(BundleError, match=f"{key} differs"):
            check_poolable(frame, [])
        check_poolable(frame, [key])


def test_pooling_one_setup_doubles_the_replications(tmp_path):
    copy = copy_bundle(ICOUNT, tmp_path / "copy")
    frame, _ = cells_frame(load_bundles([ICOUNT, copy]), ["a", "b"])
    with pytest.raises(BundleError, match="a and b hold the same run .* count its rounds twice"):
        summarize_cells(frame, group_by=[])
    summarize_cells(frame)  # each on its own: fine
    # The same data as if from a second run (another boot): pooled, n doubles.
    again = copy_bundle(ICOUNT, tmp_path / "again", lambda d: d["facts"].update(boot_id="another-boot"))
    frame, _ = cells_frame(load_bundles([ICOUNT, again]), ["a", "b"])
    s = summarize_cells(frame, group_by=[])
    row = s[(s["metric"] == "regs_gain_ns") & (s["method"] == "kernel")].iloc[0]
    assert row["n"] == 10 and row["bundles"] == "a, b"


def test_bootstrap_interval():
    sample = [9.006, 9.010, 9.008, 9.012, 9.009]
    m, lo, hi = stats.bootstrap_interval(sample)
    assert min(sample) <= lo < m < hi <= max(sample)
    assert stats.bootstrap_interval(sample) == (m, lo, hi), "seeded: the same every time"
    assert stats.bootstrap_interval([3.0, 3.0, 3.0]) == (3.0, 3.0, 3.0)
    assert math.isnan(stats.bootstrap_interval([1.0])[1])
    rng = np.random.default_rng(5)
    big = rng.normal(100, 10, 400)
    _, lo, hi = stats.bootstrap_interval(big)
    _, tlo, thi = stats.t_interval(big)
    assert abs(lo - tlo) < 0.5 and abs(hi - thi) < 0.5, "large normal sample: bootstrap ~ t"


def test_mann_whitney_known_values_and_unequal_sizes():
    r = stats.mann_whitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert r["u"] == 0 and math.isclose(r["p"], 2 / 252)
    r = stats.mann_whitney([1, 2, 3], [1.5, 2.5, 3.5, 0.5, 2.2, 2.8, 1.1])
    assert r["n_a"] == 3 and r["n_b"] == 7 and r["p"] > 0.5
    assert math.isnan(stats.mann_whitney([], [1.0])["p"])


def _with_repeats(tmp_path, delay_ns):
    """The icount bundle with a second off cell per round (pyperf): the real
    off cell of the next round, replayed, plus delay_ns."""
    def add(d):
        offs = {c["round"]: c for c in d["cells"] if c["mode"] == "off" and c["method"] == "pyperf"}
        n = len(offs)
        for r, c in offs.items():
            rep = dict(offs[(r + 1) % n], round=r, id=f"r{r:02d}-off-again")
            rep["worker_means_ns"] = [v + delay_ns for v in rep["worker_means_ns"]]
            d["cells"].append(rep)
    return copy_bundle(ICOUNT, tmp_path / f"aa-{delay_ns}", add)


def test_aa_check_passes_on_repeats_and_finds_a_deliberate_delay(tmp_path):
    frame, _ = cells_frame(load_bundles([_with_repeats(tmp_path, 0.0)]), ["aa"])
    aa = aa_from_cells(frame)
    assert len(aa) == 1 and aa.iloc[0]["mode"] == "off" and aa.iloc[0]["ok"] == True  # noqa: E712
    frame, _ = cells_frame(load_bundles([_with_repeats(tmp_path, 10.0)]), ["aa"])
    aa = aa_from_cells(frame)
    assert aa.iloc[0]["ok"] == False and 8 < aa.iloc[0]["value"] < 12  # noqa: E712
    # The repeats do not leak into the per-mode figures.
    s = summarize_cells(frame)
    assert s[(s["mode"] == "off") & (s["method"] == "pyperf")].iloc[0]["n"] == 5


def test_unknown_method_is_still_tabulated(tmp_path):
    def rename(d):
        for c in d["cells"]:
            if c["method"] == "kernel":
                c["method"] = "newfangled"
    b = copy_bundle(ICOUNT, tmp_path / "new", rename)
    frame, notes = cells_frame(load_bundles([b]), ["new"])
    s = summarize_cells(frame)
    assert not notes and "newfangled" in set(s["method"])


def test_cell_without_a_readable_figure_is_left_out_with_a_note(tmp_path):
    def foreign(d):
        c = dict(d["cells"][0], id="r00-off-foreign", method="foreign", file="foreign.json")
        c.pop("worker_means_ns")
        d["cells"].append(c)
    b = copy_bundle(ICOUNT, tmp_path / "f", foreign)
    (b / "foreign.json").write_text(json.dumps({"something": 1}))
    frame, notes = cells_frame(load_bundles([b]), ["f"])
    assert len(notes) == 1 and "r00-off-foreign" in notes[0] and "left out" in notes[0]


def test_truncated_bundles_are_refused(tmp_path):
    b = copy_bundle(ICOUNT, tmp_path / "t")
    (b / "pyperf" / "r02-off-getppid-pyperf.json").unlink()
    with pytest.raises(BundleError, match="r02-off-getppid-pyperf.json, which is missing: the bundle is truncated"):
        load_bundles([b])

    def no_cells(d):
        del d["cells"]
    b = copy_bundle(ICOUNT, tmp_path / "nc", no_cells)
    with pytest.raises(BundleError, match="no 'cells' section"):
        load_bundles([b])


def test_aa_from_cells_pairs_off_aa_with_off_as_bench_run_does():
    """off-aa (the second off of every round) is off's A/A twin: computed
    from the cells it matches what bench run recorded in checks.aa."""
    bundle = ICOUNT.parent / "debian-6.1-icount-bpf"
    frame, _ = cells_frame(load_bundles([bundle]), ["bpf"])
    aa = aa_from_cells(frame)
    assert set(aa["pair"]) == {"off-aa - off"} and set(aa["method"]) == {"pyperf", "kernel", "bpf"}
    recorded = json.loads((bundle / "bundle.json").read_text())["checks"]["aa"]
    for _, r in aa.iterrows():
        rec = recorded[r["method"]]
        assert math.isclose(r["value"], rec["value"], abs_tol=1e-9) and r["n"] == rec["n"] == 4
        assert math.isclose(r["ci_low"], rec["ci_low"], abs_tol=1e-9)
        assert r["ok"] == (not rec["significant"])
