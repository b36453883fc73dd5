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
    d = by[("function", "overhead_ns")]
    assert d["ci_low"] < 30 < d["ci_high"] and stats.excludes_zero(d)
    assert d["ci_high"] - d["ci_low"] < 10, "pairing by round must remove the drift"
    aa = by[("off-again", "overhead_ns")]
    assert not stats.excludes_zero(aa), "A/A must come out as no difference"
    per = by[("off", "per_call_ns")]
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
    gain = [r for r in stats.summarize(data, "getppid", "kernel") if r["metric"] == "regs_gain_ns"]
    assert len(gain) == 1 and gain[0]["mode"] == "regs"
    assert gain[0]["ci_low"] < 12 < gain[0]["ci_high"] and stats.excludes_zero(gain[0])
