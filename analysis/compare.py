"""Two bundles, cell by cell: both figures, their difference with a CI, and
whether it is significant, or "exact" where neither side varies.

Made for the same host booted with two kernels (fallback-6.1 against
regs-6.1), so the bundles are independent samples; the replication unit is
the round (analysis/stats.py), so each side's sample is its per-round
figures and the difference B - A gets a Welch interval (unequal variances,
Welch-Satterthwaite degrees of freedom).  The per-round figures are
recomputed from the raw files in the bundles, as summarize_bundle does:
  per_call   the round's cell figure of the mode;
  overhead   the round's (mode - off), paired within the bundle;
  regs_gain  the round's (regs - noregs), paired within the bundle.
When every round of both sides gives the same figure (icount counts some
paths exactly) there is no spread to build an interval or a test from: the
row says "exact" and its difference is simply B - A, with no CI and no
significance claimed.
Bundles measured differently (workload, profile, or accel/icount: an
instruction count is not a time) are refused; modes or methods that only
one bundle has (regs is skipped on a kernel without a regs caller) are
listed, not compared.
"""
import math

import numpy as np
from scipy import stats as st

from remote.protocol.errors import BenchError

from . import stats
from .bundle import Bundle
from .units import bundle_clock, unit_of_clock
from .load import mode_key

METRICS = ("per_call", "overhead", "regs_gain")
WELCH_TEXT = (f"difference = B - A of the per-round figures' means; {int(stats.CONFIDENCE * 100)}% CI "
              "= Welch t (unequal variances, Welch-Satterthwaite df), n = rounds per bundle; "
              "significant when the CI excludes 0; exact when neither bundle's figure varies over rounds "
              "(no CI, no significance: the difference is what it is)")


class CompareError(BenchError):
    kind = "bundle"


def round_figures(bundle):
    """{(workload, method): {mode: {round: cell figure}}} from the raw files,
    in the bundle's unit (analysis/units.py)."""
    out = {}
    for cell in bundle.data.get("cells", []):
        if cell.get("status") != "ok" or cell.get("ops"):
            continue  # (an ops point's cell is not its mode's own figure: the report's ops table has it)
        means, _ = stats.cell_means_ns(bundle.path / cell["file"], cell["method"])
        if means:
            out.setdefault((cell["workload"], cell["method"]), {}).setdefault(
                cell["mode"], {})[cell["round"]] = stats.cell_figure(means)
    return out


def metric_samples(by_mode):
    """{(mode, metric): [per-round figures]} for one (workload, method)."""
    out = {}
    off = by_mode.get("off", {})
    for mode, rounds in by_mode.items():
        out[(mode, "per_call")] = [rounds[r] for r in sorted(rounds)]
        if mode != "off" and off:
            out[(mode, "overhead")] = [rounds[r] - off[r] for r in sorted(rounds) if r in off]
    if "regs" in by_mode and "noregs" in by_mode:
        regs, noregs = by_mode["regs"], by_mode["noregs"]
        out[("regs", "regs_gain")] = [regs[r] - noregs[r] for r in sorted(regs) if r in noregs]
    return out


def welch(a, b):
    """(mean(b) - mean(a), ci_low, ci_high); NaN bounds if either has < 2 values."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = float(b.mean() - a.mean())
    if len(a) < 2 or len(b) < 2:
        return d, math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return d, d, d
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(st.t.ppf(0.5 + stats.CONFIDENCE / 2, df)) * se
    return d, d - half, d + half


def describe(bundle):
    d = bundle.data
    facts = d.get("facts") or {}
    lab = facts.get("lab") or {}
    return {"path": str(bundle.path), "host": d["host"]["name"],
            "kernel": lab.get("kernel") or facts.get("kernel_release"),
            "kernel_release": facts.get("kernel_release"),
            "ftrace_variant": facts.get("ftrace_variant"),
            "accel": lab.get("accel"), "icount": bool(lab.get("icount")), "clock": bundle_clock(d),
            "emulated": bool(lab.get("emulated")), "complete": d.get("complete")}


def _measured_alike(a, b):
    """Refuse what cannot be compared; say what differs and what to do."""
    pa, pb = a.data.get("plan") or {}, b.data.get("plan") or {}
    if not pa or not pb:
        raise CompareError("a bundle has no plan (nothing was measured)",
                           hint="compare bundles with results")
    problems = []
    if pa.get("workload") != pb.get("workload"):
        problems.append(f"workload {pa.get('workload')!r} vs {pb.get('workload')!r}")
    prof_a, prof_b = pa.get("profile") or {}, pb.get("profile") or {}
    keys = ("rounds", "processes", "values", "warmups", "min_time")
    if any(prof_a.get(k) != prof_b.get(k) for k in keys):
        problems.append(f"profile {prof_a.get('name')!r} vs {prof_b.get('name')!r}")
    da, db = describe(a), describe(b)
    if (da["accel"], da["icount"]) != (db["accel"], db["icount"]):
        what = lambda x: f"{x['accel'] or 'hardware'}{' icount' if x['icount'] else ''}"
        problems.append(f"measured under {what(da)} vs {what(db)}")
    if problems:
        raise CompareError("the bundles were measured differently: " + "; ".join(problems),
                           hint="compare bundles of one workload, profile and accel/icount")


def _order(cell):
    mode, metric = cell
    return (METRICS.index(metric), *mode_key(mode))


def compare(path_a, path_b):
    """The comparison as a dict: the two bundles, one row per shared
    (workload, method, mode, metric), and what only one side has."""
    a, b = Bundle.load(path_a), Bundle.load(path_b)
    _measured_alike(a, b)
    fa, fb = round_figures(a), round_figures(b)
    rows, only = [], []
    for key in sorted(set(fa) | set(fb), key=lambda k: (k[1] != "pyperf", k)):
        sa = metric_samples(fa.get(key, {}))
        sb = metric_samples(fb.get(key, {}))
        for cell in sorted(set(sa) | set(sb), key=_order):
            workload, method = key
            mode, metric = cell
            if cell not in sa or cell not in sb or not sa[cell] or not sb[cell]:
                only.append({"workload": workload, "method": method, "mode": mode, "metric": metric,
                             "in": "A" if cell in sa and sa[cell] else "B"})
                continue
            ma, la, ha = stats.t_interval(sa[cell])
            mb, lb, hb = stats.t_interval(sb[cell])
            d, dl, dh = welch(sa[cell], sb[cell])
            exact = stats.is_exact(sa[cell]) and stats.is_exact(sb[cell])
            rows.append({"workload": workload, "method": method, "mode": mode, "metric": metric,
                         "a": ma, "a_ci": [la, ha], "n_a": len(sa[cell]),
                         "b": mb, "b_ci": [lb, hb], "n_b": len(sb[cell]),
                         "diff": d, "diff_ci": [None, None] if exact else [dl, dh], "exact": exact,
                         # A zero-width interval is no evidence of anything: None, not yes/no.
                         "significant": None if exact else bool(not math.isnan(dl) and (dl > 0 or dh < 0))})
    da = describe(a)
    return {"a": da, "b": describe(b), "unit": unit_of_clock(da["clock"]), "clock": da["clock"], "rows": rows,
            "only_in_one": only, "method": WELCH_TEXT}
