"""The lab's own kernels: regs-6.1 and fallback-6.1, one source and one
config, each built (or taken from the cache), booted in a lab of its own
(its own run directory, so the session's debian-6.1 lab is not disturbed),
checked and measured with the suite's module.

A cold build of each takes about 15 CPU-minutes
(docs/lab.md, "The lab's own kernels"); with both in the cache this file takes a
few minutes."""
import json
import shutil

import pytest
from click.testing import CliRunner

from bench.cli import cli
from conftest import need

pytestmark = pytest.mark.kbuild

ERA = {"regs": "regs", "fallback": "mcount"}


@pytest.fixture(scope="module", params=["regs", "fallback"])
def variant_lab(request, tmp_path_factory):
    from remote import kbuild
    from remote import lab as labmod

    variant = request.param
    need(shutil.which("qemu-system-aarch64"), "qemu-system-aarch64 (package qemu-system-arm)")
    if kbuild.find_built(variant) is None:
        need(shutil.which(kbuild.cross_compile() + "gcc"), "the arm64 cross compiler "
             "(package gcc-aarch64-linux-gnu)")
    kdir = kbuild.build(variant, progress=print)
    kbuild.build_module(kdir, progress=print)
    mp = pytest.MonkeyPatch()
    mp.setattr(labmod, "RUN_DIR", tmp_path_factory.mktemp(f"run-{variant}"))
    state = labmod.up(labmod.LabConfig(kernel=f"{variant}-6.1", accel="tcg", icount=True),
                      progress=print)
    try:
        yield {"variant": variant, "kdir": kdir, "state": state}
    finally:
        labmod.down()
        mp.undo()


def test_fallback_config_has_no_regs_and_no_confounds(variant_lab):
    from remote import kbuild

    config = (variant_lab["kdir"] / "config").read_text()
    regs = "CONFIG_DYNAMIC_FTRACE_WITH_REGS=y" in config.splitlines()
    assert regs == (variant_lab["variant"] == "regs")
    if variant_lab["variant"] == "fallback":
        assert "CONFIG_FTRACE_MCOUNT_USE_RECORDMCOUNT=y" in config.splitlines()
    m = kbuild.load_manifest(variant_lab["kdir"])
    assert m["config_comparison"]["confounds"] == {}
    assert (variant_lab["kdir"] / "config.diff").read_text().count("DYNAMIC_FTRACE_WITH_REGS") >= 2


def test_check_reports_the_variant(variant_lab):
    r = CliRunner().invoke(cli, ["check", "--host", "lab", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["ftrace_era"]["value"] == ERA[variant_lab["variant"]], rep["ftrace_era"]
    assert rep["ftrace_era"]["ok"] is True  # config and kallsyms agree
    assert rep["regs_caller"]["ok"] is (variant_lab["variant"] == "regs")
    assert rep["kernel_release"]["value"].endswith("-" + variant_lab["variant"])
    # No headers in the guest: the module cross-built with the kernel stands in.
    assert rep["module_build"]["ok"] is True, rep["module_build"]
    assert "cross" in json.dumps(rep["module_build"]) or "cached" in rep["module_build"]["reason"]
    assert rep["lab"]["value"]["kernel"] == f"{variant_lab['variant']}-6.1"
    assert rep["lab"]["value"]["icount"] is True
    # Built without BPF (remote/kconfig/lab-6.1.fragment): bpf says so.
    assert rep["methods"]["bpf"]["ok"] is False, rep["methods"]["bpf"]
    assert "built without CONFIG_BPF_SYSCALL" in rep["methods"]["bpf"]["reason"], rep["methods"]["bpf"]


def test_module_runs_and_regs_is_refused_on_the_fallback(variant_lab, tmp_path):
    out = tmp_path / "bundle"
    r = CliRunner().invoke(cli, ["run", "--host", "lab", "--profile", "quick", "--modes",
                                 "noregs,regs", "--methods", "kernel", "--out", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "bundle.json").read_text())
    assert data["facts"]["ftrace_variant"] == ERA[variant_lab["variant"]]
    assert data["facts"]["lab"]["kernel"] == f"{variant_lab['variant']}-6.1"
    modes = {c["mode"] for c in data["cells"]}
    if variant_lab["variant"] == "regs":
        # off-aa: off measured a second time in every round (the A/A check).
        assert modes == {"off", "off-aa", "noregs", "regs"}
        gain = next(x for x in data["results"] if x["metric"] == "regs_gain")
        # Same entry-ftrace.S as Debian's 6.1: nine more instructions (icount).
        assert abs(gain["value"] - 9.0) < 0.5, gain
    else:
        assert modes == {"off", "off-aa", "noregs"}
        skipped = {s["mode"]: s["reason"] for s in data["plan"]["skipped"]}
        assert "mcount" in skipped["regs"] and "no regs caller" in skipped["regs"]
    # The A/A check is reported in every run.
    assert set(data["checks"]["aa"]) == {"kernel"}, data["checks"]
