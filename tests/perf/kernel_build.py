"""Benchmarks of the lab's own kernels; prints figures (not a test).

    python tests/perf/kernel_build.py            # figures of the cached builds, boot times
    python tests/perf/kernel_build.py --cold     # remove both variants' caches, rebuild (~30 min)

Figures per variant (regs, fallback): cold build time (measured with --cold,
else from the cache's manifest), Image and System.map sizes, the kept build
tree on disk, and boot to SSH-ready per lab kernel (debian-6.1, regs-6.1,
fallback-6.1), TCG and icount, each in a run directory of its own.
"""
import argparse
import json
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile
import time

from remote import kbuild
from remote import lab


def du(path):
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.returncode == 0 else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold", action="store_true", help="remove both variants' cached builds first")
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--no-boot", action="store_true", help="skip the boot times")
    ns = ap.parse_args()
    print(f"host: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{kbuild.compiler_version() if shutil.which(kbuild.cross_compile() + 'gcc') else 'no compiler'}")
    for variant in kbuild.VARIANTS:
        if ns.cold:
            while (d := kbuild.find_built(variant)) is not None:
                shutil.rmtree(d)
        t0 = time.monotonic()
        kdir = kbuild.build(variant, jobs=ns.jobs, progress=lambda t: None)
        wall = time.monotonic() - t0
        m = kbuild.load_manifest(kdir)
        how = (f"cold build {wall:.0f} s wall" if ns.cold
               else f"build {m['build_seconds']:.0f} s (manifest, {m['built_utc']})")
        print(f"{variant}: {m['kernel_release']}, {how}, -j{m['jobs']}; Image "
              f"{(kdir / 'Image').stat().st_size / 2**20:.1f} MiB, System.map "
              f"{(kdir / 'System.map').stat().st_size / 2**20:.1f} MiB, build tree kept "
              f"{du(kdir / 'build') / 2**20:.0f} MiB; confounds: "
              f"{m['config_comparison']['confounds'] or 'none'}")
    if ns.no_boot:
        return
    saved = lab.RUN_DIR
    for name in ("debian-6.1", "regs-6.1", "fallback-6.1"):
        lab.build(lab.select(name), progress=lambda t: None)  # not part of the boot time
        for icount in (False, True):
            lab.RUN_DIR = pathlib.Path(tempfile.mkdtemp(prefix=f"kernel-bench-{name}-"))
            try:
                t0 = time.monotonic()
                state = lab.up(lab.LabConfig(kernel=name, accel="tcg", icount=icount),
                               progress=lambda t: None)
                print(f"boot {name} ({state['kernel_release']}) TCG{' icount' if icount else ''}: "
                      f"{time.monotonic() - t0:.1f} s to SSH-ready")
            finally:
                lab.down(progress=lambda t: None)
                shutil.rmtree(lab.RUN_DIR, ignore_errors=True)
    lab.RUN_DIR = saved


if __name__ == "__main__":
    main()
