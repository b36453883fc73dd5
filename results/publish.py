"""Regenerate every published report from the bundles in results/.

    python results/publish.py            # from the repository root

For each bundle (a directory holding bundle.json) it writes BUNDLE/report/
(report.md, report.html, figures/), and results/report/ over all bundles,
each reported on its own.  Reports are derived data: byte-identical when the
bundles did not change, so `git diff` after a run shows real changes only.
"""
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def bundles(results):
    return sorted(p.parent.relative_to(ROOT) for p in results.glob("**/bundle.json")
                  if "report" not in p.parent.parts)


def main():
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    from analysis.report import build

    found = bundles(ROOT / "results")
    if not found:
        sys.exit("no bundles under results/")
    for b in found:
        out = b / "report"
        build([str(b)], out, report_args=[str(b), "--out", str(out)])
        print(f"{out}/report.md")
    out = pathlib.Path("results/report")
    build([str(b) for b in found], out, title="ftrace-regs-bench: all published bundles",
          report_args=[*map(str, found), "--out", str(out)])
    print(f"{out}/report.md")


if __name__ == "__main__":
    main()
