"""The pyperf shipped to a target fits the target's Python (remote/pyperf_ship.py),
and everything shipped to a Python 3.9 target runs on 3.9.

What each shipped file needs is read by vermin (PyPI; a dev extra), which
knows the standard library's API by version, not only its syntax: the agent,
the protocol and the pyperf chosen for 3.9 must need nothing newer.
"""
import hashlib
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from remote import agent_client, pyperf_ship
from remote.errors import TargetUnsupported


def test_pinned_wheel_is_the_pinned_one():
    data = pyperf_ship.PINNED_WHEEL.read_bytes()
    assert hashlib.sha256(data).hexdigest() == pyperf_ship.PINNED_SHA256
    assert pyperf_ship.PINNED_WHEEL.name == f"pyperf-{pyperf_ship.PINNED_VERSION}-py3-none-any.whl"
    assert pyperf_ship.pinned_requires_python() == ">=3.9"
    # Its package without its tests; its .dist-info, whose entry_points.txt
    # pyperf 2.10's Runner needs on 3.9, and its licence along with it.
    files = pyperf_ship.files(pyperf_ship.Choice(pyperf_ship.PINNED_VERSION, "pinned", ""))
    dist_info = f"pyperf-{pyperf_ship.PINNED_VERSION}.dist-info/"
    assert b"MIT" in files[dist_info + "licenses/COPYING"]
    assert b"[pyperf.hook]" in files[dist_info + "entry_points.txt"]
    assert "pyperf/_runner.py" in files and not any("/tests/" in rel for rel in files)


@pytest.mark.parametrize("minor", [9, 10, 11, 12, 13])
def test_each_supported_python_gets_a_pyperf_it_admits(minor):
    own, own_req = pyperf_ship.controller_pyperf()
    choice = pyperf_ship.choose((3, minor))
    if pyperf_ship._admits(own_req, (3, minor)):
        assert (choice.source, choice.version) == ("controller", own)
    else:
        assert (choice.source, choice.version) == ("pinned", pyperf_ship.PINNED_VERSION)
        assert f"needs Python {own_req}" in choice.reason
    shipped = agent_client.payload((3, minor))["pyperf/__init__.py"].decode()
    assert f"VERSION = {tuple(int(x) for x in choice.version.split('.'))}" in shipped


@pytest.mark.parametrize("source", ["controller", "pinned"])
def test_the_shipped_pyperf_declares_its_hooks(source):
    """pyperf 2.10's Runner on Python 3.9 reads entry_points()["pyperf.hook"]:
    a KeyError unless a .dist-info on sys.path declares the group, so the
    package goes with its .dist-info, whichever pyperf it is."""
    version = pyperf_ship.controller_pyperf()[0] if source == "controller" else pyperf_ship.PINNED_VERSION
    files = pyperf_ship.files(pyperf_ship.Choice(version, source, ""))
    info = f"pyperf-{version}.dist-info/"
    assert b"[pyperf.hook]" in files[info + "entry_points.txt"]
    assert f"Version: {version}".encode() in files[info + "METADATA"]
    assert not any(rel.endswith("/RECORD") for rel in files)


def test_pyperf_2_11_is_not_shipped_to_3_9_or_3_10():
    """pyperf 2.11 declares Requires-Python >=3.11; on 3.9 its Runner dies at start
    (importlib.metadata.entry_points().select: AttributeError on 3.9's dict)."""
    assert not pyperf_ship._admits(">=3.11", (3, 9))
    assert not pyperf_ship._admits(">=3.11", (3, 10))
    for minor in (9, 10):
        assert pyperf_ship.choose((3, minor)).version != "2.11.0"


def test_a_python_no_pyperf_fits_is_refused_in_one_line():
    with pytest.raises(TargetUnsupported) as e:
        pyperf_ship.choose("3.8.10")
    assert e.value.kind == "unsupported"
    text = str(e.value)
    assert "\n" not in text and "3.8" in text and "install a newer python3" in text


def test_check_reports_python_and_the_pyperf_shipped():
    from bench.check import python_and_pyperf

    choice = pyperf_ship.choose((3, 9))
    python, pyperf = python_and_pyperf({"python_version": "3.9.2", "python_executable": "/usr/bin/python3",
                                        "pyperf_version": choice.version})
    assert python == {"ok": True, "value": "3.9.2", "reason": "/usr/bin/python3"}
    assert pyperf["ok"] is True and pyperf["value"] == choice.version and pyperf["reason"] == choice.reason
    # The agent imported another pyperf than the one chosen for it: said, not hidden.
    _, wrong = python_and_pyperf({"python_version": "3.9.2", "pyperf_version": "0.1"})
    assert wrong["ok"] is False and "imported pyperf 0.1" in wrong["reason"]


