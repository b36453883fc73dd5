"""LAVA job definitions rendered from the suite's templates (templates/).

A job carries everything the device needs: the agent's payload (the same
files `bench run` ships: remote/agent_client.py payload(), the standalone
runner among them), the plan as JSON (bench/plan.py's make_plan: the device
needs no pandas or numpy to read it) and, optionally, a module built for the
device's kernel, as one base64 tar.gz inline in the test definition.

The plan is made here, before anything is known of the device: it is not
restricted to what the device supports (bench run restricts with bench
check's answers); a cell the device cannot measure fails the run with the
reason, in the job's log and the rebuilt bundle.

Device types: `qemu` (LAVA's qemu device type booting the lab's kernel,
initrd and image; templates/qemu.jinja2) and any other name, an arm64 board
under u-boot with TFTP and NFS (templates/arm64-uboot.jinja2).
"""
import base64
import io
import json
import pathlib
import subprocess
import tarfile

import jinja2

from remote.agent_client import payload

from .. import __version__
from ..errors import UsageError
from ..plan import make_plan, parse_list, select_profile, METHODS
from remote.protocol import modes as mode_registry

TEMPLATES = pathlib.Path(__file__).parent / "templates"
# Where the payload goes on the device, and the runner's output.
DEVICE_DIR = "/tmp/ftrace-regs-bench-lava"
DEVICE_OUT = "/tmp/ftrace-regs-bench-lava-out"
SCHEMA = pathlib.Path("/usr/share/lava-common/lava-schema.py")
SYSTEM_PYTHON = "/usr/bin/python3"

# Per device type: the template and its values' defaults (--set overrides).
COMMON = {"job_minutes": 90, "boot_minutes": 10, "test_minutes": 75, "prompts": ["# "]}
DEVICE_TYPES = {
    "qemu": ("qemu.jinja2", dict(
        COMMON,
        kernel_url=None, initrd_url=None, initrd_compression="gz", rootfs_url=None,
        rootfs_format="raw",
        cpu="max,pauth-impdef=on", memory_mb=2048, icount=True,
        # Not `quiet`: LAVA waits for the kernel's "Linux version" banner.
        # The lab's image starts sshd from its inittab and has no getty:
        # a root shell on the console instead.
        kernel_args="root=/dev/vda rw console=ttyAMA0 net.ifnames=0 panic=-1 init=/bin/sh",
        # Run after the shell's prompt, before the test: the lab's own
        # sysinit (mounts, network) and a download with the image's python3
        # (no wget in it); LAVA appends the overlay's URL.
        setup_command="/etc/lab/rc.sysinit >/dev/null 2>&1; cd /",
        unpack_command="tar -C / -xzf")),
}
BOARD = ("arm64-uboot.jinja2", dict(
    COMMON, kernel_url=None, kernel_type="image", dtb_url=None, ramdisk_url=None,
    nfsrootfs_url=None, nfsrootfs_compression="xz", login_prompt="login:", username="root",
    prompts=["root@"], icount=False))
DOWNLOAD = ("python3 -c 'import sys, urllib.request as u; "
            "u.urlretrieve(sys.argv[1], sys.argv[1].rsplit(\"/\", 1)[1])'")


def request(profile, modes, methods, seed=None):
    """The plan's request, checked as bench run checks it."""
    known = [m for m in mode_registry.names()]
    return {"profile": select_profile(profile).name,
            "modes": parse_list(modes, known, "modes"),
            "methods": parse_list(methods, list(METHODS), "methods"), "seed": seed}


def plan_json(req, clock, device_type=None):
    """The plan as the runner reads it: bench/plan.py's dict, the cells, and
    what the runner needs that the controller otherwise decides (the
    module, the clock's unit)."""
    plan = make_plan(select_profile(req["profile"]), req["modes"], methods=req["methods"],
                     seed=req.get("seed"))
    d = plan.to_dict()
    d["needs_module"] = plan.needs_module
    d["kernel_save_regs"] = plan.kernel_save_regs
    d["kernel_calls"] = None
    cells = [{"id": c.id, "round": c.round, "mode": c.mode, "workload": c.workload,
              "method": c.method} for c in plan.cells]
    # clock and device type travel with the plan and come back in the
    # runner's records: the bundle is rebuilt right from the log alone.
    return {"tool_version": __version__, "plan": d, "cells": cells, "clock": clock,
            "device_type": device_type, "unit": "instructions" if clock == "icount" else "ns"}


