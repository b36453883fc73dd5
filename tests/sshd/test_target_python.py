"""The real agent on another Python than the controller's: `bench check --host
local` with `python3` on PATH being pyenv's 3.9 (or 3.8), as a target whose
python3 is that version.  The agent, the protocol and the pyperf chosen for
that Python start for real on it (no SSH: the local host kind runs the same
payload the same way, a subprocess instead of a session).

Debian 12 packages no Python but its 3.11; the interpreters are pyenv's
(~/.pyenv/versions/3.X*) where this machine has them.  Where it has none the
check runs on the controller's own python3 only: the same path, nothing
skipped.
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest
from click.testing import CliRunner

from bench.cli import cli
from remote import pyperf_ship

pytestmark = pytest.mark.sshd


def _pyenv_python(minor):
    for exe in sorted(pathlib.Path.home().glob(f".pyenv/versions/3.{minor}.*/bin/python3.{minor}")):
        r = subprocess.run([str(exe), "-c", "import sys; print(sys.version_info[1])"],
                           capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip() == str(minor):
            return str(exe)
    return None


INTERPRETERS = {f"3.{m}": _pyenv_python(m) for m in (8, 9)}
CASES = [v for v, exe in INTERPRETERS.items() if exe] or ["controller"]


def _as_python3(exe, tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(exe)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")


@pytest.mark.parametrize("version", CASES)
def test_check_on_a_target_python(version, tmp_path, monkeypatch):
    exe = INTERPRETERS.get(version) or sys.executable
    _as_python3(exe, tmp_path, monkeypatch)
    r = CliRunner().invoke(cli, ["check", "--host", "local", "--json"])
    if version == "3.8":
        # Refused when the agent would start: one line, exit 6, nothing measured.
        lines = [line for line in r.output.splitlines() if line.strip()]
        assert r.exit_code == 6 and len(lines) == 1, r.output
        assert "python3 is 3.8, the agent needs >= 3.9" in lines[0]
        return
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    want = pyperf_ship.choose(rep["python"]["value"])
    assert rep["python"]["ok"] is True and rep["python"]["reason"] == str(tmp_path / "bin" / "python3")
    # The pyperf the agent imported on the target is the one chosen for its Python.
    assert rep["pyperf"] == {"ok": True, "value": want.version, "reason": want.reason}
    assert f"pyperf {want.version} shipped for it" in rep["methods"]["pyperf"]["reason"]
    if version == "3.9":
        assert rep["python"]["value"].startswith("3.9.")
        assert want.version != "2.11.0"  # Requires-Python >=3.11: its Runner dies on 3.9
