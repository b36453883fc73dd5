"""Statistics for per-call costs.

The unit of replication is the round.  Measured in the icount lab, the
workers of one cell agree to a fraction of a nanosecond while two cells of
the same mode in different rounds can differ by ~10% (the kernel's state
moves between cells), so treating workers as independent would give
confidence intervals far too narrow.  Hence:

- a cell's figure is the mean of its pyperf workers' means (each worker's
  values averaged first: they share one process, one loop count);
- per_call of a mode = mean of its cell figures over rounds, 95% CI from
  Student's t on those cell figures (n = rounds);
- overhead of a mode = mean over rounds of (cell figure of the mode - cell
  figure of off in the same round), 95% CI from Student's t on those paired
  differences (n = rounds).  Pairing by round cancels drift of the machine
  that the interleaved order spreads over all modes.

- regs_gain = mean over rounds of (regs - noregs in the same round): the
  cost of saving a complete pt_regs, everything else equal.

- kernel and bpf: a cell's runs take the place of pyperf's worker means
  (each method reads its raw files: analysis/methods/).

Figures are in the unit of the clock they were read from (analysis/units.py):
ns, or instructions under icount; each row says which, and metric names
carry no unit.

Checks on the result rows (bundle.data["checks"]):
- aa: the overhead of mode off-aa (off measured twice per round) per method;
  a CI that excludes 0 means the run cannot be trusted;
- probe_cost: the overhead of off-probe (pyperf with the bpf probes on);
- method_agreement: every pair of methods with a figure for the same
  overhead or regs gain; they disagree when their CIs do not overlap.

With fewer than two rounds there is no interval (NaN, stored as null).
Every round giving the same figure (icount counts exactly) is "exact": the
interval has zero width and no test applies (is_exact).
"""
import math

import numpy as np
from scipy import stats

from . import methods
from .units import RATIO_UNITS

CONFIDENCE = 0.95

METHOD_TEXT = (
    "cell figure = mean of pyperf worker means; per_call = mean of cell figures over rounds, "
    f"{int(CONFIDENCE * 100)}% CI = Student t on cell figures (n = rounds); overhead = mean over "
    "rounds of (mode - off) in the same round, CI = Student t on those paired differences"
)


GAIN_TEXT = ("regs_gain = mean over rounds of (regs - noregs in the same round), "
             f"{int(CONFIDENCE * 100)}% CI = Student t on those paired differences")


def cell_means_ns(path, method):
    """A cell's raw file read by its method: (per-worker or per-run means in
    the clock's ns, how many values they average)."""
    return methods.get(method).read(path)


