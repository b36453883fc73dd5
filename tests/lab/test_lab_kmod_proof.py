"""The kernel method's tracefs proof in the lab (issue 12, section 4): a
kernel-method regs cell whose tracee lacks the R flag is an error.

The module's test build (`make FRB_TEST_DROP_SAVE_REGS=1`, remote/kmod/README.md)
registers every ops without FTRACE_OPS_FL_SAVE_REGS while it still says
save_regs=1: the kernel accepts it, the timings run, and only tracefs can
tell.  It is built in the guest against Debian's headers, as `bench run`
builds the real one (once per kernel build and source: it is kept in the
shared cache's test-builds/), and put in a module cache of the test's own (the
shared cache keeps the real module for this kernel build under the same key)."""
import json

import pytest
from click.testing import CliRunner

from bench.cli import EXIT_CODES, cli
from labtools import assert_same_tracefs, leftovers, module_loaded, read_tracefs

pytestmark = pytest.mark.lab


def build_test_module(target):
    """The module built in the guest with the test switch; its .ko bytes."""
    from remote.agent_client import KMOD_DIR, KMOD_FILES

    r = target.run(["mktemp", "-d", "/tmp/frb-test-kmod.XXXXXXXX"], timeout=60)
    assert r.returncode == 0, r.err
    work = r.text.strip()
    try:
        for name in KMOD_FILES:
            target.write_file(f"{work}/{name}", (KMOD_DIR / name).read_bytes())
        release = target.run(["uname", "-r"], timeout=60).text.strip()
        r = target.run(["make", "-C", f"/lib/modules/{release}/build", f"M={work}",
                        "FRB_TEST_DROP_SAVE_REGS=1", "modules"], timeout=1800)
        assert r.returncode == 0, r.text[-2000:] + r.err[-2000:]
        return target.read_file(f"{work}/ftrace_regs_bench.ko")
    finally:
        target.run(["rm", "-rf", work], timeout=60)


def test_a_regs_cell_whose_tracee_lacks_the_R_flag_is_refused(lab, lab_target, tmp_path,
                                                              monkeypatch):
    from remote import cache

    facts = {k: lab_target.run(["uname", flag], timeout=60).text.strip()
             for k, flag in (("kernel_release", "-r"), ("kernel_version", "-v"), ("arch", "-m"))}
    # The test build is kept beside the real modules, under the same key (this
    # kernel build and this source): building it in the icount guest is about
    # 100 s of a warm CI run, and what this test checks is the proof, not the build.
    kept = cache.ROOT / "test-builds" / cache.kmod_dir(facts).name / "drop_save_regs.ko"
    if not kept.exists():
        kept.parent.mkdir(parents=True, exist_ok=True)
        tmp = kept.with_suffix(".part")
        tmp.write_bytes(build_test_module(lab_target))
        tmp.replace(kept)
    ko = kept.read_bytes()
    monkeypatch.setattr(cache, "ROOT", tmp_path / "cache")
    cached = cache.kmod_dir(facts) / "ftrace_regs_bench.ko"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(ko)
    before = read_tracefs(lab_target)
    out = tmp_path / "b"
    r = CliRunner().invoke(cli, ["run", "--host", "lab", "--profile", "smoke", "--modes", "regs",
                                 "--methods", "kernel", "--out", str(out)])
    assert r.exit_code == EXIT_CODES["measure"][0], r.output
    assert ("kernel-method mode 'regs' is not in effect on the target: tracefs shows "
            "current_tracer='nop', 1 enabled function(s), frb_tracee: "
            "'frb_tracee [ftrace_regs_bench] (1)'; expected frb_tracee [ftrace_regs_bench] alone "
            "with 1 ops, with the R (regs) flag") in r.output
    assert "the module is a test build (test=drop_save_regs)" in r.output
    # off and off-aa cells that came before regs in the shuffled round are kept,
    # with their own proof; without any, no bundle is left.
    if (out / "bundle.json").exists():
        data = json.loads((out / "bundle.json").read_text())
        assert data["module"]["info"]["test"] == "drop_save_regs"
        assert "kernel-method mode 'regs' is not in effect" in data["error"]
        assert {c["mode"] for c in data["cells"]} <= {"off", "off-aa"}
        for c in data["cells"]:
            assert c["tracefs"]["before"]["enabled_functions_count"] == 0, c
    assert not module_loaded(lab_target)
    assert_same_tracefs(before, read_tracefs(lab_target))
    assert leftovers(lab_target) == []
