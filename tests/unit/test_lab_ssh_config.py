"""`bench lab ssh-config`: a Host block for the running lab that ssh itself
reads as written (ssh -G parses it; nothing connects)."""
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from bench.cli import EXIT_CODES, cli
from remote import lab as labmod


@pytest.fixture
def up_lab(tmp_path, monkeypatch):
    run_dir = tmp_path / "run dir"  # a space: paths are quoted for ssh_config
    run_dir.mkdir()
    state = {"alive": True, "port": 40123, "ssh_config": str(run_dir / "ssh_config")}
    monkeypatch.setattr(labmod, "read_state", lambda: state)
    return run_dir


def ssh_g(config, alias):
    r = subprocess.run(["ssh", "-G", "-F", str(config), alias], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        key, _, value = line.partition(" ")
        out.setdefault(key, value)
    return out


@pytest.mark.skipif(not shutil.which("ssh"), reason="no ssh client")
@pytest.mark.parametrize("args,alias,user", [([], "lab-admin", "admin"),
                                             (["--user", "root", "--alias", "mylab"], "mylab", "root")])
def test_the_block_is_what_ssh_reads(up_lab, tmp_path, args, alias, user):
    r = CliRunner().invoke(cli, ["lab", "ssh-config", *args])
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"Host {alias}\n")
    config = tmp_path / "config"
    config.write_text(r.output)
    got = ssh_g(config, alias)
    assert got["hostname"] == "127.0.0.1" and got["port"] == "40123" and got["user"] == user
    assert got["identityfile"] == str(up_lab / "id_ed25519")
    assert got["userknownhostsfile"] == str(up_lab / "known_hosts")
    assert got["identitiesonly"] == "yes" and got["stricthostkeychecking"] == "true"
    assert got["serveraliveinterval"] == "30"


def test_the_labs_own_config_is_the_same_block():
    block = labmod.host_block("lab", 2222, "root", "/k", "/kh")
    assert block.startswith("Host lab\n") and "  User root\n" in block and "  Port 2222\n" in block


@pytest.mark.parametrize("args,code,words", [
    (["--user", "bob"], "usage", "the lab has no login 'bob'; use one of: root, admin"),
    (["--alias", "lab"], "usage", "bad alias 'lab'"),
    (["--alias", "a b"], "usage", "bad alias 'a b'"),
])
def test_bad_input_is_one_line(up_lab, args, code, words):
    r = CliRunner().invoke(cli, ["lab", "ssh-config", *args])
    assert r.exit_code == EXIT_CODES[code][0], r.output
    assert r.output.strip().splitlines() == [f"bench: error: {r.output.split('error: ')[1].strip()}"]
    assert words in r.output and "Traceback" not in r.output


def test_a_lab_that_is_down_is_one_line(monkeypatch):
    monkeypatch.setattr(labmod, "read_state", lambda: None)
    r = CliRunner().invoke(cli, ["lab", "ssh-config"])
    assert r.exit_code == EXIT_CODES["lab"][0], r.output
    assert r.output.strip() == "bench: error: the lab is not running; start it with 'bench lab up'"
