"""Rows of the README's error table that need the lab (a real tracefs and
the suite's module on a real kernel).
"""
import os

import pytest
from click.testing import CliRunner

from bench.cli import EXIT_CODES, cli, exit_code

def one_line(r):
    lines = [l for l in r.output.splitlines() if l.startswith("bench: ")]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    return lines[0]


def guest_python(target, code):
    """Run code in the lab's python3 next to the agent's tracefs.py and
    kmod.py and the package `protocol` they import, as the agent's payload
    lays them out; returns its stdout."""
    from remote.agent_client import payload

    d = target.run(["mktemp", "-d", "/tmp/bench-test.XXXXXXXX"], timeout=60).text.strip()
    try:
        for rel, data in payload().items():
            if rel in ("tracefs.py", "kmod.py") or rel.startswith("protocol/"):
                if os.path.dirname(rel):
                    target.run(["mkdir", "-p", f"{d}/{os.path.dirname(rel)}"], timeout=60)
                target.write_file(f"{d}/{rel}", data)
        r = target.run(["python3", "-c", f"import sys; sys.path.insert(0, {d!r})\n" + code],
                       timeout=300)
        assert r.returncode == 0, r.err
        return r.text
    finally:
        target.run(["rm", "-rf", d], timeout=60)


@pytest.mark.lab
def test_tracefs_rejected_value_and_other_errors(lab_target):
    """EINVAL is 'invalid' (exit 6), any other errno 'tracefs' (exit 6);
    the rejected write changes nothing."""
    out = guest_python(lab_target, """
import tracefs
t = tracefs.Tracefs.find()
for f in (lambda: t.write("current_tracer", "no_such_tracer"), lambda: t.read("no_such_knob")):
    try:
        f()
    except tracefs.TracefsError as e:
        print(e.kind + "|" + str(e))
print("tracer|" + t.read("current_tracer").strip())
""")
    lines = dict(l.split("|", 1) for l in out.splitlines())
    assert lines["invalid"] == ("the kernel refused to write 'no_such_tracer' to "
                                "/sys/kernel/tracing/current_tracer: Invalid argument")
    assert lines["tracefs"] == ("the kernel refused to read /sys/kernel/tracing/no_such_knob: "
                                "No such file or directory")
    assert lines["tracer"] == "nop"
    assert exit_code("invalid") == exit_code("tracefs") == 6


@pytest.mark.lab
def test_a_leftover_module_that_cannot_be_removed_is_exit_7(lab, lab_target, lab_module, tmp_path):
    """A module from an earlier run, held open by a process (rmmod: in use):
    one line, exit 7, tracefs restored, nothing left of ours."""
    lab_target.write_file("/tmp/leftover.ko", lab_module.read_bytes())
    lab_target.run(["sh", "-c", "mountpoint -q /sys/kernel/debug || mount -t debugfs nodev "
                    "/sys/kernel/debug; insmod /tmp/leftover.ko"], timeout=120)
    holder = lab_target.start(["sh", "-c", "exec 3</sys/kernel/debug/ftrace_regs_bench/info; "
                               "echo held; exec sleep 600"])
    try:
        assert holder.readline(60) == b"held\n"
        r = CliRunner().invoke(cli, ["run", "--host", "lab", "--profile", "quick", "--modes",
                                     "off,noregs", "--methods", "kernel", "--out", str(tmp_path / "b")])
        assert r.exit_code == EXIT_CODES["module-busy"][0] == 7, r.output
        assert ("a ftrace_regs_bench module from an earlier run is loaded and cannot be removed: "
                "rmmod ftrace_regs_bench failed") in one_line(r)
        assert not (tmp_path / "b").exists()
        left = lab_target.run(["sh", "-c", "ls -d /tmp/ftrace-regs-bench.* /run/ftrace-regs-bench.lock"
                               " 2>/dev/null; pgrep -af '[a]gent.py'; cat /sys/kernel/tracing/"
                               "current_tracer"], timeout=60).text.split()
        assert left == ["nop"], left
    finally:
        holder.kill()  # by its pid
        lab_target.run(["sh", "-c", "sleep 1; rmmod ftrace_regs_bench; rm -f /tmp/leftover.ko"],
                       timeout=60)
    assert "ftrace_regs_bench" not in lab_target.run(["cat", "/proc/modules"], timeout=60).text


@pytest.mark.lab
def test_a_module_that_does_not_build_is_exit_6(lab, lab_target, tmp_path, monkeypatch):
    from remote import agent_client, cache

    src = tmp_path / "kmod"
    src.mkdir()
    (src / "Makefile").write_bytes((agent_client.KMOD_DIR / "Makefile").read_bytes())
    (src / "ftrace_regs_bench.c").write_text("#error this source is broken on purpose\n")
    monkeypatch.setattr(agent_client, "KMOD_DIR", src)
    monkeypatch.setattr(cache, "ROOT", tmp_path / "cache")
    r = CliRunner().invoke(cli, ["run", "--host", "lab", "--profile", "quick", "--modes", "off,noregs",
                                 "--methods", "kernel", "--out", str(tmp_path / "b")])
    assert r.exit_code == EXIT_CODES["module-build"][0] == 6, r.output
    line = one_line(r)
    assert "building the module failed: " in line and "broken on purpose" in line, line
    assert not (tmp_path / "b").exists()


@pytest.mark.lab
def test_a_module_build_that_takes_too_long_is_exit_10(lab_target):
    """kind 'module': the build's time limit (here 1 s) is enforced."""
    out = guest_python(lab_target, """
import os, kmod, shutil, tempfile
src = tempfile.mkdtemp()
open(os.path.join(src, "Makefile"), "w").write("obj-m += slow.o\\n")
open(os.path.join(src, "slow.c"), "w").write("int x;\\n")
try:
    kmod.Kmod(src, src).prepare(build_timeout=1)
except kmod.KmodError as e:
    print(e.kind + "|" + str(e))
shutil.rmtree(src)
""")
    kind, msg = out.strip().split("|", 1)
    assert (kind, msg) == ("module", "building the module took over 1 s")
    assert exit_code(kind) == 10
