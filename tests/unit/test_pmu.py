"""The pmu method: struct perf_event_attr packing, group reads, the
multiplexing refusal, bench check's reasons and the series it gives.

The real-syscall tests open software events on this machine (every Linux
kernel with perf events has them; this development host's x86_64 VM exposes
no CPU PMU, so its hardware events answer ENOENT, which bench check must
explain)."""
import errno
import json
import os
import struct

import pytest

from analysis.methods import kernel as kernel_method
from analysis.methods import pmu
from remote.agent import pmumethod as agent_pmu

SW_EVENTS = (("cycles", agent_pmu.PERF_TYPE_SOFTWARE, agent_pmu.PERF_COUNT_SW_TASK_CLOCK),
             ("instructions", agent_pmu.PERF_TYPE_SOFTWARE, agent_pmu.PERF_COUNT_SW_TASK_CLOCK))


# -- struct perf_event_attr ----------------------------------------------------------

def test_attr_is_the_uapi_layout_ver5():
    """include/uapi/linux/perf_event.h: size 112 (PERF_ATTR_SIZE_VER5), type
    at 0, size at 4, config at 8, read_format at 32, the flag bits at 40
    (disabled 0, ..., exclude_kernel 5, exclude_hv 6)."""
    buf = agent_pmu.pack_attr(agent_pmu.PERF_TYPE_HARDWARE, agent_pmu.PERF_COUNT_HW_INSTRUCTIONS)
    assert len(buf) == agent_pmu.ATTR_SIZE == 112
    assert struct.unpack_from("=IIQ", buf, 0) == (0, 112, 1)
    assert struct.unpack_from("=Q", buf, 32)[0] == 1 | 2 | 8  # TIME_ENABLED | TIME_RUNNING | GROUP
    flags = struct.unpack_from("=Q", buf, 40)[0]
    assert flags == 1 << 6  # exclude_hv only: user and kernel counted, enabled at once
    assert buf[48:] == bytes(64)  # no sampling, no breakpoints, no clockid
    t, size, config, fmt, bits = agent_pmu.unpack_attr(
        agent_pmu.pack_attr(0, 0, read_format=0, disabled=True, exclude_kernel=True))
    assert (t, size, config, fmt) == (0, 112, 0, 0)
    assert bits["disabled"] and bits["exclude_kernel"] and bits["exclude_hv"] and not bits["inherit"]


def test_syscall_numbers_and_an_unknown_machine():
    assert agent_pmu.SYSCALL_NR["aarch64"] == 241 and agent_pmu.SYSCALL_NR["x86_64"] == 298
    with pytest.raises(agent_pmu.PmuError) as e:
        agent_pmu.perf_event_open(agent_pmu.pack_attr(1, 0), machine="pdp11")
    assert e.value.errno == errno.ENOSYS


# -- group reads ---------------------------------------------------------------------

def test_group_read_parsing():
    buf = struct.pack("=5Q", 2, 1000, 900, 123456, 98765)
    assert agent_pmu.parse_group_read(buf, ["cycles", "instructions"]) == {
        "time_enabled": 1000, "time_running": 900, "cycles": 123456, "instructions": 98765}
    with pytest.raises(ValueError, match="short read"):
        agent_pmu.parse_group_read(buf[:16], ["cycles"])
    with pytest.raises(ValueError, match="gave 2 values"):
        agent_pmu.parse_group_read(buf, ["cycles"])


def test_delta_flags_multiplexing():
    a = {"time_enabled": 100, "time_running": 100, "cycles": 5}
    assert agent_pmu.delta(a, {"time_enabled": 300, "time_running": 300, "cycles": 50}) == {
        "time_enabled": 200, "time_running": 200, "cycles": 45, "multiplexed": False}
    assert agent_pmu.delta(a, {"time_enabled": 300, "time_running": 250, "cycles": 50})["multiplexed"]


def test_a_real_group_counts_on_this_kernel():
    """perf_event_open through ctypes with our packed attr, a group of two
    software events read in one read(): both count, the whole time."""
    c = agent_pmu.Counters(events=SW_EVENTS)
    try:
        assert c.names == ["cycles", "instructions"] and c.unsupported == {}
        total, d = c.around(lambda: sum(range(200000)))
    finally:
        c.close()
    assert total == sum(range(200000))
    assert d["time_enabled"] == d["time_running"] > 0 and not d["multiplexed"]
    assert d["cycles"] > 0 and d["instructions"] > 0


