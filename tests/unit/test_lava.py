"""LAVA jobs and the bundle in a job's log, without a device (the real run:
tests/lab/test_lab_lava.py): jobs pass lava-common's own schema check (and a
broken one does not), the runner's block comes back out of every form of log
LAVA gives, a damaged block is refused, and the device's stdlib t interval
is scipy's."""
import io
import json
import math
import os
import pathlib
import contextlib

import pytest
import yaml
from click.testing import CliRunner

from bench.cli import cli
from bench.lava import jobs
from bench.lava.bundle import BEGIN, rebuild
from analysis.bundle import BundleError
from conftest import need
from remote.agent import runner

QEMU_VALUES = ["--set", "kernel_url=file:///k/vmlinuz", "--set", "initrd_url=file:///k/initrd.img",
               "--set", "rootfs_url=file:///k/rootfs.qcow2", "--set", "rootfs_format=qcow2"]
BOARD_VALUES = ["--set", "kernel_url=http://files.example/Image", "--set",
                "dtb_url=http://files.example/board.dtb", "--set",
                "nfsrootfs_url=http://files.example/rootfs.tar.xz"]


def render(tmp_path, device_type, values, *extra):
    out = tmp_path / f"{device_type}.yaml"
    r = CliRunner().invoke(cli, ["lava", "render", "--device-type", device_type, "--out", str(out),
                                 *values, *extra])
    return r, out


@pytest.mark.parametrize("device_type,values", [("qemu", QEMU_VALUES),
                                                ("bcm2711-rpi-4-b", BOARD_VALUES)])
def test_rendered_jobs_pass_lavas_schema(tmp_path, device_type, values):
    need(jobs.SCHEMA.exists(), "lava-common (its lava-schema.py)")
    r, out = render(tmp_path, device_type, values)
    assert r.exit_code == 0, r.output
    assert "valid by lava-common's schema" in r.output
    job = yaml.safe_load(out.read_text())
    assert job["device_type"] == device_type
    steps = job["actions"][-1]["test"]["definitions"][0]["repository"]["run"]["steps"]
    assert any("runner.py --plan" in s for s in steps)
    assert any("lava-test-case \"device-$name\"" in s and "--measurement" in s for s in steps)
    if device_type == "qemu":
        # LAVA waits for the kernel's banner: never 'quiet'; icount by default.
        assert "quiet" not in job["actions"][0]["deploy"]["images"]["rootfs"]["image_arg"]
        assert "-icount shift=0" in job["context"]["extra_options"]


def test_a_broken_job_fails_the_schema(tmp_path):
    """The check is lava-common's, and it does check."""
    need(jobs.SCHEMA.exists(), "lava-common (its lava-schema.py)")
    r, out = render(tmp_path, "qemu", QEMU_VALUES)
    job = yaml.safe_load(out.read_text())
    job["actions"][1]["boot"]["method"] = "no-such-boot-method"
    job["timeouts"] = {"job": {"fortnights": 1}}
    out.write_text(yaml.safe_dump(job))
    with pytest.raises(Exception) as e:
        jobs.validate(out)
    assert "fails LAVA's job schema" in str(e.value)


def test_render_refusals(tmp_path):
    r, _ = render(tmp_path, "qemu", [])
    assert r.exit_code == 2 and "needs initrd_url, kernel_url, rootfs_url" in r.output, r.output
    r, _ = render(tmp_path, "qemu", QEMU_VALUES + ["--set", "colour=blue"])
    assert r.exit_code == 2 and "unknown template value(s) colour" in r.output, r.output
    r, _ = render(tmp_path, "qemu", QEMU_VALUES, "--modes", "nosuchmode")
    assert r.exit_code == 2 and "unknown mode 'nosuchmode'" in r.output, r.output


def test_the_plan_travels_whole(tmp_path):
    plan = jobs.plan_json(jobs.request("smoke", "noregs,regs", "kernel", 7), "icount")
    assert plan["unit"] == "instructions" and plan["plan"]["needs_module"] is True
    assert [c["id"] for c in plan["cells"]] == plan["plan"]["order"]
    assert {c["mode"] for c in plan["cells"]} == {"off", "noregs", "regs", "off-aa"}


def runner_block(tmp_path, records, raw=None):
    """What the runner prints for a results directory (its own code)."""
    out = tmp_path / "runner-out"
    out.mkdir()
    (out / "records.json").write_text(json.dumps(records))
    for rel, data in (raw or {}).items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        runner.print_bundle(str(out))
    return buf.getvalue()


RECORDS = {"plan": {}, "cells": [], "notes": [], "status": "failed",
           "error": "the kernel refused to read /sys/kernel/tracing/enabled_functions",
           "facts": {"kernel_release": "6.1.0-57-cloud-arm64", "arch": "aarch64"}}


