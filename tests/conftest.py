"""Shared fixtures and the suite's tiers.

Tiers: a test's tier is the folder it lives in (tests/unit, tests/sshd,
tests/lab, tests/kbuild), and each test gets its tier's marker:

    unit    no outside part: captured data, the committed bundles, Chromium
    sshd    a real OpenSSH server on 127.0.0.1 (tests/sshfixture.py)
    lab     the real QEMU arm64 lab, booted once per session (debian-6.1, icount)
    kbuild  the lab's own kernels (regs-6.1, fallback-6.1): built or taken from
            the cache, each booted in a lab of its own

The fast tier, for working: python -m pytest -m "not lab and not kbuild".
Within a test process tests run tier by tier in that order; two processes
share the work (see group_of below).

Shared runs: the lab tests assert on a few `bench run`s made once per
session (full_run, lab_module) instead of each starting its own.

Outside CI a missing part skips with a reason naming it; in CI (CI set) it
fails, because .ci/run installs every part, and any other skip fails too.
A failing lab test prints the tail of the agent's stderr and of the lab's
console log, and of every *.log in its tmp_path (runs started as
subprocesses write their output there).
"""
import collections
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import types

import pytest

from sshfixture import sshd  # noqa: F401  (fixture)

IN_CI = bool(os.environ.get("CI"))
TIERS = ("unit", "sshd", "lab", "kbuild")


def need(condition, what):
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing in CI; .ci/system-deps should have installed it")
    pytest.skip(f"{what} is missing")


# -- tiers, order, timing ------------------------------------------------------------

def tier_of(item):
    """A test's tier is its folder's: tests/unit, tests/sshd, tests/lab,
    tests/kbuild (a tier marker in the file must agree, see below)."""
    folder = item.path.parent.name
    if folder in TIERS:
        return folder
    for name in TIERS[1:]:
        if item.get_closest_marker(name):
            return name
    return "unit"


# Tests run in two processes (pytest-xdist, `-n 2 --dist loadgroup` in
# pyproject.toml), each with a lab of its own when it needs one.  A group runs
# in one process, in order:
#   host        everything that uses this machine as a target (the sshd, its
#               users and sudoers entry, /tmp/ftrace-regs-bench.*, the target
#               lock in /run): it must not share them with itself
#   lab-faults  fault injection and error rows on one lab; the many-CPU run (smp_run)
#   lab-main    the other lab tests, the shared runs, 'bench lab down'
#   kbuild      the lab's own kernels
# Unit tests go wherever a process is free.
HOST_FILES = {"test_lock.py", "test_cli.py", "test_errors.py",
              "test_lab_multihost.py"}  # (a lab test that also targets this machine through the sshd)
# test_lab_smp reads a background run on a lab of its own: in lab-faults,
# the process without the full run's background lab.
# The two files that boot a lab of their own (no PMU; Debian 11) go there too:
# lab-main, with the full-matrix run's second lab, is the longer group.
LAB_FAULTS_FILES = {"test_faults.py", "test_errors_lab.py", "test_lab_smp.py",
                    "test_lab_no_pmu.py", "test_lab_debian510.py"}


def group_of(item):
    return group_of_file(tier_of(item), item.path.name)


def group_of_file(tier, name):
    if tier == "kbuild":
        return "kbuild"
    if tier == "lab" and name not in HOST_FILES:
        return "lab-faults" if name in LAB_FAULTS_FILES else "lab-main"
    if tier == "sshd" or name in HOST_FILES:
        return "host"
    return None  # (any process)


