"""The step check: a level that moved between the cells of one mode.

Why a check of its own.  Overheads are paired by round (mode - off in the
same round), which cancels drift shared by a whole round, not a change of
level that falls inside a round: measured before the change, one round's
cell of a mode reads low while that round's off cell, measured after it,
does not, and that round's paired difference carries the whole step.  The
A/A cannot see it either: off-aa and off of one round usually sit on the
same side of the change, so a step confined to one round ([80, 0, 0, 0, 0])
passes it.  The published icount bundles had exactly that (issue 12): every
pyperf worker of the first 2-9 cells read ~80 instructions per call lower
than the same mode later in the run.

The statistic, per (method, workload, mode), on the mode's cells in the
order they were measured (one per round, so across rounds and in run order
at once):

- every contiguous run S of cells that is not all of them (one round, a
  prefix = a change point early in the run, a suffix = one late in it, a
  stretch in the middle = a transient) splits the cells into S and the
  rest; step(S) = mean of S's cell figures - mean of the rest's (a segment,
  or "epidemic", change-point statistic: a single change point is the
  prefix/suffix case, a one-round step the single-cell case);
- its noise is what the cells themselves say: the pooled within-cell
  variance s^2 of the raw samples (pyperf worker means, kernel and bpf runs:
  the very samples a cell figure averages), df = samples - cells, so
  se(S) = s * sqrt(sum over S of 1/n_i / |S|^2 + the same over the rest);
- the step is flagged when |step(S)| > threshold(S) = max(t * se(S),
  LEVEL_FRACTION * |level|, UNIT_FLOOR), t the Student quantile at
  ALPHA / (2 * number of splits) with df (Bonferroni over the splits tried:
  the statistic is a maximum), level the median of the mode's cell figures;
- the split reported is the one with the largest |step| / threshold.

Why the two floors.  Under icount a cell's workers often agree exactly
(spread ~0), so t * se alone would call any difference between two cells a
step; yet the harness makes the level of a mode wobble from cell to cell by a
few instructions (the bpf bundle's off-probe reads 2,807.5 in one round and
2,810.6 in another, each with a spread of 0.01; the A/A of the full-matrix
bpf run came out -0.8 [-1.3, -0.4] instructions).  In the published icount
bundles that wobble stays below 0.5% of the level (function-all: up to
~0.45% of 5,100 instructions with wide cells; off: ~0.2%), while the step of
issue 12 is 1.4-14% of it.  So a step must exceed 0.5% of the level, and at
least 1 unit (1 instruction, 1 ns): below that the kernel method's 13
instruction cells would make a tenth of an instruction a step.  Under a wall
clock the within-cell spread usually sets the threshold; the floor only
matters when it is tiny.  A step smaller than the threshold can still bias a
figure; the check reports the largest split of every mode with its threshold
so that a reader can judge.

Only the cells' raw samples and run order are used, so the check recomputes
from any bundle (bench run records it in checks.steps; reports compute it
from the cells).  Guest uptime, where a raw file records it (pyperf keeps
each worker's uptime), places a step in time; other cells are placed by run
order and bracketed by the nearest cells that know their uptime.
"""
import json
import math

import numpy as np
from scipy import stats as sstats

from remote.protocol.kmod import ops_label

from .load import cell_values, mode_key, ops_point
from .units import bundle_unit

ALPHA = 0.001
LEVEL_FRACTION = 0.005
UNIT_FLOOR = 1.0

METHOD_TEXT = (
    "step check: per method and mode, every contiguous run of the mode's cells in run order against the "
    "rest (a change point, a one-round step, a transient); step = mean of the run's cell figures - mean of "
    "the rest's; flagged when |step| > max(t x se, 0.5% of the mode's median cell figure, 1 unit), se from "
    "the pooled within-cell spread of the raw samples (worker means, runs), t = Student quantile at "
    f"{ALPHA:g}/(2 x splits tried)")


def _t_crit(df, splits):
    return float(sstats.t.ppf(1 - ALPHA / (2 * splits), df))


