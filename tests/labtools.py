"""What the lab tests read on the target and compare: tracefs knobs, files
byte for byte, leftovers of a run, the module.  Shared by every lab test file
and by the shared runs in conftest.py."""
import base64
import time

from scipy import stats

from remote.protocol.tracefs_text import same_state

TRACEFS = "/sys/kernel/tracing"
FILES = ("current_tracer", "tracing_on", "set_ftrace_filter", "set_ftrace_notrace", "set_ftrace_pid",
         "buffer_size_kb")
# What --tune may write in the lab (QEMU virt has no cpufreq: test_lab_bpf checks it).
TUNE_FILES = ("/proc/sys/kernel/perf_event_max_sample_rate",)
# A test that asks whether one run's interval covers a known answer asks it at
# this confidence, not at the report's 95%: a 95% interval misses the truth in
# one run of twenty by construction, and CI runs every lab test on every
# submission (test_lab_bpf's regs gain came out [9.16, ...] once, a CI failure).
TEST_CONFIDENCE = 0.999


def interval_at(row, confidence=TEST_CONFIDENCE):
    """(low, high): a result row's Student t interval over its n rounds (as
    analysis/stats.py draws it at 95%) drawn again at another confidence."""
    n, value = row["n"], row["value"]
    ratio = stats.t.ppf(0.5 + confidence / 2, n - 1) / stats.t.ppf(0.975, n - 1)
    return (value - (value - row["ci_low"]) * ratio, value + (row["ci_high"] - value) * ratio)


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
            # The kernel's one-time expansion on first tracer use (docs/safety.md).
            assert same_state(f, before[f], after[f]), (before[f], after[f])
        else:
            assert after[f] == before[f], f"{f}: {before[f]!r} -> {after[f]!r}"


# The agent and its guardian (a fork of it) by the path they run from: a
# process that only names agent.py (a `git diff -- remote/agent/agent.py` on
# the machine under test failed the sshd soak once) is not ours.  The
# brackets keep pgrep from matching the sh that runs it.
AGENT_PROCESS = "ftrace-regs-bench[.][^ /]*/agent[.]py"
AGENT_PGREP = f"pgrep -af '{AGENT_PROCESS}'"


def leftovers(target, wait=10.0):
    """Agent directories or processes left on the target (the guardian polls
    once a second, so give it a moment)."""
    deadline = time.monotonic() + wait
    while True:
        r = target.run(["sh", "-c", "ls -d /tmp/ftrace-regs-bench.* 2>/dev/null; "
                                    f"{AGENT_PGREP}; true"], timeout=60)
        if not r.text.split() or time.monotonic() > deadline:
            return r.text.split()
        time.sleep(1)


def module_loaded(target):
    r = target.run(["sh", "-c", "grep -c '^ftrace_regs_bench ' /proc/modules; true"], timeout=60)
    return r.text.strip() not in ("", "0")


def file_bytes(target, path):
    """A file's exact bytes on the target (base64 over SSH)."""
    r = target.run(["base64", path], timeout=60)
    assert r.returncode == 0, r.err
    return base64.b64decode(r.text)


def tune_state(target):
    return {p: file_bytes(target, p) for p in TUNE_FILES}


def guest_uptime(target):
    return float(target.run(["cut", "-d", " ", "-f1", "/proc/uptime"], timeout=60).text)


def popen_bench(args, **kw):
    """`python -m bench.cli ARGS...` as a process of its own, so that a test can
    signal it.  SIGINT is reset to its default first: a shell that runs the
    tests in the background (`pytest &` in a script, CI runners that detach)
    starts them with SIGINT ignored, a child inherits that, and Python then
    installs no KeyboardInterrupt handler, so the test's "Ctrl-C" would do
    nothing.  That is what made the Ctrl-C and module-load-on-resume tests
    fail in some runs and pass in others."""
    import signal
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "bench.cli", *args],
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)
