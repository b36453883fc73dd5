"""The target lock (remote/agent/lock.py) between real processes: a live
holder refuses a second run and is named; a dead one's lock is recovered."""
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

AGENT_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "remote", "agent")
sys.path.insert(0, AGENT_DIR)

import lock as lock_mod  # noqa: E402


def holder_process(path, holder="alice@ctl pid 1"):
    """Another process that takes the lock and keeps it until killed."""
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {AGENT_DIR!r})
        import lock
        lock.Lock({str(path)!r}).acquire({holder!r}, "/tmp/ftrace-regs-bench.x")
        print("locked", flush=True)
        time.sleep(600)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_second_run_is_refused_naming_the_holder_and_its_age(tmp_path):
    path = tmp_path / "lock"
    p = holder_process(path)
    try:
        time.sleep(1.1)
        with pytest.raises(lock_mod.Busy) as e:
            lock_mod.Lock(str(path)).acquire("bob@other pid 2", "/tmp/y")
        msg = str(e.value)
        assert msg.startswith("another bench run holds this host: alice@ctl pid 1 (agent pid ")
        assert f"agent pid {p.pid}" in msg
        age = float(msg.rsplit("for ", 1)[1].split(" s)")[0])
        assert age >= 1
        assert e.value.kind == "target-locked"
    finally:
        p.kill()
        p.wait()


def test_a_dead_holders_lock_is_recovered_with_a_note(tmp_path):
    path = tmp_path / "lock"
    p = holder_process(path)
    p.kill()  # kill -9: the file stays, its flock goes with the process
    p.wait()
    assert json.loads(path.read_text())["agent_pid"] == p.pid
    lk = lock_mod.Lock(str(path)).acquire("bob@other pid 2", "/tmp/y")
    assert lk.recovered.startswith("a stale lock was recovered: alice@ctl pid 1")
    assert f"its agent pid {p.pid} is gone" in lk.recovered
    info = json.loads(path.read_text())
    assert info["holder"] == "bob@other pid 2" and info["agent_pid"] == os.getpid()
    assert info["boot_id"] and info["workdir"] == "/tmp/y"
    lk.release()
    assert not path.exists()


def test_a_lock_from_another_boot_says_so(tmp_path):
    path = tmp_path / "lock"
    path.write_text(json.dumps({"holder": "old@ctl pid 9", "agent_pid": 1, "boot_id": "other",
                                "started": time.time() - 3600}))
    lk = lock_mod.Lock(str(path)).acquire("me pid 3", "/tmp/z")
    assert "the host rebooted since" in lk.recovered and "for 3600 s" in lk.recovered
    lk.release()


def test_release_then_acquire_and_no_file_left(tmp_path):
    path = tmp_path / "lock"
    for _ in range(3):
        lk = lock_mod.Lock(str(path)).acquire("me pid 3", "/tmp/z")
        assert lk.recovered is None
        lk.release()
    assert not path.exists()


def test_the_lock_follows_an_inherited_descriptor(tmp_path):
    """The guardian inherits the agent's descriptor: the host stays locked
    until the guardian, too, has let go."""
    path = tmp_path / "lock"
    lk = lock_mod.Lock(str(path)).acquire("agent pid 4", "/tmp/w")
    fd = lk.inheritable_fd()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], pass_fds=(fd,))
    try:
        os.close(fd)  # the agent is gone; the child (guardian) still holds the lock
        lk.fd = None
        with pytest.raises(lock_mod.Busy):
            lock_mod.Lock(str(path)).acquire("second pid 5", "/tmp/v")
    finally:
        child.kill()
        child.wait()
    lock_mod.Lock(str(path)).acquire("second pid 5", "/tmp/v").release()
