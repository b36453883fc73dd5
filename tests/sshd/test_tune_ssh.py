"""--tune moves the controller's connection off the measuring CPU: which
processes carry it, found from a process started over a real sshd (the
fixture's), as the agent is, with and without sudo."""
import json
import pathlib

import pytest

from remote.ssh import open_ssh_target

TUNE = (pathlib.Path(__file__).parents[2] / "remote" / "agent" / "tune.py").read_text()
PROBE = TUNE + """
import json, os
chain = connection_pids(os.getpid())
top = parent(chain[-1]) if chain else None
print(json.dumps({"chain": [[p, comm(p)] for p in chain], "above": [top, comm(top)],
                  "above_parent": comm(parent(top)) if top else None}))
"""


@pytest.mark.parametrize("alias, prefix", [("bench-root", []), ("bench-sudo", ["sudo", "-n"])])
def test_connection_is_the_sessions_sshd_and_sudo_not_the_listener(sshd, alias, prefix):
    t = open_ssh_target(alias, config_path=sshd.config_path)
    try:
        # No timeout wrapper: the process sits right under sshd (or sudo), as the agent does.
        r = t.run(prefix + ["python3", "-c", PROBE], timeout=None)
    finally:
        t.close()
    assert r.returncode == 0, r.err
    got = json.loads(r.text)
    names = [name for _, name in got["chain"]]
    # the session's sshd (and its privilege-separation parent), maybe the
    # login shell, and sudo when the agent runs through it
    assert names and names[-1] in ("sshd", "sshd-session"), got
    assert ("sudo" in names) == bool(prefix), got
    # Above the chain: the daemon that listens for every connection (here the
    # fixture's sshd, started by pytest), left where it was.
    assert got["above"][1] == "sshd" and got["above_parent"] not in ("sshd", "sudo"), got
