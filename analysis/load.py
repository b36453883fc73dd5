"""Bundles into a tidy pandas DataFrame: one row per
(host, kernel_release, mode, workload, method, metric)."""
import pandas as pd

from bench.bundle import Bundle

COLUMNS = ["host", "kernel_release", "ftrace_variant", "mode", "workload", "method", "metric",
           "value", "unit", "ci_low", "ci_high", "n"]
EXTRA = ["accel", "icount", "bundle", "complete", "ci_method"]


def load_bundles(paths):
    return [Bundle.load(p) for p in paths]


def bundle_rows(bundle):
    d = bundle.data
    facts = d.get("facts", {})
    lab = facts.get("lab") or {}
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
            "ci_low": r["ci_low"],
            "ci_high": r["ci_high"],
            "n": r["n"],
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
