"""Shared fixtures: the real QEMU arm64 lab (booted once per test session) and
a real OpenSSH server on loopback (tests/sshfixture.py).

Outside CI a missing part skips with a reason naming it; in CI (CI set) it
fails, because .ci/run installs every part.
"""
import os
import shutil
import subprocess

import pytest

from sshfixture import sshd  # noqa: F401  (fixture)

IN_CI = bool(os.environ.get("CI"))


def need(condition, what):
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing in CI; .ci/system-deps should have installed it")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="session")
def lab():
    """The debian-6.1 lab, up for the whole session; powered off at the end
    if this session started it, and then no QEMU process may be left.

    A lab that is already up is used as it is.  Otherwise it boots with
    icount: guest time then counts instructions, so the known answers the
    tests check (a function-tracer overhead whose CI excludes 0) do not
    depend on how busy the CI machine is.  Plain TCG figures on a shared
    2-core host moved by half between cells (README)."""
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


def pytest_collection_modifyitems(items):
    # 'bench lab down' is checked once every other lab test has run.
    items.sort(key=lambda item: item.get_closest_marker("lab_down") is not None)


@pytest.fixture
def lab_target(lab):
    from remote.ssh import open_ssh_target

    t = open_ssh_target("lab", config_path=lab["ssh_config"])
    yield t
    t.close()
