"""Where things run under --tune: the agent's helpers for CPU masks, on real
processes of this machine, and the controller's check of a cell's record."""
import os
import subprocess
import sys
import time

import pytest

from bench.errors import MeasurementError
from bench.run import check_cpus
from remote.agent import tune

HERE = os.path.dirname(os.path.abspath(tune.__file__))
CPUS = sorted(os.sched_getaffinity(0))


def test_parse_cpu_list_reads_the_kernels_format():
    assert tune.parse_cpu_list("2-3,6\n") == [2, 3, 6]
    assert tune.parse_cpu_list("0") == [0]
    assert tune.parse_cpu_list("") == []


def test_last_cpu_and_affinity_of_a_pinned_process():
    cpu = CPUS[-1]
    p = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert tune.pin_processes([p.pid], {cpu}) == {p.pid: CPUS}
        assert tune.process_cpus(p.pid) == [cpu]
        assert tune.last_cpu(p.pid) in CPUS
        tune.unpin_processes({p.pid: CPUS})
        assert tune.process_cpus(p.pid) == CPUS
    finally:
        p.communicate(b"")
    assert tune.process_cpus(p.pid) is None  # gone: not an error
    assert tune.pin_processes([p.pid], {cpu}) == {}


def test_find_guardian_by_its_command_line(tmp_path):
    workdir = str(tmp_path / "ftrace-regs-bench.x")
    p = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()",
                          "--guard", "4", "--workdir", workdir], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10  # until the child has exec'd
        while tune.find_guardian(workdir) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tune.find_guardian(workdir) == p.pid
        assert tune.find_guardian(workdir + "-other") is None
    finally:
        p.communicate(b"")


def test_connection_pids_outside_ssh_is_empty_and_parent_is_read():
    # A child of this (python) process: no sshd or sudo above it, nothing to pin.
    p = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert tune.parent(p.pid) == os.getpid()
        assert tune.connection_pids(p.pid) == []
    finally:
        p.communicate(b"")


def test_callloop_says_where_it_ran():
    cpu = CPUS[-1]
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "callloop.py"), "101", str(cpu)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout.readline().split()[0] == b"ready"
    out, _ = p.communicate(b"go\n")
    word, ran, mask = out.split()
    assert (word, int(ran), mask) == (b"done", cpu, str(cpu).encode())


def cpus(workload, ran_on, **harness):
    harness["all"] = sorted({c for v in harness.values() for c in v})
    return {"workload": workload, "ran_on": ran_on, "harness": harness}


def test_check_cpus_accepts_a_pinned_cell_and_one_cpu():
    check_cpus(cpus([3], [3], agent_threads=[0, 1, 2], connection=[0, 1, 2]), 3)
    check_cpus(cpus([0], [0], agent_threads=[0]), 0)  # one CPU: they share it
    check_cpus(cpus([0, 1], [1], agent_threads=[0, 1]), None)  # not tuned
    check_cpus(None, 3)  # an older agent records nothing


@pytest.mark.parametrize("record, says", [
    (cpus([0, 1, 2, 3], [], agent_threads=[0, 1, 2]), "could run on [0, 1, 2, 3]"),
    (cpus([3], [2], agent_threads=[0, 1, 2]), "ran on [2]"),
    (cpus([3], [3], agent_threads=[0, 1, 2], connection=[0, 1, 2, 3]), "connection could run there"),
])
def test_check_cpus_refuses_a_broken_promise(record, says):
    with pytest.raises(MeasurementError, match=says.replace("[", r"\[").replace("]", r"\]")):
        check_cpus(record, 3)


def test_the_agent_places_its_parts_without_tune(tmp_path):
    from remote.agent.agent import Agent

    a = Agent(str(tmp_path), 30.0)
    assert a.guardian_pid() is None and a._guardian == 0  # looked up once, not found
    place = a.placement({"pyperf_manager": os.getpid()})
    assert place["agent_threads"] == CPUS and place["pyperf_manager"] == CPUS
    assert place["all"] == CPUS and "guardian" not in place
