"""Methods are one file each (analysis/methods/), found by name: a method
registered in one place is planned, budgeted, checked and measured through
the agent client with nothing else changed."""
import json

import pytest

from analysis import methods
from analysis.methods import Method, answer
from bench import budget
from analysis.bundle import Bundle
from bench.plan import PROFILES, make_plan
from bench.run import Harness, run_cell, start_methods


class Echo(Method):
    """A test-only method: the agent's 'echo' op returns its runs as given."""
    name = "echo"
    rank = 99
    needs = "nothing"

    def applies(self, mode, tracefs_mode):
        return mode == "off"

    def workload(self, workload):
        return "echo-" + workload

    def available(self, facts, caps, module):
        return answer(True, None, "always")

    def estimate(self, profile, startup_s):
        return 1.0

    def calibrate(self, client, run):
        run.bundle.data["plan"]["echo_calls"] = client.request("echo_calibrate")["calls"]

    def measure(self, client, run, cell, quiet):
        e = client.request("echo", calls=run.bundle.data["plan"]["echo_calls"], **quiet)
        rel = run.bundle.write_raw(self.raw_file(cell.id), json.dumps({"runs": e["runs"]}).encode())
        return dict(file=rel, elapsed_s=e["elapsed_s"], host_s=0.5)

    def read(self, path):
        with open(path) as f:
            runs = json.load(f)["runs"]
        return runs, len(runs)


class FakeClient:
    """Records every request; answers the echo method's ops."""

    def __init__(self):
        self.requests = []

    def request(self, op, **kw):
        self.requests.append((op, kw))
        if op == "echo_calibrate":
            return {"calls": 7}
        return {"runs": [1.0, 3.0], "elapsed_s": 0.25}


class UI:
    def step(self, text):
        pass


@pytest.fixture
def echo():
    m = methods.register(Echo())
    yield m
    methods.unregister("echo")


def test_a_method_registered_in_one_file_is_planned_and_reaches_the_agent(echo, tmp_path):
    assert methods.names()[-1] == "echo" and methods.get("echo") is echo
    plan = make_plan(PROFILES["quick"], ["off", "function"], methods=["pyperf", "echo"], seed=1)
    cells = [c for c in plan.cells if c.method == "echo"]
    assert {c.mode for c in cells} == {"off"} and {c.workload for c in cells} == {"echo-getppid"}
    assert len(cells) == PROFILES["quick"].rounds
    assert budget.estimate(PROFILES["quick"], "echo") == 1.0 + budget.SLACK_S

    bundle = Bundle.create(tmp_path / "b", host={"name": "h"}, tool_version="0", command=None)
    bundle.data["plan"] = plan.to_dict()
    client, run = FakeClient(), Harness(bundle, plan, "__arm64_sys_getppid", UI())
    start_methods(client, run, facts={})
    record = run_cell(client, run, cells[0], budget.CellBudget(plan.profile))
    assert client.requests[0] == ("echo_calibrate", {})
    op, kw = client.requests[1]
    assert op == "echo" and kw["calls"] == 7 and kw["cell"] == cells[0].id and kw["budget_s"] > 0
    assert record["file"] == f"echo/{cells[0].id}.json"
    assert record["worker_means_ns"] == [1.0, 3.0] and record["n_values"] == 2


def test_bench_check_asks_every_method(echo):
    from bench.check import report
    from test_check import CFG61, PRE, caps, facts

    r = report(facts(CFG61), caps(), PRE, "root")
    assert list(r["methods"]) == ["pyperf", "kernel", "bpf", "pmu", "echo"]
    assert r["methods"]["echo"] == answer(True, None, "always")


def test_an_unknown_method_is_one_line_naming_the_known_ones():
    with pytest.raises(methods.UnknownMethod, match="unknown method 'nope': known methods are "
                                                    "pyperf, kernel, bpf, pmu$"):
        methods.get("nope")
    assert methods.find("nope") is None


class ModuleFails:
    """An agent client whose module does not build (kind as the agent says)."""

    def __init__(self, kind="module-build"):
        self.kind, self.requests = kind, []

    def request(self, op, **kw):
        from remote.errors import AgentError

        self.requests.append(op)
        if op == "kmod_prepare":
            raise AgentError("lab: building the module failed: ftrace_regs_bench.c:1:2: error: "
                             "#error broken | make[2]: *** [scripts/Makefile.build:250: x.o] Error 1",
                             kind=self.kind)
        raise AssertionError(f"unexpected request {op}")


