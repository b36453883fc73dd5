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

from bench.units import bundle_unit

from .load import mode_key
from .summary import is_check_mode, mode_label

RC = {
    "svg.hashsalt": "ftrace-regs-bench",  # stable ids inside the SVG
    "svg.fonttype": "path",               # text as paths: the SVG needs no font
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
UNIT_TEXT = {"ns": "ns per call", "instructions": "guest instructions per call (icount, emulated)"}


def unit_text(unit):
    """An axis label for a figure in `unit` (bench/units.py)."""
    return UNIT_TEXT.get(unit, f"{unit} per call")
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
    per group with its CI.  The check modes (off-aa, off-probe) are not
    tracer modes: the report's Checks section has them."""
    rows = summary[(summary["metric"] == "overhead") & ~summary["mode"].map(is_check_mode)]
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
            ax.set_xlabel(unit_text(unit))
        fig.suptitle("Overhead per traced call by mode, with 95% CIs (Student t over rounds)")
        fig.tight_layout()
    return fig


def regs_gain_figure(summary):
    """The regs gain (regs - noregs, paired by round) per group and method."""
    rows = summary[summary["metric"] == "regs_gain"]
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
            ax.set_xlabel(unit_text(unit))
        fig.suptitle("Regs gain per kernel and host, with 95% CIs (paired by round)")
        fig.tight_layout()
    return fig


def variant_figure(variants):
    """Overhead of the module's ops by the entry path it takes: fallback
    mcount, ftrace_caller and ftrace_regs_caller of the regs era, the
    args/call-ops ftrace_caller (analysis.summary.caller_paths)."""
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
            ax.set_xlabel(unit_text(unit))
        fig.suptitle("Kernel-variant comparison: the module's ops, by ftrace entry path (95% CIs)")
        fig.tight_layout()
    return fig


def raw_values(bundle_path, cell):
    """Every value of a cell in the nanoseconds of the target's clock
    (instructions under icount): each pyperf value (one call, averaged over
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


def distribution_figure(bundle, label):
    """Every raw value of every pyperf and kernel cell of one bundle: one
    panel per (method, mode), one row of points per round, each panel on its
    own linear scale, in the bundle's unit.  It shows the spread within a
    cell against the spread between rounds (the reason rounds, not values,
    are the replication unit)."""
    unit = bundle_unit(bundle.data)
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
                vals = raw_values(bundle.path, c)
                y = c["round"] + rng.uniform(-0.2, 0.2, len(vals))
                ax.plot(vals, y, ".", ms=2.5, alpha=0.6, color=COLORS[c["round"] % len(COLORS)],
                        rasterized=True)  # thousands of points: a bitmap inside the SVG
            ax.set_yticks(range(rounds), [f"r{r}" for r in range(rounds)])
            ax.invert_yaxis()
            ax.set_xlabel(unit_text(unit))
            ax.set_title(f"{mode_label(mode)} ({method})")
            ax.ticklabel_format(axis="x", useOffset=False, style="plain")
            ax.xaxis.set_major_locator(MaxNLocator(4))
        fig.suptitle(f"Every raw value by round (pyperf values, module runs): {label}")
        fig.tight_layout()
    return fig


def _add(acc, counts):
    for k, n in counts.items():
        acc[int(k)] = acc.get(int(k), 0) + int(n)


def _histogram(raw):
    """A bpf cell's raw JSON (remote/agent/bpfprobe.py's collect(), one per
    run) summed over its runs: {"log2": {slot: count}, "linear": {slot:
    count}, "lo", "step", "buckets"}, or None when the file has no run with
    a histogram.  The slots are the probe's (see log2_edges, linear_edges)."""
    out = {"log2": {}, "linear": {}}
    for run in raw.get("runs") or []:
        if not isinstance(run, dict):
            continue
        _add(out["log2"], run.get("log2") or {})
        lin = run.get("linear") or {}
        if lin.get("counts"):
            geometry = {k: lin.get(k) for k in ("lo", "step", "buckets")}
            if out.get("buckets") is not None and geometry != {k: out[k] for k in geometry}:
                return None  # runs binned differently cannot be summed
            out.update(geometry)
            _add(out["linear"], lin["counts"])
    return out if out["log2"] or out["linear"] else None


def log2_edges(slot):
    """[low, high) of a log2 slot: bcc's bpf_log2l(v) is floor(log2 v) + 1
    (and 1 for v = 0), so slot s >= 2 holds [2**(s-1), 2**s) and slot 1 holds
    0 and 1."""
    return (0 if slot <= 1 else 2 ** (slot - 1)), 2 ** slot


