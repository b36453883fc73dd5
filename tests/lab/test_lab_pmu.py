"""The pmu method on the real QEMU arm64 lab (-cpu max: an Armv8 PMUv3).

Known answers under icount (shift=0: the guest clock advances 1 ns per
executed instruction): the instructions a worker counts for itself, kernel
included, are what the clock shows for the same loops, so the pmu method's
instructions per call equal its clock figure; and the instructions counted
around the kernel method's repetitions give the kernel method's regs gain
(9 instructions on Debian's 6.1: docs/lab.md).  One small run of its own
(smoke profile, off/noregs/regs, kernel and pmu) on the session lab.
"""
import io
import json
import time

import pandas as pd
import pytest
from click.testing import CliRunner

from bench.cli import cli

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def pmu_run(lab, lab_module, tmp_path_factory):
    out = tmp_path_factory.mktemp("pmu") / "bundle"
    t0 = time.monotonic()
    result = CliRunner().invoke(cli, ["run", "--host", "lab", "--profile", "smoke", "--modes", "off,noregs,regs",
                                      "--methods", "kernel,pmu", "--out", str(out)])
    print(f"pmu run: {time.monotonic() - t0:.0f} s wall\n{result.output}")
    return dict(result=result, out=out)


def rows(run):
    return json.loads((run["out"] / "bundle.json").read_text())["results"]


def row(results, method, mode, metric):
    (r,) = [r for r in results if r["method"] == method and r["mode"] == mode and r["metric"] == metric]
    return r


def test_pmu_run_completes_with_both_counters(pmu_run, lab):
    r = pmu_run["result"]
    assert r.exit_code == 0, r.output
    data = json.loads((pmu_run["out"] / "bundle.json").read_text())
    assert data["complete"] and data["plan"]["methods"] == ["kernel", "pmu"]
    assert data["pmu"]["events"] == {"cycles": "ok", "instructions": "ok"}
    assert any(s.startswith("armv8_pmuv3") for s in data["pmu"]["event_sources"])
    pmu_cells = [c for c in data["cells"] if c["method"] == "pmu"]
    assert pmu_cells and all(c["counters"] == ["cycles", "instructions"] for c in pmu_cells)
    # every value and repetition counted the whole time (none multiplexed)
    for c in data["cells"]:
        raw = json.loads((pmu_run["out"] / c["file"]).read_text())
        values = ([v for w in raw["workers"] for v in w["values"]] if c["method"] == "pmu" else raw["runs"])
        assert all(v["time_running"] == v["time_enabled"] > 0 and v["instructions"] > 0 for v in values)


@pytest.mark.parametrize("mode", ["off", "noregs", "regs"])
def test_instructions_per_call_equal_the_icount_clock(pmu_run, lab, mode):
    """Issue 14's check: within 0.5% of the clock figure of the same cells."""
    if not lab.get("icount"):
        pytest.skip("the lab is not under icount: its clock is not an instruction count")
    results = rows(pmu_run)
    clock, counted = row(results, "pmu", mode, "per_call"), row(results, "pmu/instructions", mode, "per_call")
    assert clock["unit"] == "instructions" and counted["unit"] == "instructions"
    assert abs(counted["value"] - clock["value"]) <= 0.005 * clock["value"], (counted, clock)
    cycles = row(results, "pmu/cycles", mode, "per_call")
    ipc = row(results, "pmu/ipc", mode, "per_call")
    assert cycles["unit"] == "cycles" and cycles["value"] > 0
    assert ipc["unit"] == "instructions/cycle" and ipc["value"] == pytest.approx(
        counted["value"] / cycles["value"], rel=0.01)


def test_kernel_regs_gain_in_instructions_equals_its_clock(pmu_run, lab):
    """The counters around the kernel method's repetitions: their regs gain
    in instructions equals the kernel method's own (icount clock) within
    0.5 instruction; the getppid loop's is printed for comparison (each
    worker process sits on one of two levels 3.1 instructions apart, by its
    address-space layout, so the loop's gain carries that mixture:
    docs/method.md, "The pmu method")."""
    if not lab.get("icount"):
        pytest.skip("the lab is not under icount")
    results = rows(pmu_run)
    clock = row(results, "kernel", "regs", "regs_gain")
    counted = row(results, "kernel/instructions", "regs", "regs_gain")
    assert abs(counted["value"] - clock["value"]) <= 0.5, (counted, clock)
    loop = row(results, "pmu/instructions", "regs", "regs_gain")
    print(f"regs gain: kernel (clock) {clock['value']:.2f}, kernel/instructions {counted['value']:.2f}, "
          f"pmu/instructions (getppid loop) {loop['value']:.2f} [{loop['ci_low']}, {loop['ci_high']}] "
          f"instructions, n = {loop['n']}")
    assert not any(r["metric"] != "per_call" for r in results if r["unit"] == "instructions/cycle")


def test_units_are_cycles_and_instructions_never_ns(pmu_run):
    r = CliRunner().invoke(cli, ["export", str(pmu_run["out"]), "--format", "csv"])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(io.StringIO(r.output))
    units = dict(zip(df.method, df.unit))
    assert units["pmu/cycles"] == "cycles" and units["pmu/instructions"] == "instructions"
    assert units["kernel/cycles"] == "cycles" and units["kernel/instructions"] == "instructions"
    out = " ".join(pmu_run["result"].output.split())
    assert "pmu/cycles" in out and "cycles" in out
