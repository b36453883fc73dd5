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
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from .load import mode_key
from .summary import entry_paths, is_check_mode, mode_label, variant_table
from .units import bundle_unit

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
    """An axis label for a figure in `unit` (analysis/units.py)."""
    return UNIT_TEXT.get(unit, f"{unit} per call")
COLORS = matplotlib.colormaps["tab10"].colors
# Height of a row whose tick label has two lines of RC's 9 pt text (about
# 0.3 in), with room between neighbouring labels.
TWO_LINE_ROW_IN = 0.45


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


def _layout(fig, suptitle):
    """fig.tight_layout(), and where that left the suptitle over a panel (in
    a tall figure: its band is a fixed fraction of the height) or a label
    past the figure's edge (a unit label wider than its panel: tight_layout
    underestimates its overhang), again inside a rect that leaves them room,
    narrowed until they fit (a few rounds at most)."""
    fig.tight_layout()
    FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    top = suptitle.get_window_extent(renderer).y0 - 4
    left = right = 0.0
    for _ in range(4):
        boxes = [ax.get_tightbbox(renderer) for ax in fig.axes if ax.get_visible()]
        if not boxes:
            return
        over_left = -min(b.x0 for b in boxes)
        over_right = max(b.x1 for b in boxes) - width
        if over_left <= 0 and over_right <= 0 and all(b.y1 <= top for b in boxes):
            return
        left += max(0.0, over_left + 2)
        right += max(0.0, over_right + 2)
        fig.tight_layout(rect=(left / width, 0, 1 - right / width, top / height))


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
        _layout(fig, fig.suptitle("Overhead per traced call by mode, with 95% CIs (Student t over rounds)"))
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
        _layout(fig, fig.suptitle("Regs gain per kernel and host, with 95% CIs (paired by round)"))
    return fig


def host_figure(summary, metric, mode=None):
    """One headline metric (the regs gain, or one mode's overhead over off)
    side by side by host: a panel per (method, unit), one point per group
    (per host, in a report of several hosts) with its 95% CI."""
    rows = summary[summary["metric"] == metric]
    if mode is not None:
        rows = rows[rows["mode"] == mode]
    what = "regs gain: regs - noregs" if metric == "regs_gain" else f"{mode} - off"
    keys = _method_unit_keys(rows)
    colors = _group_colors(summary["group"])
    fig, axes = _figure(max(1, len(keys)), 2, 0.35 * max(2, rows["group"].nunique()) + 0.9, width=5.4)
    with matplotlib.rc_context(RC):
        _nothing(axes, keys, f"no {what} in these bundles")
        for ax, (method, unit) in zip(axes, keys):
            r = rows[(rows["method"] == method) & (rows["unit"] == unit)]
            _interval_panel(ax, list(r["group"]), list(r["value"]), list(r["ci_low"]), list(r["ci_high"]),
                            [colors[g] for g in r["group"]])
            ax.set_title(f"{what} ({method})")
            ax.set_xlabel(unit_text(unit))
        _layout(fig, fig.suptitle(f"{what[0].upper()}{what[1:]} by host, with 95% CIs (Student t over rounds)"))
    return fig


def _ci_line(ax, x, r, color, style, label):
    """A line through the rows' values at x, each point with its CI bar
    where it has one (an exact figure has none to draw)."""
    v = np.asarray(r["value"], dtype=float)
    lo = np.asarray(r["ci_low"], dtype=float)
    hi = np.asarray(r["ci_high"], dtype=float)
    err = np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)])
    ax.errorbar(x, v, yerr=err, fmt="o" + style, color=color, capsize=3, ms=4, lw=1.2, label=label)