def test_a_real_worker_keeps_every_field_per_value():
    w = agent_pmu.worker(1, 2, 0.002, events=SW_EVENTS)
    assert w["pid"] == os.getpid() and len(w["values"]) == 2 and len(w["warmups"]) == 1
    for v in w["values"]:
        assert set(v) == {"calls", "ns", "cycles", "instructions", "time_enabled", "time_running",
                          "multiplexed"}
        assert v["calls"] == w["loops"] * 20 and v["ns"] > 0 and v["cycles"] > 0


def test_the_probe_on_this_machine_is_explained():
    """This machine's own answer, whatever it has: counting, or a reason
    that says what to change."""
    probe = agent_pmu.probe()
    assert probe["paranoid"] == open("/proc/sys/kernel/perf_event_paranoid").read().strip()
    a = pmu.usable(probe)
    if a["ok"]:
        assert probe["counts"]["cycles"] > 0
    elif not any(pmu.is_cpu_pmu(s) for s in probe["event_sources"] or []):
        # (this development host: a VM without a PMU, cycles ENOENT)
        assert "no CPU PMU" in a["reason"] and "16xlarge" in a["reason"] and "-cpu max" in a["reason"]
        assert probe["events"]["cycles"] in a["reason"]


# -- bench check's reasons -------------------------------------------------------------

def probe(cycles="ok", instructions="ok", sources=("armv8_pmuv3_0", "software", "tracepoint"),
          paranoid="2", euid=0):
    return {"machine": "aarch64", "event_sources": list(sources) if sources is not None else None,
            "paranoid": paranoid, "euid": euid, "events": {"cycles": cycles, "instructions": instructions}}


def test_check_lab_icount_counts_both():
    a = pmu.usable(probe())
    assert a["ok"] and a["value"] == "cycles,instructions" and "armv8_pmuv3_0" in a["reason"]


def test_check_plain_tcg_goes_on_with_cycles_and_says_so():
    a = pmu.usable(probe(instructions="ENOENT"))
    assert a["ok"] and a["value"] == "cycles"
    assert "instructions event is not supported" in a["reason"] and "ENOENT" in a["reason"]
    assert "cycles only" in a["reason"] and "icount" in a["reason"]


def test_check_no_pmu_in_the_guest_says_what_to_change():
    a = pmu.usable(probe(cycles="ENOENT", instructions="ENOENT", sources=("software", "tracepoint")))
    assert a["ok"] is False and "no CPU PMU" in a["reason"]
    assert "basic set of events" in a["reason"] and ".metal" in a["reason"] and "-cpu max" in a["reason"]
    assert "pmu=off" in a["reason"]
    b = pmu.usable(probe(cycles="EOPNOTSUPP", sources=None))
    assert b["ok"] is False and "none" in b["reason"] and "EOPNOTSUPP" in b["reason"]


def test_check_paranoid_says_root_or_the_sysctl():
    a = pmu.usable(probe(cycles="EACCES", paranoid="3", euid=1000))
    assert a["ok"] is False and "perf_event_paranoid=3" in a["reason"] and "uid 1000" in a["reason"]
    assert "sysctl kernel.perf_event_paranoid=1" in a["reason"]


def test_the_sizes_advice_agrees_with_docs_hardware():
    """Issue 21: the refusal said only whole-socket or metal sizes expose a
    PMU; docs/hardware.md (AWS's Graviton performance runbook) lists a basic
    set at the smaller sizes of Graviton2 and later.  Every family of its
    table is in the text with the size of its full PMU, and the basic set."""
    import pathlib
    import re

    doc = (pathlib.Path(__file__).parents[2] / "docs" / "hardware.md").read_text()
    rows = re.findall(r"^\| `\*(\d)g`(?: \([^)]*\))? \| (\d+xlarge) \| (yes|no) \|$", doc, re.M)
    assert len(rows) == 4, rows
    text = pmu.NO_PMU
    for gen, size, basic in rows:
        assert f"*{gen}g" in text, gen
        assert re.search(rf"{size} for [^,)]*\*{gen}g", text), (gen, size)
        assert basic == "yes"
    assert "give every size a basic set of events" in text and ".metal" in text
    assert "only whole-socket" not in text
    method_md = " ".join((pathlib.Path(__file__).parents[2] / "docs" / "method.md").read_text().split())
    assert "only whole-socket" not in method_md and "basic set of events" in method_md


