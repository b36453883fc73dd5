"""Figures for reports and notebooks (matplotlib Figure objects, no pyplot:
the caller's backend and global state are left alone).

Each function takes frames from analysis.summary / analysis.load and returns
a matplotlib Figure; save() writes it as SVG and PNG with nothing in the
files that changes between runs (no date, no software version, a fixed SVG
id salt), so a report regenerated from the same bundles is byte-identical
and its diff shows only real changes.

Every interval drawn is the row's 95% Student-t CI over rounds (the bundle's
own method); the report's tables add the bootstrap interval.
"""
import json
import math

import io

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .load import mode_key

RC = {
    "svg.hashsalt": "ftrace-regs-bench",  # stable ids inside the SVG
    "svg.fonttype": "path",               # text as paths: the SVG needs no font
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
UNIT_TEXT = {"ns": "ns per call", "instructions": "guest instructions per call (icount, emulated)"}
COLORS = matplotlib.colormaps["tab10"].colors


def _figure(n_panels, ncols, panel_h, width=4.6):
    ncols = max(1, min(ncols, n_panels))
    nrows = max(1, math.ceil(n_panels / ncols))
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(width * ncols, panel_h * nrows + 0.6))
        axes = fig.subplots(nrows, ncols, squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat[:n_panels]


def _interval_panel(ax, labels, values, lows, highs, colors):
    """Points with horizontal CI bars, one per label, top to bottom."""
    y = np.arange(len(labels))[::-1]
    for yi, v, lo, hi, c in zip(y, values, lows, highs, colors):
        if lo is not None and not (isinstance(lo, float) and math.isnan(lo)):
            ax.errorbar([v], [yi], xerr=[[v - lo], [hi - v]], fmt="o", color=c, capsize=3, ms=4)
        else:
            ax.plot([v], [yi], "o", color=c, ms=4, mfc="none")
    ax.set_yticks(y, labels)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_ylim(-0.7, len(labels) - 0.3)


def _method_unit_keys(rows):
    """(method, unit) panels: instruction counts and nanoseconds never share an axis."""
    return sorted(set(zip(rows["method"], rows["unit"])), key=lambda k: (k[1], k[0] != "kernel", k[0]))


def _nothing(axes, keys, text):
    if not keys:
        axes[0].text(0.5, 0.5, text, ha="center", va="center", transform=axes[0].transAxes)
        axes[0].set_axis_off()


def _group_colors(groups):
    return {g: COLORS[i % len(COLORS)] for i, g in enumerate(dict.fromkeys(groups))}


def overhead_figure(summary):
    """Per-call overhead over off, one panel per (method, mode), each with its
    own scale (function-all and the module's ops differ 30-fold), one point
    per group with its CI."""
    rows = summary[summary["metric"] == "overhead_ns"]
    keys = sorted({k for k in zip(rows["method"], rows["mode"], rows["unit"])},
                  key=lambda k: (k[2], k[0] != "pyperf", k[0], mode_key(k[1])))
    colors = _group_colors(summary["group"])
    fig, axes = _figure(max(1, len(keys)), 3, 0.35 * max(2, summary["group"].nunique()) + 0.9)
    with matplotlib.rc_context(RC):
        _nothing(axes, keys, "no overhead figures (only off was measured)")
        for ax, (method, mode, unit) in zip(axes, keys):
            r = rows[(rows["method"] == method) & (rows["mode"] == mode) & (rows["unit"] == unit)]
            _interval_panel(ax, list(r["group"]), list(r["value"]), list(r["ci_low"]),
                            list(r["ci_high"]), [colors[g] for g in r["group"]])
            ax.set_title(f"{mode} - off ({method})")
            ax.set_xlabel(UNIT_TEXT[unit])
        fig.suptitle("Overhead per traced call by mode, with 95% CIs (Student t over rounds)")
        fig.tight_layout()
    return fig


def regs_gain_figure(summary):
    """The regs gain (regs - noregs, paired by round) per group and method."""
    rows = summary[summary["metric"] == "regs_gain_ns"]
    keys = _method_unit_keys(rows)
    colors = _group_colors(summary["group"])
    fig, axes = _figure(max(1, len(keys)), 2, 0.35 * max(2, rows["group"].nunique()) + 0.9, width=5.4)
    with matplotlib.rc_context(RC):
        _nothing(axes, keys, "no regs gain in these bundles\n(regs and noregs not both measured)")
        for ax, (method, unit) in zip(axes, keys):
            r = rows[(rows["method"] == method) & (rows["unit"] == unit)]
            labels = [f"{g}\n{k} ({v})" for g, k, v in zip(r["group"], r["kernel_release"], r["host"])]
            _interval_panel(ax, labels, list(r["value"]), list(r["ci_low"]), list(r["ci_high"]),
                            [colors[g] for g in r["group"]])
            ax.set_title(f"regs gain: regs - noregs ({method})")
            ax.set_xlabel(UNIT_TEXT[unit])
        fig.suptitle("Regs gain per kernel and host, with 95% CIs (paired by round)")
        fig.tight_layout()
    return fig


def variant_figure(variants):
    """Overhead of the module's ops by the entry path it takes: fallback
    mcount, ftrace_caller and ftrace_regs_caller of the regs era, the
    args/call-ops ftrace_caller (analysis.summary.CALLER_PATHS)."""
    keys = _method_unit_keys(variants)
    colors = _group_colors(variants["group"])
    n = max(1, len(variants) // max(1, len(keys)))
    fig, axes = _figure(max(1, len(keys)), 2, 0.4 * max(2, n) + 0.9, width=5.4)
    with matplotlib.rc_context(RC):
        _nothing(axes, keys, "no module modes (noregs/regs) in these bundles")
        for ax, (method, unit) in zip(axes, keys):
            r = variants[(variants["method"] == method) & (variants["unit"] == unit)]
            labels = [f"{p}\n{g}" for p, g in zip(r["path"], r["group"])]
            _interval_panel(ax, labels, list(r["value"]), list(r["ci_low"]), list(r["ci_high"]),
                            [colors[g] for g in r["group"]])
            ax.set_title(f"overhead over off by caller path ({method})")
            ax.set_xlabel(UNIT_TEXT[unit])
        fig.suptitle("Kernel-variant comparison: the module's ops, by ftrace entry path (95% CIs)")
        fig.tight_layout()
    return fig


def raw_values_ns(bundle_path, cell):
    """Every value of a cell in ns: each pyperf value (one call, averaged over
    the loop), or each module run's total_ns / calls.  Read straight from
    the raw JSON (pyperf's format: benchmarks[].runs[].values, seconds)."""
    with open(bundle_path / cell["file"]) as f:
        raw = json.load(f)
    if cell["method"] == "pyperf":
        return [v * 1e9 for b in raw.get("benchmarks", []) for run in b.get("runs", [])
                for v in run.get("values", [])]
    if cell["method"] == "kernel":
        return [r["total_ns"] / r["calls"] for r in raw.get("runs", [])]
    return []


def distribution_figure(bundle, label, unit="ns"):
    """Every raw value of every pyperf and kernel cell of one bundle: one
    panel per (method, mode), one row of points per round, each panel on its
    own linear scale.  It shows the spread within a cell against the spread
    between rounds (the reason rounds, not values, are the replication unit)."""
    panels = {}
    for cell in bundle.data["cells"]:
        if cell.get("status") == "ok" and cell.get("method") in ("pyperf", "kernel"):
            panels.setdefault((cell["method"], cell["mode"]), []).append(cell)
    keys = sorted(panels, key=lambda k: (k[0] != "pyperf", k[0], mode_key(k[1])))
    rounds = max([c["round"] for cells in panels.values() for c in cells] or [0]) + 1
    fig, axes = _figure(max(1, len(keys)), 4, 0.22 * rounds + 1.0, width=3.4)
    rng = np.random.default_rng(0)  # jitter only; fixed for identical files
    with matplotlib.rc_context(RC):
        for ax, (method, mode) in zip(axes, keys):
            for c in panels[(method, mode)]:
                vals = raw_values_ns(bundle.path, c)
                y = c["round"] + rng.uniform(-0.2, 0.2, len(vals))
                ax.plot(vals, y, ".", ms=2.5, alpha=0.6, color=COLORS[c["round"] % len(COLORS)],
                        rasterized=True)  # thousands of points: a bitmap inside the SVG
            ax.set_yticks(range(rounds), [f"r{r}" for r in range(rounds)])
            ax.invert_yaxis()
            ax.set_xlabel(UNIT_TEXT[unit])
            ax.set_title(f"{mode} ({method})")
            ax.ticklabel_format(axis="x", useOffset=False, style="plain")
            ax.xaxis.set_major_locator(MaxNLocator(4))
        fig.suptitle(f"Every raw value by round (pyperf values, module runs): {label}")
        fig.tight_layout()
    return fig


def _histogram(raw):
    """(lower bounds, counts) from a BPF cell's raw JSON, or None.  Accepts a
    'log2' or 'linear' histogram given as {bucket_low: count} or as a list of
    {low|start|bucket, count}."""
    for key in ("log2", "linear", "hist", "histogram"):
        h = raw.get(key)
        if isinstance(h, dict) and h:
            try:
                pairs = sorted((float(k), float(v)) for k, v in h.items())
            except (TypeError, ValueError):
                continue
            return key, [p[0] for p in pairs], [p[1] for p in pairs]
        if isinstance(h, list) and h and isinstance(h[0], dict):
            lk = next((k for k in ("low", "start", "bucket", "le") if k in h[0]), None)
            if lk and "count" in h[0]:
                return key, [float(b[lk]) for b in h], [float(b["count"]) for b in h]
    return None


def bpf_histograms(bundle):
    """[(cell id, mode, kind, lows, counts)] for every cell whose raw JSON
    carries a histogram (the bpf method); empty when there is none."""
    out = []
    for cell in bundle.data["cells"]:
        if cell.get("status") != "ok" or cell.get("method") in ("pyperf", "kernel") or not cell.get("file"):
            continue
        try:
            with open(bundle.path / cell["file"]) as f:
                raw = json.load(f)
        except (OSError, ValueError):
            continue
        h = _histogram(raw) if isinstance(raw, dict) else None
        if h:
            out.append((cell.get("id"), cell["mode"], *h))
    return out


def histogram_figure(hists, label):
    """BPF histograms, summed over rounds per mode, as step plots."""
    kinds = sorted({h[2] for h in hists})
    fig, axes = _figure(len(kinds), 2, 2.6)
    with matplotlib.rc_context(RC):
        for ax, kind in zip(axes, kinds):
            per_mode = {}
            for _, mode, k, lows, counts in hists:
                if k == kind:
                    acc = per_mode.setdefault(mode, {})
                    for lo, n in zip(lows, counts):
                        acc[lo] = acc.get(lo, 0) + n
            for i, mode in enumerate(sorted(per_mode, key=mode_key)):
                xs = sorted(per_mode[mode])
                ax.step(xs, [per_mode[mode][x] for x in xs], where="post", label=mode,
                        color=COLORS[i % len(COLORS)])
            if kind == "log2":
                ax.set_xscale("symlog")
            ax.set_xlabel("bucket lower bound (ns)")
            ax.set_ylabel("count")
            ax.set_title(f"bpf {kind} histogram")
            ax.legend()
        fig.suptitle(f"BPF histograms, summed over rounds: {label}")
        fig.tight_layout()
    return fig


def save(fig, directory, name):
    """Write NAME.svg and NAME.png into directory; byte-identical for the
    same figure.  Returns the two paths."""
    directory.mkdir(parents=True, exist_ok=True)
    svg, png = directory / f"{name}.svg", directory / f"{name}.png"
    with matplotlib.rc_context(RC):
        fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
        fig.savefig(png, format="png", dpi=110, metadata={"Software": None})
    return svg, png


def svg_bytes(fig):
    """The figure as SVG bytes (for IPython.display.SVG in a notebook)."""
    buf = io.BytesIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return buf.getvalue()
