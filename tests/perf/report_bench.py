"""Benchmark: `bench report` on 10 bundles; prints figures (not a test).

    python tests/perf/report_bench.py [--bundles 10] [--repeat 3]

The 10 bundles are copies of the two committed real lab bundles
(results/lab/debian-6.1-icount-standard: 40 cells; debian-6.1-tcg-quick:
32 cells), five of each, reported each on its own (10 distribution figures).
"""
import argparse
import os
import pathlib
import platform
import shutil
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from analysis.report import build  # noqa: E402

SOURCES = [ROOT / "results" / "lab" / "debian-6.1-icount-standard", ROOT / "results" / "lab" / "debian-6.1-tcg-quick"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundles", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ns = ap.parse_args()
    print(f"host: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        paths = []
        for i in range(ns.bundles):
            dest = tmp / f"b{i:02d}"
            shutil.copytree(SOURCES[i % 2], dest, ignore=shutil.ignore_patterns("report"))
            paths.append(str(dest))
        times = []
        for r in range(ns.repeat):
            t = time.perf_counter()
            md, html = build(paths, tmp / f"report-{r}")
            times.append(time.perf_counter() - t)
        size = html.stat().st_size
    print(f"bench report, {ns.bundles} bundles ({sum(40 if i % 2 == 0 else 32 for i in range(ns.bundles))} cells), "
          f"{ns.repeat} runs: median {statistics.median(times):.1f} s, min {min(times):.1f} s, "
          f"max {max(times):.1f} s; report.html {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