def payload_b64(plan, kmod=None):
    """The agent's payload, the plan and the module as one base64 tar.gz."""
    files = dict(payload())
    files["plan.json"] = json.dumps(plan, indent=1).encode()
    if kmod:
        files["ftrace_regs_bench.ko"] = pathlib.Path(kmod).read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for rel, data in sorted(files.items()):
            info = tarfile.TarInfo(rel)
            info.size, info.mode = len(data), 0o644
            t.addfile(info, io.BytesIO(data))
    return base64.b64encode(buf.getvalue()).decode()


def steps(b64, kmod):
    run = (f"python3 {DEVICE_DIR}/runner.py --plan {DEVICE_DIR}/plan.json --out {DEVICE_OUT}"
           + (f" --kmod {DEVICE_DIR}/ftrace_regs_bench.ko" if kmod else ""))
    return [
        f"rm -rf {DEVICE_DIR} {DEVICE_OUT}; mkdir -p {DEVICE_DIR}",
        # LAVA's run.sh traces each command (set -x): not this one, which
        # would echo the whole payload over the console.
        f"set +x; echo '{b64}' | base64 -d | tar -C {DEVICE_DIR} -xzf -; set -x",
        # The runner's exit code is a test case of its own; its figures follow.
        f"if {run}; then lava-test-case runner --result pass; "
        f"else lava-test-case runner --result fail; fi",
        f"while read -r name value unit; do lava-test-case \"device-$name\" --result pass "
        f"--measurement \"$value\" --units \"$unit\"; done < {DEVICE_OUT}/figures.txt",
        f"rm -rf {DEVICE_DIR} {DEVICE_OUT}",
    ]


def parse_values(items):
    """--set KEY=VALUE... -> dict (VALUE as JSON when it parses: numbers, booleans, lists)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"bad --set {item!r}", hint="give KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def defaults(device_type):
    return DEVICE_TYPES.get(device_type, BOARD)


def render(device_type, req, values, kmod=None):
    """The job definition (YAML text) for `device_type`."""
    template, base = defaults(device_type)
    unknown = sorted(set(values) - set(base))
    if unknown:
        raise UsageError(f"unknown template value(s) {', '.join(unknown)} for device type "
                         f"{device_type}", hint="known: " + ", ".join(sorted(base)))
    v = dict(base, **values)
    missing = sorted(k for k, x in v.items() if x is None and not k.endswith("ramdisk_url"))
    if missing:
        raise UsageError(f"device type {device_type} needs " + ", ".join(missing),
                         hint="give each with --set KEY=VALUE (a URL, file:// for local files)")
    clock = "icount" if v.get("icount") else "wall"
    b64 = payload_b64(plan_json(req, clock, device_type), kmod)
    v.update(device_type=device_type, tool_version=__version__, clock=clock,
             job_name=f"ftrace-regs-bench {req['profile']} {','.join(req['modes'])} "
                      f"{','.join(req['methods'])} on {device_type}",
             steps=steps(b64, kmod))
    if device_type in DEVICE_TYPES:
        v["extra_options"] = ["-smp 1"] + (["-accel tcg,thread=single", "-icount shift=0"]
                                           if v["icount"] else [])
        v["download_command"] = v["setup_command"] + "; " + DOWNLOAD
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.get_template(template).render(**v)


def write(job, out):
    path = pathlib.Path(out)
    try:
        path.write_text(job)
    except OSError as e:
        from analysis.bundle import OutputError
        raise OutputError(f"cannot write the job to {path}: {e.strerror or e}")
    return path


def validate(path):
    """lava-common's schema check when it is installed; what was done, in words."""
    if not SCHEMA.exists():
        return "not validated (lava-common is not installed: apt-get install lava-common)"
    # The distribution's python: lava-common and its voluptuous are the
    # distribution's packages (a venv's or pyenv's python3 lacks them).
    r = subprocess.run([SYSTEM_PYTHON, str(SCHEMA), "job", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        raise UsageError(f"{path} fails LAVA's job schema: "
                         + " ".join((r.stdout + r.stderr).split())[-400:],
                         hint="a template bug: please report it")
    return "valid by lava-common's schema"
