"""A guest without a PMU where the module does not build (issue 21, parts 5
and 6), on one lab of its own: `bench lab up --no-pmu` (QEMU's
-cpu max,...,pmu=off, under icount), booted once for both.

- No PMU: `bench check` says why there are no counters, `--methods pmu`
  alone is one line, exit 6, and a run that asks for pmu among other
  methods skips it with that reason and goes on.
- A module that does not build: the module's source swapped for a broken
  one (agent_client.KMOD_DIR, as tests/lab/test_errors_lab.py does), so
  that the build in the guest really fails, against Debian's headers, with
  the compiler's own error; the kernel method and the module's modes
  (noregs, regs) are dropped with that reason, and the pyperf and bpf
  cells are measured.

The smoke profile: what is checked is the path, not the figures.
"""
import json
import pathlib
import shutil
import time

import pytest
from click.testing import CliRunner

from bench.cli import EXIT_CODES, cli
from conftest import need
from labtools import assert_same_tracefs, leftovers, module_loaded, read_tracefs

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def no_pmu_lab():
    """The debian-6.1 lab without a PMU, in a run directory of its own,
    which `--host lab` finds (remote/lab.py RUN_DIR) while this file runs."""
    from remote import lab as labmod

    need(shutil.which("qemu-system-aarch64"), "qemu-system-aarch64 (package qemu-system-arm)")
    need(shutil.which("mmdebstrap") or labmod.select("debian-6.1").image_dir().exists(),
         "mmdebstrap (to build the lab image)")
    t0 = time.monotonic()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(labmod, "RUN_DIR", pathlib.Path(f"{labmod.RUN_DIR}-no-pmu"))
        state = labmod.up(labmod.LabConfig(kernel="debian-6.1", icount=True, pmu=False),
                          progress=lambda t: print(t))
        try:
            yield state
        finally:
            print(f"no-PMU lab: {labmod.down()} after {time.monotonic() - t0:.0f} s wall "
                  f"(boot {state.get('boot_seconds')} s)")


@pytest.fixture
def target(no_pmu_lab):
    from remote.ssh import open_ssh_target

    t = open_ssh_target("lab", config_path=no_pmu_lab["ssh_config"])
    yield t
    t.close()


def invoke(args):
    t0 = time.monotonic()
    r = CliRunner().invoke(cli, args)
    print(f"bench {' '.join(args)}: exit {r.exit_code}, {time.monotonic() - t0:.0f} s wall\n{r.output}")
    return r


def test_the_guest_has_no_pmu_and_bench_check_says_why(no_pmu_lab, target):
    assert no_pmu_lab["pmu"] is False and no_pmu_lab["cpu_model"].endswith(",pmu=off")
    assert "max,pauth-impdef=on,pmu=off" in no_pmu_lab["qemu_argv"]
    # The kernel found no PMU: no 'hw perfevents' line, no CPU event source.
    log = target.run(["dmesg"], timeout=60).text
    assert "hw perfevents" not in log
    sources = target.run(["ls", "/sys/bus/event_source/devices"], timeout=60).text.split()
    assert sources and not any(s.startswith("armv8") for s in sources), sources
    r = invoke(["check", "--host", "lab", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    pmu = report["methods"]["pmu"]
    assert pmu["ok"] is False
    # What perf_event_open really gives there: ENOENT (no PMU claims the
    # hardware event type), and the event sources listed are the kernel's own.
    assert pmu["reason"].startswith(f"no CPU PMU is exposed to this machine (event sources: "
                                    f"{', '.join(sorted(sources))}; perf_event_open(cycles): ENOENT)")
    assert "basic set of events" in pmu["reason"] and "without pmu=off" in pmu["reason"]
    assert report["lab"]["value"]["pmu"] is False and "no PMU" in report["lab"]["reason"]
    # everything else is as on the lab with a PMU
    assert all(report["methods"][m]["ok"] for m in ("pyperf", "kernel", "bpf")), report["methods"]


def test_pmu_alone_is_one_line_exit_6(target, tmp_path):
    before = read_tracefs(target)
    r = invoke(["run", "--host", "lab", "--profile", "smoke", "--modes", "off,function", "--methods", "pmu",
                "--out", str(tmp_path / "b")])
    assert r.exit_code == EXIT_CODES["unsupported"][0] == 6, r.output
    (line,) = [l for l in r.output.splitlines() if l.startswith("bench: ")]
    assert line.startswith("bench: error: no measurement method is possible on this host: no CPU PMU is "
                           "exposed"), line
    assert "Traceback" not in r.output and "skipped" not in r.output and not (tmp_path / "b").exists()
    assert_same_tracefs(before, read_tracefs(target))
    assert leftovers(target) == []


def test_a_module_that_does_not_build_leaves_the_pyperf_and_bpf_cells(target, tmp_path, monkeypatch):
    from remote import agent_client, cache

    src = tmp_path / "kmod"
    src.mkdir()
    (src / "Makefile").write_bytes((agent_client.KMOD_DIR / "Makefile").read_bytes())
    (src / "ftrace_regs_bench.c").write_text("#error this source is broken on purpose\n")
    monkeypatch.setattr(agent_client, "KMOD_DIR", src)
    monkeypatch.setattr(cache, "ROOT", tmp_path / "cache")  # (nothing prebuilt for this source)
    before = read_tracefs(target)
    out = tmp_path / "b"
    r = invoke(["run", "--host", "lab", "--profile", "smoke", "--modes", "off,function,noregs,regs",
                "--methods", "pyperf,kernel,bpf,pmu", "--out", str(out)])
    assert r.exit_code == 0, r.output
    # one line for pmu (planning), one for the module (when its build failed)
    assert "method pmu unavailable, skipped: no CPU PMU is exposed" in r.output
    flat = " ".join(r.output.split())  # (rich wraps the run's lines at the terminal's width)
    assert flat.count("the suite's module cannot be used") == 1
    assert ("the suite's module cannot be used, so method kernel, mode noregs, mode regs dropped and the "
            "run goes on without: lab: building the module failed: ") in flat
    assert "broken on purpose" in flat
    data = json.loads((out / "bundle.json").read_text())
    plan = data["plan"]
    assert data["complete"] and plan["methods"] == ["pyperf", "bpf"] and plan["modes"] == ["off", "function"]
    skipped = {(s["mode"], s["method"]): s["reason"] for s in plan["skipped"]}
    assert set(skipped) == {(None, "pmu"), (None, "kernel"), ("noregs", None), ("regs", None)}
    assert skipped[(None, "pmu")].startswith("no CPU PMU is exposed")
    assert all("building the module failed" in skipped[k] and "broken on purpose" in skipped[k]
               for k in ((None, "kernel"), ("noregs", None), ("regs", None)))
    measured = {(c["mode"], c["method"]) for c in data["cells"]}
    assert measured == {(m, meth) for m in ("off", "function", "off-aa") for meth in ("pyperf", "bpf")} | {
        ("off-probe", "pyperf")}
    assert len(data["cells"]) == plan["rounds"] * len(measured) == len(plan["order"])
    assert {(r_["method"], r_["mode"]) for r_ in data["results"] if r_["metric"] == "overhead"} >= {
        ("pyperf", "function"), ("bpf", "function")}
    assert "module" not in data
    # the target as found: tracefs, no module, nothing of the agent's
    assert_same_tracefs(before, read_tracefs(target))
    assert not module_loaded(target) and leftovers(target) == []
