"""Known answers for the statistics (seeded synthetic samples)."""
import numpy as np

from analysis import stats


def test_known_difference_is_found_and_aa_is_not():
    rng = np.random.default_rng(1)
    off = rng.normal(1000.0, 5.0, 40)
    on = rng.normal(1030.0, 5.0, 40)
    again = rng.normal(1000.0, 5.0, 40)
    rows = stats.summarize({"off": list(off), "function": list(on), "function-again": list(again)},
                           "getppid", "pyperf")
    by = {(r["mode"], r["metric"]): r for r in rows}
    d = by[("function", "overhead_ns")]
    assert d["ci_low"] < 30 < d["ci_high"] and stats.excludes_zero(d)
    aa = by[("function-again", "overhead_ns")]
    assert not stats.excludes_zero(aa), "A/A must come out as no difference"
    per = by[("off", "per_call_ns")]
    assert per["ci_low"] < 1000 < per["ci_high"] and per["n"] == 40


def test_intervals_are_reproducible():
    rng = np.random.default_rng(2)
    a, b = list(rng.normal(10, 1, 12)), list(rng.normal(11, 1, 12))
    assert stats.diff_ci(b, a) == stats.diff_ci(b, a)


def test_degenerate_samples_do_not_crash():
    v, lo, hi = stats.mean_ci([5.0, 5.0, 5.0])
    assert v == lo == hi == 5.0
    v, lo, hi = stats.mean_ci([5.0])
    assert v == 5.0 and np.isnan(lo)
