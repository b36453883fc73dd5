import pytest

from bench.errors import UsageError
from bench.plan import MODES, PROFILES, make_plan, parse_list, select_profile


def test_every_mode_once_per_round_in_changing_order():
    plan = make_plan(select_profile("standard"), ["off", "function", "function-all"], seed=7)
    rounds = {}
    for c in plan.cells:
        rounds.setdefault(c.round, []).append(c.mode)
    assert len(rounds) == PROFILES["standard"].rounds
    for order in rounds.values():
        assert sorted(order) == sorted(MODES)
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
    with pytest.raises(UsageError, match="unknown mode 'regs'"):
        parse_list("off,regs", MODES, "modes")
    with pytest.raises(UsageError):
        parse_list(" , ", MODES, "modes")


def test_cell_ids_are_unique_and_safe():
    plan = make_plan(select_profile("rigorous"), list(MODES), seed=3)
    ids = [c.id for c in plan.cells]
    assert len(ids) == len(set(ids))
    assert all(i.replace("-", "").replace("_", "").isalnum() for i in ids)
