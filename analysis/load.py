"""Bundles into tidy pandas DataFrames.

load_frame: the results rows bench run computed, one row per
(host, kernel_release, mode, workload, method, metric, ops) (`bench export`;
ops: the kernel method's ops point, '' for a mode's own settings),
each with its unit (ns, or instructions under icount) and clock (wall,
icount), so that frames of different bundles can be concatenated without
mixing instructions with nanoseconds unseen.
cells_frame: one row per measured cell, with the facts that say where it was
measured (SETUP_KEYS): the input of pooling, plots and reports.

Cells may only be pooled (treated as replications of one measurement) when
they were measured on the same setup: same host, kernel, ftrace era
(ftrace_variant), lab settings, profile and tuning (SETUP_KEYS).
check_poolable refuses anything else unless the differing keys are among
the grouping keys, and its error names the key.
"""
import json

import pandas as pd

from remote.protocol import modes
from remote.protocol.kmod import ops_label

from . import methods, stats
from .bundle import Bundle, BundleError
from .units import bundle_clock, unit_of_clock

COLUMNS = ["host", "kernel_release", "ftrace_variant", "mode", "workload", "method", "metric",
           "value", "unit", "clock", "ci_low", "ci_high", "n", "ops"]
EXTRA = ["accel", "icount", "bundle", "complete", "ci_method"]

# What must be equal for cells to be replications of one measurement: the
# machine, the kernel, the lab, and how it was measured (the profile's
# effort per cell and --tune's pinning both move the figures).
SETUP_KEYS = ["host", "arch", "cpu_model", "cpu_count", "kernel_release", "kernel_version",
              "ftrace_variant", "accel", "icount", "lab_smp", "lab_cpu_model", "qemu_version",
              "profile", "tune"]


def mode_key(mode):
    """Modes in their declared order (remote/protocol/modes); unknown modes
    (the check modes, modes of another version) follow, sorted."""
    order = modes.names()
    return (order.index(mode), "") if mode in order else (len(order), mode)


def load_bundles(paths):
    return [validate(Bundle.load(p)) for p in paths]


def validate(bundle):
    """Refuse a bundle that bench run did not finish writing: a missing
    section or a cell whose raw file is gone (a truncated copy)."""
    d = bundle.data
    for key in ("host", "facts", "plan", "cells"):
        if not isinstance(d.get(key), (dict, list)):
            raise BundleError(f"{bundle.path}: bundle.json has no {key!r} section: truncated or not "
                              "written by bench run", hint="copy the whole bundle directory again")
    for cell in d["cells"]:
        f = cell.get("file")
        if cell.get("status") == "ok" and f and not (bundle.path / f).is_file():
            raise BundleError(f"{bundle.path}: cell {cell.get('id')!r} names {f}, which is missing: "
                              "the bundle is truncated", hint="copy the whole bundle directory again")
    return bundle


def setup(bundle):
    """The setup keys of a bundle (None where a fact was not recorded)."""
    d = bundle.data
    facts = d.get("facts", {})
    lab = facts.get("lab") or {}
    return {
        "host": d["host"].get("name"),
        "arch": facts.get("arch"),
        "cpu_model": facts.get("cpu_model"),
        "cpu_count": facts.get("cpu_count"),
        "kernel_release": facts.get("kernel_release"),
        "kernel_version": facts.get("kernel_version"),
        "ftrace_variant": facts.get("ftrace_variant"),
        "accel": lab.get("accel"),
        "icount": lab.get("icount"),
        "lab_smp": lab.get("smp"),
        "lab_cpu_model": lab.get("cpu_model"),
        "qemu_version": lab.get("qemu_version"),
        "profile": ((d.get("plan") or {}).get("profile") or {}).get("name"),
        "tune": tuned(d),
    }


def tuned(data):
    """Was the run measured under --tune?  noise.tuned where recorded,
    otherwise whether the recorded command says --tune (bundles from before
    noise was recorded); None when neither tells."""
    noise = data.get("noise")
    if isinstance(noise, dict) and "tuned" in noise:
        return bool(noise["tuned"])
    command = data.get("command")
    return "--tune" in command.split() if isinstance(command, str) else None


def bundle_rows(bundle):
    d = bundle.data
    facts = d.get("facts", {})
    lab = facts.get("lab") or {}
    clock = bundle_clock(d)
    for r in d.get("results", []):
        yield {
            "host": d["host"]["name"],
            "kernel_release": facts.get("kernel_release"),
            "ftrace_variant": facts.get("ftrace_variant"),
            "mode": r["mode"],
            "workload": r["workload"],
            "method": r["method"],
            "metric": r["metric"],
            "value": r["value"],
            "unit": r["unit"],
            "clock": clock,
            "ci_low": r["ci_low"],
            "ci_high": r["ci_high"],
            "n": r["n"],
            # the kernel method's ops point ('4+8'), '' for a mode's own settings
            "ops": ops_label(r["ops"]["relevant"], r["ops"]["irrelevant"]) if r.get("ops") else "",
            "accel": lab.get("accel"),
            "icount": lab.get("icount"),
            "bundle": str(bundle.path),
            "complete": d.get("complete"),
            "ci_method": r.get("ci_method"),
        }


def load_frame(paths, extra=False):
    """DataFrame of the results of one or many bundles (paths to bundle dirs)."""
    rows = []
    for b in load_bundles(paths):
        rows.extend(bundle_rows(b))
    cols = COLUMNS + (EXTRA if extra else [])
    return pd.DataFrame(rows, columns=COLUMNS + EXTRA)[cols]