def pytest_configure(config):
    # Every lab powered off in this session (the test processes' and the
    # background runs' alike: they inherit the variable) writes a line of
    # what its QEMU cost here (remote/lab.py, down); the summary prints them.
    if not os.environ.get("PYTEST_XDIST_WORKER") and "FTRACE_REGS_BENCH_QEMU_USAGE_LOG" not in os.environ:
        fd, path = tempfile.mkstemp(prefix="bench-qemu-usage.", suffix=".tsv")
        os.close(fd)
        os.environ["FTRACE_REGS_BENCH_QEMU_USAGE_LOG"] = path
        config._qemu_usage_log = path  # removed at the end (pytest_unconfigure)
    # One lab per test process: its own run directory (state, console, keys).
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        from remote import cache

        base = os.environ.get("FTRACE_REGS_BENCH_LAB_RUN") or str(cache.ROOT / "lab" / "run")
        os.environ["FTRACE_REGS_BENCH_LAB_RUN"] = f"{base}-{worker}"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items):
    for item in items:
        tier = tier_of(item)
        marked = [name for name in TIERS if item.get_closest_marker(name)]
        if any(name != tier for name in marked):
            raise pytest.UsageError(f"{item.nodeid} is marked {', '.join(marked)} but lives in "
                                    f"tests/{tier}: move it to the folder of its tier")
        item.add_marker(getattr(pytest.mark, tier))
        group = group_of(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))

    # Tier by tier.  In the lab tier, the tests that read the full-matrix run
    # come after the others (it is measured meanwhile on a second lab, see
    # full_run), and 'bench lab down' once every other lab test has run,
    # before the kbuild tier boots labs of its own.
    def rank(item):
        tier = TIERS.index(tier_of(item))
        if item.get_closest_marker("lab_down"):
            return tier + 0.5
        reads = set(getattr(item, "fixturenames", ())) & set(BACKGROUND_RUNS)
        return tier + (0.25 if reads else 0)

    items.sort(key=rank)  # stable: file and definition order within a tier


_tier_seconds = collections.Counter()
_tier_tests = collections.Counter()
_test_seconds = collections.Counter()
_group_seconds = collections.Counter()
_test_lab_cpu = collections.Counter()
_session_start = time.monotonic()


def _session_lab_cpu():
    """CPU seconds the session lab's QEMU (this process's) has used so far.
    Its run directory from the environment (pytest_configure): a test that
    boots a lab of its own points remote.lab.RUN_DIR elsewhere meanwhile."""
    from remote import cache
    from remote import lab as labmod

    run_dir = pathlib.Path(os.environ.get("FTRACE_REGS_BENCH_LAB_RUN") or cache.ROOT / "lab" / "run")
    try:
        state = json.loads((run_dir / "state.json").read_text())
    except (OSError, ValueError):
        return None
    usage = labmod.qemu_usage(state.get("pid"))
    return usage[0] if usage else None


def pytest_runtest_logreport(report):
    for key, value in getattr(report, "user_properties", ()):
        if key == "lab_cpu":
            _test_lab_cpu[report.nodeid] = value
    tier = next((t for t in TIERS[1:] if t in report.keywords), "unit")
    _tier_seconds[tier] += report.duration
    _test_seconds[report.nodeid] += report.duration
    # (a report carries its node id, not its item)
    name = report.nodeid.split("::")[0].rsplit("/", 1)[-1]
    _group_seconds[group_of_file(tier, name) or "(any process)"] += report.duration
    if report.when == "setup":
        _tier_tests[tier] += 1


def pytest_terminal_summary(terminalreporter):
    if not _tier_tests:
        return
    tr = terminalreporter
    tr.section("time per tier (setup + call + teardown; a shared run counts where first used)")
    for tier in TIERS:
        if _tier_tests[tier]:
            tr.write_line(f"{tier:7s} {_tier_tests[tier]:4d} tests  {_tier_seconds[tier]:8.1f} s")
    tr.write_line(f"session {sum(_tier_tests.values()):4d} tests  "
                  f"{time.monotonic() - _session_start:8.1f} s wall")
    # A group runs in one process: the largest group bounds the session's wall.
    tr.write_line("per group: " + ", ".join(f"{g} {s:.0f} s" for g, s in _group_seconds.most_common()))
    tr.write_line("slowest:")
    for nodeid, took in _test_seconds.most_common(25):
        tr.write_line(f"  {took:7.1f} s  {nodeid}")
    if _test_lab_cpu:
        tr.write_line("dearest to their process's session lab (its QEMU's CPU-s during the test):")
        for nodeid, cpu in _test_lab_cpu.most_common(40):
            tr.write_line(f"  {cpu:7.1f} CPU-s  {_test_seconds[nodeid]:7.1f} s  {nodeid}")
    labs = _qemu_usage()
    if labs:
        tr.write_line(f"labs: {len(labs)} QEMUs used {sum(c for _, c, _ in labs):.0f} CPU-s "
                      f"(the machine has {os.cpu_count()} CPUs x "
                      f"{time.monotonic() - _session_start:.0f} s):")
        for run_dir, cpu, up in sorted(labs, key=lambda x: -x[1]):
            tr.write_line(f"  {cpu:7.0f} CPU-s in {up:6.0f} s up  {run_dir}")


