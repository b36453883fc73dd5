"""Statistics for per-call costs.

The unit of replication is the pyperf worker process: values inside one
worker share its warm caches, its loop count and its CPU, so they are not
independent.  Each worker's values are averaged first; a mode's per-call
figure is the mean of its workers' means, pooled over rounds; its 95%
confidence interval is a BCa bootstrap of that mean.  The overhead of a mode
is the difference of its mean and off's, with a two-sample BCa bootstrap
(each sample resampled on its own).  Bootstraps are seeded, so a bundle
always yields the same intervals.
"""
import math

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 10_000
SEED = 20261126

METHOD_TEXT = (
    "per-worker means (ns per call) pooled over rounds; value = mean of worker means; "
    f"{int(CONFIDENCE * 100)}% CI = BCa bootstrap ({RESAMPLES} resamples, seed {SEED}); "
    "overhead = mean(mode) - mean(off) with a two-sample BCa bootstrap CI"
)


def worker_means_ns(pyperf_json_path):
    """Mean of each worker's values, in ns, read with pyperf's own loader."""
    import pyperf

    bench = pyperf.Benchmark.load(str(pyperf_json_path))
    means = []
    for run in bench.get_runs():
        if run.values:  # calibration runs carry warmups only
            means.append(float(np.mean(run.values)) * 1e9)
    return means, sum(len(r.values) for r in bench.get_runs())


def _ci(result):
    lo, hi = result.confidence_interval
    return float(lo), float(hi)


def _bootstrap(samples, statistic):
    if any(len(s) < 2 for s in samples):
        return math.nan, math.nan
    arrays = tuple(np.asarray(s, dtype=float) for s in samples)
    if all(np.ptp(a) == 0 for a in arrays):
        v = statistic(*arrays)
        return float(v), float(v)
    for method in ("BCa", "percentile"):
        res = stats.bootstrap(arrays, statistic, confidence_level=CONFIDENCE,
                              n_resamples=RESAMPLES, method=method, vectorized=True,
                              random_state=np.random.default_rng(SEED))
        lo, hi = _ci(res)
        if not (math.isnan(lo) or math.isnan(hi)):
            return lo, hi
    return math.nan, math.nan


def mean_ci(sample):
    """(mean, ci_low, ci_high) of a 1-D sample."""
    mean = float(np.mean(sample)) if len(sample) else math.nan
    lo, hi = _bootstrap([sample], lambda a, axis=-1: np.mean(a, axis=axis))
    return mean, lo, hi


def diff_ci(a, b):
    """(mean(a) - mean(b), ci_low, ci_high)."""
    diff = float(np.mean(a) - np.mean(b))
    lo, hi = _bootstrap([a, b], lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis))
    return diff, lo, hi


def summarize(samples_by_mode, workload, method, baseline="off"):
    """Result rows from {mode: [worker means in ns]}.

    One row per (mode, metric): per_call_ns for every mode, overhead_ns for
    every mode but the baseline.  Each row: mode, workload, method, metric,
    value, unit, ci_low, ci_high, n, ci_method.
    """
    rows = []
    for mode, sample in samples_by_mode.items():
        v, lo, hi = mean_ci(sample)
        rows.append(dict(mode=mode, workload=workload, method=method, metric="per_call_ns",
                         value=v, unit="ns", ci_low=lo, ci_high=hi, n=len(sample),
                         ci_method=METHOD_TEXT))
    base = samples_by_mode.get(baseline)
    if base:
        for mode, sample in samples_by_mode.items():
            if mode == baseline:
                continue
            v, lo, hi = diff_ci(sample, base)
            rows.append(dict(mode=mode, workload=workload, method=method, metric="overhead_ns",
                             value=v, unit="ns", ci_low=lo, ci_high=hi, n=len(sample),
                             ci_method=METHOD_TEXT))
    return rows


def excludes_zero(row):
    return row["ci_low"] > 0 or row["ci_high"] < 0
