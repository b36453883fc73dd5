"""What the harness's chatter costs: pyperf values of bundles measured with
and without it (docs/method.md, "A quiet harness").

    python tests/perf/quiet_aa.py CHATTY_BUNDLE... -- QUIET_BUNDLE...

For each side and mode: cells, values, the mean per-call figure (mean of
the cells' figures, as bench run computes it), the spread of single values
inside a cell (SD, and max - min; the mean over cells and the largest), the
SD of the cells' figures between cells, the largest value's excess over its
cell's median, and the A/A of each bundle (`checks.aa.pyperf`).  Then,
per mode, quiet - chatty with a Welch 95% CI over the cells.  Figures are
in the bundles' unit (instructions under icount).
"""
import json
import pathlib
import statistics
import sys

import pyperf
from scipy import stats

from analysis.units import bundle_unit


def values_by_cell(bundle):
    data = json.loads((bundle / "bundle.json").read_text())
    unit = bundle_unit(data)
    out = {}
    for cell in data["cells"]:
        if cell.get("method") != "pyperf" or cell.get("status") != "ok":
            continue
        b = pyperf.Benchmark.load(str(bundle / cell["file"]))
        vals = [v * 1e9 for run in b.get_runs() for v in run.values]
        out.setdefault(cell["mode"], []).append(vals)
    return out, unit, (data.get("checks") or {}).get("aa", {}).get("pyperf")


def side(bundles):
    cells, units, aas = {}, set(), []
    for b in bundles:
        by_mode, unit, aa = values_by_cell(pathlib.Path(b))
        units.add(unit)
        aas.append(aa)
        for mode, lst in by_mode.items():
            cells.setdefault(mode, []).extend(lst)
    if len(units) > 1:
        sys.exit("the bundles mix units: " + ", ".join(sorted(units)))
    return cells, units.pop(), aas


def describe(name, cells, unit, aas):
    print(f"{name}: unit {unit}")
    for mode, lst in sorted(cells.items()):
        figs = [statistics.mean(v) for v in lst]
        sds = [statistics.stdev(v) for v in lst if len(v) > 1]
        ranges = [max(v) - min(v) for v in lst]
        excess = max(max(v) - statistics.median(v) for v in lst)
        print(f"  {mode:13s} cells {len(lst):2d} values {sum(map(len, lst)):3d}  "
              f"per call {statistics.mean(figs):9.1f}  within-cell SD mean {statistics.mean(sds):6.2f} "
              f"max {max(sds):6.2f}  max-min mean {statistics.mean(ranges):6.1f} max {max(ranges):6.1f}  "
              f"between-cell SD {statistics.stdev(figs) if len(figs) > 1 else float('nan'):6.2f}  "
              f"largest value - its cell's median {excess:+6.1f}")
    for aa in aas:
        if aa:
            print(f"  A/A (off-aa - off): {aa['value']:+.2f} [{aa['ci_low']:+.2f}, {aa['ci_high']:+.2f}] "
                  f"n = {aa['n']}, significant: {aa['significant']}")


def main(argv):
    if "--" not in argv:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    i = argv.index("--")
    chatty, quiet = side(argv[:i]), side(argv[i + 1:])
    describe("with chatter", *chatty)
    describe("quiet", *quiet)
    print("quiet - with chatter, per mode (Welch 95% CI over cells):")
    for mode in sorted(set(chatty[0]) & set(quiet[0])):
        a = [statistics.mean(v) for v in chatty[0][mode]]
        b = [statistics.mean(v) for v in quiet[0][mode]]
        d = statistics.mean(b) - statistics.mean(a)
        r = stats.ttest_ind(b, a, equal_var=False)
        ci = r.confidence_interval(0.95)
        print(f"  {mode:13s} {d:+8.2f} [{ci.low:+.2f}, {ci.high:+.2f}]  n = {len(b)} vs {len(a)} cells")


if __name__ == "__main__":
    main(sys.argv[1:])
