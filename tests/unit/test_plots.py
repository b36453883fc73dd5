"""The report's figures as a reader sees them: the headline figure (per-call
cost by entry path, the regs gain marked, one panel per unit) comes first,
and no two texts of a figure overlap, measured with matplotlib's own
renderer on the committed bundles."""
import itertools
import re

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from analysis import plots
from analysis.load import cells_frame, load_bundles
from analysis.report import build
from analysis.summary import summarize_cells, variant_table
from bundlecopy import ICOUNT, RESULTS, TCG, copy_bundle

# the standard icount bundles as first published (tests/bundlecopy.py, STEPPED)
REGS = RESULTS.parent / "tests" / "data" / "stepped" / "regs-6.1-icount-standard"
FALLBACK = RESULTS.parent / "tests" / "data" / "stepped" / "fallback-6.1-icount-standard"
EVERY_BUNDLE = sorted(p.parent for p in (RESULTS / "lab").glob("*/bundle.json"))


def summary_of(*paths):
    bundles = load_bundles([str(p) for p in paths])
    return summarize_cells(cells_frame(bundles, [p.name for p in paths])[0])


@pytest.fixture(scope="module")
def every_bundle():
    """All committed bundles side by side, as results/report/ has them (the
    combination whose variant figure had its labels overlap)."""
    return summary_of(*EVERY_BUNDLE)


def panels(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def drawn(fig):
    """fig drawn with the Agg renderer: the renderer, for text extents."""
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def shown_tick_labels(axis):
    """The tick labels the axis draws: those whose tick is inside its view."""
    lo, hi = sorted(axis.get_view_interval())
    return [t for loc, t in zip(axis.get_majorticklocs(), axis.get_majorticklabels())
            if lo <= loc <= hi and t.get_text().strip()]


def overlapping(texts, renderer):
    """The pairs of texts whose drawn boxes overlap (by more than half a pixel)."""
    boxes = [(t, t.get_window_extent(renderer)) for t in texts]
    out = []
    for (a, ba), (b, bb) in itertools.combinations(boxes, 2):
        i = ba.intersection(ba, bb)
        if i is not None and i.width > 0.5 and i.height > 0.5:
            out.append((a.get_text(), b.get_text()))
    return out


def every_text(fig):
    """Every text a figure draws: suptitle, titles, axis labels, shown tick
    labels, texts and annotations, legends."""
    out = [t for t in fig.texts]
    for ax in panels(fig):
        out += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        if ax.get_legend():
            out += ax.get_legend().get_texts()
        if ax.axison:
            out += shown_tick_labels(ax.xaxis) + shown_tick_labels(ax.yaxis)
    return [t for t in dict.fromkeys(out) if t.get_visible() and t.get_text().strip()]


# -- the headline figure ----------------------------------------------------------

def test_the_headline_figure_comes_first_in_the_report(tmp_path):
    md, html = build([str(ICOUNT), str(TCG)], tmp_path)
    md, html = md.read_text(), html.read_text()
    first = re.search(r"!\[([^]]*)\]\((figures/[^)]+\.svg)\)", md)
    assert first.group(2) == "figures/headline.svg"
    assert md.index("figures/headline.svg") < md.index("Bundles:") < md.index("## Systems")
    caption = md.split("figures/headline.svg)\n\n")[1].split("\n")[0]
    assert "regs gain" in caption and "one panel per unit" in caption and "[PNG](figures/headline.png)" in caption
    assert re.search(r'<img src="[^"]+" alt="([^"]+)"', html).group(1) == first.group(1)
    assert html.index('id="fig-headline"') < html.index('<h2 id="systems">')
    assert md.count("figures/headline.svg") == 1, "shown once, at the front"
    assert (tmp_path / "figures" / "headline.svg").exists() and (tmp_path / "figures" / "headline.png").exists()


def test_no_headline_figure_without_entry_paths(tmp_path):
    def unknown_variant(d):
        d["facts"]["ftrace_variant"] = "unknown"
    b = copy_bundle(ICOUNT, tmp_path / "unknown", unknown_variant)
    md, html = build([str(b)], tmp_path / "out")
    assert "figures/headline" not in md.read_text() and 'id="fig-headline"' not in html.read_text()
    assert not (tmp_path / "out" / "figures" / "headline.svg").exists()
    assert re.search(r"!\[[^]]*\]\((figures/[^)]+)\)", md.read_text()).group(1) == "figures/overhead.svg"


def test_the_headline_figure_has_one_panel_per_unit():
    fig = plots.headline_figure(summary_of(ICOUNT, TCG))
    axes = panels(fig)
    assert [ax.get_xlabel() for ax in axes] == [
        "overhead over off: guest instructions per call (icount, emulated)", "overhead over off: ns per call"]
    headers = [[t.get_text() for t in ax.texts if t.get_fontweight() == "bold"] for ax in axes]
    assert headers == [["debian-6.1-icount-standard: kernel 6.1.0-56-cloud-arm64, QEMU tcg, kernel method"],
                       ["debian-6.1-tcg-quick: kernel 6.1.0-56-cloud-arm64, QEMU tcg, kernel method"]]
    assert "icount clock" in axes[0].get_title() and "wall clock" in axes[1].get_title()
    assert len(panels(plots.headline_figure(summary_of(ICOUNT)))) == 1


def test_the_headline_figure_marks_the_regs_gain_with_its_ci():
    s = summary_of(ICOUNT, TCG)
    gains = s[(s["metric"] == "regs_gain") & (s["method"] == "kernel")]
    fig = plots.headline_figure(s)
    texts = [[t.get_text() for t in ax.texts if t.get_text().startswith("regs gain")] for ax in panels(fig)]
    # The report's table has the same figures: 9.009 [9.006, 9.012] and 133 [-55, 320].
    assert texts == [["regs gain 9.009 [9.006, 9.012] instructions"],
                     ["regs gain 133 [-55, 320] ns: CI includes 0"]]
    assert len(gains) == 2
    # The bars are the variant table's kernel-method rows, each with its CI whisker.
    bars = [sorted(round(p.get_width(), 3) for p in ax.patches) for ax in panels(fig)]
    v = variant_table(s)
    v = v[v["method"] == "kernel"]
    assert bars == [sorted(round(x, 3) for x in v[v["unit"] == u]["value"]) for u in ("instructions", "ns")]
    renderer = drawn(fig)
    for ax in panels(fig):
        box = ax.get_window_extent(renderer)
        for t in ax.texts:
            ext = t.get_window_extent(renderer)
            assert box.x0 <= ext.x0 and ext.x1 <= box.x1, f"{t.get_text()!r} runs past its panel"


def test_paths_a_bundle_does_not_have_are_absent_not_zero():
    fig = plots.headline_figure(summary_of(REGS, FALLBACK))
    (ax,) = panels(fig)
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "mcount (fallback) ftrace_caller", "ftrace_caller (regs era)", "ftrace_regs_caller (regs era)"]
    assert len(ax.patches) == 3 and all(p.get_width() > 50 for p in ax.patches)
    gains = [t.get_text() for t in ax.texts if t.get_text().startswith("regs gain")]
    assert gains == ["regs gain 9.005 [9.004, 9.006] instructions"], "the fallback kernel has no regs gain"


