"""remote/hosts: which kind of host a --host name is, without connecting."""
import pytest
from click.testing import CliRunner

from bench.cli import EXIT_CODES, cli
from remote import hosts
from remote.errors import HostNotFound
from remote.hosts.base import Host
from remote.hosts.lab import LabHost
from remote.hosts.local import LocalHost
from remote.hosts.ssh import SSHHost
from remote.target import LocalTarget


@pytest.fixture
def ssh_config(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_SSH_CONFIG", raising=False)
    path = tmp_path / "config"
    path.write_text("\n".join([
        "Host alpha beta", "  HostName 10.0.0.1",
        "Host board-*", "  User root",
        "Host lab", "  HostName 10.0.0.2",
        "Host * !gamma", "  User dave", ""]))
    return str(path)


def test_kinds_are_asked_in_order(ssh_config):
    assert hosts.find("local", ssh_config) is LocalHost
    # The config's own 'Host lab' never hides the lab.
    assert hosts.find("lab", ssh_config) is LabHost
    assert hosts.find("alpha", ssh_config) is SSHHost
    assert hosts.find("board-7", ssh_config) is SSHHost  # a pattern claims names it does not list


def test_unknown_host_lists_the_valid_names(ssh_config):
    with pytest.raises(HostNotFound) as e:
        hosts.find("nope", ssh_config)
    assert str(e.value) == (
        f"unknown host 'nope': not 'lab', not 'local' and no Host entry in {ssh_config}; "
        f"valid names: local, lab, alpha, beta; "
        f"add a 'Host nope' entry (HostName, User, IdentityFile) to {ssh_config}")
    r = CliRunner().invoke(cli, ["check", "--host", "nope", "--ssh-config", ssh_config])
    assert r.exit_code == EXIT_CODES["host-not-found"][0] == 3, r.output
    lines = [l for l in r.output.splitlines() if l.strip()]
    assert lines == [f"bench: error: {e.value}"]


class Loopback(Host, LocalTarget):
    """A kind that exists only in this test: this machine under another name,
    with a fact of its own."""

    fixed_names = ("loopback",)

    @classmethod
    def open(cls, name, *, accept_new_host_key=False, ssh_config=None, timeout=None):
        return cls(name)

    def host_facts(self):
        return {"loopback": {"reached": "without a network"}}


def test_a_host_kind_is_one_class(ssh_config, monkeypatch):
    monkeypatch.setattr(hosts, "KINDS", (*hosts.KINDS, Loopback))
    target = hosts.open_target("loopback", ssh_config=ssh_config)
    try:
        assert isinstance(target, Loopback)
        assert target.describe() == {"kind": "local", "name": "loopback"}
        assert target.host_facts() == {"loopback": {"reached": "without a network"}}
        assert target.host_checks() == {}
        assert target.run(["true"]).returncode == 0
    finally:
        target.close()
    with pytest.raises(HostNotFound, match="valid names: local, lab, alpha, beta, loopback;"):
        hosts.find("nope", ssh_config)