def test_check_eacces_for_root_is_not_the_paranoid_sysctl():
    """A root agent passes perf_event_paranoid (CAP_PERFMON/CAP_SYS_ADMIN):
    its EACCES or EPERM says what else refuses, never to lower the sysctl."""
    for err in ("EACCES", "EPERM"):
        a = pmu.usable(probe(cycles=err, paranoid="2", euid=0))
        assert a["ok"] is False and a["reason"].startswith(f"perf_event_open refused ({err}) for root: "
                                                           "not kernel.perf_event_paranoid (2)")
        assert "sysctl" not in a["reason"] and "security module" in a["reason"]
        assert "seccomp" in a["reason"] and "container" in a["reason"]


def test_check_other_refusals():
    assert "CONFIG_PERF_EVENTS" in pmu.usable(probe(cycles="ENOSYS"))["reason"]
    a = pmu.usable(probe(cycles="ENOENT"))  # a PMU without a cycles event for a thread
    assert a["ok"] is False and "armv8_pmuv3_0" in a["reason"] and "ENOENT" in a["reason"]
    assert pmu.usable(None)["ok"] is False and pmu.usable({"error": "x"})["ok"] is False


def test_bench_check_has_the_pmu_method():
    from bench.check import report
    from test_check import CFG61, PRE, caps, facts

    c = dict(caps(), pmu=probe(instructions="ENOENT"))
    r = report(facts(CFG61), c, PRE, "root")["methods"]["pmu"]
    assert r["ok"] and r["value"] == "cycles"
    assert report(facts(CFG61), caps(), PRE, "root")["methods"]["pmu"]["ok"] is False  # not probed


# -- raw files, the refusal and the series ---------------------------------------------

def value(calls=2000, ns=3000000, cycles=3000000, instructions=2800000, running=None):
    return {"calls": calls, "ns": ns, "cycles": cycles, "instructions": instructions,
            "time_enabled": 5000, "time_running": 5000 if running is None else running,
            "multiplexed": running is not None}


def write_pmu(path, workers):
    path.write_text(json.dumps({"manager_pid": 400, "workers": [
        {"pid": 401 + i, "counters": ["cycles", "instructions"], "values": vals}
        for i, vals in enumerate(workers)]}))
    return path


def test_pmu_series_per_call_in_their_units(tmp_path):
    p = write_pmu(tmp_path / "c.json", [[value(), value(ns=3200000)], [value(cycles=4000000)]])
    means, n = pmu.METHOD.read(p)
    assert means == [1550.0, 1500.0] and n == 3
    series = {label: (unit, m) for label, unit, m in pmu.METHOD.series(p, "ns")}
    assert series["pmu"] == ("ns", [1550.0, 1500.0])
    assert series["pmu/cycles"] == ("cycles", [1500.0, 2000.0])
    assert series["pmu/instructions"] == ("instructions", [1400.0, 1400.0])
    assert series["pmu/ipc"] == ("instructions/cycle", [2800000 / 3000000, 0.7])


def test_cycles_only_gives_no_instructions_and_no_ipc(tmp_path):
    v = value()
    del v["instructions"]
    series = [label for label, _, _ in pmu.METHOD.series(write_pmu(tmp_path / "c.json", [[v]]), "ns")]
    assert series == ["pmu", "pmu/cycles"]


def test_a_multiplexed_cell_is_refused_not_scaled(tmp_path):
    p = write_pmu(tmp_path / "c.json", [[value(), value(running=4000)]])
    with pytest.raises(pmu.Multiplexed, match="ran 4000 of 5000 ns enabled in 1 of 2 values") as e:
        pmu.METHOD.read(p)
    assert e.value.kind == "measure" and "nmi_watchdog" in str(e.value)
    # the kernel method's counted repetitions the same way
    k = tmp_path / "k.json"
    k.write_text(json.dumps({"runs": [dict(value(running=1), total_ns=1000, calls=10)]}))
    with pytest.raises(pmu.Multiplexed):
        kernel_method.METHOD.series(k, "instructions")


