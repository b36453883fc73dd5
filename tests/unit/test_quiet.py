"""The quiet harness's logic: the agent's lease with a cell budget, its
watchdog's wake-ups, the controller's pinger and the budget it declares,
and which CPUs the agent's threads go to under --tune.  No clock is real:
the lease takes a clock and a condition variable, both faked here."""
import pytest

from bench.budget import QUIET_FACTOR, QUIET_SLACK_S, CellBudget, estimate
from bench.plan import PROFILES
from remote.agent import tune
from remote.agent.lease import Lease, check_budget
from remote.agent_client import ping_wait


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Cond:
    """A condition variable whose wait(t) lets t seconds pass at once, and
    calls `during(waits)` on each wait (what other threads do meanwhile)."""

    def __init__(self, clock, during=None):
        self.clock, self.during, self.waits = clock, during, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def wait(self, timeout):
        self.waits.append(timeout)
        if self.during:
            self.during(len(self.waits))
        self.clock.now += timeout

    def notify_all(self):
        pass


def lease(seconds=30.0, during=None):
    clock = Clock()
    cond = Cond(clock)
    le = Lease(seconds, clock=clock, cond=cond)
    if during:
        cond.during = lambda n: during(le, clock, n)
    return le, clock, cond


def test_the_watchdog_sleeps_until_the_deadline_not_every_second():
    le, clock, cond = lease(30)
    assert le.wait_lapse(lambda: False) == "lease of 30 s lapsed: no word from the controller"
    assert cond.waits == [30] and clock.now == 30


def test_a_renewal_moves_the_deadline_and_the_watchdog_sleeps_again_once():
    def during(le, clock, n):
        if n == 1:  # a ping at t=10 while the watchdog sleeps: the lease now runs to 40
            clock.now = 10
            le.heard()
            clock.now = 0
    le, clock, cond = lease(30, during)
    le.wait_lapse(lambda: False)
    assert cond.waits == [30, 10] and clock.now == 40


def test_a_cell_holds_the_lease_for_its_budget_and_an_overrun_lapses_it():
    le, clock, cond = lease(30)
    le.begin_quiet(100, "r00-off-getppid-pyperf")
    assert le.deadline() == 130
    reason = le.wait_lapse(lambda: False)
    assert cond.waits == [130]
    assert "r00-off-getppid-pyperf overran its budget of 100 s" in reason
    assert "lease of 30 s" in reason


def test_after_a_cell_the_controller_has_the_usual_lease_from_its_end():
    le, clock, _ = lease(30)
    le.begin_quiet(100)
    clock.now = 5  # the cell took 5 s: a controller gone during it is noticed at 5 + 30
    le.end_quiet()
    assert le.deadline() == 35
    assert le.lapsed_reason().startswith("lease of 30 s lapsed")


def test_the_lease_is_the_margin_over_a_budget_and_a_budget_never_shortens_it():
    le, clock, _ = lease(30)
    le.begin_quiet(1)
    assert le.deadline() == 31
    clock.now = 20
    le.heard()  # (an abort, say, during the cell)
    assert le.deadline() == 50


def test_the_watchdog_stops_when_the_agent_finishes():
    state = {"finished": False}

    def during(le, clock, n):
        state["finished"] = True
    le, _, cond = lease(30, during)
    assert le.wait_lapse(lambda: state["finished"]) is None
    assert cond.waits == [30]


@pytest.mark.parametrize("value,ok", [(12.5, 12.5), ("40", 40.0), (0, None), (-1, None),
                                      (86401, None), ("x", None), (None, None)])
def test_budget_from_the_controller_is_checked(value, ok):
    assert check_budget(value) == ok


def test_the_pinger_keeps_silent_during_a_quiet_window():
    assert ping_wait(now=10, due=12, quiet_until=None) == 2
    assert ping_wait(now=13, due=12, quiet_until=None) == 0
    # a cell until t=50: no ping before, whatever is due
    assert ping_wait(now=13, due=12, quiet_until=50) == 37
    # the window expired before the cell's answer: ping at once
    assert ping_wait(now=51, due=12, quiet_until=50) == 0