def find_step(cells):
    """The largest step among one mode's cells.

    cells: in run order, each {"values": [raw samples], ...}.  Returns a dict: n_cells, level
    (median cell figure), spread (pooled within-cell sd, None without df),
    df, step, segment (indices into cells), threshold, threshold_by ("spread",
    "level" or "unit"), z (|step| / se, None when se is 0 or unknown),
    flagged (True/False; None with fewer than two cells or no within-cell
    degrees of freedom: nothing to judge a step against)."""
    figures = np.array([float(np.mean(c["values"])) for c in cells])
    ns = np.array([len(c["values"]) for c in cells], dtype=float)
    k = len(cells)
    out = {"n_cells": k, "level": float(np.median(figures)) if k else math.nan, "spread": None,
           "df": 0, "step": None, "segment": [], "segment_level": None, "rest_level": None,
           "threshold": None, "threshold_by": None, "z": None, "critical_t": None, "flagged": None}
    if k < 2:
        return out
    df = int(ns.sum()) - k
    out["df"] = df
    if df < 1:
        return out  # one sample per cell: no within-cell spread to judge a step against
    ss = sum(float(np.sum((np.asarray(c["values"], dtype=float) - f) ** 2)) for c, f in zip(cells, figures))
    s = math.sqrt(ss / df)
    out["spread"] = s
    # Splits: contiguous runs [a, b) that are not all cells; a prefix and the
    # suffix after it are the same split (kept once, as the shorter side,
    # the earlier one when both are as long).
    segs = []
    for a in range(k):
        for b in range(a + 1, k + 1):
            if b - a == k:
                continue
            if a > 0 and b == k and (k - a) >= a:
                continue  # the suffix [a, k) is the complement of a prefix [0, a) no longer
            if a == 0 and b < k and b > k - b:
                continue  # the prefix [0, b) is the complement of the shorter suffix [b, k)
            segs.append((a, b))
    floor_level = LEVEL_FRACTION * abs(out["level"])
    floor = max(floor_level, UNIT_FLOOR)
    t = _t_crit(df, len(segs))
    out["critical_t"] = t
    best = None
    for a, b in segs:
        inside = np.zeros(k, dtype=bool)
        inside[a:b] = True
        m_in, m_out = float(figures[inside].mean()), float(figures[~inside].mean())
        step = m_in - m_out
        se = s * math.sqrt(float(np.sum(1 / ns[inside])) / inside.sum() ** 2
                           + float(np.sum(1 / ns[~inside])) / (~inside).sum() ** 2)
        threshold = max(t * se, floor)
        by = "spread" if t * se >= floor else ("level" if floor_level >= UNIT_FLOOR else "unit")
        score = abs(step) / threshold
        key = (score, -(b - a), -a)
        if best is None or key > best[0]:
            best = (key, dict(step=step, segment=list(range(a, b)), segment_level=m_in, rest_level=m_out,
                              threshold=threshold, threshold_by=by, z=abs(step) / se if se > 0 else None,
                              flagged=abs(step) > threshold))
    out.update(best[1])
    return out


# -- from a bundle -----------------------------------------------------------------

def _uptime(path):
    """(first, last) guest uptime in s of a pyperf cell's measured workers,
    from pyperf's per-run metadata; None when the file does not say."""
    try:
        with open(path) as f:
            raw = json.load(f)
        ups = [r["metadata"]["uptime"] for b in raw["benchmarks"] for r in b["runs"]
               if r.get("values") and "uptime" in (r.get("metadata") or {})]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [float(min(ups)), float(max(ups))] if ups else None


def bundle_cells(bundle):
    """Every ok cell of a bundle with a figure, in run order: id, round, mode,
    workload, method, order (0-based position in the plan's order), values
    (raw samples, the clock's unit) and uptime_s ([first, last] or None)."""
    order = {cid: k for k, cid in enumerate((bundle.data.get("plan") or {}).get("order") or [])}
    out = []
    for k, cell in enumerate(bundle.data.get("cells") or []):
        if cell.get("status") != "ok":
            continue
        values = cell_values(bundle, cell)
        if not values:
            continue
        up = _uptime(bundle.path / cell["file"]) if cell.get("method") == "pyperf" and cell.get("file") else None
        out.append({"id": cell.get("id"), "round": cell.get("round"), "mode": cell.get("mode"),
                    "workload": cell.get("workload"), "method": cell.get("method"),
                    "order": order.get(cell.get("id"), k), "values": values, "uptime_s": up,
                    "session": cell.get("session", 0), "ops": ops_point(cell)})
    return sorted(out, key=lambda c: c["order"])