def _write_payload(python_version, where):
    for rel, data in agent_client.payload(python_version).items():
        path = where / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return where


def test_everything_shipped_to_python_3_9_needs_nothing_newer(tmp_path):
    """Every .py of the 3.9 payload (agent, protocol, pyperf) parses as 3.9 and,
    by vermin's reading of syntax and standard-library API, needs at most 3.9."""
    import ast

    payload = _write_payload((3, 9), tmp_path)
    pys = sorted(payload.rglob("*.py"))
    assert {"agent.py", "workload.py", "protocol/__init__.py", "pyperf/_runner.py"} <= {
        str(p.relative_to(payload)) for p in pys}
    for path in pys:
        ast.parse(path.read_bytes(), filename=str(path), feature_version=(3, 9))
    # --no-tips: no advice text; --violations: list only what needs > 3.9;
    # exit status 0 only when every file meets the target.
    # vermin has no `python -m vermin`: its entry point, in this interpreter.
    vermin = [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())"]
    r = subprocess.run([*vermin, "--no-tips", "--violations", "-t=3.9-",
                        "--no-parse-comments", *map(str, pys)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def _python39():
    """A real Python 3.9 on this machine (pyenv's, or on PATH), else None.
    (Debian 12 packages none; a pyenv shim on PATH may name one it cannot run.)"""
    candidates = [str(p) for p in sorted(pathlib.Path.home().glob(".pyenv/versions/3.9*/bin/python3.9"))]
    candidates += [shutil.which("python3.9")] if shutil.which("python3.9") else []
    for exe in candidates:
        r = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2] == (3, 9))"],
                           capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip() == "True":
            return exe
    return None


def test_the_3_9_payload_measures_and_the_controller_reads_it(tmp_path):
    """The payload for a 3.9 target runs its workload under pyperf (on a real
    Python 3.9 where this machine has one, else on the controller's own
    Python, which the pinned pyperf admits too), and the JSON it writes is
    read by the controller's pyperf, as analysis reads a bundle."""
    from analysis.methods.pyperf import METHOD

    payload = _write_payload((3, 9), tmp_path / "payload")
    python = _python39() or sys.executable
    out = tmp_path / "getppid.json"
    r = subprocess.run([python, str(payload / "workload.py"), "--output", str(out), "--processes=2",
                        "--values=2", "--warmups=1", "--min-time=0.005", "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    means, n = METHOD.read(out)
    assert len(means) == 2 and n == 4 and all(m > 0 for m in means)
    import pyperf

    meta = pyperf.Benchmark.load(str(out)).get_metadata()
    assert meta["perf_version"] == pyperf_ship.choose((3, 9)).version
    if python != sys.executable:
        assert meta["python_version"].startswith("3.9")


def test_the_payload_carries_bytecode_for_its_own_python_only(tmp_path):
    """For a target on the controller's Python the payload carries a .pyc
    of every module (agent.py, run as a script, excepted) that the target's
    Python loads as it is, without compiling or rewriting anything; for any
    other version none (its magic number would not match)."""
    own = sys.version_info[:2]
    other = (3, 9) if own != (3, 9) else (3, 10)
    assert not [rel for rel in agent_client.payload(other) if rel.endswith(".pyc")]
    files = agent_client.payload(own)
    pycs = {rel for rel in files if rel.endswith(".pyc")}
    modules = {rel for rel in files if rel.endswith(".py") and rel != "agent.py"}
    assert {importlib.util.source_from_cache(p) for p in pycs} == modules
    payload = _write_payload(own, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in payload.rglob("*.pyc")}
    # The sources' mtimes are the unpack's, as on a target: no matter.
    for p in payload.rglob("*.py"):
        os.utime(p, (0, 0))
    r = subprocess.run([sys.executable, "-c",
                        "import sys; sys.path.insert(0, sys.argv[1]); import pyperf, tracefs, kmod",
                        str(payload)], capture_output=True, text=True, cwd=payload)
    assert r.returncode == 0, r.stderr
    # A stale or unusable .pyc would have been compiled again and rewritten.
    assert {p: p.stat().st_mtime_ns for p in payload.rglob("*.pyc")} == before
    assert not [p for p in payload.rglob("*.pyc") if p not in before]
