"""The kernel method's ops points (issue 14, section 3): --ops and
--ops-sweep, the plan's cells at each point, the tracefs proof with
irrelevant ops, and the figures at each point from a real sweep bundle
(results/lab/debian-6.1-icount-ops, measured in the icount lab)."""
import pathlib
import re

import pytest
from click.testing import CliRunner

from analysis.bundle import Bundle
from analysis.load import cells_frame, load_bundles
from analysis.summary import ops_summary, summarize_cells
from bench.cli import cli, exit_code
from bench.errors import MeasurementError, UsageError
from bench.modecheck import check_kernel_cell
from bench.plan import (DEFAULT_SWEEP, kernel_settings, make_plan, ops_points, parse_ops, parse_sweep,
                        select_profile)
from bench.run import summarize_bundle
from remote.protocol.tracefs_text import enabled_view

ROOT = pathlib.Path(__file__).parent.parent.parent
SWEEP = ROOT / "results" / "lab" / "debian-6.1-icount-ops"
SWEEP_6_12 = ROOT / "results" / "lab" / "debian-6.12-icount-ops"
DATA = ROOT / "tests" / "data"


# -- the command line -------------------------------------------------------------

def test_ops_and_sweep_parse_to_points():
    assert parse_ops("4") == (4, 0) and parse_ops("4,8") == (4, 8) and parse_ops(" 2 , 16") == (2, 16)
    assert parse_sweep(DEFAULT_SWEEP) == [(1, 0), (2, 0), (4, 0), (8, 0), (1, 8), (2, 8), (4, 8), (8, 8)]
    assert parse_sweep("1,2") == [(1, 0), (2, 0)]
    # --ops repeatable, with a sweep: every point once, in the order given
    assert ops_points(("8,8", "1"), "1,8x0,8") == [(8, 8), (1, 0), (8, 0), (1, 8)]
    assert ops_points((), None) == []


@pytest.mark.parametrize("text, what", [("0", "relevant ops must be a number from 1 to 16"),
                                        ("17", "relevant ops must be a number from 1 to 16"),
                                        ("4,-1", "irrelevant ops must be a number from 0 to 16"),
                                        ("4,x", "irrelevant ops must be a number from 0 to 16"),
                                        ("1,2,3", "--ops takes RELEVANT[,IRRELEVANT]")])
def test_bad_ops_are_usage_errors(text, what):
    with pytest.raises(UsageError, match=re.escape(what)):
        parse_ops(text)


