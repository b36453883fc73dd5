import pytest

from bench.errors import UsageError
from bench.plan import PROFILES, make_plan, parse_list, restrict, select_profile, tracefs_mode
from remote.protocol.modes import MODES


def test_every_mode_once_per_round_in_changing_order():
    plan = make_plan(select_profile("standard"), ["off", "function", "function-all"], seed=7)
    rounds = {}
    for c in plan.cells:
        rounds.setdefault(c.round, []).append(c.mode)
    assert len(rounds) == PROFILES["standard"].rounds
    for order in rounds.values():
        # off-aa: the A/A check, off measured a second time in every round
        assert sorted(order) == sorted(["off", "function", "function-all", "off-aa"])
    assert len({tuple(o) for o in rounds.values()}) > 1, "the order must change between rounds"
    # Same seed, same plan: the order is reproducible from the bundle.
    again = make_plan(select_profile("standard"), ["off", "function", "function-all"], seed=7)
    assert [c.id for c in again.cells] == [c.id for c in plan.cells]


def test_off_is_always_measured():
    plan = make_plan(select_profile("quick"), ["function"], seed=1)
    assert plan.modes == ["off", "function"]


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UsageError, match="quick, standard, rigorous"):
        select_profile("fast")
    with pytest.raises(UsageError, match="unknown mode 'kprobe'"):
        parse_list("off,kprobe", MODES, "modes")
    with pytest.raises(UsageError):
        parse_list(" , ", MODES, "modes")


def test_cell_ids_are_unique_and_safe():
    plan = make_plan(select_profile("rigorous"), list(MODES), seed=3)
    ids = [c.id for c in plan.cells]
    assert len(ids) == len(set(ids))
    assert all(i.replace("-", "").replace("_", "").isalnum() for i in ids)


def test_kernel_method_only_where_the_module_has_a_figure():
    plan = make_plan(select_profile("quick"), list(MODES), methods=["pyperf", "kernel"], seed=5)
    kernel_modes = {c.mode for c in plan.cells if c.method == "kernel"}
    assert kernel_modes == {"off", "noregs", "regs", "off-aa"}
    assert plan.needs_module


def test_restrict_says_what_is_skipped_and_why():
    ok = {"ok": True, "reason": "fine"}
    check = {"modes": {m: ok for m in MODES} | {"regs": {"ok": False, "reason": "no regs caller"}},
             "methods": {"pyperf": ok, "kernel": {"ok": False, "reason": "no headers"}}}
    modes, methods, skipped = restrict(list(MODES), ["pyperf", "kernel"], check)
    assert "regs" not in modes and methods == ["pyperf"]
    assert {"mode": "regs", "method": None, "reason": "no regs caller"} in skipped
    assert {"mode": None, "method": "kernel", "reason": "no headers"} in skipped


def test_check_modes_aa_always_and_probe_cost_with_bpf_and_pyperf():
    plan = make_plan(select_profile("quick"), ["off", "function"], methods=["pyperf", "bpf"], seed=2)
    assert plan.check_modes == ["off-aa", "off-probe"]
    per_round = {}
    for c in plan.cells:
        per_round.setdefault(c.round, []).append((c.mode, c.method))
    for cells in per_round.values():
        # off-probe is a pyperf cell (the probes' cost on pyperf's loop); off-aa runs every method
        assert sorted(cells) == sorted([(m, meth) for m in ("off", "function", "off-aa")
                                        for meth in ("pyperf", "bpf")] + [("off-probe", "pyperf")])
    assert tracefs_mode("off-aa") == tracefs_mode("off-probe") == "off"
    assert plan.to_dict()["bpf_calls"] == 10007  # a prime
    only = make_plan(select_profile("quick"), ["off"], methods=["pyperf"], seed=2)
    assert only.check_modes == ["off-aa"]