def ops_figure(ops):
    """The kernel method at each ops point (analysis.summary.ops_summary):
    per group, per-call cost of noregs and regs against the relevant ops
    (one line per irrelevant count) and the regs gain against the same."""
    groups = list(dict.fromkeys(ops["group"]))
    fig, axes = _figure(max(1, 2 * len(groups)), 2, 3.2, width=5.0)
    styles = ["-", "--", ":", "-."]
    with matplotlib.rc_context(RC):
        _nothing(axes, groups, "no ops points in these bundles")
        for gi, group in enumerate(groups):
            g = ops[ops["group"] == group]
            unit = g["unit"].iloc[0]
            ax_cost, ax_gain = axes[2 * gi], axes[2 * gi + 1]
            irrs = sorted(set(g["irrelevant"]))
            for ii, irr in enumerate(irrs):
                style = styles[ii % len(styles)]
                for mi, mode in enumerate(("noregs", "regs")):
                    r = g[(g["mode"] == mode) & (g["metric"] == "per_call") & (g["irrelevant"] == irr)]
                    r = r.sort_values("relevant")
                    if len(r):
                        _ci_line(ax_cost, list(r["relevant"]), r, COLORS[mi], style,
                                 f"{mode}, {irr} irrelevant")
                r = g[(g["metric"] == "regs_gain") & (g["irrelevant"] == irr)].sort_values("relevant")
                if len(r):
                    _ci_line(ax_gain, list(r["relevant"]), r, COLORS[2 + ii % 8], style, f"{irr} irrelevant")
            kernel = g["kernel_release"].iloc[0]
            n = f"n = {g['n'].min()}" + (" bundles" if (g["ci_over"] == "bundles").any() else " rounds")
            for ax, what in ((ax_cost, f"per-call cost, {n}"), (ax_gain, f"regs gain (regs - noregs), {n}")):
                ax.set_xscale("log", base=2)
                xs = sorted(set(g["relevant"]))
                ax.set_xticks(xs, [str(x) for x in xs])
                ax.minorticks_off()
                ax.set_xlabel("relevant ops (attached to the traced function)")
                ax.set_ylabel(unit_text(unit))
                ax.set_title(f"{group}: {what}\n{kernel}", fontsize=9)
                if ax.get_legend_handles_labels()[0]:
                    ax.legend(fontsize=7)
            ax_gain.axhline(0, color="black", lw=0.6)
            if not (g["metric"] == "regs_gain").any():
                # regs skipped (no regs caller in this kernel's era): say so, not an empty frame
                ax_gain.text(0.5, 0.5, "no regs gain: the bundle has no regs cells\n"
                                       "(regs skipped or not planned; its plan says why)",
                             transform=ax_gain.transAxes, ha="center", va="center", fontsize=8)
        _layout(fig, fig.suptitle("Kernel method: cost per call against the ops a call carries, "
                                  "with 95% CIs (Student t over rounds)"))
    return fig


def variant_figure(variants):
    """Overhead of the module's ops by the entry path it takes: fallback
    mcount, ftrace_caller and ftrace_regs_caller of the regs era, the
    args/call-ops ftrace_caller (analysis.summary.entry_paths)."""
    keys = _method_unit_keys(variants)
    colors = _group_colors(variants["group"])
    # Every panel of the grid is as tall as the one with the most rows, and
    # each row's label has two lines: sized by the average row count, the
    # labels of the fuller panels overlapped.
    n = max([int(((variants["method"] == m) & (variants["unit"] == u)).sum()) for m, u in keys] or [1])
    fig, axes = _figure(max(1, len(keys)), 2, TWO_LINE_ROW_IN * max(2, n) + 0.9, width=5.4)
    with matplotlib.rc_context(RC):
        _nothing(axes, keys, "no module modes (noregs/regs) in these bundles")
        for ax, (method, unit) in zip(axes, keys):
            r = variants[(variants["method"] == method) & (variants["unit"] == unit)]
            labels = [f"{p}\n{g}" for p, g in zip(r["path"], r["group"])]
            _interval_panel(ax, labels, list(r["value"]), list(r["ci_low"]), list(r["ci_high"]),
                            [colors[g] for g in r["group"]])
            ax.set_title(f"overhead over off by caller path ({method})")
            ax.set_xlabel(unit_text(unit))
        _layout(fig, fig.suptitle("Kernel-variant comparison: the module's ops, by ftrace entry path (95% CIs)"))
    return fig


# The method the headline figure shows, first found per bundle: the kernel
# method times the traced call itself (the suite's module calling its own
# traced function), with the least noise; pyperf's getppid loop and the bpf
# probe add a system call around it.  The variant figure has every method.
HEADLINE_METHODS = ["kernel", "pyperf", "bpf"]
# One color per entry path (entry_paths()), the same in every panel and report.
PATH_COLORS = {name: COLORS[i % len(COLORS)] for i, (_, _, name) in enumerate(entry_paths())}
# The two paths whose difference is the regs gain (entry_paths()' regs era).
REGS_GAIN_PATHS = ("ftrace_caller (regs era)", "ftrace_regs_caller (regs era)")
# Height of a row whose tick label is one line of RC's 9 pt text.
ONE_LINE_ROW_IN = 0.3