def cell_values(bundle, cell):
    """The per-worker (pyperf) or per-run (kernel, bpf) means of a cell, in
    the nanoseconds of the target's clock (instructions under icount).

    bench run keeps them in the cell (worker_means_ns); older or foreign
    cells are read from their raw file by their method (analysis/methods/).
    A method none of those knows is still read when its raw JSON has a
    'mean' (ns per call); otherwise None, and the cell is left out of the
    figures with a note."""
    # worker_means_ns: the cell field keeps the clock's name (analysis/units.py).
    if cell.get("worker_means_ns"):
        return [float(v) for v in cell["worker_means_ns"]]
    path = bundle.path / cell["file"]
    method = methods.find(cell.get("method"))
    if method is not None:
        return method.read(path)[0]
    try:
        with open(path) as f:
            raw = json.load(f)
        return [float(raw["mean"])]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def extra_series(bundle, cell, clock):
    """The series a cell gives besides its method's own (Method.series: the
    pmu method's and the counted kernel method's cycles, instructions, IPC),
    each labelled like a method and in its own unit."""
    method = methods.find(cell.get("method"))
    if method is None or not cell.get("file"):
        return []
    return method.series(bundle.path / cell["file"], unit_of_clock(clock))[1:]


def ops_point(cell):
    """A kernel cell's ops point (relevant, irrelevant) as the cell records
    it (bench/plan.py: --ops), or None: the mode's own settings (1+0)."""
    o = cell.get("ops")
    return (int(o["relevant"]), int(o["irrelevant"])) if o else None


CELL_COLUMNS = ["bundle", "run", *SETUP_KEYS, "clock", "unit", "round", "occurrence", "order", "mode",
                "workload", "method", "cell", "figure", "n_workers", "file", "ops"]


def cells_frame(bundles, labels=None):
    """One row per ok cell: its setup, round, mode, method and figure (the
    mean of its worker/run means, stats.cell_figure) in `unit`.
    `occurrence` counts earlier cells of the same (mode, workload, method,
    ops point) in the same round: 1 marks a repeat, which the A/A check
    compares with the first.  `ops`: a kernel cell's ops point ('4+8'), ''
    for a mode's own settings.

    Returns (frame, notes): notes say which cells had no figure."""
    rows, notes = [], []
    for i, b in enumerate(bundles):
        label = labels[i] if labels else str(b.path)
        order = {cid: k for k, cid in enumerate(b.data["plan"].get("order", []))}
        su = setup(b)
        clock = bundle_clock(b.data)
        # A run is one boot's bench run: copies of a bundle share it.
        run = f"{b.data.get('facts', {}).get('boot_id')}/{b.data.get('created_utc')}"
        seen = {}
        for k, cell in enumerate(b.data["cells"]):
            if cell.get("status") != "ok":
                continue
            values = cell_values(b, cell)
            if not values:
                notes.append(f"{label}: cell {cell.get('id')} (method {cell.get('method')}) has no "
                             "per-call figure this version can read; it is left out of the figures")
                continue
            point = ops_point(cell)
            key = (cell["round"], cell["mode"], cell["workload"], cell["method"], point)
            occ = seen.get(key, 0)
            seen[key] = occ + 1
            series = [(cell["method"], unit_of_clock(clock), values)] + extra_series(b, cell, clock)
            for method, unit, means in series:
                rows.append({"bundle": label, "run": run, **su, "clock": clock, "unit": unit,
                             "round": cell["round"], "occurrence": occ,
                             "order": order.get(cell.get("id"), k), "mode": cell["mode"],
                             "workload": cell["workload"], "method": method,
                             "cell": cell.get("id"), "figure": stats.cell_figure(means),
                             "n_workers": len(means), "file": cell.get("file"),
                             "ops": ops_label(*point) if point else ""})
    return pd.DataFrame(rows, columns=CELL_COLUMNS), notes


def check_poolable(frame, group_by):
    """Refuse to pool cells of different setups: within each group of
    `group_by`, every SETUP_KEYS column not grouped by must take one value.
    The error names every key that differs and the values it takes, so
    one --group-by can list them all.
    Two copies of one run (same boot, same start) are refused too: their
    rounds are not new replications."""
    free = [k for k in SETUP_KEYS if k not in group_by]
    groups = frame.groupby(list(group_by), dropna=False, sort=False) if group_by else [((), frame)]
    for _, g in groups:
        differ = []
        for key in free:
            col = g[key].astype(object)
            values = sorted({repr(v) for v in col.where(col.notna(), None).tolist()})
            if len(values) > 1:
                differ.append((key, values))
        if differ:
            bundles = ", ".join(sorted(g["bundle"].unique()))
            what = ", ".join(f"{key} differs ({' vs '.join(values)})" for key, values in differ)
            keys = ",".join(key for key, _ in differ)
            raise BundleError(f"cannot pool these bundles: {what} between {bundles}",
                              hint=f"group by {'it' if len(differ) == 1 else 'them'} (--group-by {keys}) "
                                   "or report them separately")
        for run, bundles in g.groupby("run", sort=False)["bundle"]:
            if bundles.nunique() > 1:
                raise BundleError(f"cannot pool these bundles: {' and '.join(bundles.unique())} hold the "
                                  f"same run (boot and start time {run}); pooling would count its rounds twice",
                                  hint="give each run once")
