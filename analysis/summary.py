"""Figures with confidence intervals from a cells frame (load.cells_frame),
group by group.

The formulas are stats.summarize's (the round is the replication unit;
overheads and the regs gain are paired by round), applied to a frame so that
bundles of one setup can be pooled.  Pooled, the replication unit is the
bundle: each bundle is one boot's run, and two boots differ by more than two
rounds of one boot do (the kernel's layout, caches and allocator state are
set at boot), so treating every (bundle, round) pair as independent would
give an interval too narrow.  A group of two or more bundles therefore gets
its interval over per-bundle means (each bundle's mean over its rounds of
the figure or the paired difference), n = bundles; one bundle gets it over
rounds, n = rounds.  Every row carries both intervals (Student's t, as
bench run stores it, and the percentile bootstrap) and, for differences,
the paired t test's p; `ci_over` says which level the interval is over.
"""
import math

import pandas as pd

from remote.protocol import modes

from . import stats
from .load import SETUP_KEYS, check_poolable, mode_key
from .units import RATIO_UNITS

SUMMARY_COLUMNS = ["group", "bundles", *SETUP_KEYS, "workload", "method", "mode", "metric", "unit", "clock",
                   "value", "ci_low", "ci_high", "boot_low", "boot_high", "p", "exact", "n", "ci_over",
                   "n_rounds", "n_bundles", "n_workers"]

# arm64's ftrace variants, oldest first (bench/kernel.py): the order the
# entry paths are tabled in.
ERAS = ("mcount", "regs", "args", "call-ops", "direct-calls")


def entry_paths():
    """[(variant, mode, entry path)]: which entry path a traced call takes, by
    ftrace variant and mode, as the mode files declare it (docs/lab.md, "The
    eras of arm64 ftrace"): what the kernel-variant comparison puts side by
    side.  In era order, then mode order."""
    paths = [(v, m, label) for m in modes.names() for v, label in modes.get(m).entry_paths.items()]
    return sorted(paths, key=lambda p: (ERAS.index(p[0]) if p[0] in ERAS else len(ERAS), p[0],
                                        mode_key(p[1])))


def entry_path(variant, mode):
    return modes.get(mode).entry_paths.get(variant) if mode in modes.names() else None