def _fmt(v, width):
    """v with as many decimals as an interval of `width` deserves (the
    report's tables' rule, analysis.report.fmt)."""
    if width is None or not width > 0:
        digits = 1 if abs(v) >= 100 else 3
    else:
        digits = min(3, max(0, 1 - math.floor(math.log10(width))))
    return f"{v:,.{digits}f}"


def _has_ci(lo, hi):
    return not any(x is None or (isinstance(x, float) and math.isnan(x)) for x in (lo, hi))


def _gain_text(g):
    """'regs gain 9.005 [9.004, 9.006] instructions' (the row's 95% CI)."""
    if not _has_ci(g["ci_low"], g["ci_high"]):
        return f"regs gain {_fmt(g['value'], None)} {g['unit']} (no CI: n < 2)"
    w = g["ci_high"] - g["ci_low"]
    zero = ": CI includes 0" if g["ci_low"] <= 0 <= g["ci_high"] and not g["exact"] else ""
    return (f"regs gain {_fmt(g['value'], w)} [{_fmt(g['ci_low'], w)}, {_fmt(g['ci_high'], w)}] "
            f"{g['unit']}{zero}")


def headline_rows(summary):
    """What the headline figure draws: {unit: [(group, header, rows, gain)]}
    with rows the variant table's overhead rows (analysis.summary.variant_table,
    in entry_paths() order) of the group's first method in HEADLINE_METHODS
    that has any, and gain the group's regs_gain row of that method when the
    group has both regs-era paths (None otherwise).  Paths a group did not
    measure have no row."""
    variants = variant_table(summary)
    gains = summary[summary["metric"] == "regs_gain"]
    order = {name: i for i, (_, _, name) in enumerate(entry_paths())}
    out = {}
    for group in dict.fromkeys(variants["group"]):
        g = variants[variants["group"] == group]
        method = next((m for m in HEADLINE_METHODS if (g["method"] == m).any()), sorted(g["method"])[0])
        for unit in sorted(set(g[g["method"] == method]["unit"])):
            rows = g[(g["method"] == method) & (g["unit"] == unit)]
            rows = rows.assign(_o=rows["path"].map(order)).sort_values("_o").drop(columns="_o")
            first = rows.iloc[0]
            where = f"QEMU {first['accel']}" if first["accel"] else f"host {first['host']}"
            header = f"{group}: kernel {first['kernel_release']}, {where}, {method} method"
            gain = gains[(gains["group"] == group) & (gains["method"] == method) & (gains["unit"] == unit)]
            both = set(REGS_GAIN_PATHS) <= set(rows["path"])
            out.setdefault(unit, []).append((group, header, rows, gain.iloc[0] if both and len(gain) else None))
    return out


def _headline_panel(ax, unit, groups):
    """One unit's panel: per group a header line, then one bar per entry path
    (overhead over off, with its 95% CI whisker), top to bottom; the regs
    gain as a bracket joining the two regs-era bars, with its value and CI.
    Returns the headers and the gain texts (the caller makes room for them)."""
    lines, headers = [], []  # (group, header text or bar row) top to bottom; the headers drawn
    for group, header, rows, gain in groups:
        lines.append((group, header))
        lines += [(group, r) for _, r in rows.iterrows()]
    at = blended_transform_factory(ax.transAxes, ax.transData)
    ticks, tick_labels, y_of, reach = [], [], {}, []
    for i, (group, item) in enumerate(lines):
        y = len(lines) - 1 - i
        if isinstance(item, str):
            # Inside the axes, left out of tight_layout (which would otherwise
            # narrow the axes to fit it beside them).
            headers.append(ax.text(0.005, y, item, transform=at, ha="left", va="center", fontweight="bold",
                                   fontsize=8.5, in_layout=False,
                                   bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0, "alpha": 0.85}))
            continue
        v, lo, hi = item["value"], item["ci_low"], item["ci_high"]
        xerr = [[v - lo], [hi - v]] if _has_ci(lo, hi) else None
        ax.barh([y], [v], height=0.62, color=PATH_COLORS.get(item["path"], "grey"), xerr=xerr,
                error_kw={"ecolor": "black", "capsize": 3, "lw": 1})
        ticks.append(y)
        tick_labels.append(item["path"])
        y_of[(group, item["path"])] = (y, max(v, hi) if xerr else v)
        reach += [v, lo, hi] if xerr else [v]
    ax.set_yticks(ticks, tick_labels)
    ax.set_ylim(-0.6, len(lines) - 0.4)
    ax.axvline(0, color="black", lw=0.6)
    ax.grid(axis="y", visible=False)
    lo, hi = min(0.0, *reach), max(0.0, *reach)
    pad = 0.03 * ((hi - lo) or 1.0)
    texts = []
    for group, header, rows, gain in groups:
        if gain is None:
            continue
        (y1, x1), (y2, x2) = (y_of[(group, p)] for p in REGS_GAIN_PATHS)
        x = max(x1, x2) + pad
        ax.plot([x - pad / 2, x, x, x - pad / 2], [y1, y1, y2, y2], color="black", lw=1)
        texts.append(ax.annotate(_gain_text(gain), (x, (y1 + y2) / 2), xytext=(4, 0),
                                 textcoords="offset points", ha="left", va="center", fontsize=8.5,
                                 in_layout=False))
        hi = max(hi, x)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_xlabel(f"overhead over off: {unit_text(unit)}")
    # The unit follows from the clock (bench/units.py): one clock per panel.
    clocks = ", ".join(dict.fromkeys(r["clock"] for _, _, rows, _ in groups for _, r in rows.iterrows()))
    ax.set_title(f"{unit} ({clocks} clock): one bar per entry path, whisker its 95% CI")
    return headers, texts