@pytest.mark.parametrize("wrap", ["plain", "lava-run", "rest-yaml"])
def test_the_bundle_comes_back_out_of_every_log_form(tmp_path, wrap):
    block = runner_block(tmp_path, RECORDS)
    lines = ["Linux version 6.1 ...", "ftrace-regs-bench: runner: 6 cells"] + block.splitlines()
    if wrap == "lava-run":  # lava-run's stderr: a JSON object per line
        text = "\n".join(json.dumps({"dt": "x", "lvl": "target", "msg": l}) for l in lines)
    elif wrap == "rest-yaml":  # the server's YAML log
        text = yaml.safe_dump([{"dt": "x", "lvl": "target", "msg": l} for l in lines], width=1000)
    else:
        text = "\r\n".join(lines)
    path = rebuild(text, tmp_path / "b", {"device_type": "qemu", "job_id": "42", "icount": True})
    data = json.loads((path / "bundle.json").read_text())
    assert data["status"] == "failed" and data["error"] == RECORDS["error"]
    assert data["host"] == {"kind": "lava", "name": "qemu", "device_type": "qemu", "job_id": "42",
                            "server": None}
    assert data["clock"] == "icount"


def test_a_damaged_or_missing_block_is_refused(tmp_path):
    block = runner_block(tmp_path, RECORDS)
    lines = block.splitlines()
    damaged = "\n".join(lines[:1] + [lines[1][:-4] + "AAAA"] + lines[2:])
    with pytest.raises(BundleError, match="damaged"):
        rebuild(damaged, tmp_path / "b1", {})
    with pytest.raises(BundleError, match="no bundle"):
        rebuild("Linux version 6.1\nKernel panic\n", tmp_path / "b2", {})
    assert not (tmp_path / "b1" / "bundle.json").exists()


def test_the_devices_t_interval_is_scipys():
    from scipy import stats

    for df in list(range(1, 31)) + [40, 60, 120]:
        assert runner.t95(df) == pytest.approx(stats.t.ppf(0.975, df), abs=0.001), df
    # Between table rows the runner takes the row below: a wider interval, never a narrower one.
    for df in (31, 35, 50, 100, 500):
        assert stats.t.ppf(0.975, df) <= runner.t95(df) < stats.t.ppf(0.975, df) * 1.02
    mean, lo, hi, n = runner.estimate([1.0, 2.0, 4.0])
    ci = stats.t.interval(0.95, 2, loc=7 / 3, scale=stats.sem([1.0, 2.0, 4.0]))
    assert (mean, n) == (pytest.approx(7 / 3), 3) and (lo, hi) == pytest.approx(ci, abs=1e-3)
    assert math.isnan(runner.estimate([5.0])[1])


CAPTURED = pathlib.Path(__file__).resolve().parent.parent / "data" / "lava-run" / "qemu-smoke.log.gz"


def test_a_real_lava_run_log_gives_the_bundle_and_the_same_figures(tmp_path):
    """lava-run's own log of the qemu job (tests/data/README.md): the bundle
    rebuilt from its target lines, and LAVA's test-case measurements (the
    device's figures) equal to the controller's figures from the raw files."""
    import gzip

    entries = []
    for line in gzip.decompress(CAPTURED.read_bytes()).decode().splitlines():
        if line.startswith("{"):
            try:
                entries.append(json.loads(line))
            except ValueError:  # results carry YAML's non-specific tag: ! "595.846"
                entries.append(yaml.safe_load(line))
    target = "\n".join(str(e["msg"]) for e in entries if e["lvl"] == "target")
    path = rebuild(target, tmp_path / "b", {"device_type": "qemu", "job_id": "frb", "icount": True})
    data = json.loads((path / "bundle.json").read_text())
    assert data["status"] == "complete" and data["clock"] == "icount" and len(data["cells"]) == 6
    measured = {e["msg"]["case"]: float(e["msg"]["measurement"]) for e in entries
                if e["lvl"] == "results" and "measurement" in e["msg"]}
    for row in data["results"]:
        name = (f"device-{row['method']}-regs-gain" if row["metric"] == "regs_gain" else
                f"device-{row['method']}-{row['mode']}-{row['metric'].replace('_', '-')}")
        assert measured[name] == pytest.approx(row["value"], abs=0.001), name
    assert any("expanded its ring buffer" in n for n in data["notes"])


def test_the_log_alone_says_device_type_and_clock(tmp_path):
    """The rendered job tells the runner its device type and clock; they come
    back in the records, so a caller that knows nothing of the job gets the
    right unit."""
    records = dict(RECORDS, runner={"clock": "icount", "device_type": "qemu"})
    path = rebuild(runner_block(tmp_path, records), tmp_path / "b", {})
    data = json.loads((path / "bundle.json").read_text())
    assert data["clock"] == "icount" and data["host"]["device_type"] == "qemu"
    assert data["facts"]["lab"] == {"accel": "tcg", "icount": True, "via": "lava"}
    plan = jobs.plan_json(jobs.request("smoke", "function", "pyperf", 1), "icount", "qemu")
    assert (plan["clock"], plan["device_type"]) == ("icount", "qemu")


def test_the_runners_exit_codes_are_bench_runs():
    from bench.cli import EXIT_CODES

    for kind, code in runner.EXIT_CODES.items():
        assert EXIT_CODES[kind][0] == code, kind
