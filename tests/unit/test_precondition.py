"""The precondition before round 0 (remote/agent/precondition.py): the pid floor."""
import os

import pytest

from bench.errors import MeasurementError
from bench.run import check_workload_pid
from remote.agent import precondition


def test_small_int_max_is_cpythons_cache():
    # The step: getppid() of a parent with pid <= 256 returns CPython's
    # shared int object, above it a new object per call.
    def two(n):
        return int(str(n)), int(str(n))  # built at run time, not constants
    a, b = two(precondition.SMALL_INT_MAX)
    assert a is b
    a, b = two(precondition.SMALL_INT_MAX + 1)
    assert a is not b


def test_floor_is_above_the_cache_and_is_where_the_kernel_wraps():
    assert precondition.PID_FLOOR > precondition.SMALL_INT_MAX
    assert precondition.PID_FLOOR == 300  # RESERVED_PIDS, kernel/pid.c


def test_forks_until_a_child_reaches_the_floor():
    pids = iter(range(198, 1000))  # a just-booted lab guest hands out ~200 next
    done = precondition.raise_pid_floor(300, fork=lambda: next(pids))
    assert done == {"floor": 300, "first_pid": 198, "last_pid": 300, "forks": 103}


def test_one_fork_when_pids_are_already_high():
    pids = iter([40213])
    assert precondition.raise_pid_floor(fork=lambda: next(pids))["forks"] == 1


def test_a_pid_counter_that_does_not_climb_is_an_error_not_a_hang():
    with pytest.raises(RuntimeError, match="pid floor: 50 forks"):
        precondition.raise_pid_floor(300, fork=lambda: 7, limit=50)


def test_real_fork_on_this_machine():
    done = precondition.raise_pid_floor(fork=precondition._fork_and_reap)
    assert done["last_pid"] >= precondition.PID_FLOOR
    assert done["last_pid"] != os.getpid()


def test_a_cell_whose_workers_saw_a_cached_ppid_is_refused():
    check_workload_pid(None)  # bundles from before the check have no pid
    check_workload_pid(257)
    with pytest.raises(MeasurementError, match="pid 256"):
        check_workload_pid(256)
