"""Files between controller and agent through the agent (remote/protocol/
transfer.py), over the real sshd as bench-sudo: a login that is not root,
whose agent runs through 'sudo -n'.  What the agent writes is root's (0600,
in 0700 directories): SFTP as benchsudo cannot read it, the agent can; and
the run leaves nothing behind, in /tmp or in benchsudo's home."""
import os
import pwd

import pytest

from remote.agent_client import AgentClient
from remote.errors import AgentError
from remote.protocol import transfer
from remote.ssh import open_ssh_target
from sshfixture import SUDO_USER

pytestmark = pytest.mark.sshd


def root_owned_in_home():
    home = pwd.getpwnam(SUDO_USER).pw_dir
    found = []
    for top, dirs, files in os.walk(home):
        for name in dirs + files:
            path = os.path.join(top, name)
            if os.lstat(path).st_uid == 0:
                found.append(path)
    return found


@pytest.fixture
def sudo_agent(sshd):
    before = root_owned_in_home()
    target = open_ssh_target("bench-sudo", config_path=sshd.config_path)
    assert target.root_prefix(), "bench-sudo logs in as root: this test needs a sudo login"
    client = AgentClient(target).start()
    try:
        yield client
    finally:
        workdir = client.workdir
        client.close()
        assert not target.run(["test", "-e", workdir], timeout=30).returncode == 0, \
            f"the agent's directory {workdir} was left behind"
        target.close()
        assert root_owned_in_home() == before, "root left files in the sudo user's home"


def test_a_root_owned_file_moves_both_ways_for_a_sudo_login(sudo_agent):
    client = sudo_agent
    data = os.urandom(2 * transfer.CHUNK_BYTES + 777)  # three chunks, the last short
    assert client.upload("kmod/ftrace_regs_bench.ko", data) == len(data)
    path = client.workdir + "/kmod/ftrace_regs_bench.ko"
    st = os.stat(path)  # this machine is the target
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600)
    # What SFTP as the login user, the old way, cannot do:
    with pytest.raises(PermissionError):
        client.target.read_file(path)
    with pytest.raises(PermissionError):
        client.target.write_file(client.workdir + "/kmod/other.ko", b"x")
    assert client.fetch(path) == data
    assert client.fetch("kmod/ftrace_regs_bench.ko") == data
    assert client.upload("kmod/empty", b"") == 0 and client.fetch("kmod/empty") == b""


def test_paths_outside_the_agents_directory_are_refused(sudo_agent):
    client = sudo_agent
    # The directory's top is benchsudo's own: a symlink made there by the
    # login user must not lead root's agent out.
    r = client.target.run(["ln", "-s", "/etc/shadow", client.workdir + "/shadow"], timeout=30)
    assert r.returncode == 0, r.err
    for path in ("/etc/shadow", "../../etc/shadow", "shadow", client.workdir):
        with pytest.raises(AgentError) as e:
            client.fetch(path)
        assert e.value.kind == "usage", e.value
    for rel in ("../escape", "/tmp/escape", "shadow"):
        with pytest.raises(AgentError) as e:
            client.upload(rel, b"x")
        assert e.value.kind == "usage", e.value
    assert not os.path.exists("/tmp/escape")
    assert os.path.getsize("/etc/shadow") > 0
    with pytest.raises(AgentError):
        client.upload("big", b"x" * (transfer.MAX_FILE_BYTES + 1))


def test_a_half_shipped_directory_with_roots_files_is_removed(sshd):
    """The agent never said 'keep' (it failed after unpacking, as root): the
    login user's rm cannot enter root's 0700 directories, sudo's can."""
    from remote.agent_client import workdir_holder

    target = open_ssh_target("bench-sudo", config_path=sshd.config_path)
    try:
        holder = target.start(["sh", "-c", workdir_holder(target.root_prefix())])
        workdir = holder.readline(timeout=30).decode().strip()
        assert workdir.startswith("/tmp/ftrace-regs-bench.")
        os.makedirs(workdir + "/kmod", mode=0o700)  # as the agent's unpacking does, as root
        with open(workdir + "/kmod/ftrace_regs_bench.c", "w") as f:
            f.write("root's")
        holder.send(b"no\n")
        holder.close_stdin()
        holder.wait(timeout=30)
        assert not os.path.exists(workdir), os.listdir(workdir)
    finally:
        target.close()
