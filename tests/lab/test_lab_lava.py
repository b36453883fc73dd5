"""A LAVA job rendered by the suite, run for real by Debian's lava-dispatcher.

`lava-run` (lava-dispatcher 2023.01: a job run locally, without a server)
runs the job `bench lava render --device-type qemu` makes, on LAVA's qemu
device type: its device dictionary rendered from the qemu.jinja2 device-type
template that the lava-server package ships, with the job's context (arm64,
-cpu max, icount).  The job boots the lab's debian-6.1 kernel, initrd and
root filesystem (a qcow2 overlay on the cached image: the image itself is
never written), fetches LAVA's test overlay over HTTP (served here, as a
worker's web server would), and its test runs the standalone runner on a
smoke plan.  Out of the job's log comes the bundle; `bench export` and
`bench report` read it, and the device's preliminary figures are LAVA
test-case measurements in lava-run's results.

Each test boots a QEMU of its own (not the session's lab).
"""
import http.server
import json
import os
import pathlib
import re
import shutil
import subprocess
import threading
import time

import jinja2
import pytest
import yaml
from click.testing import CliRunner

from bench.cli import cli
from bench.lava.bundle import rebuild
from conftest import need

pytestmark = pytest.mark.lab

LAVA_RUN = "/usr/bin/lava-run"
DOWNLOAD_DIR = pathlib.Path("/var/lib/lava/dispatcher/tmp")  # lava_common.constants
DEVICE_TYPES = pathlib.Path("/usr/share/lava-server/device-types")