def _edge(before, after, everything):
    """Where the level changed between two cells of a mode adjacent in run
    order: their positions, and the guest uptime bracket (the earlier
    cell's last known uptime, or the latest of any cell measured before it;
    the later cell's first, or the earliest of any cell measured after it).
    Uptimes count from one boot: across the sessions of a resumed run (a
    reboot is allowed between them) only cells of the same session bracket."""
    def known(c, session):
        return c["uptime_s"] and c["session"] == session

    lo = before["uptime_s"][1] if before["uptime_s"] else max(
        (c["uptime_s"][1] for c in everything if known(c, before["session"]) and c["order"] < before["order"]),
        default=None)
    hi = after["uptime_s"][0] if after["uptime_s"] else min(
        (c["uptime_s"][0] for c in everything if known(c, after["session"]) and c["order"] > after["order"]),
        default=None)
    if before["session"] != after["session"]:
        lo = hi = None  # two sessions, maybe two boots: their uptimes do not compare
    return {"after_order": before["order"], "before_order": after["order"], "uptime_s": [lo, hi]}


def step_check(bundle):
    """checks.steps of a bundle: one row per (method, workload, mode) with
    two or more cells (find_step's fields, plus method, workload, mode, unit,
    cells: the split's cells with id, round, order and uptime_s, and edges:
    where in run order and uptime the level changed), by method (the plan's
    order) and mode (the README's order, check modes last)."""
    unit = bundle_unit(bundle.data)
    everything = bundle_cells(bundle)
    n_total = len((bundle.data.get("plan") or {}).get("order") or []) or len(everything)
    groups = {}
    for c in everything:
        # (each ops point of a mode is a level of its own: bench/plan.py)
        groups.setdefault((c["method"], c["workload"], c["mode"], c["ops"]), []).append(c)
    methods = list((bundle.data.get("plan") or {}).get("methods") or [])
    rows = []
    for (method, workload, mode, point), cells in sorted(groups.items(), key=lambda kv: (
            methods.index(kv[0][0]) if kv[0][0] in methods else len(methods), kv[0][0], kv[0][1],
            mode_key(kv[0][2]), kv[0][3] or (0, 0))):
        if point:
            mode = f"{mode} at {ops_label(*point)} ops"
        if len(cells) < 2:
            continue
        r = find_step(cells)
        seg = r.pop("segment")
        r["cells"] = [{k: cells[i][k] for k in ("id", "round", "order", "uptime_s")} for i in seg]
        edges = []
        if seg and seg[0] > 0:
            edges.append(_edge(cells[seg[0] - 1], cells[seg[0]], everything))
        if seg and seg[-1] < len(cells) - 1:
            edges.append(_edge(cells[seg[-1]], cells[seg[-1] + 1], everything))
        rows.append({"method": method, "workload": workload, "mode": mode, "unit": unit,
                     "n_run_cells": n_total, **r, "edges": edges})
    return rows


# -- in words -----------------------------------------------------------------------

def _num(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:,.1f}" if abs(v) >= 10 else f"{v:,.2f}" if abs(v) >= 0.1 else f"{v:.3f}"


def cells_text(r):
    """'round 0 (r00-..., run order 1 of 40, uptime 10-15 s)' for the split's cells."""
    n = r.get("n_run_cells")
    parts = []
    for c in r.get("cells") or []:
        up = c.get("uptime_s")
        parts.append(f"round {c.get('round')} ({c.get('id')}, run order {c.get('order', 0) + 1}"
                     + (f" of {n}" if n else "")
                     + (f", uptime {up[0]:.0f}-{up[1]:.0f} s" if up else "") + ")")
    return ", ".join(parts)


def _uptime_text(pair):
    lo, hi = pair or [None, None]
    if lo is None and hi is None:
        return ""
    return f", guest uptime {'?' if lo is None else f'{lo:.0f}'}-{'?' if hi is None else f'{hi:.0f}'} s"


