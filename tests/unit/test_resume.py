"""bench run --resume: which cells are missing, and what is refused (pure
logic on bundles written by analysis/bundle.py; the lab tests in
tests/lab/test_faults.py resume real interrupted runs)."""
import json

import pytest
from click.testing import CliRunner

from analysis.bundle import Bundle
from bench import resume
from bench.cli import EXIT_CODES, cli
from bench.plan import PROFILES, make_plan

FACTS = {"hostname": "lab", "machine_id": "ab" * 16, "arch": "aarch64", "cpu_model": "QEMU max",
         "kernel_release": "6.1.0-56-cloud-arm64", "kernel_version": "#1 SMP Debian 6.1.192-2",
         "boot_id": "b1", "lab": {"kernel": "debian-6.1", "accel": "tcg", "icount": True}}


def interrupted(tmp_path, done=3, seed=42):
    """A bundle as an interrupted quick run leaves it: plan, `done` cells."""
    plan = make_plan(PROFILES["quick"], ["off", "function"], methods=["pyperf"], seed=seed,
                     skipped=[{"mode": "regs", "method": None, "reason": "no regs caller"}])
    b = Bundle.create(tmp_path / "b", host={"kind": "ssh", "name": "lab"}, tool_version="t",
                      command="bench run")
    b.data.update(facts=dict(FACTS), plan=plan.to_dict(), status="interrupted")
    for c in plan.cells[:done]:
        b.data["cells"].append({"id": c.id, "round": c.round, "mode": c.mode, "status": "ok",
                                "file": f"pyperf/{c.id}.json"})
    b.save()
    return Bundle.load(b.path), plan


def test_the_seeded_plan_comes_back_and_only_the_tail_is_missing(tmp_path):
    b, plan = interrupted(tmp_path, done=2)
    req = resume.request_of(b)
    assert req["modes"] == ["off", "function", "regs"] and req["seed"] == 42
    again = make_plan(req["profile"], ["off", "function"], methods=["pyperf"], seed=req["seed"],
                      skipped=b.data["plan"]["skipped"])
    resume.check_plan(b, again)  # same seed: same order, cell for cell
    todo = resume.missing(b, again)
    assert [c.id for c in todo] == b.data["plan"]["order"][2:]
    # Two cells of round 0's three (off, function, off-aa) are done: that
    # round is finished by the next session.
    assert todo[0].round == plan.cells[1].round == 0


def test_another_plan_is_refused(tmp_path):
    b, _ = interrupted(tmp_path)
    other = make_plan(PROFILES["quick"], ["off"], methods=["pyperf"], seed=42,
                      skipped=[{"mode": "function", "method": None, "reason": "no function tracer"}])
    with pytest.raises(resume.ResumeMismatch, match=r"plan .* differs .*\(modes\): now skipped: "
                                                    r"no function tracer"):
        resume.check_plan(b, other)


@pytest.mark.parametrize("key,value,what", [
    ("hostname", "other", "host"), ("machine_id", "cd" * 16, "host"),
    ("kernel_release", "6.12.0", "kernel"), ("kernel_version", "#2 SMP", "kernel"),
])
def test_another_host_or_kernel_is_refused(tmp_path, key, value, what):
    b, _ = interrupted(tmp_path)
    with pytest.raises(resume.ResumeMismatch, match=f"the {what} differs .*: {key} was"):
        resume.check_target(b, dict(FACTS, **{key: value}))


def test_another_lab_setup_is_refused_and_a_reboot_is_noted(tmp_path):
    b, _ = interrupted(tmp_path)
    with pytest.raises(resume.ResumeMismatch, match="lab setup differs.*icount"):
        resume.check_target(b, dict(FACTS, lab=dict(FACTS["lab"], icount=False)))
    # another number of CPUs (bundles from before these facts lack them: not compared)
    b.data["facts"] = dict(FACTS, cpu_count=1, lab=dict(FACTS["lab"], smp=1))
    with pytest.raises(resume.ResumeMismatch, match="lab setup differs.*smp was 1, is 4"):
        resume.check_target(b, dict(FACTS, cpu_count=1, lab=dict(FACTS["lab"], smp=4)))
    with pytest.raises(resume.ResumeMismatch, match="host differs.*cpu_count was 1, is 4"):
        resume.check_target(b, dict(FACTS, cpu_count=4))
    b.data["facts"] = dict(FACTS)
    notes = resume.check_target(b, dict(FACTS, boot_id="b2"))
    assert notes == ["resumed after a reboot of the host (boot id b1 -> b2): same machine and "
                     "kernel build"]


def test_an_orphan_raw_file_is_replaced(tmp_path):
    b, plan = interrupted(tmp_path, done=2)
    todo = resume.missing(b, plan)
    (b.path / f"pyperf/{todo[0].id}.json").write_text("{}")
    notes = resume.clear_orphans(b, todo)
    assert len(notes) == 1 and "never recorded" in notes[0]
    assert not (b.path / f"pyperf/{todo[0].id}.json").exists()


# -- the command line: one line, a documented exit code, the bundle untouched --

def bench(*args):
    r = CliRunner().invoke(cli, ["run", *args])
    lines = [l for l in r.output.splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    return r.exit_code, lines[0]


def test_resume_refusals(tmp_path):
    b, _ = interrupted(tmp_path)
    before = (b.path / "bundle.json").read_text()
    code, line = bench("--resume", str(b.path), "--modes", "off,regs")
    assert code == EXIT_CODES["resume-mismatch"][0] == 11
    assert "--modes differs from the plan" in line and "off,function,regs" in line
    code, line = bench("--resume", str(b.path), "--profile", "standard")
    assert code == 11 and "--profile differs" in line
    code, line = bench("--resume", str(b.path), "--seed", "7")
    assert code == 11 and "--seed differs" in line
    code, line = bench("--resume", str(b.path), "--out", str(tmp_path / "x"))
    assert code == 2 and "--out and --resume exclude each other" in line
    code, line = bench("--resume", str(tmp_path / "nothing"))
    assert code == 8 and "no bundle.json" in line
    assert (b.path / "bundle.json").read_text() == before
    data = json.loads(before)
    data["complete"], data["status"] = True, "complete"
    (b.path / "bundle.json").write_text(json.dumps(data))
    code, line = bench("--resume", str(b.path))
    assert code == 2 and "is complete: nothing to resume" in line


def test_resume_without_a_plan_is_refused(tmp_path):
    b = Bundle.create(tmp_path / "b", host={"name": "lab"}, tool_version="t", command="x")
    code, line = bench("--resume", str(b.path))
    assert code == EXIT_CODES["bundle"][0] and "no plan to resume" in line