def device_types_dir(cache):
    """lava-server's device-type templates: installed, or taken out of the
    package (apt-get download lava-server; dpkg -x), which is all a
    server-less dispatcher needs of it."""
    if (DEVICE_TYPES / "qemu.jinja2").exists():
        return DEVICE_TYPES
    where = cache / "lava-server"
    found = where / "usr/share/lava-server/device-types"
    if not (found / "qemu.jinja2").exists():
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "lava-server"], cwd=where, check=True,
                       capture_output=True)
        deb = next(where.glob("lava-server_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(where)], check=True)
    return found


def device_dictionary(types_dir, context):
    """The device dictionary as lava-server renders it for a job: the device
    type's template with the job's context."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(types_dir)), autoescape=False,
                             trim_blocks=True)
    return env.get_template("qemu.jinja2").render(**context)


class OverlayServer:
    """What a LAVA worker's web server does for transfer_overlay: its
    download directory under /tmp/, here on 127.0.0.1 (the guest's 10.0.2.2)."""

    def __init__(self):
        class Handler(http.server.SimpleHTTPRequestHandler):
            def translate_path(self, path):
                rel = path.split("?", 1)[0]
                if not rel.startswith("/tmp/") or ".." in rel:
                    return "/nonexistent"
                return str(DOWNLOAD_DIR / rel[len("/tmp/"):])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def log_entries(text):
    """lava-run's log on stderr: one mapping per line ({"dt", "lvl", "msg"}),
    JSON except the results, whose values may carry YAML's non-specific tag
    ("measurement": ! "595.846"): read as YAML, which JSON is a subset of."""
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append(yaml.load(line, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    return out


def run_job(tmp_path, *render_args):
    """Render a qemu job for the lab's debian-6.1 image, run it with lava-run;
    returns (lava-run's log entries, the ftrace-regs-bench test cases by
    name, the bundle rebuilt from the log, its bundle.json)."""
    need(os.path.exists(LAVA_RUN), "lava-dispatcher (lava-run)")
    need(shutil.which("qemu-img"), "qemu-img (qemu-utils)")
    from remote import cache
    from remote import lab as labmod

    image = labmod.build(labmod.select("debian-6.1"), progress=lambda t: None)
    types_dir = device_types_dir(cache.ROOT / "lava")
    rootfs = tmp_path / "rootfs.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                    str(image / "rootfs.ext4"), str(rootfs)], check=True)

    job_path = tmp_path / "job.yaml"
    r = CliRunner().invoke(cli, [
        "lava", "render", "--device-type", "qemu", "--out", str(job_path), "--profile", "smoke",
        *render_args, "--seed", "1",
        "--set", f"kernel_url=file://{image / 'vmlinuz'}",
        "--set", f"initrd_url=file://{image / 'initrd.img'}",
        "--set", f"rootfs_url=file://{rootfs}", "--set", "rootfs_format=qcow2"])
    assert r.exit_code == 0, r.output
    assert "valid by lava-common's schema" in r.output, r.output
    job = yaml.safe_load(job_path.read_text())
    assert not any("quiet" in a for a in str(job["actions"][0]).split())

    (tmp_path / "device.yaml").write_text(device_dictionary(types_dir, job["context"]))
    server = OverlayServer()
    (tmp_path / "dispatcher.yaml").write_text(f"dispatcher_http_ip: '10.0.2.2:{server.port}'\n")
    job_id = f"frb-{os.getpid()}-{int(time.time())}"
    log_path = tmp_path / "lava-run.log"  # written as it comes: `tail -f` follows the job
    try:
        with open(log_path, "w") as logf:
            p = subprocess.run([LAVA_RUN, "--job-id", job_id, "--output-dir", str(tmp_path / "out"),
                                "--device", str(tmp_path / "device.yaml"),
                                "--dispatcher", str(tmp_path / "dispatcher.yaml"), str(job_path)],
                               stdout=logf, stderr=subprocess.STDOUT, text=True, timeout=3600)
    finally:
        server.close()
        shutil.rmtree(DOWNLOAD_DIR / job_id, ignore_errors=True)
    entries = log_entries(log_path.read_text())
    results = [e["msg"] for e in entries if e.get("lvl") == "results"]
    job_result = next((r for r in results if r.get("case") == "job"), {})
    assert p.returncode == 0 and job_result.get("result") == "pass", \
        f"lava-run exit {p.returncode}: {job_result}; log: {log_path}"
    cases = {r["case"]: r for r in results if r.get("definition", "").endswith("ftrace-regs-bench")}
    assert cases.get("runner", {}).get("result") == "pass", (results, log_path)

    # The bundle comes back out of the log: the target's messages joined.
    target = "\n".join(str(e["msg"]) for e in entries if e.get("lvl") == "target")
    # the device's progress lines say the clock's unit: instructions under icount, never ns
    progress = [line for line in target.splitlines() if re.search(r": cell \d+/\d+ ", line)]
    assert progress and all(" instructions per call" in line for line in progress), progress[:3]
    bundle = rebuild(target, tmp_path / "bundle", {"device_type": "qemu", "job_id": job_id,
                                                   "icount": True, "accel": "tcg"})
    data = json.loads((bundle / "bundle.json").read_text())
    assert data["status"] == "complete" and data["clock"] == "icount", data.get("error")
    assert all(c["tracefs"]["before"] and c["tracefs"]["after"] for c in data["cells"])
    assert data["facts"]["kernel_release"].startswith("6.1.")
    # Restored: every knob as it was, but the ring buffer the kernel expands
    # once per boot on first tracer use (noted, as bench run notes it).
    changed = {k for k in data["tracefs_before"] if data["tracefs_after"].get(k) != data["tracefs_before"][k]}
    assert changed <= {"buffer_size_kb"}, changed
    assert not changed or any("expanded its ring buffer" in n for n in data["notes"])
    assert not data.get("restore_problems")
    r = CliRunner().invoke(cli, ["export", str(bundle), "--format", "csv"])
    assert r.exit_code == 0, r.output
    r2 = CliRunner().invoke(cli, ["report", str(bundle), "--out", str(tmp_path / "report")])
    assert r2.exit_code == 0, r2.output
    assert (tmp_path / "report" / "report.html").exists()
    # Every device figure (a LAVA measurement) is the controller's from the raw files.
    for row in data["results"]:
        name = (f"device-{row['method']}-regs-gain" if row["metric"] == "regs_gain" else
                f"device-{row['method']}-{row['mode']}-{row['metric'].replace('_', '-')}")
        assert cases[name]["result"] == "pass" and cases[name]["units"] == "instructions"
        assert abs(float(cases[name]["measurement"]) - row["value"]) < 0.001 + 1e-6 * abs(row["value"])
    return cases, data, r.output


def test_lava_run_runs_the_rendered_qemu_job_and_builds_the_module_on_the_device(tmp_path):
    """One job (each costs about two minutes of lava-run, QEMU's boot and
    the test overlay before its first cell): pyperf and the kernel method,
    `function`, `noregs` and `regs`, 18 cells.  pyperf with the function
    tracer is the whole round trip; for the kernel method no module is
    shipped, so the runner has the device build it against its own headers
    (as a board without a prebuilt module would), then the regs gain: nine
    instructions in 6.1 (README)."""
    t0 = time.monotonic()
    cases, data, csv = run_job(tmp_path, "--modes", "function,noregs,regs", "--methods", "pyperf,kernel")
    # pyperf: off, off-aa and the three modes; kernel: off, off-aa, noregs, regs; 2 rounds
    assert len(data["cells"]) == 18
    assert {"device-pyperf-off-per-call", "device-pyperf-function-overhead"} <= set(cases), cases
    assert "function,getppid,pyperf,overhead" in csv and ",instructions," in csv, csv
    row = next(x for x in data["results"] if x["method"] == "pyperf" and x["mode"] == "function"
               and x["metric"] == "overhead")
    assert data["module"]["built_on_target"] is True and data["module"]["prebuilt"] is False
    gain = next(x for x in data["results"] if x["metric"] == "regs_gain" and x["method"] == "kernel")
    assert 8 < gain["value"] < 10 and float(cases["device-kernel-regs-gain"]["measurement"]) == \
        pytest.approx(gain["value"], abs=0.001)
    print(f"lava-run job: {time.monotonic() - t0:.0f} s; function overhead {row['value']:.1f} "
          f"[{row['ci_low']:.1f}, {row['ci_high']:.1f}] instructions (n={row['n']}); regs gain "
          f"{gain['value']:.2f} [{gain['ci_low']:.2f}, {gain['ci_high']:.2f}] instructions "
          f"(n={gain['n']}), module built in {data['module']['build_seconds']} s of the guest's clock")