def _make_room(fig, ax, texts):
    """Widen ax's x range to the right until every text in `texts` (anchored
    in data coordinates, drawn in points) ends inside the axes."""
    if not texts:
        return
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    lo, hi = ax.get_xlim()
    need = hi - lo
    for t in texts:
        ext = t.get_window_extent(renderer)
        anchor = t.xy[0]
        # The text's width in pixels is fixed; its anchor moves left as the
        # range widens: (anchor - lo) * W / range + width + margin <= W.
        room = box.width - (ext.x1 - ext.x0) - (ext.x0 - box.x0 - (anchor - lo) / (hi - lo) * box.width) - 6
        if room > 0:
            need = max(need, (anchor - lo) * box.width / room)
    ax.set_xlim(lo, lo + need)


def headline_figure(summary):
    """The question the suite exists for: what a traced call costs by the
    entry path it takes (mcount fallback, ftrace_caller and
    ftrace_regs_caller of the regs era, the args/call-ops ftrace_caller),
    with the regs gain (ftrace_regs_caller - ftrace_caller on the same
    kernel, paired by round) marked.  One panel per unit: instruction counts
    (icount) and nanoseconds never share an axis.  The figures are the
    variant table's (overhead over off with its 95% Student-t CI), of one
    method per bundle (HEADLINE_METHODS); each group's header names the
    bundle, kernel, clock and method."""
    panels = headline_rows(summary)
    units = sorted(panels)
    heights = [ONE_LINE_ROW_IN * sum(1 + len(rows) for _, _, rows, _ in panels[u]) + 1.0 for u in units]
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(8.6, sum(heights or [1.5]) + 0.5))
        axes = fig.subplots(max(1, len(units)), 1, squeeze=False,
                            gridspec_kw={"height_ratios": heights or [1]})[:, 0]
        if not units:
            _nothing(axes, units, "no entry-path figures (no noregs/regs cells on a known ftrace variant)")
        drawn = {u: _headline_panel(ax, u, panels[u]) for ax, u in zip(axes, units)}
        title = fig.suptitle("Per-call cost of a traced call by ftrace entry path, and the regs gain (95% CIs)")
        _layout(fig, title)
        # A header longer than its axes are wide (a long bundle or kernel
        # name) widens the figure rather than run past the edge.
        renderer = fig.canvas.get_renderer()
        over = max([h.get_window_extent(renderer).x1 - ax.get_window_extent(renderer).x1 + 6
                    for ax, u in zip(axes, units) for h in drawn[u][0]] or [0])
        if over > 0:
            fig.set_figwidth(fig.get_figwidth() + over / fig.dpi)
            _layout(fig, title)
        for ax, u in zip(axes, units):
            _make_room(fig, ax, drawn[u][1])
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
        _layout(fig, fig.suptitle(f"Every raw value by round (pyperf values, module runs): {label}"))
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
    `unit` is the bundle's (analysis/units.py: bundle_unit): the buckets are
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
        _layout(fig, fig.suptitle(f"BPF histograms, summed over runs and rounds per mode: {label}"))
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