def edges_text(r):
    """Where in run order (and guest uptime) the level changed."""
    return "; ".join(f"the level changed between run order {e['after_order'] + 1} and {e['before_order'] + 1}"
                     + _uptime_text(e.get("uptime_s")) for e in r.get("edges") or [])


def threshold_text(r):
    by = {"spread": "t x se from the within-cell spread", "level": f"{LEVEL_FRACTION:.1%} of the level",
          "unit": f"the {UNIT_FLOOR:g}-unit floor"}.get(r.get("threshold_by"), "?")
    return f"threshold {_num(r.get('threshold'))} {r.get('unit')} ({by})"


def flagged_line(r):
    """One sentence for a flagged step (terminal summary, report caveats)."""
    return (f"step check FAILED ({r['method']}, {r['mode']}): {_num(r['step'])} {r['unit']} per call in "
            f"{cells_text(r)} against the mode's other cells ({_num(r['segment_level'])} vs "
            f"{_num(r['rest_level'])}; {threshold_text(r)}); {edges_text(r)}.  Pairing by round does not "
            f"cancel a step inside a round: this mode's figures, and every difference paired with it by "
            f"round, cannot be trusted at that resolution")


def shared_shift(rows):
    """{method: {after_order, before_order, uptime_s, modes}} where two or
    more modes of a method flag a step at the start of the run (each a prefix
    of its cells: early cells at another level) or at its end, and their
    brackets overlap: one level shift for the whole method, placed between
    the last cell measured at the first level and the first at the second.
    Derived from the rows alone (not stored)."""
    out = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        for kind in ("start", "end"):
            got = []
            for r in rows:
                if r["method"] != method or not r.get("flagged") or len(r.get("edges") or []) != 1:
                    continue
                e, cells = r["edges"][0], r["cells"]
                if (kind == "start" and e["after_order"] == cells[-1]["order"]) or \
                        (kind == "end" and e["before_order"] == cells[0]["order"]):
                    got.append((r["mode"], e))
            if len(got) < 2:
                continue
            lo = max(e["after_order"] for _, e in got)
            hi = min(e["before_order"] for _, e in got)
            if lo >= hi:
                continue  # the modes' brackets do not overlap: not one shift
            ups_lo = [e["uptime_s"][0] for _, e in got if e["uptime_s"][0] is not None]
            ups_hi = [e["uptime_s"][1] for _, e in got if e["uptime_s"][1] is not None]
            out[method] = {"at": kind, "after_order": lo, "before_order": hi,
                           "uptime_s": [max(ups_lo) if ups_lo else None, min(ups_hi) if ups_hi else None],
                           "modes": [m for m, _ in got]}
    return out


def shift_line(method, s, n_run_cells=None):
    when = _uptime_text(s["uptime_s"])
    of = f" of {n_run_cells}" if n_run_cells else ""
    modes = ", ".join(s["modes"][:-1]) + " and " + s["modes"][-1]
    return (f"step check ({method}): {modes} each changed level once, {'early' if s['at'] == 'start' else 'late'}"
            f" in the run; together they place one shift between run order {s['after_order'] + 1} and "
            f"{s['before_order'] + 1}{of}{when}")


def check_lines(rows):
    """The step check in words: every flagged mode, one level shift shared by
    modes of a method, and for each method without a flag the largest split
    against its threshold (how large a step it could have missed).  Plain
    text; callers colour it."""
    out = []
    for r in rows:
        if r.get("flagged"):
            out.append(("fail", flagged_line(r)))
    n = next((r.get("n_run_cells") for r in rows), None)
    for method, s in shared_shift(rows).items():
        out.append(("fail", shift_line(method, s, n)))
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        if any(r.get("flagged") for r in mine):
            continue
        judged = [r for r in mine if r.get("flagged") is False]
        if not judged:
            out.append(("ok", f"step check ({method}): n/a (fewer than two cells per mode or one sample per cell)"))
            continue
        worst = max(judged, key=lambda r: abs(r["step"]) / r["threshold"])
        out.append(("ok", f"step check ({method}): no step across rounds or in run order in any mode; the "
                          f"largest, {worst['mode']} in {cells_text(worst)}, is {_num(worst['step'])} "
                          f"{worst['unit']} against a {threshold_text(worst)}"))
    return out