def pytest_unconfigure(config):
    path = getattr(config, "_qemu_usage_log", None)
    if path:
        pathlib.Path(path).unlink(missing_ok=True)


def _qemu_usage():
    try:
        text = pathlib.Path(os.environ["FTRACE_REGS_BENCH_QEMU_USAGE_LOG"]).read_text()
    except (KeyError, OSError):
        return []
    rows = [line.split("\t") for line in text.splitlines()]
    return [(r[0], float(r[1]), float(r[2])) for r in rows if len(r) == 3]


# -- nothing skipped in CI; failures that explain themselves ------------------------

def _tail(path, n=30):
    try:
        lines = pathlib.Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return None
    return "\n".join(lines[-n:])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    # What each lab test cost its process's session lab, in CPU seconds of
    # its QEMU (from the start of its setup): the summary lists the dearest.
    if call.when == "teardown" and tier_of(item) == "lab":
        after = _session_lab_cpu()
        if after is not None:
            report.user_properties.append(("lab_cpu", after - (getattr(item, "_lab_cpu_before", None) or 0.0)))
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may be skipped: {reason}"
    if report.failed and tier_of(item) in ("lab", "kbuild"):
        from remote import lab as labmod

        logs = [("agent stderr", os.environ.get("FTRACE_REGS_BENCH_AGENT_STDERR")),
                ("lab console", labmod.RUN_DIR / "console.log")]
        tmp = item.funcargs.get("tmp_path") if hasattr(item, "funcargs") else None
        if tmp:
            logs += [(f"run log {p.name}", p) for p in sorted(pathlib.Path(tmp).rglob("*.log"))]
        for title, path in logs:
            text = _tail(path) if path else None
            if text:
                report.sections.append((f"{title} (last lines of {path})", text))


@pytest.fixture(scope="session", autouse=True)
def agent_stderr_log(tmp_path_factory):
    """Every agent's stderr, as it comes, in one file of this session
    (remote/agent_client.py copies it there; runs started as subprocesses
    inherit the variable)."""
    path = tmp_path_factory.getbasetemp() / "agent-stderr.log"
    mp = pytest.MonkeyPatch()
    mp.setenv("FTRACE_REGS_BENCH_AGENT_STDERR", str(path))
    yield path
    mp.undo()


# -- the lab ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def lab():
    """The debian-6.1 lab, up for the whole session; powered off at the end
    if this session started it, and then no QEMU process may be left.

    A lab that is already up is used as it is.  Otherwise it boots with
    icount: guest time then counts instructions, so the known answers the
    tests check (a function-tracer overhead whose CI excludes 0) do not
    depend on how busy the CI machine is.  Plain TCG figures on a shared
    2-core host moved by half between cells (docs/lab.md)."""
    from remote import lab as labmod

    need(shutil.which("qemu-system-aarch64"), "qemu-system-aarch64 (package qemu-system-arm)")
    need(shutil.which("mmdebstrap") or labmod.select("debian-6.1").image_dir().exists(),
         "mmdebstrap (to build the lab image)")
    state = labmod.read_state()
    started = not (state and state["alive"])
    if started:
        state = labmod.up(labmod.LabConfig(kernel="debian-6.1", accel="tcg", icount=True),
                          progress=lambda t: print(t))
    state["started_by_tests"] = started
    yield state
    if started and labmod.read_state():
        labmod.down()