def test_budgets_start_from_the_profile_and_grow_with_the_cells_seen():
    quick = PROFILES["quick"]
    b = CellBudget(quick)
    first = b.for_cell("pyperf")
    assert first.agent_s == first.quiet_s == round(estimate(quick, "pyperf"), 1)
    # quick under TCG took up to 24.7 s a cell (results/lab/debian-6.1-tcg-quick)
    assert first.agent_s > 3 * 24.7
    b.record("pyperf", agent_s=2.0, ours_s=40.0)  # icount: guest seconds pass slower
    b.record("pyperf", agent_s=1.5, ours_s=20.0)
    again = b.for_cell("pyperf")
    assert again.agent_s == first.agent_s  # never below the profile's estimate
    # our window: tighter, learnt from our own clock alone
    assert again.quiet_s == QUIET_FACTOR * 40.0 + QUIET_SLACK_S
    assert b.for_cell("bpf").agent_s == round(estimate(quick, "bpf"), 1)  # learnt per method


def test_every_method_has_an_estimate_within_reason():
    for p in PROFILES.values():
        for method in ("pyperf", "bpf", "kernel"):
            assert 30 < estimate(p, method) < 3600
    with pytest.raises(ValueError):
        estimate(PROFILES["quick"], "nope")


def test_the_agent_goes_to_the_other_cpus_under_tune():
    assert tune.housekeeping_cpus(3, allowed={0, 1, 2, 3}, isolated=[]) == {0, 1, 2}
    # another isolated CPU is left alone while a housekeeping CPU remains
    assert tune.housekeeping_cpus(2, allowed={0, 1, 2, 3}, isolated=[2, 3]) == {0, 1}
    assert tune.housekeeping_cpus(1, allowed={0, 1}, isolated=[0, 1]) == {0}
    # one CPU: nowhere else to go (the harness keeps quiet instead)
    assert tune.housekeeping_cpus(0, allowed={0}, isolated=[]) == set()


def test_ssh_keepalives_stop_during_a_quiet_window():
    from remote.ssh import KEEPALIVE_INTERVAL, ConnectSpec, SSHTarget

    class Transport:
        def __init__(self):
            self.keepalive = [KEEPALIVE_INTERVAL]

        def set_keepalive(self, interval):
            self.keepalive.append(interval)

        def is_active(self):
            return True

    class Client:
        transport = Transport()

        def get_transport(self):
            return self.transport

    # alive_interval 0: no watchdog thread here (its schedule is not unit-testable)
    target = SSHTarget("h", Client(), ConnectSpec("h", "127.0.0.1", alive_interval=0))
    with target.quiet(60):
        assert Client.transport.keepalive[-1] == 0  # paramiko sends no keepalive@lag.net
        assert 59 < target._quiet_left() <= 60
    assert Client.transport.keepalive[-1] == KEEPALIVE_INTERVAL
    assert target._quiet_left() == 0


def test_the_agent_holds_the_lease_for_a_measuring_request_with_a_budget():
    from remote.agent import agent

    a = agent.Agent("/nonexistent", 30)
    held = a.run_op("measure", lambda req: a.lease.quiet, {"budget_s": 50, "cell": "r00-off"})
    assert held[1:] == (50.0, "r00-off") and a.lease.quiet is None
    assert a.run_op("verify", lambda req: "plain", {}) == "plain"
    for op, budget in (("hello", 5), ("measure", 0), ("kmod_time", "soon")):
        with pytest.raises(agent.Fatal, match="bad budget_s") as e:
            a.run_op(op, lambda req: None, {"budget_s": budget})
        assert e.value.kind == "usage"
    with pytest.raises(RuntimeError):  # a failing cell ends the quiet window too
        a.run_op("measure", lambda req: (_ for _ in ()).throw(RuntimeError("x")), {"budget_s": 5})
    assert a.lease.quiet is None