def test_kernel_runs_with_counts_give_counter_series(tmp_path):
    k = tmp_path / "k.json"
    runs = [dict(value(calls=1000, cycles=170000, instructions=169000), total_ns=169000),
            dict(value(calls=1000, cycles=171000, instructions=169000), total_ns=169100)]
    k.write_text(json.dumps({"runs": runs}))
    series = {label: (unit, m) for label, unit, m in kernel_method.METHOD.series(k, "instructions")}
    assert series["kernel"] == ("instructions", [169.0, 169.1])
    assert series["kernel/instructions"] == ("instructions", [169.0, 169.0])
    assert series["kernel/cycles"] == ("cycles", [170.0, 171.0])
    # without counts (pmu not planned): the clock's series alone
    k.write_text(json.dumps({"runs": [{"total_ns": 169000, "calls": 1000}]}))
    assert [s[0] for s in kernel_method.METHOD.series(k, "instructions")] == ["kernel"]


def test_a_bundle_of_pmu_cells_summarizes_each_series_in_its_unit(tmp_path):
    """bench run's result rows, the cells frame and the terminal table: the
    counted series get per_call, overhead and regs gain in cycles and
    instructions (IPC per call only), and every row names its unit."""
    import io

    from rich.console import Console

    from analysis.bundle import Bundle
    from analysis.load import cells_frame
    from analysis.summary import summarize_cells
    from bench import ui
    from bench.plan import PROFILES, make_plan
    from bench.run import summarize_bundle

    plan = make_plan(PROFILES["smoke"], ["off", "noregs", "regs"], methods=["pmu"], seed=3)
    b = Bundle.create(tmp_path / "b", host={"name": "h"}, tool_version="0", command=None)
    b.data.update(plan=plan.to_dict(), facts={})
    extra = {"off": 0, "off-aa": 0, "noregs": 150, "regs": 159}
    for cell in plan.cells:
        e = extra[cell.mode] * 2000 + cell.round * 10
        p = write_pmu(tmp_path / "raw.json", [[value(ns=3000000 + e, cycles=3000000 + 2 * e,
                                                     instructions=2800000 + e)]])
        rel = b.write_raw(pmu.METHOD.raw_file(cell.id), p.read_bytes())
        b.add_cell({"id": cell.id, "round": cell.round, "mode": cell.mode, "workload": cell.workload,
                    "method": "pmu", "status": "ok", "file": rel,
                    "worker_means_ns": pmu.METHOD.read(b.path / rel)[0]})
    rows = summarize_bundle(b)
    got = {(r["method"], r["mode"], r["metric"]): r for r in rows}
    assert got[("pmu/instructions", "regs", "regs_gain")]["value"] == pytest.approx(9.0)
    assert got[("pmu/instructions", "regs", "regs_gain")]["unit"] == "instructions"
    assert got[("pmu/cycles", "regs", "regs_gain")]["value"] == pytest.approx(18.0)
    assert got[("pmu/cycles", "noregs", "overhead")]["unit"] == "cycles"
    assert got[("pmu", "noregs", "overhead")]["unit"] == "ns"
    assert got[("pmu/ipc", "off", "per_call")]["unit"] == "instructions/cycle"
    assert not [k for k in got if k[0] == "pmu/ipc" and k[2] != "per_call"]
    frame, notes = cells_frame([b])
    s = summarize_cells(frame)
    assert notes == [] and set(frame.method) == {"pmu", "pmu/cycles", "pmu/instructions", "pmu/ipc"}
    gain = s[(s.method == "pmu/cycles") & (s.metric == "regs_gain")].iloc[0]
    assert gain["unit"] == "cycles" and gain["value"] == pytest.approx(18.0)
    b.finish("complete", rows, "")
    out = io.StringIO()
    ui.print_results(b, file=out)
    text = out.getvalue()
    assert "pmu/cycles" in text and "cycles" in text and "instructions/cycle" in text


def test_a_counted_series_disagrees_for_its_methods_reason():
    from analysis.stats import disagreement_reason

    assert "its own tracee" in disagreement_reason("overhead", "noregs", ["kernel/cycles", "pmu/cycles"])


def test_kernel_repetitions_are_counted_one_by_one_on_this_thread():
    """kernelmethod.py's pmu=True: each repetition between two reads of a
    group on the calling thread, its counts added to the run's dict."""
    runs = agent_pmu.count_reps(lambda: {"total_ns": 1, "calls": 10, "x": sum(range(50000))}, 3,
                                events=SW_EVENTS)
    assert len(runs) == 3
    for r in runs:
        assert r["calls"] == 10 and r["cycles"] > 0 and r["instructions"] > 0
        assert r["time_enabled"] == r["time_running"] > 0 and r["multiplexed"] is False
