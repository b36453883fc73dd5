"""The run's time estimate (bench/eta.py): a guess from the plan before the
first cell, and what is left, tightening as cells finish."""
import pytest

from analysis import methods
from bench import eta
from bench.plan import PROFILES, make_plan

MODES = ["off", "noregs", "regs"]


def plan(profile="quick", ms=("pyperf", "kernel", "bpf")):
    return make_plan(PROFILES[profile], MODES, methods=list(ms), seed=1)


def test_host_kind_from_facts():
    assert eta.host_kind({"hostname": "graviton"}) == "hardware"
    assert eta.host_kind({"lab": {"accel": "tcg", "icount": True}}) == "lab-icount"
    assert eta.host_kind({"lab": {"accel": "tcg", "icount": False}}) == "lab-tcg"
    assert eta.host_kind(None) == "hardware"


def test_every_method_says_its_work():
    # a method that did not would fall back to its budget, an upper bound
    for name in methods.names():
        starts, timed = methods.get(name).work(PROFILES["standard"])
        assert starts >= 0 and timed > 0


@pytest.mark.parametrize("method", ["pyperf", "kernel", "bpf", "pmu"])
def test_guess_grows_with_profile_and_slower_host(method):
    q, s = PROFILES["quick"], PROFILES["standard"]
    for kind in eta.SPEEDS:
        assert eta.cell_guess(s, method, kind) > eta.cell_guess(q, method, kind)
    assert (eta.cell_guess(q, method, "lab-icount") > eta.cell_guess(q, method, "hardware"))


def test_plan_guess_counts_setup_only_for_what_is_planned():
    p = plan()
    setup_cached, cells_s = eta.plan_guess(p.profile, p.cells, "hardware", module_cached=True)
    setup_build, _ = eta.plan_guess(p.profile, p.cells, "hardware", module_cached=False)
    speed = eta.SPEEDS["hardware"]
    assert setup_cached == speed.setup_s + speed.compile_s
    assert setup_build == setup_cached + speed.build_s
    only = plan(ms=("pyperf",))
    assert eta.plan_guess(only.profile, only.cells, "hardware", False)[0] == speed.setup_s
    n = eta.counts(p.cells)
    assert cells_s == pytest.approx(sum(k * eta.cell_guess(p.profile, m, "hardware") for m, k in n.items()))


def test_no_work_falls_back_to_the_budget_figure(monkeypatch):
    m = methods.get("kernel")
    monkeypatch.setattr(type(m), "work", lambda self, profile: None)
    speed = eta.SPEEDS["hardware"]
    assert eta.cell_guess(PROFILES["quick"], "kernel", "hardware") == pytest.approx(
        m.estimate(PROFILES["quick"], speed.start_s) + speed.cell_s)


@pytest.mark.parametrize("seconds,text", [(0, "~10 s"), (44, "~40 s"), (89, "~90 s"), (91, "~2 min"),
                                          (600, "~10 min"), (5300, "~88 min"), (5400, "~1 h 30 min"),
                                          (4 * 3600 + 5 * 60, "~4 h 05 min")])
def test_duration_words(seconds, text):
    assert eta.duration(seconds) == text


def test_progress_uses_each_methods_own_cells_once_seen():
    p = plan()
    prog = eta.Progress(p.profile, p.cells, "hardware")
    n = eta.counts(p.cells)
    assert prog.remaining() == pytest.approx(sum(k * prog.guess[m] for m, k in n.items()))
    prog.done("pyperf", 10.0)
    prog.done("pyperf", 14.0)
    assert prog.per_cell("pyperf") == 12.0
    assert prog.left["pyperf"] == n["pyperf"] - 2
    assert "pyperf 12 s/cell" in prog.text() and "kernel guessed" in prog.text()


def test_progress_scales_unseen_methods_by_how_far_the_guesses_were_off():
    p = plan()
    prog = eta.Progress(p.profile, p.cells, "hardware")
    g_pyperf, g_kernel = prog.guess["pyperf"], prog.guess["kernel"]
    prog.done("pyperf", 3 * g_pyperf)  # the host is three times slower than guessed
    assert prog.scale() == pytest.approx(3.0)
    assert prog.per_cell("kernel") == pytest.approx(3 * g_kernel)


def test_progress_tightens_to_the_truth():
    # cells that take what they take: once each method is seen, what is
    # left is exactly the remaining cells at the observed rates
    p = plan()
    truth = {"pyperf": 9.0, "kernel": 2.0, "bpf": 4.0}
    prog = eta.Progress(p.profile, p.cells, "lab-icount")
    cells = list(p.cells)
    for i, c in enumerate(cells):
        prog.done(c.method, truth[c.method])
        rest = sum(truth[x.method] for x in cells[i + 1:])
        if {x.method for x in cells[:i + 1]} >= set(truth):
            assert prog.remaining() == pytest.approx(rest)
    assert prog.remaining() == 0 and prog.text() == ""


def test_a_dropped_method_leaves_nothing_to_wait_for():
    p = plan()
    prog = eta.Progress(p.profile, p.cells, "hardware")
    prog.drop("bpf")
    assert "bpf" not in prog.text()


def test_each_cell_line_says_what_is_left_and_the_run_keeps_its_estimate(tmp_path):
    # the echo method of test_methods (no work(): its budget figure is the
    # guess), measured through bench/run.py as a run measures its cells
    from analysis.bundle import Bundle
    from bench.run import Harness, estimate_run, measure_cells, start_methods, took
    from test_methods import Echo, FakeClient

    class UI:
        def __init__(self):
            self.lines, self.estimates = [], []

        def step(self, text):
            pass

        def estimate(self, text):
            self.estimates.append(text)

        def cell_start(self, i, n, cell):
            pass

        def cell_done(self, record, left=""):
            self.lines.append(left)

    methods.register(Echo())
    try:
        p = make_plan(PROFILES["quick"], ["off"], methods=["echo"], seed=1)
        bundle = Bundle.create(tmp_path / "b", host={"name": "h"}, tool_version="0", command=None)
        bundle.data["plan"] = p.to_dict()
        ui = UI()
        estimate_run(bundle, p, p.cells, {"lab": {"accel": "tcg", "icount": True}}, None, ui)
        assert "estimated" in ui.estimates[0] and "4 cells (4 echo)" in ui.estimates[0]
        assert "the lab under QEMU icount" in ui.estimates[0]
        assert bundle.data["estimate"]["host_kind"] == "lab-icount"
        client, run = FakeClient(), Harness(bundle, p, "__arm64_sys_getppid", ui)
        start_methods(client, run, facts={})
        measure_cells(client, run, p.cells, None, ui, "lab-icount")
    finally:
        methods.unregister("echo")
    assert len(ui.lines) == 4
    assert all("left (echo " in t and "s/cell)" in t for t in ui.lines[:-1]) and ui.lines[-1] == ""
    import time
    text = took(bundle, None, time.monotonic() - 5)
    assert text.startswith("took ~10 s (5 s); estimated ") and bundle.data["estimate"]["actual_s"] >= 5


def test_a_busy_machine_is_said_for_a_lab_only():
    assert eta.load_note("lab-icount", 9.2, 2) == "; this machine's load is 9.2 on 2 CPUs, which stretches a lab's run"
    assert eta.load_note("lab-tcg", 1.5, 2) == ""
    assert eta.load_note("hardware", 9.2, 2) == ""  # our load says nothing of a remote host's
