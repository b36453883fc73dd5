"""Known answers for the statistics (seeded synthetic samples)."""
import math

import numpy as np

from analysis import stats


def cells(rng, level, rounds=6, workers=4, shift=None, noise=2.0):
    shift = shift if shift is not None else [0.0] * rounds
    return {r: list(rng.normal(level + shift[r], noise, workers)) for r in range(rounds)}


def test_known_difference_is_found_and_aa_is_not():
    rng = np.random.default_rng(1)
    # A shift shared by all modes of a round (drift) must cancel in overheads.
    drift = list(rng.normal(0, 50, 6))
    data = {"off": cells(rng, 1000, shift=drift), "function": cells(rng, 1030, shift=drift),
            "off-again": cells(rng, 1000, shift=drift)}
    rows = stats.summarize(data, "getppid", "pyperf")
    by = {(r["mode"], r["metric"]): r for r in rows}
    d = by[("function", "overhead")]
    assert d["ci_low"] < 30 < d["ci_high"] and stats.excludes_zero(d)
    assert d["ci_high"] - d["ci_low"] < 10, "pairing by round must remove the drift"
    aa = by[("off-again", "overhead")]
    assert not stats.excludes_zero(aa), "A/A must come out as no difference"
    per = by[("off", "per_call")]
    assert per["n"] == 6 and per["n_workers"] == 24
    assert per["ci_high"] - per["ci_low"] > 50, "per-call CI must carry the between-round spread"


def test_t_interval_known_values():
    # mean 2, sd 1, n 3: half width = t(0.975, 2) * 1/sqrt(3) = 4.302653 * 0.577350
    m, lo, hi = stats.t_interval([1.0, 2.0, 3.0])
    assert m == 2.0 and math.isclose(hi - m, 4.302653 / math.sqrt(3), rel_tol=1e-5)


def test_degenerate_samples():
    m, lo, hi = stats.t_interval([5.0])
    assert m == 5.0 and math.isnan(lo) and math.isnan(hi)
    assert not stats.excludes_zero({"ci_low": math.nan, "ci_high": math.nan})
    assert not stats.excludes_zero({"ci_low": None, "ci_high": None})


def test_regs_gain_is_paired_with_noregs():
    rng = np.random.default_rng(3)
    drift = list(rng.normal(0, 40, 5))
    data = {"off": cells(rng, 700, rounds=5, shift=drift),
            "noregs": cells(rng, 900, rounds=5, shift=drift),
            "regs": cells(rng, 912, rounds=5, shift=drift)}
    gain = [r for r in stats.summarize(data, "getppid", "kernel") if r["metric"] == "regs_gain"]
    assert len(gain) == 1 and gain[0]["mode"] == "regs"
    assert gain[0]["ci_low"] < 12 < gain[0]["ci_high"] and stats.excludes_zero(gain[0])


def row(mode, method, value, lo, hi, metric="overhead", n=4):
    return dict(mode=mode, method=method, metric=metric, value=value, ci_low=lo, ci_high=hi, n=n,
                workload="getppid", unit="ns")


def test_aa_check_flags_a_significant_difference_only():
    rows = [row("off-aa", "pyperf", 0.1, -3.4, 3.5), row("off-aa", "bpf", 5.0, 2.0, 8.0),
            row("function", "pyperf", 500, 450, 550)]
    aa = stats.aa_check(rows)
    assert set(aa) == {"pyperf", "bpf"}
    assert aa["pyperf"]["significant"] is False and aa["bpf"]["significant"] is True


def test_method_agreement_compares_pairs_with_a_figure_for_the_same_thing():
    rows = [row("function", "pyperf", 577, 513, 641), row("function", "bpf", 597.4, 597.3, 597.5),
            row("regs", "pyperf", 8.7, 7.2, 10.2, metric="regs_gain"),
            row("regs", "kernel", 9.0, 9.0, 9.01, metric="regs_gain"),
            row("regs", "bpf", 20.0, 18.0, 22.0, metric="regs_gain"),
            row("off-aa", "bpf", 0, -1, 1), row("off-aa", "pyperf", 9, 8, 10)]
    got = {(a["metric"], a["mode"], tuple(a["methods"])): a["agree"]
           for a in stats.method_agreement(rows)}
    assert got == {("overhead", "function", ("bpf", "pyperf")): True,
                   ("regs_gain", "regs", ("bpf", "kernel")): False,
                   ("regs_gain", "regs", ("bpf", "pyperf")): False,
                   ("regs_gain", "regs", ("kernel", "pyperf")): True}
    # no interval, no verdict
    assert stats.overlap(row("x", "a", 1, None, None), row("x", "b", 1, 0, 2)) is None


def test_bpf_cells_are_sum_over_count_per_run(tmp_path):
    import json

    p = tmp_path / "r00-off-getppid-bpf.json"
    p.write_text(json.dumps({"cell": "r00-off-getppid-bpf", "calls": 10007, "runs": [
        {"count": 10007, "sum_ns": 12870624}, {"count": 10007, "sum_ns": 12880000}]}))
    means, n = stats.cell_means_ns(p, "bpf")
    assert n == 2 and abs(means[0] - 12870624 / 10007) < 1e-9
