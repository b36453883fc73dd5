"""The controller's cache: one root for the lab's images, the kernels it
builds and the suite's modules.

Modules read ROOT when they build a path, not at import, so that a test can
point the cache elsewhere with one monkeypatch of `remote.cache.ROOT`; the
running lab's directory (remote/lab.py, RUN_DIR: FTRACE_REGS_BENCH_LAB_RUN or
ROOT/lab/run) is the exception, fixed at import.
"""
import hashlib
import os
import pathlib

from . import agent_client

ROOT = pathlib.Path(os.environ.get("FTRACE_REGS_BENCH_CACHE",
                                   pathlib.Path.home() / ".cache" / "ftrace-regs-bench"))


def kmod_dir(facts):
    """Where a module built on a target, or cross-built here against a lab
    kernel's tree (remote/kbuild.py), is kept for targets running the very
    same kernel build (release, version string and arch must all match: then
    vermagic and symbol CRCs match too)."""
    key = hashlib.sha256()
    for part in (facts.get("kernel_release"), facts.get("kernel_version"), facts.get("arch")):
        key.update(str(part).encode() + b"\0")
    # agent_client.KMOD_DIR read here, not imported: a test swaps the module's source.
    for name in agent_client.KMOD_FILES:
        key.update((agent_client.KMOD_DIR / name).read_bytes())
    return ROOT / "kmod" / f"{facts.get('kernel_release')}-{key.hexdigest()[:12]}"