@pytest.fixture
def lab_target(lab):
    from remote.ssh import open_ssh_target

    t = open_ssh_target("lab", config_path=lab["ssh_config"])
    yield t
    t.close()


def _invoke(args):
    from click.testing import CliRunner

    from bench.cli import cli

    t0 = time.monotonic()
    result = CliRunner().invoke(cli, args)
    print(f"bench {' '.join(args)}: exit {result.exit_code}, {time.monotonic() - t0:.0f} s wall\n"
          f"{result.output}")
    return result


# The full-matrix run is measured on a second lab of its own, in the
# background, from the moment the lab tier starts: the session lab runs the
# other lab tests meanwhile on the other core.  Under icount the guest's
# figures do not depend on what else the host is doing.  Every mode with
# pyperf and the kernel method, smoke profile: what its tests check (the
# regs gain of 9 instructions, overheads whose CI excludes 0, no step, the
# pid floor, tracefs restored) holds at 2 rounds, and under icount the
# kernel method's cells agree to a hundredth of an instruction.  The quick
# profile with bpf too took 1,065 s of one core of the two (CI, warm); bpf
# in every mode has its own run (test_lab_bpf) and is in the many-CPU run.
FULL_RUN_ARGS = ["--profile", "smoke", "--tune", "--methods", "pyperf,kernel"]

# The many-CPU run (issue 14): every method with --tune on a lab of
# 4 vCPUs under plain TCG (icount needs one vCPU), also in the background,
# from the first test of the process that reads it (test_lab_smp, in the
# lab-faults process, which has no other background lab).  The smoke
# profile: what it checks is where things run and that counts add up, not
# figures; the quick profile took about 7 minutes a round there (4 rounds).
# Every method: pmu too (not in the default --methods), which counts cycles
# only under plain TCG.
SMP_UP_ARGS = ["--smp", "4", "--accel", "tcg"]
# One mode of each kind (off, the function tracer, the module's regs ops):
# what is checked is per kind, and every mode took 511-580 CPU-s of QEMU.
SMP_RUN_ARGS = ["--profile", "smoke", "--tune", "--methods", "pyperf,kernel,bpf,pmu",
                "--modes", "function,regs"]
BACKGROUND_RUNS = {"full_run": dict(up_args=["--icount"], run_args=FULL_RUN_ARGS),
                   "smp_run": dict(up_args=SMP_UP_ARGS, run_args=SMP_RUN_ARGS,
                                   what="the many-CPU run")}


