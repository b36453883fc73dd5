"""The modes registry (remote/protocol/modes): one file per mode.

The real modes' expectations against verify views built from captured
enabled_functions lines (tests/data, with origins); and a test-only mode,
declared in one file (tests/data/modes/function_notrace.py), that every
consumer takes up once it is registered: the plan, bench check, the
controller's check and the agent's set_mode on a fake tracefs."""
import dataclasses
import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

from bench.errors import MeasurementError
from bench.modecheck import check_mode
from remote.protocol import modes
from remote.protocol.tracefs_text import enabled_view

DATA = pathlib.Path(__file__).parent.parent / "data"
FN = "__arm64_sys_getppid"
# the handler with the module's ops, with SAVE_REGS and without (6.1 lab)
REGS_61, NOREGS_61 = (DATA / "enabled_functions-6.1-lab.txt").read_text().splitlines()
# 6.12 lab: the module's ops (no SAVE_REGS there), then the function tracer filtered to the handler
MODULE_612, TRACER_612 = (DATA / "enabled_functions-6.12-lab.txt").read_text().splitlines()
OTHER = "schedule (1)"  # some other function's line (made up: no capture has one)


def view(*lines, tracer="nop", tracing_on="1", function=FN):
    """What the agent's verify returns (it strips the lines, as Tracefs.lines does)."""
    return dict(current_tracer=tracer, tracing_on=tracing_on, set_ftrace_filter=[],
                **enabled_view([line.strip() for line in lines], function))


