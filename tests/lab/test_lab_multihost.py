"""`bench run` on two hosts at once, for real: the QEMU lab and the loopback
sshd (tests/sshfixture.py), whose target is this machine, whose kernel
refuses tracing (kernel lockdown; no kprobes, no modules).  One command:
the lab's bundle complete, the other host's one-line error in the summary,
the lab as it was before, this machine as it was before, and the exit code
of the documented rule (bench/multihost.py: exit_code): the hosts ended
differently, so 12.  Then Ctrl-C on that command: every host stops and the
lab is restored, exit 130.

Cheap: smoke profile, the kernel method (the module comes from the cache,
conftest.lab_module), modes noregs and regs.

This file is in the `host` group (tests/conftest.py): it uses this machine
as a target, as the sshd tests do."""
import glob
import json
import signal
import subprocess
import time

import pytest

from bench.cli import EXIT_CODES, EXIT_INTERRUPTED
from labtools import AGENT_PROCESS, assert_same_tracefs, leftovers, module_loaded, popen_bench, read_tracefs

pytestmark = pytest.mark.lab

PLAN = ["--profile", "smoke", "--methods", "kernel", "--modes", "noregs,regs"]


def this_machine():
    """What a run on bench-root could leave on this machine: agent
    directories and processes (the guardian takes a moment to see its agent go)."""
    deadline = time.monotonic() + 30
    while True:
        dirs = sorted(glob.glob("/tmp/ftrace-regs-bench.*"))
        procs = subprocess.run(["pgrep", "-af", AGENT_PROCESS], capture_output=True, text=True).stdout
        if (not dirs and not procs) or time.monotonic() > deadline:
            return dirs, procs


def lab_state(target):
    lock = target.run(["sh", "-c", "ls /run/ftrace-regs-bench.lock 2>/dev/null; true"], timeout=60).text
    return read_tracefs(target), leftovers(target), module_loaded(target), lock.strip()


def assert_lab_restored(target, before):
    tracefs, left, module, lock = lab_state(target)
    assert_same_tracefs(before[0], tracefs)
    assert (left, module, lock) == ([], False, ""), (left, module, lock)


def start(sshd, out, log):
    return popen_bench(["run", "--host", "lab", "--host", "bench-root", "--ssh-config", sshd.config_path,
                        *PLAN, "--out", str(out)], stdout=log, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL)


def test_lab_and_a_refusing_host_in_one_command(lab, lab_module, lab_target, sshd, tmp_path):
    before, mine = lab_state(lab_target), this_machine()
    out, log = tmp_path / "out", tmp_path / "multihost.log"
    t0 = time.monotonic()
    with open(log, "w") as f:
        code = start(sshd, out, f).wait(timeout=1800)
    text = log.read_text()
    print(f"bench run --host lab --host bench-root: exit {code}, {time.monotonic() - t0:.0f} s\n{text}")
    # The documented rule: one host succeeded and one failed, so 12.
    assert code == EXIT_CODES["hosts"][0] == 12, text
    # The lab's bundle, complete, where --out DIR puts it with several hosts: DIR/<host>/.
    b = json.loads((out / "lab" / "bundle.json").read_text())
    assert b["status"] == "complete" and b["host"]["name"] == "lab"
    assert {c["mode"] for c in b["cells"]} >= {"off", "noregs", "regs"}
    assert any(r["metric"] == "regs_gain" for r in b["results"])
    assert b["command"].startswith("bench run --host lab --out "), b["command"]
    # The other host: its one-line error, prefixed, and no bundle.
    assert not (out / "bench-root").exists()
    errors = [l for l in text.splitlines() if l.startswith("[bench-root]") and "bench: error:" in l]
    assert len(errors) == 1 and "lockdown" in errors[0], text
    assert "Traceback" not in text
    # Progress came prefixed, per host; the summary says how each ended.
    assert any(l.startswith("[lab]") and "[1/" in l for l in text.splitlines()), text
    summary = text[text.index("hosts:"):].splitlines()[1:3]
    assert summary[0].split()[:4] == ["lab", "exit", "0", "ok;"], summary
    assert summary[1].split()[:4] == ["bench-root", "exit", str(EXIT_CODES["refused"][0]), "failed:"], summary
    assert "lockdown" in summary[1] and "no bundle" in summary[1], summary
    assert_lab_restored(lab_target, before)
    assert this_machine() == mine


def test_ctrl_c_stops_and_restores_every_host(lab, lab_module, lab_target, sshd, tmp_path):
    before = lab_state(lab_target)
    out, log = tmp_path / "out", tmp_path / "multihost-int.log"
    with open(log, "w") as f:
        p = start(sshd, out, f)
        try:
            # Ctrl-C once the lab has measured a cell: the terminal's SIGINT
            # goes to bench alone (each host's run is in a group of its own).
            deadline = time.monotonic() + 900
            while "[lab]" not in log.read_text() or " [1/" not in log.read_text():
                assert p.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
            p.send_signal(signal.SIGINT)
            code = p.wait(timeout=600)
        finally:
            if p.poll() is None:
                p.kill()
    text = log.read_text()
    print(text)
    assert code == EXIT_INTERRUPTED, text
    assert "bench: interrupted" in text
    b = json.loads((out / "lab" / "bundle.json").read_text())
    assert b["status"] == "interrupted" and b["cells"], b["status"]
    assert_lab_restored(lab_target, before)
