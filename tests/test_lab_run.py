"""End to end on the real QEMU arm64 lab (Debian 12's 6.1 arm64 kernel).

The lab is booted once per session (conftest.lab).  These tests run real
`bench run` commands against it and read tracefs in the guest over SSH.
"""
import io
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from click.testing import CliRunner

from analysis.load import COLUMNS
from bench.cli import cli
from remote.agent.tracefs import same_state

pytestmark = pytest.mark.lab

TRACEFS = "/sys/kernel/tracing"
FILES = ("current_tracer", "tracing_on", "set_ftrace_filter", "set_ftrace_notrace", "set_ftrace_pid",
         "buffer_size_kb")


def read_tracefs(target):
    out = {}
    for f in FILES:
        r = target.run(["cat", f"{TRACEFS}/{f}"], timeout=60)
        assert r.returncode == 0, r.err
        out[f] = r.text
    return out


def assert_same_tracefs(before, after):
    for f in FILES:
        if f == "buffer_size_kb" and "expanded" in before[f]:
            # The kernel's one-time expansion on first tracer use (README).
            assert same_state(f, before[f], after[f]), (before[f], after[f])
        else:
            assert after[f] == before[f], f"{f}: {before[f]!r} -> {after[f]!r}"


def leftovers(target, wait=10.0):
    """Agent directories or processes left on the target (the guardian polls
    once a second, so give it a moment).  '[a]gent' keeps pgrep from
    matching the sh that runs it."""
    deadline = time.monotonic() + wait
    while True:
        r = target.run(["sh", "-c", "ls -d /tmp/ftrace-regs-bench.* 2>/dev/null; "
                                    "pgrep -af '[a]gent.py'; true"], timeout=60)
        if not r.text.split() or time.monotonic() > deadline:
            return r.text.split()
        time.sleep(1)


@pytest.fixture(scope="module")
def quick(lab, tmp_path_factory):
    from remote.ssh import open_ssh_target

    target = open_ssh_target("lab", config_path=lab["ssh_config"])
    before = read_tracefs(target)
    out = tmp_path_factory.mktemp("quick") / "bundle"
    t0 = time.monotonic()
    result = CliRunner().invoke(cli, ["run", "--host", "lab", "--profile", "quick", "--out", str(out)])
    wall = time.monotonic() - t0
    after = read_tracefs(target)
    left = leftovers(target)
    target.close()
    print(f"quick run: {wall:.0f} s wall\n{result.output}")
    return dict(result=result, out=out, before=before, after=after, leftovers=left)


def test_quick_run_completes_with_bundle_and_pyperf_files(quick):
    r = quick["result"]
    assert r.exit_code == 0, r.output
    data = json.loads((quick["out"] / "bundle.json").read_text())
    assert data["complete"] and data["format_version"] == 1
    plan = data["plan"]
    assert set(plan["modes"]) == {"off", "function", "function-all", "noregs", "regs"}
    assert set(plan["methods"]) == {"pyperf", "kernel", "bpf"} and plan["skipped"] == []
    assert plan["check_modes"] == ["off-aa", "off-probe"]
    # pyperf and bpf in every mode, kernel in off/noregs/regs; off-aa with every
    # method, off-probe (the bpf probes' cost) with pyperf
    per_round = 2 * len(plan["modes"]) + 3 + 3 + 1
    assert len(data["cells"]) == plan["rounds"] * per_round
    for cell in data["cells"]:
        if cell["method"] != "pyperf":
            continue
        path = quick["out"] / cell["file"]
        stats = subprocess.run([sys.executable, "-m", "pyperf", "stats", str(path)],
                               capture_output=True, text=True)
        assert stats.returncode == 0, stats.stderr
        assert "Total number of values" in stats.stdout
        # The proof that the mode was in effect, recorded per cell.
        tr = cell["tracefs"]["before"]
        if cell["mode"] == "function":
            assert tr["target_line"].startswith("__arm64_sys_getppid")
            assert tr["enabled_functions_count"] == 1
        elif cell["mode"] == "off":
            assert tr["enabled_functions_count"] == 0


def test_facts_describe_the_lab(quick):
    facts = json.loads((quick["out"] / "bundle.json").read_text())["facts"]
    assert facts["arch"] == "aarch64"
    assert facts["kernel_release"].startswith("6.1.")
    assert facts["ftrace_variant"] == "regs"
    assert facts["kernel_config"]["CONFIG_DYNAMIC_FTRACE_WITH_REGS"] == "y"
    assert facts["kernel_config_source"]
    assert facts["cpu_implementer"] and facts["cpu_part"] and facts["cpu_model"]
    assert facts["timer_frequency_hz"] > 0
    assert facts["pyperf_version"] and facts["python_version"]
    lab = facts["lab"]
    assert lab["accel"] in ("tcg", "kvm") and lab["qemu_version"] and lab["cpu_model"]
    assert lab["emulated"] == (lab["accel"] != "kvm")


def test_function_overhead_is_positive_and_its_ci_excludes_zero(quick):
    results = json.loads((quick["out"] / "bundle.json").read_text())["results"]
    ovh = {r["mode"]: r for r in results if r["metric"] == "overhead_ns"}
    f = ovh["function"]
    assert f["value"] > 0 and f["ci_low"] > 0, f
    assert ovh["function-all"]["value"] > f["value"]