def load_mode_file(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def notrace():
    mode = modes.register(load_mode_file(DATA / "modes" / "function_notrace.py"))
    yield mode
    modes.unregister(mode.name)


# -- the registry -------------------------------------------------------------

def test_the_package_finds_one_file_per_mode_in_order():
    files = sorted(p.stem.replace("_", "-") for p in pathlib.Path(modes.__file__).parent.glob("*.py")
                   if p.name != "__init__.py")
    assert sorted(modes.MODES) == files
    assert modes.MODES == modes.names() == ("off", "function", "function-all", "noregs", "regs")
    assert modes.BASELINE == "off"
    for name in modes.MODES:
        m = modes.get(name)
        assert m.name == name and m.description and "\n" not in m.description


def test_an_unknown_mode_is_an_error_listing_the_known_ones():
    with pytest.raises(modes.UnknownMode) as e:
        modes.get("kprobe")
    assert str(e.value) == "unknown mode 'kprobe' (known: off, function, function-all, noregs, regs)"
    with pytest.raises(modes.UnknownMode):
        check_mode("kprobe", FN, view())  # never passed as noregs/regs, as it once was


def test_every_knob_a_mode_writes_is_one_the_agent_restores(notrace):
    from remote.agent.tracefs import KNOBS

    for name in modes.names():
        assert set(modes.get(name).knobs) <= set(KNOBS), name
    assert set(modes.filter_knobs()) <= set(KNOBS)


def test_the_cli_offers_every_mode_with_its_description():
    from bench.cli import cli

    option = next(p for p in cli.commands["run"].params if p.name == "modes")
    assert option.default == ",".join(modes.MODES)
    for name in modes.MODES:
        assert f"{name} ({modes.get(name).description})" in option.help


def test_a_mode_file_must_declare_its_mode_whole():
    module = load_mode_file(DATA / "modes" / "function_notrace.py")
    del module.KNOBS
    with pytest.raises(modes.ModeFileError, match="does not declare KNOBS"):
        modes.from_module(module)
    module = load_mode_file(DATA / "modes" / "function_notrace.py")
    module.NEEDS = ("function graph tracer",)
    with pytest.raises(modes.ModeFileError, match="bench check answers only"):
        modes.from_module(module)
    module = load_mode_file(DATA / "modes" / "function_notrace.py")
    module.KERNEL = {"save_regs": True}  # without the number of relevant ops
    with pytest.raises(modes.ModeFileError, match="KERNEL"):
        modes.from_module(module)
    with pytest.raises(modes.ModeFileError, match="declared twice"):
        modes.register(dataclasses.replace(modes.get("regs"), order=99))


def test_a_shipped_copy_finds_the_same_modes(tmp_path):
    # The payload ships remote/protocol as the package `protocol` next to agent.py.
    from remote.agent_client import payload

    for rel, data in payload().items():
        if rel.startswith("protocol/"):
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_bytes(data)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", "from protocol import modes; print(','.join(modes.MODES))"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == ",".join(modes.MODES)


# -- each real mode's expectation, on captured lines ----------------------------

@pytest.mark.parametrize("mode, v, ok", [
    ("off", view(), True),
    ("off", view(NOREGS_61), False),                              # an ops left
    ("off", view(tracer="function"), False),
    ("function", view(TRACER_612, tracer="function"), True),
    ("function", view(TRACER_612, tracer="function", tracing_on="0"), False),
    ("function", view(TRACER_612, OTHER, tracer="function"), False),  # not the handler alone
    ("function", view(tracer="function"), False),                # the handler not traced
    ("function-all", view(TRACER_612, OTHER, tracer="function"), True),
    ("function-all", view(TRACER_612, tracer="function"), False),  # still filtered
    ("function-all", view(TRACER_612, OTHER), False),             # no tracer
    ("noregs", view(NOREGS_61), True),
    ("noregs", view(MODULE_612), True),                           # 6.12: O, no R
    ("noregs", view(REGS_61), False),
    ("noregs", view(NOREGS_61, tracer="function"), False),
    ("regs", view(REGS_61), True),
    ("regs", view(NOREGS_61), False),
    ("regs", view(MODULE_612), False),
    ("regs", view(REGS_61, OTHER), False),
])
def test_each_mode_expects_its_own_tracefs_state(mode, v, ok):
    assert modes.get(mode).expect(v, FN)[0] is ok


def test_the_expected_states_read_as_before():
    want = {m: modes.get(m).expect(view(), FN)[1] for m in modes.MODES}
    assert want == {
        "off": "current_tracer nop and enabled_functions empty",
        "function": f"function tracer on {FN} alone (enabled_functions: 1 line)",
        "function-all": "function tracer on every function",
        "noregs": f"the module's ops alone on {FN}, without the R (regs) flag",
        "regs": f"the module's ops alone on {FN}, with the R (regs) flag",
    }
    with pytest.raises(MeasurementError) as e:
        check_mode("regs", FN, view(NOREGS_61))
    assert str(e.value) == (
        f"mode 'regs' is not in effect on the target: tracefs shows current_tracer='nop', "
        f"tracing_on=1, 1 enabled function(s), {FN}: '{NOREGS_61}'; expected the module's ops "
        f"alone on {FN}, with the R (regs) flag")


def test_the_entry_paths_the_variant_comparison_tables():
    from analysis.summary import entry_path, entry_paths

    assert entry_paths() == [
        ("mcount", "noregs", "mcount (fallback) ftrace_caller"),
        ("regs", "noregs", "ftrace_caller (regs era)"),
        ("regs", "regs", "ftrace_regs_caller (regs era)"),
        ("args", "noregs", "ftrace_caller (args)"),
        ("call-ops", "noregs", "ftrace_caller (call-ops)"),
        ("direct-calls", "noregs", "ftrace_caller (call-ops, direct calls)"),
    ]
    assert entry_path("regs", "regs") == "ftrace_regs_caller (regs era)"
    assert entry_path("args", "regs") is None and entry_path("regs", "off-aa") is None


# -- the agent's set_mode on a fake tracefs ---------------------------------------

class FakeKmod:
    loaded_by_us = True

    def __init__(self):
        self.calls = []

    def attach(self, function, save_regs):
        self.calls.append(("attach", function, save_regs))

    def detach(self):
        self.calls.append(("detach",))

    def release(self):
        self.calls.append(("release",))


@pytest.fixture
def agent(tmp_path):
    """An agent on a directory laid out like tracefs (its writes land in
    plain files), snapshotted as bench run does before any write."""
    from remote.agent import agent as agent_mod

    root = tmp_path / "tracing"
    root.mkdir()
    files = {"current_tracer": "nop\n", "tracing_on": "1\n", "buffer_size_kb": "1408\n",
             "set_ftrace_notrace": "",
             "set_ftrace_filter": "#### all functions enabled ####\n",
             "available_tracers": "function nop\n", "enabled_functions": "",
             "available_filter_functions": f"{FN}\nschedule\n"}
    for name, text in files.items():
        (root / name).write_text(text)
    (tmp_path / "work").mkdir()
    a = agent_mod.Agent(str(tmp_path / "work"), 30)
    a.tracefs = agent_mod.tracefs_mod.Tracefs(str(root))
    a.op_begin({})
    a.kmod = FakeKmod()
    a.root = root
    return a


def knobs(a):
    return {n: (a.root / n).read_text() for n in ("current_tracer", "tracing_on", "set_ftrace_filter",
                                                  "set_ftrace_notrace")}


def test_the_agent_enters_each_real_mode_as_before(agent):
    agent.op_set_mode({"mode": "function", "function": FN})
    assert knobs(agent) == {"current_tracer": "function", "tracing_on": "1",
                            "set_ftrace_filter": FN + "\n", "set_ftrace_notrace": ""}
    agent.op_set_mode({"mode": "function-all", "function": FN})
    assert knobs(agent) == {"current_tracer": "function", "tracing_on": "1",
                            "set_ftrace_filter": "", "set_ftrace_notrace": ""}
    agent.kmod.calls.clear()
    agent.op_set_mode({"mode": "regs", "function": FN})
    agent.op_set_mode({"mode": "noregs", "function": FN})
    assert agent.kmod.calls == [("detach",), ("release",), ("attach", FN, True),
                                ("detach",), ("release",), ("attach", FN, False)]
    assert knobs(agent)["current_tracer"] == "nop" and knobs(agent)["set_ftrace_filter"] == ""
    agent.op_set_mode({"mode": "off", "function": FN})
    assert knobs(agent)["current_tracer"] == "nop"
    assert agent.op_restore({})["problems"] == []


def test_the_agent_refuses_an_unknown_mode_naming_the_known_ones(agent):
    from remote.agent.agent import Fatal

    for op in (agent.op_set_mode, agent.op_preflight):
        with pytest.raises(Fatal) as e:
            op({"mode": "kprobe", "modes": ["kprobe"], "function": FN})
        assert e.value.kind == "usage" and str(e.value).startswith("unknown mode 'kprobe' (known: off, ")


def test_the_agent_refuses_a_write_the_mode_file_does_not_declare(agent, notrace):
    from remote.agent.agent import Fatal

    undeclared = modes.register(dataclasses.replace(notrace, name="sneaky", order=36,
                                                    knobs=("tracing_on", "current_tracer")))
    try:
        with pytest.raises(Fatal, match="sneaky writes set_ftrace_notrace, which its file does not declare"):
            agent.op_set_mode({"mode": "sneaky", "function": FN})
    finally:
        modes.unregister(undeclared.name)


# -- a mode added in one file --------------------------------------------------------

def test_a_registered_mode_is_planned_with_the_methods_it_declares(notrace):
    from analysis.load import mode_key
    from bench.plan import make_plan, parse_list, select_profile

    assert modes.names() == ("off", "function", "function-all", "function-notrace", "noregs", "regs")
    wanted = parse_list("function-notrace", modes.names(), "modes")
    plan = make_plan(select_profile("quick"), wanted, methods=["pyperf", "kernel", "bpf"], seed=1)
    assert plan.modes == ["off", "function-notrace"]
    assert {c.method for c in plan.cells if c.mode == "function-notrace"} == {"pyperf", "bpf"}
    assert not make_plan(select_profile("quick"), wanted, methods=["pyperf"], seed=1).needs_module
    assert sorted(["regs", "function-notrace", "off-aa", "function"], key=mode_key) == [
        "function", "function-notrace", "regs", "off-aa"]


def test_bench_check_answers_for_a_registered_mode(notrace):
    from bench.check import report
    from test_check import CFG61, PRE, caps, facts

    r = report(facts(CFG61), caps(), PRE, "root")
    assert r["modes"]["function-notrace"] == {"ok": True, "value": None,
                                              "reason": "function tracer available"}
    r = report(facts(CFG61), caps(), dict(PRE, available_tracers=["nop"]), "root")
    assert r["modes"]["function-notrace"]["ok"] is False
    assert r["modes"]["function-notrace"]["reason"] == r["modes"]["function"]["reason"]
    assert list(r["modes"]) == list(modes.names())


def test_the_agent_and_the_controller_check_a_registered_mode(agent, notrace):
    # What the kernel would list with every function but the handler traced.
    (agent.root / "enabled_functions").write_text("schedule (1)\ndo_idle (1)\n")
    agent.op_set_mode({"mode": "function", "function": FN})
    v = agent.op_set_mode({"mode": "function-notrace", "function": FN})
    assert knobs(agent) == {"current_tracer": "function", "tracing_on": "1",
                            "set_ftrace_filter": "", "set_ftrace_notrace": FN + "\n"}
    check_mode("function-notrace", FN, v)
    # Entering another mode empties its filter list too: no mode inherits it.
    agent.op_set_mode({"mode": "function-all", "function": FN})
    assert knobs(agent)["set_ftrace_notrace"] == ""
    (agent.root / "enabled_functions").write_text(f"{FN} (1)\nschedule (1)\n")
    with pytest.raises(MeasurementError, match="expected function tracer on every function but "):
        check_mode("function-notrace", FN, agent.op_verify({"function": FN}))
    assert agent.op_restore({})["problems"] == []


def test_the_kernel_method_calibrates_with_save_regs_only_when_a_planned_mode_uses_it():
    from bench.plan import make_plan, select_profile

    def plan(wanted, methods):
        return make_plan(select_profile("quick"), wanted, methods=methods, seed=1)

    assert plan(["noregs", "regs"], ["kernel"]).kernel_save_regs
    assert not plan(["noregs", "function"], ["kernel", "pyperf"]).kernel_save_regs
    assert not plan(["regs"], ["pyperf"]).kernel_save_regs
