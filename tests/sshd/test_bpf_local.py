"""The bpf method's "unavailable" path on this machine, through a real OpenSSH
server on loopback (tests/sshfixture.py): the distribution's bcc is installed
here (.ci/system-deps) but the running kernel has no headers under
/lib/modules/$(uname -r)/build, so bcc could not compile its program.  bench
check must say so and name the package to install."""
import json
import os
import platform

import pytest
from click.testing import CliRunner

from bench.cli import cli
from conftest import need

pytestmark = pytest.mark.sshd


def test_no_headers_here_makes_bpf_unavailable_with_the_package(sshd):
    need(os.path.exists("/usr/lib/python3/dist-packages/bcc"), "python3-bpfcc")
    release = platform.release()
    if os.path.isdir(f"/lib/modules/{release}/build/include"):
        pytest.skip(f"this machine has headers for {release}: the no-headers path needs a kernel "
                    "without them")
    r = CliRunner().invoke(cli, ["check", "--host", "bench-root", "--ssh-config", sshd.config_path,
                                 "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["bcc"]["ok"] is True, rep["bcc"]  # bcc itself is there: the headers are missing
    bpf = rep["methods"]["bpf"]
    assert bpf["ok"] is False
    assert f"install linux-headers-{release}" in bpf["reason"], bpf
    # the distribution from this machine's os-release (Debian or Ubuntu here): its command, once
    assert f"run apt-get install linux-headers-{release} (on " in bpf["reason"], bpf
    assert f"/lib/modules/{release}/build" in bpf["reason"]