def test_csv_export(quick):
    r = CliRunner().invoke(cli, ["export", str(quick["out"]), "--format", "csv"])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(io.StringIO(r.output))
    assert list(df.columns) == COLUMNS
    assert set(df.metric) == {"per_call_ns", "overhead_ns", "regs_gain_ns"}
    assert set(df["mode"]) == {"off", "function", "function-all", "noregs", "regs", "off-aa",
                               "off-probe"}
    assert set(df.method) == {"pyperf", "kernel", "bpf"}
    assert (df.host == "lab").all() and (df.ftrace_variant == "regs").all()
    assert not df.duplicated(["host", "kernel_release", "mode", "workload", "method", "metric"]).any()


def test_tracefs_is_left_as_found(quick):
    assert_same_tracefs(quick["before"], quick["after"])
    assert quick["leftovers"] == [], "agent files or processes left on the target"


def test_tracing_in_use_is_refused_and_left_alone(lab, lab_target, tmp_path):
    lab_target.run(["sh", "-c", f"echo function > {TRACEFS}/current_tracer"], timeout=60)
    try:
        before = read_tracefs(lab_target)
        r = CliRunner().invoke(cli, ["run", "--host", "lab", "--profile", "quick", "--out",
                                     str(tmp_path / "b")])
        assert r.exit_code == 7, r.output
        assert "already in use" in r.output and "current_tracer is 'function'" in r.output
        assert read_tracefs(lab_target) == before
        assert not (tmp_path / "b").exists()
    finally:
        lab_target.run(["sh", "-c", f"echo nop > {TRACEFS}/current_tracer"], timeout=60)


def test_ctrl_c_restores_at_once_and_keeps_completed_cells(lab, lab_target, tmp_path):
    before = read_tracefs(lab_target)
    out = tmp_path / "b"
    p = subprocess.Popen([sys.executable, "-m", "bench.cli", "run", "--host", "lab", "--profile",
                          "standard", "--modes", "off,function", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            if json.loads((out / "bundle.json").read_text())["cells"]:
                break
        except (OSError, ValueError):
            pass
        time.sleep(1)
    time.sleep(3)  # into the next cell
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    output, _ = p.communicate(timeout=180)
    took = time.monotonic() - t0
    assert p.returncode == 130, output
    assert "interrupted" in output
    data = json.loads((out / "bundle.json").read_text())
    assert data["complete"] is False and data["status"] == "interrupted"
    assert data["cells"] and all((out / c["file"]).exists() for c in data["cells"])
    assert_same_tracefs(before, read_tracefs(lab_target))
    assert leftovers(lab_target) == []
    print(f"Ctrl-C to restored and exited: {took:.1f} s")


@pytest.mark.lab_down
def test_lab_down_leaves_no_qemu(lab):
    if not lab["started_by_tests"]:
        pytest.skip("the lab was up before the tests started; it is left running")
    r = CliRunner().invoke(cli, ["lab", "down"])
    assert r.exit_code == 0 and "powered off" in r.output, r.output
    left = subprocess.run(["pgrep", "-af", "[f]trace-regs-bench-lab"], capture_output=True, text=True)
    assert left.stdout.strip() == "", f"QEMU still running after 'bench lab down': {left.stdout}"
    r = CliRunner().invoke(cli, ["lab", "status"])
    assert "down" in r.output


def start_run(out, *extra):
    return subprocess.Popen([sys.executable, "-m", "bench.cli", "run", "--host", "lab", "--profile",
                             "standard", "--modes", "off,function", "--out", str(out), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_tracer(target, tracer, timeout):
    """Seconds until current_tracer reads `tracer`, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        r = target.run(["cat", f"{TRACEFS}/current_tracer"], timeout=60)
        if r.text.strip() == tracer:
            return time.monotonic() - t0
        time.sleep(0.5)
    return None


def into_function_cell(p, target, out):
    """Wait until the run is measuring with the function tracer on."""
    assert wait_for_tracer(target, "function", 600) is not None, "the run never enabled the tracer"
    assert p.poll() is None


@pytest.mark.parametrize("how", ["kill -9", "hang (SIGSTOP): the lease lapses"])
def test_target_restores_itself_when_the_controller_goes(lab, lab_target, tmp_path, how):
    """The controller dies (its SSH connection closes: the agent sees EOF) or
    hangs (connection open, no word: the lease lapses).  Either way the target
    puts tracefs back and removes the agent, within lease + 10 s."""
    lease = 10
    # Under icount the guest's clock counts instructions: while the guest is
    # busy (the workload runs on) its seconds pass several times slower than
    # the host's, and the lease is measured in guest seconds.
    allowed = (lease * 6 if lab.get("icount") else lease) + 10
    before = read_tracefs(lab_target)
    out = tmp_path / "b"
    p = start_run(out, "--lease", str(lease))
    try:
        into_function_cell(p, lab_target, out)
        p.send_signal(signal.SIGKILL if how == "kill -9" else signal.SIGSTOP)
        took = wait_for_tracer(lab_target, "nop", allowed)
        assert took is not None, f"tracefs not restored within {allowed} s after {how}"
        assert leftovers(lab_target, wait=allowed) == []
        assert_same_tracefs(before, read_tracefs(lab_target))
        print(f"{how}: target restored in {took:.1f} s")
    finally:
        p.kill()
        p.wait()
    data = json.loads((out / "bundle.json").read_text())
    assert data["complete"] is False  # what completed is still there, marked incomplete