def _groups(frame, group_by):
    if not group_by:
        yield "all bundles", frame
        return
    for key, g in frame.groupby(list(group_by), sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        if list(group_by) == ["bundle"]:
            yield str(key[0]), g
        else:
            yield ", ".join(f"{k}={v}" for k, v in zip(group_by, key)), g


def _row(base, mode, metric, by_replication, paired, n_workers=0):
    """One summary row from {(bundle, round): figure or paired difference}:
    the interval over rounds for one bundle, over per-bundle means for two
    or more (see the module's docstring)."""
    per_bundle = {}
    for (bundle, _), v in by_replication.items():
        per_bundle.setdefault(bundle, []).append(v)
    if len(per_bundle) >= 2:
        sample, over = [sum(v) / len(v) for v in per_bundle.values()], "bundles"
    else:
        sample, over = list(by_replication.values()), "rounds"
    v, lo, hi = stats.t_interval(sample)
    _, blo, bhi = stats.bootstrap_interval(sample)
    return {**base, "mode": mode, "metric": metric, "value": v, "ci_low": lo, "ci_high": hi,
            "boot_low": blo, "boot_high": bhi, "p": stats.paired_t_p(sample) if paired else math.nan,
            "exact": stats.is_exact(sample), "n": len(sample), "ci_over": over,
            "n_rounds": len(by_replication), "n_bundles": len(per_bundle), "n_workers": n_workers}


def summarize_cells(frame, group_by=("bundle",), baseline="off"):
    """Rows per (group, workload, method, mode, metric): per_call,
    overhead (mode - baseline, paired within a round) and regs_gain
    (regs - noregs, paired).  Refuses (BundleError naming the key) to pool
    cells whose setup differs within a group."""
    group_by = list(group_by)
    check_poolable(frame, group_by)
    if "ops" in frame.columns:
        # A kernel cell at an ops point is not its mode's own figure: ops_summary has it.
        frame = frame[frame["ops"].fillna("") == ""]
    rows = []
    for label, g in _groups(frame, group_by):
        setup = {k: g[k].iloc[0] for k in SETUP_KEYS}
        bundles = ", ".join(dict.fromkeys(g["bundle"]))
        first = g[g["occurrence"] == 0]
        for (workload, method), gm in first.groupby(["workload", "method"], sort=False):
            base = {"group": label, "bundles": bundles, **setup, "workload": workload, "method": method,
                    # One clock per group: icount is a setup key, checked above;
                    # the unit is the series' (a counted one: cycles, ...).
                    "unit": gm["unit"].iloc[0], "clock": g["clock"].iloc[0]}
            fig, workers = {}, {}
            for mode in sorted(gm["mode"].unique(), key=mode_key):
                gmm = gm[gm["mode"] == mode]
                fig[mode] = dict(zip(zip(gmm["bundle"], gmm["round"]), gmm["figure"]))
                workers[mode] = int(gmm["n_workers"].sum())
            for mode, by in fig.items():
                rows.append(_row(base, mode, "per_call", by, False, workers[mode]))
            if baseline in fig and base["unit"] not in RATIO_UNITS:
                off = fig[baseline]
                for mode, by in fig.items():
                    if mode == baseline:
                        continue
                    diffs = {r: by[r] - off[r] for r in by if r in off}
                    rows.append(_row(base, mode, "overhead", diffs, True, workers[mode]))
            if "regs" in fig and "noregs" in fig and base["unit"] not in RATIO_UNITS:
                regs, noregs = fig["regs"], fig["noregs"]
                diffs = {r: regs[r] - noregs[r] for r in regs if r in noregs}
                rows.append(_row(base, "regs", "regs_gain", diffs, True, workers["regs"]))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


# Check modes of bench run (bench/plan.py): not tracer modes.  off-aa is
# off measured a second time in every round, the A/A twin of off.
AA_TWINS = {"off-aa": "off"}
CHECK_MODE_LABELS = {"off-aa": "off-aa (A/A: second off)", "off-probe": "off-probe (probe cost)"}


def is_check_mode(mode):
    return mode in CHECK_MODE_LABELS


def mode_label(mode):
    """The mode as tables show it: check modes say what they are."""
    return CHECK_MODE_LABELS.get(mode, mode)


def aa_from_cells(frame, group_by=("bundle",)):
    """The A/A check from the cells: second - first, paired by round, for
    every pair of cells that measured the same thing twice in a round: the
    check mode off-aa against off (bench run's A/A), and any mode measured
    twice.  `pair` names the two modes.  Empty when there is neither."""
    rows = []
    for label, g in _groups(frame, list(group_by)):
        first = g[g["occurrence"] == 0]
        pairs = []
        for (workload, method, mode), rep in g[g["occurrence"] == 1].groupby(
                ["workload", "method", "mode"], sort=False):
            pairs.append((workload, method, mode, mode, rep))
        for twin, mode in AA_TWINS.items():
            for (workload, method), rep in first[first["mode"] == twin].groupby(["workload", "method"],
                                                                                sort=False):
                pairs.append((workload, method, mode, twin, rep))
        for workload, method, mode, second, rep in pairs:
            firsts = first[(first["workload"] == workload) & (first["method"] == method)
                           & (first["mode"] == mode)]
            a = dict(zip(zip(firsts["bundle"], firsts["round"]), firsts["figure"]))
            b = dict(zip(zip(rep["bundle"], rep["round"]), rep["figure"]))
            keys = [k for k in b if k in a]
            if not keys:
                continue
            res = stats.aa_pair_check([b[k] for k in keys], [a[k] for k in keys])
            pair = f"{second} - {mode}" if second != mode else f"{mode} (second cell) - {mode}"
            rows.append({"group": label, "workload": workload, "method": method, "mode": mode,
                         "pair": pair, **res})
    return pd.DataFrame(rows, columns=["group", "workload", "method", "mode", "pair", "value", "ci_low",
                                       "ci_high", "n", "p", "exact", "ok"])


def variant_table(summary):
    """Overhead rows of the module's modes, labelled by the entry path they
    take (entry_paths); rows of unknown variants are left out."""
    rows = summary[summary["metric"] == "overhead"].copy()
    rows["path"] = [entry_path(v, m) for v, m in zip(rows["ftrace_variant"], rows["mode"])]
    order = {name: i for i, (_, _, name) in enumerate(entry_paths())}
    rows = rows[rows["path"].notna()]
    return rows.assign(_o=rows["path"].map(order)).sort_values(["method", "_o", "group"]).drop(columns="_o")


# -- the kernel method's ops points (bench run --ops, --ops-sweep) -------------------

OPS_COLUMNS = SUMMARY_COLUMNS + ["ops", "relevant", "irrelevant"]
DEFAULT_POINT = "1+0"  # a mode's own settings: one ops on the tracee, none elsewhere


def point_key(label):
    """'4+8' -> (4, 8), for ordering points."""
    r, _, i = str(label).partition("+")
    return (int(r), int(i or 0))


def _takes_points(mode):
    if is_check_mode(mode) or mode not in modes.names():
        return False
    k = modes.get(mode).kernel
    return bool(k and k["relevant"])


def ops_summary(frame, group_by=("bundle",), baseline="off"):
    """The kernel method's figures at each ops point (relevant ops on the
    tracee + irrelevant ones elsewhere, the cells' `ops`): per_call and
    overhead (against the run's off, paired by round) of noregs and regs,
    and the regs gain, at every point, with summarize_cells' intervals.
    The mode's own cells (ops '') are the point 1+0 where a frame has
    other points.  Empty when no cell has a point."""
    if "ops" not in frame.columns or not (frame["ops"].fillna("") != "").any():
        return pd.DataFrame(columns=OPS_COLUMNS)
    k = frame[frame["method"] == "kernel"].copy()
    k["ops"] = k["ops"].fillna("")
    own = k[(k["ops"] == "") & k["mode"].map(_takes_points)]
    points = sorted(set(k["ops"]) - {""}
                    | ({DEFAULT_POINT} if len(own) else set()), key=point_key)
    base = k[(k["ops"] == "") & (k["mode"] == baseline)]
    out = []
    for p in points:
        cells = own if p == DEFAULT_POINT and not (k["ops"] == p).any() else k[k["ops"] == p]
        sub = pd.concat([base, cells]).assign(ops="")
        rows = summarize_cells(sub, group_by, baseline)
        rows = rows[rows["mode"] != baseline]
        r, i = point_key(p)
        out.append(rows.assign(ops=p, relevant=r, irrelevant=i))
    if not out:
        return pd.DataFrame(columns=OPS_COLUMNS)
    res = pd.concat(out, ignore_index=True)[OPS_COLUMNS]
    # Only the groups that measured points: another bundle's 1+0 alone is no sweep.
    return res[res["group"].isin(res.loc[res["ops"] != DEFAULT_POINT, "group"])].reset_index(drop=True)