def linear_edges(slot, lo, step, buckets):
    """[low, high) of a linear slot: 0 is the underflow (below lo, low None),
    1..buckets hold [lo + (slot-1)*step, lo + slot*step), buckets + 1 is the
    overflow (at or above lo + buckets*step, high None)."""
    if slot <= 0:
        return None, lo
    if slot > buckets:
        return lo + buckets * step, None
    return lo + (slot - 1) * step, lo + slot * step


def bpf_histograms(bundle):
    """[(cell id, mode, histogram)] for every ok bpf cell whose raw JSON has
    histograms (_histogram); empty when there is none."""
    out = []
    for cell in bundle.data["cells"]:
        if cell.get("status") != "ok" or cell.get("method") != "bpf" or not cell.get("file"):
            continue
        try:
            with open(bundle.path / cell["file"]) as f:
                raw = json.load(f)
        except (OSError, ValueError):
            continue
        h = _histogram(raw) if isinstance(raw, dict) else None
        if h:
            out.append((cell.get("id"), cell["mode"], h))
    return out


def _per_mode(hists):
    """The cells' histograms summed per mode (over rounds)."""
    modes = {}
    for _, mode, h in hists:
        acc = modes.setdefault(mode, {"log2": {}, "linear": {}})
        _add(acc["log2"], h["log2"])
        if h["linear"]:
            if acc.get("buckets") is not None and any(acc[k] != h[k] for k in ("lo", "step", "buckets")):
                continue  # another binning: left out rather than mis-summed
            acc.update({k: h[k] for k in ("lo", "step", "buckets")})
            _add(acc["linear"], h["linear"])
    return modes


def histogram_figure(hists, label, unit):
    """The bpf method's two in-kernel histograms of one bundle (time from
    sys_enter to sys_exit of each getppid call), summed over runs and rounds
    per mode: log2 buckets on a log axis, and the linear buckets between the
    lowest and highest filled one, with the calls under/over the linear range
    counted in the legend.  One curve per mode, the share of calls per bucket.
    `unit` is the bundle's (bench/units.py: bundle_unit): the buckets are
    the clock's nanoseconds, instructions under icount."""
    modes = _per_mode(hists)
    order = sorted(modes, key=mode_key)
    what = {"ns": "kernel time per getppid call (ns)",
            "instructions": "guest instructions per getppid call (icount, emulated)"}.get(
        unit, f"{unit} per getppid call")
    fig, axes = _figure(2, 2, 3.0, width=5.6)
    with matplotlib.rc_context(RC):
        ax_log, ax_lin = axes
        for i, mode in enumerate(order):
            color = COLORS[i % len(COLORS)]
            log2 = modes[mode]["log2"]
            total = sum(log2.values())
            if total:
                slots = range(min(log2), max(log2) + 1)
                edges = [log2_edges(s)[0] or 1 for s in slots] + [log2_edges(max(log2))[1]]
                ax_log.stairs([log2.get(s, 0) / total for s in slots], edges, label=f"{mode_label(mode)}",
                              color=color)
            lin = modes[mode]["linear"]
            total = sum(lin.values())
            if total:
                lo, step, buckets = modes[mode]["lo"], modes[mode]["step"], modes[mode]["buckets"]
                inside = sorted(s for s in lin if 1 <= s <= buckets)
                under, over = lin.get(0, 0), sum(n for s, n in lin.items() if s > buckets)
                extra = "".join([f", {under:,} calls ({under / total:.2%}) below {lo:,}" if under else "",
                                 f", {over:,} calls ({over / total:.2%}) at or above {lo + buckets * step:,}"
                                 if over else ""])
                if inside:
                    slots = range(inside[0], inside[-1] + 1)
                    edges = [linear_edges(s, lo, step, buckets)[0] for s in slots] + \
                        [linear_edges(inside[-1], lo, step, buckets)[1]]
                    ax_lin.stairs([lin.get(s, 0) / total for s in slots], edges, color=color,
                                  label=f"{mode_label(mode)}{extra}")
                else:
                    ax_lin.plot([], [], color=color, label=f"{mode_label(mode)}: none in range{extra}")
        ax_log.set_xscale("log", base=2)
        ax_log.set_title("log2 buckets [2^(s-1), 2^s)")
        ax_lin.set_title(f"linear buckets ({next((m['step'] for m in modes.values() if m.get('step')), '?')}"
                         " wide)")
        for ax in axes:
            ax.set_xlabel(what)
            ax.set_ylabel("share of calls")
            ax.legend(fontsize=7)
        fig.suptitle(f"BPF histograms, summed over runs and rounds per mode: {label}")
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