# -- no text over text -------------------------------------------------------------

def test_the_variant_figures_row_labels_do_not_overlap(every_bundle):
    fig = plots.variant_figure(variant_table(every_bundle))
    renderer = drawn(fig)
    for ax in panels(fig):
        labels = shown_tick_labels(ax.yaxis)
        assert len(labels) >= 2
        assert overlapping(labels, renderer) == [], ax.get_title()


@pytest.mark.parametrize("name", ["headline", "overhead", "regs-gain", "variants"])
def test_no_text_of_a_figure_overlaps_another(every_bundle, name):
    fig = {"headline": plots.headline_figure, "overhead": plots.overhead_figure,
           "regs-gain": plots.regs_gain_figure,
           "variants": lambda s: plots.variant_figure(variant_table(s))}[name](every_bundle)
    renderer = drawn(fig)
    texts = every_text(fig)
    assert overlapping(texts, renderer) == []
    page = fig.bbox
    for t in texts:
        b = t.get_window_extent(renderer)
        assert page.x0 <= b.x0 and b.x1 <= page.x1 and page.y0 <= b.y0 and b.y1 <= page.y1, \
            f"{t.get_text()!r} runs past the figure's edge"
    # The suptitle is above every panel, not over one.
    top = fig.get_suptitle() and fig.texts[0].get_window_extent(renderer)
    for ax in panels(fig):
        assert ax.get_tightbbox(renderer).y1 <= top.y0, ax.get_title()