def test_dropping_bpf_midway_drops_its_cells_and_the_probe_cost():
    plan = make_plan(select_profile("quick"), ["off", "function"], methods=["pyperf", "bpf"], seed=2)
    plan.drop_method("bpf", {"mode": None, "method": "bpf", "reason": "refused"})
    assert plan.methods == ["pyperf"] and plan.check_modes == ["off-aa"]
    assert {c.method for c in plan.cells} == {"pyperf"}
    assert "off-probe" not in {c.mode for c in plan.cells}
    assert plan.skipped[-1]["reason"] == "refused"


def test_tuned_pyperf_workers_are_pinned():
    plan = make_plan(select_profile("quick"), ["off"], seed=2)
    assert not any(a.startswith("--affinity") for a in plan.pyperf_args())
    plan.affinity = 1
    assert "--affinity=1" in plan.pyperf_args()


DEFAULT_MODES = ["off", "function", "function-all", "noregs", "regs"]


def test_a_module_that_cannot_be_used_drops_the_kernel_method_and_the_module_modes():
    """Issue 21, part 5: what needs the module goes, with the reason, one
    record each; pyperf and bpf keep every mode that needs no module."""
    plan = make_plan(select_profile("quick"), DEFAULT_MODES, methods=["pyperf", "kernel", "bpf"], seed=3)
    skipped = plan.drop_module("lab: building the module failed: x")
    assert skipped == [{"mode": None, "method": "kernel", "reason": "lab: building the module failed: x"},
                       {"mode": "noregs", "method": None, "reason": "lab: building the module failed: x"},
                       {"mode": "regs", "method": None, "reason": "lab: building the module failed: x"}]
    assert plan.skipped == skipped
    assert plan.methods == ["pyperf", "bpf"] and plan.modes == ["off", "function", "function-all"]
    assert plan.check_modes == ["off-aa", "off-probe"] and not plan.needs_module
    kept = {(c.mode, c.method) for c in plan.cells}
    assert kept == {(m, meth) for m in ("off", "function", "function-all", "off-aa")
                    for meth in ("pyperf", "bpf")} | {("off-probe", "pyperf")}
    assert len(plan.cells) == plan.profile.rounds * len(kept)
    assert not plan.nothing_left
    d = plan.to_dict()
    assert d["modes"] == plan.modes and d["order"] == [c.id for c in plan.cells]
    # the plan's order is still the seeded shuffle, the dropped cells taken out
    full = make_plan(select_profile("quick"), DEFAULT_MODES, methods=["pyperf", "kernel", "bpf"], seed=3)
    assert d["order"] == [c.id for c in full.cells if (c.mode, c.method) in kept]


def test_a_module_that_cannot_be_used_with_ops_points_drops_their_cells():
    plan = make_plan(select_profile("smoke"), ["off", "function", "noregs"], methods=["pyperf", "kernel"],
                     seed=1, ops=[(2, 0), (4, 8)])
    plan.drop_module("refused")
    assert {c.method for c in plan.cells} == {"pyperf"} and not any(c.ops for c in plan.cells)


@pytest.mark.parametrize("modes, methods, left", [
    (["off", "noregs", "regs"], ["pyperf", "kernel"], False),  # pyperf alone on the baseline
    (["off", "function", "noregs"], ["kernel"], False),  # no method left
    (["off", "function", "noregs"], ["pyperf", "kernel"], True),
    (["off"], ["pyperf", "kernel"], True),  # the baseline was all that was asked
    (["off", "function"], ["pmu"], True),  # nothing needed the module
])
def test_nothing_left_when_the_module_goes(modes, methods, left):
    plan = make_plan(select_profile("smoke"), modes, methods=methods, seed=1)
    plan.drop_module("refused")
    assert plan.nothing_left is not left


def test_nothing_left_when_the_last_method_drops_itself():
    plan = make_plan(select_profile("smoke"), ["off", "function"], methods=["bpf"], seed=1)
    assert not plan.nothing_left
    plan.drop_method("bpf", {"mode": None, "method": "bpf", "reason": "refused"})
    assert plan.nothing_left and plan.cells == []