def _run(*args):
    r = CliRunner().invoke(cli, ["run", "--host", "no-such-alias-anywhere", *args])
    lines = [l for l in r.output.splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    return r.exit_code, lines[0]


@pytest.mark.parametrize("args, message", [
    (["--ops", "0"], "the number of relevant ops must be a number from 1 to 16, not '0'"),
    (["--ops-sweep", "1,2x0,99"], "the number of irrelevant ops must be a number from 0 to 16, not '99'"),
    (["--ops", "4", "--methods", "pyperf"], "--ops and --ops-sweep set the kernel method's ops: it is "
                                            "not in --methods"),
    (["--ops", "4", "--modes", "off,function"], "need a mode whose kernel cells register ops"),
])
def test_the_cli_refuses_bad_points_in_one_line_exit_2(args, message):
    code, line = _run(*args)
    assert code == exit_code("usage") == 2 and message in line


# -- the plan ----------------------------------------------------------------------

def test_a_sweep_plans_every_point_of_noregs_and_regs_once_per_round_and_off_once():
    points = parse_sweep(DEFAULT_SWEEP)
    plan = make_plan(select_profile("quick"), ["off", "noregs", "regs"], methods=["kernel"], seed=4,
                     ops=points)
    for r in range(plan.profile.rounds):
        cells = [c for c in plan.cells if c.round == r]
        # (the mode's own point, 1+0, is carried as None)
        assert sorted((c.mode, c.ops or (1, 0)) for c in cells if c.mode in ("noregs", "regs")) == sorted(
            (m, p) for m in ("noregs", "regs") for p in points)
        assert not any(c.ops == (1, 0) for c in cells)
        assert [c.mode for c in cells].count("off") == 1 and [c.mode for c in cells].count("off-aa") == 1
        assert not any(c.ops for c in cells if c.mode.startswith("off"))
    ids = [c.id for c in plan.cells]
    assert len(ids) == len(set(ids)) and all(i.replace("-", "").isalnum() for i in ids)
    # 1+0 is the mode's own: its cells keep the ids a plan without points gives them
    assert "r00-noregs-kmod-tracee-kernel" in ids and "r00-regs-ops8-8-kmod-tracee-kernel" in ids
    assert plan.to_dict()["ops"] == [list(p) for p in points]
    assert plan.heaviest_ops == (8, 8)
    # the order moves between rounds and is the seed's
    again = make_plan(select_profile("quick"), ["off", "noregs", "regs"], methods=["kernel"], seed=4,
                      ops=points)
    assert [c.id for c in again.cells] == ids
    assert len({tuple((c.mode, c.ops) for c in plan.cells if c.round == r)
                for r in range(plan.profile.rounds)}) > 1


def test_a_plan_without_points_is_the_plan_it_always_was():
    plan = make_plan(select_profile("quick"), ["off", "noregs", "regs"], methods=["pyperf", "kernel"], seed=9)
    assert "ops" not in plan.to_dict() and not any(c.ops for c in plan.cells)
    assert plan.heaviest_ops == (1, 0)


def test_other_methods_measure_a_mode_once_a_round_beside_the_points():
    plan = make_plan(select_profile("smoke"), ["off", "noregs"], methods=["pyperf", "kernel"], seed=2,
                     ops=[(2, 0), (4, 8)])
    for r in range(2):
        pyperf = [c.mode for c in plan.cells if c.round == r and c.method == "pyperf"]
        assert sorted(pyperf) == ["noregs", "off", "off-aa"]
        kernel = [c.ops for c in plan.cells if c.round == r and c.method == "kernel" and c.mode == "noregs"]
        assert sorted(kernel) == [(2, 0), (4, 8)]


def test_a_point_sets_the_module_settings_of_a_cell():
    assert kernel_settings("regs") == {"save_regs": True, "relevant": 1, "irrelevant": 0}
    assert kernel_settings("noregs", (4, 8)) == {"save_regs": False, "relevant": 4, "irrelevant": 8}
    with pytest.raises(ValueError):
        kernel_settings("off", (4, 8))  # off registers no ops: a planning bug, never a point


# -- the tracefs proof with irrelevant ops ---------------------------------------------

def view(*lines):
    """The agent's kmod_verify view of these enabled_functions lines."""
    enabled = [l.strip() for l in lines]
    v = dict(current_tracer="nop", tracing_on="1", set_ftrace_filter=[], **enabled_view(enabled, "frb_tracee"))
    idle = enabled_view(enabled, "frb_idle")
    v.update({k.replace("target_", "idle_"): x for k, x in idle.items() if k.startswith("target_")})
    return v


# Lines read in the debian-6.1 icount lab while the module held 8+8 ops
# (tests/data/enabled_functions-6.1-lab-kmod-ops.txt: regs, then noregs).
OPS_LINES = (DATA / "enabled_functions-6.1-lab-kmod-ops.txt").read_text().splitlines()


def test_the_proof_needs_the_tracee_and_the_idle_function_with_their_counts():
    regs, noregs = OPS_LINES[:2], OPS_LINES[2:4]
    check_kernel_cell("regs", view(*regs), kernel_settings("regs", (8, 8)))
    check_kernel_cell("noregs", view(*noregs), kernel_settings("noregs", (8, 8)))
    for mode, lines, ops in [("regs", regs, (8, 0)),        # the irrelevant ops were not asked for
                             ("regs", regs[:1], (8, 8)),    # ... or are missing
                             ("regs", regs, (4, 8)),        # another relevant count
                             ("regs", regs, (8, 4)),        # another irrelevant count
                             ("noregs", regs, (8, 8)),      # R where none was asked for
                             ("regs", noregs, (8, 8))]:     # no R where it was
        with pytest.raises(MeasurementError, match=f"^kernel-method mode '{mode}' is not in effect") as e:
            check_kernel_cell(mode, view(*lines), kernel_settings(mode, ops))
        assert "\n" not in str(e.value)


# -- the figures at each point, from the real sweep -------------------------------------

@pytest.fixture(scope="module")
def sweep():
    bundles = load_bundles([SWEEP])
    frame, _ = cells_frame(bundles, ["sweep"])
    return bundles[0], frame, ops_summary(frame)


def test_the_sweep_bundle_is_format_4_with_its_points(sweep):
    b, frame, _ = sweep
    assert b.data["format_version"] == 4 and b.data["plan"]["ops"] == [list(p) for p in parse_sweep(DEFAULT_SWEEP)]
    assert set(frame["ops"]) == {"", "2+0", "4+0", "8+0", "1+8", "2+8", "4+8", "8+8"}


def test_cost_rises_with_relevant_ops_and_the_regs_gain_is_at_every_point(sweep):
    _, _, ops = sweep
    assert set(ops["ops"]) == {"1+0", "2+0", "4+0", "8+0", "1+8", "2+8", "4+8", "8+8"}
    for irr in (0, 8):
        for mode in ("noregs", "regs"):
            r = ops[(ops["mode"] == mode) & (ops["metric"] == "per_call") & (ops["irrelevant"] == irr)]
            values = list(r.sort_values("relevant")["value"])
            assert len(values) == 4 and all(a < b for a, b in zip(values, values[1:])), (mode, irr, values)
        gain = ops[(ops["metric"] == "regs_gain") & (ops["irrelevant"] == irr)]
        assert len(gain) == 4 and (gain["value"] > 0).all() and gain["ci_low"].notna().all()
    # irrelevant ops lengthen the list every traced call walks on 6.1 (no CALL_OPS)
    at = {(r["mode"], r["ops"]): r["value"] for _, r in ops[ops["metric"] == "per_call"].iterrows()}
    assert all(at[(m, f"{k}+8")] > at[(m, f"{k}+0")] for m in ("noregs", "regs") for k in (1, 2, 4, 8))


def test_on_6_12_one_ops_is_called_directly_and_irrelevant_ops_cost_nothing():
    """results/lab/debian-6.12-icount-ops (Debian's 6.12, CALL_OPS, icount
    lab): with one ops on the tracee the callsite calls it directly, which
    tracefs shows ('O', 'ops: ... frb_run_cb'), and eight ops elsewhere add
    nothing; from two on, no 'O': the list function, where they do."""
    b = Bundle.load(SWEEP_6_12)
    for c in b.data["cells"]:
        if c["mode"] == "noregs":
            relevant = (c.get("ops") or {"relevant": 1})["relevant"]
            for view in c["tracefs"].values():
                assert ("O" in view["target_flags"]) == (relevant == 1), (c["id"], view)
                assert relevant > 1 or "frb_run_cb" in view["target_line"], (c["id"], view)
    assert [s["mode"] for s in b.data["plan"]["skipped"]] == ["regs"]  # no regs caller in 6.12
    frame, _ = cells_frame(load_bundles([SWEEP_6_12]), ["6.12"])
    ops = ops_summary(frame)
    over = {r["ops"]: r["value"] for _, r in ops[ops["metric"] == "overhead"].iterrows()}
    assert over["1+8"] == pytest.approx(over["1+0"], abs=0.01)
    for k in (2, 4, 8):
        assert over[f"{k}+8"] - over[f"{k}+0"] == pytest.approx(8 * 39.04, abs=0.5)
    assert over["2+0"] > 4 * over["1+0"]


def test_the_mode_tables_keep_the_modes_own_cells_and_the_run_rows_carry_the_points(sweep):
    b, frame, ops = sweep
    main = summarize_cells(frame)
    own = main[(main["mode"] == "noregs") & (main["metric"] == "per_call")]
    point = ops[(ops["mode"] == "noregs") & (ops["metric"] == "per_call") & (ops["ops"] == "1+0")]
    assert len(own) == 1 and own["value"].iloc[0] == point["value"].iloc[0]
    rows = summarize_bundle(Bundle.load(SWEEP))
    gains = {(r.get("ops") or {}).get("relevant", 1): r for r in rows
             if r["metric"] == "regs_gain" and (r.get("ops") or {}).get("irrelevant", 0) == 0}
    assert sorted(gains) == [1, 2, 4, 8]
    assert gains[8]["value"] == pytest.approx(
        ops[(ops["metric"] == "regs_gain") & (ops["ops"] == "8+0")]["value"].iloc[0])


def test_a_resumed_sweep_makes_the_same_plan_and_refuses_other_points(tmp_path):
    from bench import resume

    points = parse_sweep("1,4x0,8")
    plan = make_plan(select_profile("smoke"), ["off", "noregs", "regs"], methods=["kernel"], seed=11,
                     ops=points)
    b = Bundle(tmp_path, {"plan": plan.to_dict(), "cells": []})
    req = resume.request_of(b)
    assert req["ops"] == points
    again = make_plan(req["profile"], req["modes"], methods=req["methods"], seed=req["seed"], ops=req["ops"])
    resume.check_plan(b, again)
    resume.check_request(b, {"--ops": ops_points((), "1,4x0,8")})
    with pytest.raises(resume.ResumeMismatch, match=r"--ops differs from the plan of .* \(1,0 4,0 1,8 4,8\)"):
        resume.check_request(b, {"--ops": [(2, 0)]})
    with pytest.raises(resume.ResumeMismatch, match=r"\(ops\)"):
        resume.check_plan(b, make_plan(req["profile"], req["modes"], methods=req["methods"],
                                       seed=req["seed"], ops=[(1, 0), (4, 0)]))


def test_the_report_has_the_ops_table_with_a_regs_gain_at_every_point_and_the_figure(sweep):
    from analysis.report import ops_tab

    _, _, ops = sweep
    t = ops_tab(ops)
    gain = t["header"].index("regs gain (regs - noregs)")
    assert [(r[2], r[3]) for r in t["rows"]] == [(str(r), str(i)) for i in (0, 8) for r in (1, 2, 4, 8)]
    # every point: the figure and its CI (the regs caller's nine extra stores, whatever the ops)
    got = [re.match(r"^(\d+\.\d+) \[\d+\.\d+, \d+\.\d+\]$", r[gain]) for r in t["rows"]]
    assert all(got) and all(8.5 < float(m.group(1)) < 9.5 for m in got), t["rows"]
    # the published report (results/publish.py) carries both
    report = SWEEP / "report"
    md = (report / "report.md").read_text()
    assert "### Cost against the ops a call carries (kernel method, --ops)" in md
    assert "figures/ops.svg" in md and (report / "figures" / "ops.svg").is_file()


def test_only_bundles_with_points_are_in_the_ops_table():
    bundles = load_bundles([SWEEP, ROOT / "results" / "lab" / "debian-6.1-icount-standard"])
    frame, _ = cells_frame(bundles, ["sweep", "standard"])
    ops = ops_summary(frame)
    assert set(ops["group"]) == {"sweep"} and len(set(ops["ops"])) == 8
    # the standard bundle's own modes are untouched by the sweep's points
    main = summarize_cells(frame)
    assert (main[(main["group"] == "standard") & (main["method"] == "pyperf")]["n"] == 5).all()
