"""Benchmarks of the lab pipeline; prints figures (not a test).

    python tests/perf/lab_bench.py            # warm boot + quick run
    python tests/perf/lab_bench.py --cold     # also a cold image build (minutes)

Figures: lab image build time (from the image manifest, or measured with
--cold), warm boot to SSH-ready (target: <= 60 s under TCG on 2 cores),
`bench run --host lab --profile quick` wall time.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from remote import lab


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold", action="store_true",
                    help="remove the cached image and its mmdebstrap tarball, and rebuild both")
    ap.add_argument("--kernel", default="debian-6.1")
    ns = ap.parse_args()
    kernel = lab.select(ns.kernel)
    print(f"host: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{lab.qemu_version()}")
    if lab.read_state() and lab.read_state()["alive"]:
        lab.down()
    if ns.cold:
        if kernel.image_dir().exists():
            shutil.rmtree(kernel.image_dir())
        kernel.base_path().unlink(missing_ok=True)
    t0 = time.monotonic()
    image = lab.build(kernel, progress=lambda t: None)
    built = time.monotonic() - t0
    manifest = json.loads((image / "manifest.json").read_text())
    if ns.cold:
        print(f"cold image build: {built:.0f} s")
    else:
        print(f"image build (from manifest, {manifest['built_utc']}): {manifest['build_seconds']} s")
    # rootfs.ext4 is sparse: its allocated size is what the disk holds.
    sizes = {p.name: p.stat().st_blocks * 512 for p in image.iterdir() if p.is_file()}
    sizes["mmdebstrap tarball"] = kernel.base_path().stat().st_blocks * 512
    print("on disk: " + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in sorted(sizes.items())
                                  if v > 2**20))
    t0 = time.monotonic()
    state = lab.up(lab.LabConfig(kernel=ns.kernel), progress=lambda t: None)
    print(f"warm boot to SSH-ready: {time.monotonic() - t0:.1f} s (accel {state['accel']}, "
          f"smp {state['smp']})")
    out = tempfile.mkdtemp(prefix="lab-bench-")
    t0 = time.monotonic()
    rc = subprocess.call([sys.executable, "-m", "bench.cli", "run", "--host", "lab", "--profile",
                          "quick", "--quiet", "--out", out + "/b"])
    print(f"bench run --profile quick: {time.monotonic() - t0:.0f} s wall (exit {rc}), bundle {out}/b")
    t0 = time.monotonic()
    how = lab.down(progress=lambda t: None)
    print(f"lab down: {time.monotonic() - t0:.1f} s ({how})")


if __name__ == "__main__":
    main()
