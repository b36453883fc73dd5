"""analysis/ on the committed real bundles: loading, pooling guard, the
added statistics (bootstrap, Mann-Whitney, A/A) with known answers."""
import json
import math

import numpy as np
import pytest
from scipy import stats as st

from analysis import stats
from analysis.bundle import BundleError
from analysis.load import cells_frame, check_poolable, load_bundles
from analysis.summary import aa_from_cells, summarize_cells, variant_table
from bundlecopy import ICOUNT, LAB, TCG, copy_bundle


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
    gain = s[(s["metric"] == "regs_gain") & (s["method"] == "kernel")].iloc[0]
    assert 9.0 < gain["value"] < 9.02 and gain["unit"] == "instructions"
    assert gain["boot_low"] <= gain["value"] <= gain["boot_high"]
    # p is the paired t test on the very differences behind the t CI.
    k = frame[(frame["method"] == "kernel")]
    regs = k[k["mode"] == "regs"].set_index("round")["figure"]
    noregs = k[k["mode"] == "noregs"].set_index("round")["figure"]
    assert math.isclose(gain["p"], st.ttest_1samp(regs - noregs, 0).pvalue, rel_tol=1e-9)
    assert gain["p"] < 0.05 and gain["ci_over"] == "rounds" and gain["clock"] == "icount"
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


def test_pooling_two_runs_puts_the_ci_over_per_bundle_means(tmp_path):
    copy = copy_bundle(ICOUNT, tmp_path / "copy")
    frame, _ = cells_frame(load_bundles([ICOUNT, copy]), ["a", "b"])
    with pytest.raises(BundleError, match="a and b hold the same run .* count its rounds twice"):
        summarize_cells(frame, group_by=[])
    summarize_cells(frame)  # each on its own: fine
    # The same data as if from a second run (another boot): pooled, the
    # bundle is the replication unit; two equal bundle means leave no spread.
    again = copy_bundle(ICOUNT, tmp_path / "again", lambda d: d["facts"].update(boot_id="another-boot"))
    frame, _ = cells_frame(load_bundles([ICOUNT, again]), ["a", "b"])
    s = summarize_cells(frame, group_by=[])
    row = s[(s["metric"] == "regs_gain") & (s["method"] == "kernel")].iloc[0]
    assert row["bundles"] == "a, b" and row["ci_over"] == "bundles"
    assert (row["n"], row["n_bundles"], row["n_rounds"]) == (2, 2, 10)
    assert row["exact"] and row["ci_low"] == row["ci_high"] == pytest.approx(row["value"])


def test_pooled_ci_is_over_bundle_means_not_over_rounds(tmp_path):
    """A second boot 0.5 instructions slower on every kernel cell: the
    pooled regs gain is unchanged, but pooled per-call figures get the
    between-boot spread (t over two means, df 1), far wider than the
    rounds of either boot alone would give."""
    def slower(d):
        d["facts"]["boot_id"] = "another-boot"
        for c in d["cells"]:
            if c["method"] == "kernel":
                c["worker_means_ns"] = [v + 0.5 for v in c["worker_means_ns"]]
    again = copy_bundle(ICOUNT, tmp_path / "slower", slower)
    frame, _ = cells_frame(load_bundles([ICOUNT, again]), ["a", "b"])
    s = summarize_cells(frame, group_by=[])
    per = s[(s["metric"] == "per_call") & (s["method"] == "kernel") & (s["mode"] == "noregs")].iloc[0]
    alone = summarize_cells(frame)
    one = alone[(alone["metric"] == "per_call") & (alone["method"] == "kernel") & (alone["mode"] == "noregs")]
    means = list(one["value"])
    m, lo, hi = stats.t_interval(means)
    assert (per["value"], per["ci_low"], per["ci_high"]) == pytest.approx((m, lo, hi))
    assert per["ci_high"] - per["ci_low"] > 5 * (one["ci_high"] - one["ci_low"]).max()


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


def test_paired_t_p_agrees_with_the_paired_t_interval():
    rng = np.random.default_rng(11)
    for shift in (0.0, 0.4, 1.0, 3.0):
        diffs = rng.normal(shift, 1.0, 5)
        p = stats.paired_t_p(diffs)
        assert math.isclose(p, st.ttest_1samp(diffs, 0).pvalue)
        v, lo, hi = stats.t_interval(diffs)
        assert (p < 0.05) == stats.excludes_zero({"ci_low": lo, "ci_high": hi}), shift
    # No spread (icount counted the same every round) and one value: no test.
    assert math.isnan(stats.paired_t_p([9.0, 9.0, 9.0])) and stats.is_exact([9.0, 9.0, 9.0])
    assert math.isnan(stats.paired_t_p([1.0])) and not stats.is_exact([1.0])


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
    bundle = LAB / "debian-6.1-icount-bpf"
    frame, _ = cells_frame(load_bundles([bundle]), ["bpf"])
    aa = aa_from_cells(frame)
    assert set(aa["pair"]) == {"off-aa - off"} and set(aa["method"]) == {"pyperf", "kernel", "bpf"}
    recorded = json.loads((bundle / "bundle.json").read_text())["checks"]["aa"]
    for _, r in aa.iterrows():
        rec = recorded[r["method"]]
        assert math.isclose(r["value"], rec["value"], abs_tol=1e-9) and r["n"] == rec["n"] == 4
        assert math.isclose(r["ci_low"], rec["ci_low"], abs_tol=1e-9)
        assert r["ok"] == (not rec["significant"])