class Warned(UI):
    def __init__(self):
        self.lines = []

    def warn(self, text):
        self.lines.append(text)


def module_run(tmp_path, modes, methods_):
    plan = make_plan(PROFILES["smoke"], modes, methods=methods_, seed=1)
    bundle = Bundle.create(tmp_path / "b", host={"name": "h"}, tool_version="0", command=None)
    bundle.data["plan"] = plan.to_dict()
    return Harness(bundle, plan, "__arm64_sys_getppid", Warned())


@pytest.mark.parametrize("kind", ["module-build", "module-refused", "unsupported"])
def test_a_module_that_cannot_be_used_drops_what_needs_it_and_the_run_goes_on(tmp_path, monkeypatch, kind):
    from remote import cache

    monkeypatch.setattr(cache, "ROOT", tmp_path / "cache")
    run = module_run(tmp_path, ["off", "function", "noregs", "regs"], ["pyperf", "kernel"])
    client = ModuleFails(kind)
    start_methods(client, run, facts={"kernel_release": "6.1.0-test"})
    assert client.requests == ["kmod_prepare"]  # (no load, no kernel calibration)
    assert run.plan.methods == ["pyperf"] and run.plan.modes == ["off", "function"]
    (line,) = run.ui.lines
    assert line.startswith("the suite's module cannot be used, so method kernel, mode noregs, mode regs "
                           "dropped and the run goes on without: lab: building the module failed: ")
    saved = Bundle.load(run.bundle.path).data["plan"]
    assert saved["methods"] == ["pyperf"] and saved["modes"] == ["off", "function"]
    assert [(s["mode"], s["method"]) for s in saved["skipped"]] == [(None, "kernel"), ("noregs", None),
                                                                     ("regs", None)]
    assert all("building the module failed" in s["reason"] for s in saved["skipped"])
    assert saved["order"] == [c.id for c in run.plan.cells]


def test_a_module_that_cannot_be_used_with_nothing_else_asked_is_one_error(tmp_path, monkeypatch):
    from bench.errors import MeasurementError
    from bench.cli import exit_code
    from remote import cache

    monkeypatch.setattr(cache, "ROOT", tmp_path / "cache")
    run = module_run(tmp_path, ["off", "noregs", "regs"], ["pyperf", "kernel"])
    with pytest.raises(MeasurementError) as e:
        start_methods(ModuleFails(), run, facts={"kernel_release": "6.1.0-test"})
    assert e.value.kind == "module-build" and exit_code(e.value.kind) == 6
    assert str(e.value).startswith("lab: building the module failed: ")
    assert str(e.value).endswith("(nothing that was asked for is left to measure)")
    assert "\n" not in str(e.value) and run.ui.lines == []


@pytest.mark.parametrize("kind, resumed", [("module-busy", False), ("module", False),
                                           ("module-build", True)])
def test_other_module_errors_and_a_resumed_plan_stay_errors(tmp_path, monkeypatch, kind, resumed):
    """A leftover module that cannot be removed (exit 7), a build out of
    time (exit 10), and any failure on a resume (whose plan is its bundle's)."""
    from remote import cache
    from remote.errors import AgentError

    monkeypatch.setattr(cache, "ROOT", tmp_path / "cache")
    run = module_run(tmp_path, ["off", "function", "noregs"], ["pyperf", "kernel"])
    with pytest.raises(AgentError) as e:
        start_methods(ModuleFails(kind), run, facts={"kernel_release": "6.1.0-test"}, resumed=resumed)
    assert e.value.kind == kind and run.plan.methods == ["pyperf", "kernel"]


def test_the_run_says_a_reason_with_brackets_as_it_is():
    """make's '[.../Makefile.build:255: x.o]' in a build failure is not rich markup."""
    import io

    from rich.console import Console

    from bench.ui import RunUI

    ui = RunUI()
    ui.out = Console(file=io.StringIO(), highlight=False, width=400)
    reason = "make[1]: *** [/usr/src/linux-headers-6.1.0-57-common/scripts/Makefile.build:255: x.o] Error 1"
    ui.skip({"mode": None, "method": "kernel", "reason": reason})
    ui.warn("dropped: " + reason)
    out = ui.out.file.getvalue()
    assert f"method kernel unavailable, skipped: {reason}" in out and f"dropped: {reason}" in out
