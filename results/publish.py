"""Regenerate every published report from the bundles in results/.

    python results/publish.py            # from the repository root

For each bundle (a directory holding bundle.json) it writes BUNDLE/report/
(report.md, report.html, figures/), one report per comparison in
COMPARISONS (results/compare/NAME/), and results/report/ over all bundles,
each reported on its own.  Reports are derived data: byte-identical when the
bundles did not change, so `git diff` after a run shows real changes only.
"""
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Bundles read side by side: the same lab, the same profile, two kernels.
COMPARISONS = {
    "regs-vs-fallback-6.1-icount": ("results/lab/regs-6.1-icount-standard",
                                    "results/lab/fallback-6.1-icount-standard"),
    "regs-vs-fallback-6.1-tcg": ("results/lab/regs-6.1-tcg-quick",
                                 "results/lab/fallback-6.1-tcg-quick"),
    "debian-6.1-vs-6.12-icount": ("results/lab/debian-6.1-icount-bpf",
                                  "results/lab/debian-6.12-icount-quick"),
    # The ops sweep on two kernels: the list function (6.1) against CALL_OPS (6.12).
    "ops-debian-6.1-vs-6.12-icount": ("results/lab/debian-6.1-icount-ops",
                                      "results/lab/debian-6.12-icount-ops"),
    # Three kernels of three eras' distributions under icount: Debian 11's 5.10
    # and Debian 12's 6.1 (both the regs era), Debian 13's 6.12 (no regs caller).
    "kernels-debian-5.10-6.1-6.12-icount": ("results/lab/debian-5.10-icount-quick",
                                            "results/lab/debian-6.1-icount-bpf",
                                            "results/lab/debian-6.12-icount-quick"),
    # The same kernel, profile and seed on two boots: must agree (an A/A of runs).
    "debian-6.1-icount-two-boots": ("results/lab/debian-6.1-icount-standard",
                                    "results/lab/debian-6.1-icount-standard-boot2"),
}


def bundles(results):
    return sorted(p.parent.relative_to(ROOT) for p in results.glob("**/bundle.json")
                  if not {"report", "compare"} & set(p.parent.parts))


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
    for name, pair in COMPARISONS.items():
        out = pathlib.Path("results/compare") / name
        build(list(pair), out, title=f"ftrace-regs-bench: {name}",
              report_args=[*pair, "--out", str(out)])
        print(f"{out}/report.md")
    out = pathlib.Path("results/report")
    build([str(b) for b in found], out, title="ftrace-regs-bench: all published bundles",
          report_args=[*map(str, found), "--out", str(out)])
    print(f"{out}/report.md")


if __name__ == "__main__":
    main()