def t_interval(sample):
    """(mean, ci_low, ci_high) with Student's t; NaN bounds for n < 2."""
    a = np.asarray(sample, dtype=float)
    n = len(a)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(a.mean())
    if n < 2:
        return mean, math.nan, math.nan
    sem = float(a.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sem
    return mean, mean - half, mean + half


def cell_figure(worker_means):
    return float(np.mean(worker_means))


def summarize(cells, workload, method, baseline="off", unit="ns"):
    """Result rows from {mode: {round: [worker means]}}, the means in the
    clock's unit (`unit`: ns, or instructions under icount).

    One row per (mode, metric): per_call for every mode, overhead for
    every mode but the baseline, regs_gain with regs and noregs.  Each row:
    mode, workload, method, metric, value, unit, ci_low, ci_high, n
    (rounds), n_workers, ci_method.
    """
    rows = []
    figures = {m: {r: cell_figure(w) for r, w in by_round.items() if w} for m, by_round in cells.items()}
    workers = {m: sum(len(w) for w in by_round.values()) for m, by_round in cells.items()}
    for mode, by_round in figures.items():
        v, lo, hi = t_interval(list(by_round.values()))
        rows.append(dict(mode=mode, workload=workload, method=method, metric="per_call",
                         value=v, unit=unit, ci_low=lo, ci_high=hi, n=len(by_round),
                         n_workers=workers[mode], ci_method=METHOD_TEXT))
    base = figures.get(baseline) if unit not in RATIO_UNITS else None
    if base:
        for mode, by_round in figures.items():
            if mode == baseline:
                continue
            diffs = [by_round[r] - base[r] for r in sorted(by_round) if r in base]
            v, lo, hi = t_interval(diffs)
            rows.append(dict(mode=mode, workload=workload, method=method, metric="overhead",
                             value=v, unit=unit, ci_low=lo, ci_high=hi, n=len(diffs),
                             n_workers=workers[mode], ci_method=METHOD_TEXT))
    if "regs" in figures and "noregs" in figures and unit not in RATIO_UNITS:
        # The headline: what saving a complete pt_regs costs per call.
        regs, noregs = figures["regs"], figures["noregs"]
        diffs = [regs[r] - noregs[r] for r in sorted(regs) if r in noregs]
        v, lo, hi = t_interval(diffs)
        rows.append(dict(mode="regs", workload=workload, method=method, metric="regs_gain",
                         value=v, unit=unit, ci_low=lo, ci_high=hi, n=len(diffs),
                         n_workers=workers["regs"], ci_method=GAIN_TEXT))
    return rows


def excludes_zero(row):
    lo, hi = row["ci_low"], row["ci_high"]
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return False
    return lo > 0 or hi < 0


# -- additions for analysis and reports ----------------------------------------
#
# A second interval next to Student's t: the percentile bootstrap makes no
# normality assumption, but with 5 rounds it is too narrow (it cannot reach
# beyond the sample's range), so reports show both and say so.  The p of a
# difference is the paired t test on the very differences the t interval is
# computed from (p < 0.05 exactly when that CI excludes 0): a test that
# ignored the pairing (Mann-Whitney on the two modes' figures, as earlier
# reports had) would not answer the question the paired CI answers.

BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 20261126

BOOTSTRAP_TEXT = (f"{int(CONFIDENCE * 100)}% percentile bootstrap of the mean over the same per-round "
                  f"figures ({BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED})")
PAIRED_T_TEXT = ("p of a difference = two-sided paired t test on the same paired differences as its t CI "
                 "(p < 0.05 exactly when that CI excludes 0); \"exact\" where every replication gave the "
                 "same figure, so that no interval or test applies")


def is_exact(sample):
    """Two or more values, all equal: nothing to estimate a spread from."""
    a = np.asarray(sample, dtype=float)
    return len(a) >= 2 and bool(np.all(a == a[0]))


def bootstrap_interval(sample, resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED):
    """(mean, ci_low, ci_high): percentile bootstrap of the mean, seeded so
    that a report regenerated from the same bundle says the same; NaN bounds
    for n < 2.  A constant sample gives a zero-width interval."""
    a = np.asarray(sample, dtype=float)
    n = len(a)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(a.mean())
    if n < 2:
        return mean, math.nan, math.nan
    if np.all(a == a[0]):
        return mean, mean, mean
    res = stats.bootstrap((a,), np.mean, n_resamples=resamples, confidence_level=CONFIDENCE,
                          method="percentile", random_state=np.random.default_rng(seed))
    return mean, float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_t_p(diffs):
    """Two-sided p of the one-sample t test of paired differences against 0;
    NaN below two differences or when they are all equal (is_exact)."""
    a = np.asarray(diffs, dtype=float)
    if len(a) < 2 or is_exact(a):
        return math.nan
    return float(stats.ttest_1samp(a, 0.0).pvalue)


def aa_pair_check(first, second):
    """The A/A check on raw pairs: two measurements of the same mode, paired by round,
    must show no difference.  Returns the paired difference's mean and t CI,
    the paired t test's p, n, exact (every pair differed by the same amount)
    and ok (the CI includes 0; None below two pairs)."""
    diffs = [x - y for x, y in zip(first, second)]
    v, lo, hi = t_interval(diffs)
    row = {"value": v, "ci_low": lo, "ci_high": hi, "n": len(diffs), "p": paired_t_p(diffs),
           "exact": is_exact(diffs)}
    row["ok"] = None if len(diffs) < 2 else not excludes_zero(row)
    return row


# -- the run's own checks (bundle.data["checks"]) --------------------------------

def _ci(row):
    return {k: row[k] for k in ("value", "ci_low", "ci_high", "n")}


def aa_check(rows, mode="off-aa"):
    """The run's A/A check from its result rows (aa_pair_check works on raw
    per-round pairs): {method: A/A difference (off-aa - off, paired by round)
    with its CI, its unit and whether it is significant (CI excludes 0: then
    nothing in the run is trustworthy at that resolution)}."""
    out = {}
    for r in rows:
        if r["mode"] == mode and r["metric"] == "overhead":
            out[r["method"]] = dict(_ci(r), unit=r["unit"], significant=excludes_zero(r))
    return out


def overlap(a, b):
    """Do two rows' CIs overlap?  None when either has no interval."""
    vals = (a["ci_low"], a["ci_high"], b["ci_low"], b["ci_high"])
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in vals):
        return None
    return a["ci_low"] <= b["ci_high"] and b["ci_low"] <= a["ci_high"]


def method_agreement(rows, skip_modes=("off-aa", "off-probe")):
    """Every pair of methods that measured the same overhead (same mode) or
    the regs gain in the same unit: their figures and whether their CIs
    overlap (cycles are never compared with ns)."""
    by_key = {}
    for r in rows:
        if r["metric"] in ("overhead", "regs_gain") and r["mode"] not in skip_modes:
            by_key.setdefault((r["metric"], r["mode"], r.get("unit")), {})[r["method"]] = r
    out = []
    for (metric, mode, unit), by_method in sorted(by_key.items(), key=lambda kv: tuple(map(str, kv[0]))):
        names = sorted(by_method)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                out.append({"metric": metric, "mode": mode, "methods": [a, b], "unit": unit,
                            a: _ci(by_method[a]), b: _ci(by_method[b]),
                            "agree": overlap(by_method[a], by_method[b])})
    return out


def disagreement_reason(metric, mode, names):
    """Why the two methods are known to measure different things for this
    figure (docs/method.md, "Checks in every run"; each method says what it
    knows: analysis/methods/), or None when nothing is known (then a
    disagreement is just that)."""
    for name in sorted(set(names)):
        # (a foreign bundle's method knows nothing; a counted series,
        # 'kernel/cycles', is its method's)
        method = methods.find(name.split("/")[0])
        reason = method.disagreement(metric, mode) if method else None
        if reason:
            return reason
    return None