class BackgroundFullRun:
    """`bench lab up --icount`, then the target's tracefs and tune state,
    `bench run --host lab` with every mode and method, the state again,
    `bench lab down`: all in a lab with a run directory of its own."""

    def __init__(self, base, up_args=("--icount",), run_args=FULL_RUN_ARGS,
                 what="the full-matrix run"):
        self.up_args, self.run_args, self.what = list(up_args), list(run_args), what
        self.base = pathlib.Path(base)
        self.run_dir = self.base / "lab"
        self.out = self.base / "bundle"
        self.log = self.base / "full-run.log"
        self.state = None
        self.error = None
        self.thread = threading.Thread(target=self._work, name="full-run", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _bench(self, *args, log):
        env = dict(os.environ, FTRACE_REGS_BENCH_LAB_RUN=str(self.run_dir))
        return subprocess.run([sys.executable, "-m", "bench.cli", *args], env=env,
                              stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _work(self):
        from labtools import leftovers, module_loaded, read_tracefs, tune_state
        from remote.ssh import open_ssh_target

        try:
            with open(self.log, "w") as log:
                if self._bench("lab", "up", *self.up_args, log=log).returncode:
                    raise RuntimeError("the second lab did not come up")
                config = json.loads((self.run_dir / "state.json").read_text())["ssh_config"]
                try:
                    target = open_ssh_target("lab", config_path=config)
                    before, tuned_before = read_tracefs(target), tune_state(target)
                    target.close()
                    t0 = time.monotonic()
                    log.write(f"== bench run --host lab {' '.join(self.run_args)}\n")
                    log.flush()
                    start = log.tell()
                    code = self._bench("run", "--host", "lab", *self.run_args, "--out", str(self.out),
                                       log=log).returncode
                    log.write(f"== exit {code}, {time.monotonic() - t0:.0f} s wall\n")
                    target = open_ssh_target("lab", config_path=config)
                    self.state = dict(
                        result=types.SimpleNamespace(exit_code=code,
                                                     output=self.log.read_text()[start:]),
                        out=self.out, before=before, after=read_tracefs(target),
                        tuned_before=tuned_before, tuned_after=tune_state(target),
                        leftovers=leftovers(target), module_loaded=module_loaded(target))
                    target.close()
                finally:
                    self._bench("lab", "down", log=log)
        except Exception as e:  # reported by the fixture, in the test that needs it
            self.error = f"{type(e).__name__}: {e}"

    def wait(self, timeout=3600):
        self.thread.join(timeout)
        tail = _tail(self.log, 40) or ""
        if self.thread.is_alive():
            pytest.fail(f"{self.what} did not end within {timeout} s:\n{tail}")
        if self.error:
            pytest.fail(f"{self.what} failed: {self.error}\n{tail}")
        return self.state


_background = {}  # fixture name -> its BackgroundFullRun, once started


def _start_background(config, name):
    if name not in _background:
        # tmp_path_factory's own object (the fixture hands out the same).
        base = config._tmp_path_factory.mktemp(name.replace("_run", ""))
        _background[name] = BackgroundFullRun(base, **BACKGROUND_RUNS[name]).start()
    return _background[name]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if tier_of(item) != "lab":
        return
    item._lab_cpu_before = _session_lab_cpu()  # (the summary's per-test lab CPU)
    # The first lab test of a group starts each background run that a
    # selected test of the same group (so: of this process) reads.
    for name in BACKGROUND_RUNS:
        if name not in _background and any(
                name in getattr(i, "fixturenames", ()) and group_of(i) == group_of(item)
                for i in item.session.items):
            _start_background(item.config, name)


@pytest.fixture(scope="session")
def full_run(lab, request):
    """The whole matrix once: every mode with pyperf and the kernel method,
    smoke profile, --tune (FULL_RUN_ARGS), and what its target looked like
    before and after.  test_lab_run
    and test_lab_regs assert on its bundle (it used to be two runs on the
    session lab).  test_lab_bpf keeps a bpf-only run: in the full matrix the
    bpf A/A came out significant (-0.8 [-1.3, -0.4] instructions, n = 4)."""
    return _start_background(request.config, "full_run").wait()


@pytest.fixture(scope="session")
def smp_run(request):
    """The many-CPU run: every method and --tune in off, function and regs, smoke
    profile, on a lab of 4 vCPUs under TCG (SMP_UP_ARGS), with its target's
    state before and after.  test_lab_smp asserts on it."""
    return _start_background(request.config, "smp_run").wait()


def bundle_of(run):
    return json.loads((run["out"] / "bundle.json").read_text())


@pytest.fixture(scope="session")
def lab_module(lab, tmp_path_factory):
    """The suite's module as built for the session lab's kernel, kept where
    `bench run` reuses it: from the cache, or built by a small run."""
    from remote.cache import kmod_dir
    from remote.ssh import open_ssh_target

    target = open_ssh_target("lab", config_path=lab["ssh_config"])
    facts = {k: target.run(["uname", flag], timeout=60).text.strip()
             for k, flag in (("kernel_release", "-r"), ("kernel_version", "-v"), ("arch", "-m"))}
    target.close()
    ko = kmod_dir(facts) / "ftrace_regs_bench.ko"
    if not ko.exists():
        out = tmp_path_factory.mktemp("module") / "b"
        r = _invoke(["run", "--host", "lab", "--profile", "smoke", "--modes", "off",
                     "--methods", "kernel", "--out", str(out)])
        assert r.exit_code == 0, r.output
    assert ko.exists(), f"a run with the kernel method kept no module at {ko}"
    return ko
