"""Orchestration of one run: target -> agent -> cells -> bundle.

The controller never measures: the agent on the target does, in fresh pyperf
worker processes.  The controller decides the order of cells, checks that
each mode is what it claims (tracefs says so), keeps every completed cell in
the bundle as soon as it completes, and always asks the agent to restore.
"""
import json
import math
import time

from analysis import stats, steps
from analysis.bundle import Bundle, utc_now
from analysis.units import bundle_unit, clock_of
from remote.agent_client import AgentClient
from remote.cache import kmod_dir
from remote.errors import AgentError, RemoteError
from remote.protocol.kmod import TRACEE
from remote.protocol.precondition import SMALL_INT_MAX
from remote.protocol.tracefs_text import kernel_expanded

from . import __version__
from .budget import CellBudget
from .check import noise_notes
from .errors import MeasurementError
from .kernel import ftrace_era
from .modecheck import check_kernel_cell, check_mode
from .plan import PROBE_MODE, kernel_settings, tracefs_mode


def _clean(o):
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_clean(v) for v in o]
    return o


def check_workload_pid(pid):
    """Refuse a pyperf cell whose workers' getppid() returned a cached small
    int: those read ~80 instructions per call lower than every other cell
    (remote/agent/precondition.py; the precondition before round 0 prevents it)."""
    if pid is not None and pid <= SMALL_INT_MAX:
        raise MeasurementError(
            f"the workload's parent got pid {pid} (<= {SMALL_INT_MAX}): its workers' getppid() "
            f"returns a cached int, which is cheaper than the int every other cell allocates, "
            f"so this cell would not compare; the pid floor before round 0 should have prevented it")


def summarize_bundle(bundle):
    """Result rows from the cells' raw files (recomputable from the bundle
    alone), in the unit of the bundle's clock (analysis/units.py)."""
    plan = bundle.data["plan"]
    samples = {}
    if not plan:
        return []
    for cell in bundle.data["cells"]:
        if cell.get("status") != "ok":
            continue
        means, _ = stats.cell_means_ns(bundle.path / cell["file"], cell["method"])
        by_mode = samples.setdefault((cell["workload"], cell["method"]), {})
        by_mode.setdefault(cell["mode"], {})[cell["round"]] = means
    rows = []
    modes = list(plan["modes"]) + list(plan.get("check_modes", []))
    for (workload, method), by_mode in samples.items():
        ordered = {m: by_mode[m] for m in modes if m in by_mode}
        rows.extend(stats.summarize(ordered, workload, method, unit=bundle_unit(bundle.data)))
    return _clean(rows)


def start_agent(target, client, ui, force, modes, workload, tolerant=False):
    """Start the agent; return (facts, preflight, check report)."""
    from .check import report

    ui.step(f"connecting the agent on {target.name}")
    client.start()
    facts = client.request("facts", timeout=120)
    facts["ftrace_variant"] = ftrace_era(facts.get("kernel_config", {}), facts.get("arch"))
    facts.update(target.host_facts())
    pre = client.request("preflight", modes=modes, force=force, syscall=workload,
                         tolerant=tolerant, timeout=120)
    caps = client.request("check", timeout=120)
    root_via = "root" if not target.root_prefix() else "sudo"
    # A module cross-built on the controller against the kernel's own build
    # tree (the lab's own kernels: remote/kbuild.py) stands in for headers on
    # the target; one that a target built is only a shortcut, not a substitute.
    cache = kmod_dir(facts)
    cross = (cache / "cross-built.json").exists() and (cache / "ftrace_regs_bench.ko").exists()
    return facts, pre, report(facts, caps, pre, root_via,
                              prebuilt=cache / "ftrace_regs_bench.ko" if cross else None)


def prepare_module(client, bundle, facts, ui):
    """Build (or reuse) and load the module; keep a built .ko for next time."""
    cache = kmod_dir(facts)
    prebuilt = None
    if (cache / "ftrace_regs_bench.ko").exists():
        rel = "kmod/ftrace_regs_bench.ko"
        client.target.write_file(client.workdir + "/" + rel, (cache / "ftrace_regs_bench.ko").read_bytes())
        prebuilt = rel
        ui.step("loading the module (built earlier for this exact kernel)")
    else:
        ui.step("building the module against the target's own kernel headers")
    prep = client.request("kmod_prepare", prebuilt=prebuilt, timeout=2400)
    if prep.get("leftover_removed"):
        bundle.data["notes"].append("a ftrace_regs_bench module left loaded by an earlier run was "
                                    "found and removed before loading ours")
    if prep.get("built"):
        import os
        import tempfile

        cache.mkdir(parents=True, exist_ok=True)
        # A temporary name of its own: two runs on two hosts with the same
        # kernel build may keep their module at the same moment.
        fd, tmp = tempfile.mkstemp(prefix="ftrace_regs_bench.ko.", dir=cache)
        with os.fdopen(fd, "wb") as f:
            f.write(client.fetch(prep["ko"]))
        os.replace(tmp, cache / "ftrace_regs_bench.ko")
    info = client.request("kmod_load", timeout=120)
    bundle.data["module"] = {"built_on_target": prep.get("built"), "prebuilt": bool(prebuilt),
                             "build_seconds": prep.get("build_seconds"), "info": info,
                             "leftover_removed": prep.get("leftover_removed")}
    if info.get("test", "none") != "none":
        # A test build (remote/kmod/README.md, "info") lies on purpose:
        # say so wherever its figures could be read.
        note = (f"the module is a test build (test={info['test']}): its figures are not "
                f"measurements of the kernel")
        bundle.data["notes"].append(note)
        ui.warn(note)
    bundle.save()


def calibrate_kernel(client, min_time, save_regs):
    """Calls per in-kernel timing run: double until the slowest planned setting
    (one ops, with SAVE_REGS when a planned mode's kernel cells use it: a
    kernel without a regs caller refuses it) lasts min_time."""
    calls = 1000
    while True:
        run = client.request("kmod_time", calls=calls, save_regs=save_regs, relevant=1, reps=1,
                             timeout=600)["runs"][0]
        if run["total_ns"] >= min_time * 1e9 or calls >= 10**8:
            return calls
        calls *= 2


def checks(rows, bundle=None):
    """The run's own checks (bundle.data["checks"]): on its result rows, and
    the step check on the bundle's cells in run order (analysis/steps.py)."""
    out = {"aa": stats.aa_check(rows),
           "probe_cost": next(({k: r[k] for k in ("value", "ci_low", "ci_high", "n", "unit")}
                               for r in rows if r["mode"] == PROBE_MODE
                               and r["metric"] == "overhead"), None),
           "method_agreement": stats.method_agreement(rows)}
    if bundle is not None:
        out["steps"] = steps.step_check(bundle)
    return out


def run_cell(client, bundle, plan, cell, function, kernel_calls, budgets=None):
    """Measure one cell; returns its record (written to the bundle by the caller).

    budgets (CellBudget): the measuring request declares the cell's budget,
    so that nothing passes between controller and agent while it runs."""
    record = {"id": cell.id, "round": cell.round, "mode": cell.mode, "workload": cell.workload,
              "method": cell.method, "status": "ok"}
    tmode = tracefs_mode(cell.mode)
    budget = budgets.for_cell(cell.method) if budgets is not None else None
    # cell: the agent names it if the cell overruns its budget (and pyperf's files)
    quiet = dict(cell=cell.id)
    if budget is not None:
        quiet.update(budget_s=budget.agent_s, quiet_s=budget.quiet_s)
    before = client.request("set_mode", mode=tmode if cell.method != "kernel" else "off",
                            function=function, timeout=120)
    if cell.method == "pyperf":
        check_mode(tmode, function, before)
        t0 = time.monotonic()
        m = client.request("measure", pyperf_args=plan.pyperf_args(),
                           bpf_probe=cell.mode == PROBE_MODE, timeout=3600, **quiet)
        host_s = time.monotonic() - t0
        after = client.request("verify", function=function, timeout=60)
        check_mode(tmode, function, after)
        check_workload_pid(m.get("workload_pid"))
        rel = bundle.write_raw(f"pyperf/{cell.id}.json", client.fetch(m["file"]))
        means, n_values = stats.worker_means_ns(bundle.path / rel)
        record.update(file=rel, elapsed_s=round(m["elapsed_s"], 2),
                      workload_pid=m.get("workload_pid"),
                      tracefs={"before": before, "after": after})
        if m.get("bpf_probe"):
            record["bpf_probe"] = m["bpf_probe"]  # the probes' count over the cell: proof they ran
    elif cell.method == "bpf":  # the kernel's own sys_enter -> sys_exit times, exact call count
        check_mode(tmode, function, before)
        calls, reps = plan.profile.bpf_calls, plan.profile.processes
        t0 = time.monotonic()
        b = client.request("bpf_measure", calls=calls, reps=reps, timeout=3600, **quiet)
        host_s = time.monotonic() - t0
        after = client.request("verify", function=function, timeout=60)
        check_mode(tmode, function, after)
        rel = bundle.write_raw(f"bpf/{cell.id}.json", json.dumps(
            {"cell": cell.id, "calls": calls, "runs": b["runs"]}, indent=1).encode())
        means, n_values = stats.bpf_means_ns(bundle.path / rel)
        record.update(file=rel, elapsed_s=round(b["elapsed_s"], 2), calls=calls,
                      counts=[r["count"] for r in b["runs"]],
                      tracefs={"before": before, "after": after})
    else:  # kernel: the module times its own tracee, total ns and calls per repetition
        # The cell's ops stay registered ("held") across all its timings, so
        # that tracefs shows them before and after, as for the other methods.
        p = plan.profile
        reps = p.processes * p.values
        settings = kernel_settings(tmode)
        before = client.request("kmod_hold", timeout=120, **settings)
        check_kernel_cell(tmode, before, settings)
        t0 = time.monotonic()
        k = client.request("kmod_time", calls=kernel_calls, reps=reps, timeout=3600, **settings, **quiet)
        host_s = time.monotonic() - t0
        after = client.request("verify", function=TRACEE, timeout=60)
        client.request("kmod_release", timeout=120)
        check_kernel_cell(tmode, after, settings)
        rel = bundle.write_raw(f"kernel/{cell.id}.json",
                               json.dumps({"cell": cell.id, "runs": k["runs"]}, indent=1).encode())
        means, n_values = stats.kernel_means_ns(bundle.path / rel)
        record.update(file=rel, elapsed_s=round(k["elapsed_s"], 2), calls=kernel_calls,
                      tracefs={"before": before, "after": after})
    record.update(worker_means_ns=means, n_workers=len(means), n_values=n_values)
    if budget is not None:
        budgets.record(cell.method, record["elapsed_s"], host_s)
        record["budget"] = {"agent_s": budget.agent_s, "quiet_s": budget.quiet_s}
    return record


def precondition(client, record, ui):
    """Take the target out of its just-booted state before round 0 and keep
    what was done in record["precondition"] (the bundle, or a resumed
    session's record: a resume may follow a reboot).  See
    remote/agent/precondition.py: the pid floor."""
    done = client.request("precondition", timeout=600)
    record["precondition"] = done
    f = done["pid_floor"]
    if f["forks"] > 1:
        ui.step(f"pid floor: {f['forks']} short-lived children took pids {f['first_pid']}.."
                f"{f['last_pid']}, so that no worker's getppid() returns a cached small int")


def start_bpf(client, bundle, plan, ui):
    """Compile and load the bpf method's program.  A target that cannot (bcc
    present but its program refused) loses the bpf method, with the reason,
    and the run goes on with the other methods."""
    try:
        ready = client.request("bpf_start", syscall=plan.workload, timeout=1800)
    except AgentError as e:
        if e.kind != "unsupported":
            raise
        skipped = {"mode": None, "method": "bpf", "reason": str(e)}
        plan.drop_method("bpf", skipped)
        ui.skip(skipped)
        bundle.data["plan"].update(plan.to_dict())  # (keeps kernel_calls of a resumed plan)
        bundle.save()
        return
    bundle.data["bpf"] = ready
    ui.step(f"bpf probes compiled in {ready['compile_s']} s (bcc {ready['bcc']}, "
            f"{ready['python']}), getppid = syscall {ready['nr']}")
    bundle.save()


def execute(target, request, out_dir, *, force=False, lease=30.0, ui, command=None, resume=None):
    """Check the host, plan what it supports, measure, restore; returns the Bundle.

    request: dict(profile, modes, methods, seed).  The bundle is created
    first, so that an unwritable --out fails before anything happens on the
    target.  resume: an incomplete Bundle (bench/resume.py) whose missing
    cells are measured into it instead.
    """
    from . import resume as resume_mod
    from .plan import make_plan, restrict

    bundle = resume or Bundle.create(out_dir, host=dict(target.describe()), tool_version=__version__,
                                     command=command)
    session = None
    client = AgentClient(target, lease=lease, on_event=ui.agent_event, lock=True)
    status = "failed"
    problems_seen = set()
    try:
        facts, pre, check = start_agent(target, client, ui, force, request["modes"],
                                        request.get("workload", "getppid"))
        if (client.ready or {}).get("lock_recovered"):
            bundle.data["notes"].append(client.ready["lock_recovered"])
        if resume:
            bundle.data["notes"] += resume_mod.check_target(bundle, facts)
        else:
            bundle.data["facts"] = facts
            bundle.data["clock"] = clock_of(facts)
            bundle.data["host_check"] = check
        ui.facts(facts)
        modes, methods, skipped = restrict(request["modes"], request["methods"], check)
        for s_ in skipped:
            ui.skip(s_)
        if not methods:
            raise MeasurementError("no measurement method is possible on this host: "
                                   + "; ".join(s_["reason"] for s_ in skipped if s_["method"]),
                                   kind="unsupported")
        plan = make_plan(request["profile"], modes, methods=methods, seed=request.get("seed"),
                         skipped=skipped)
        cells = plan.cells
        if resume:
            resume_mod.check_plan(bundle, plan)
            cells = resume_mod.missing(bundle, plan)
            bundle.data["notes"] += resume_mod.clear_orphans(bundle, cells)
            session = {"session": len(bundle.data.get("sessions", [])) + 1,
                       "started_utc": utc_now().isoformat(timespec="seconds"), "command": command,
                       "boot_id": facts.get("boot_id"), "cells_missing": len(cells),
                       "previous_status": bundle.data.get("status"),
                       "previous_error": bundle.data.pop("error", None)}
            bundle.data.setdefault("sessions", []).append(session)
            ui.step(f"resuming {bundle.path}: {len(cells)} of {len(plan.cells)} cells missing")
        else:
            bundle.data["plan"] = plan.to_dict()
        if pre["busy"]:
            bundle.data["notes"].append("tracing was in use and --force was given: "
                                        + "; ".join(pre["busy"]))
        function = pre["function"]
        bundle.data["target"] = {"tracefs": pre["tracefs"], "function": function,
                                 "tracefs_mounted_by_run": pre["mounted_by_us"],
                                 "lockdown": pre["lockdown"]}
        snap = client.request("begin", timeout=60)["snapshot"]
        # This session's snapshot and noise: a resumed session's go into its
        # own record (the first session's stay the bundle's).
        this_session = session if session is not None else bundle.data
        this_session["tracefs_before"] = snap["knobs"]
        kernel_calls = bundle.data["plan"].get("kernel_calls")  # a resumed run keeps its calls
        noise = this_session["noise"] = {"tuned": bool(request.get("tune")),
                                         "warnings": noise_notes(facts)}
        if request.get("tune"):
            tuned = client.request("tune", timeout=60)
            plan.affinity = tuned["cpu"]
            bundle.data["plan"]["affinity"] = tuned["cpu"]
            noise.update(cpu=tuned["cpu"], changed=tuned["changed"],
                         housekeeping=tuned.get("housekeeping"))
            house = tuned.get("housekeeping")
            ui.step(f"tuned: measuring on CPU {tuned['cpu']}, "
                    + (f"the agent on CPU {','.join(map(str, house))}; " if house
                       else "one CPU: the agent shares it (and keeps quiet during cells); ")
                    + ("; ".join(f"{c['path']}: {c['before']} -> {c['after']}" for c in tuned["changed"])
                       or "no setting needed changing"))
        else:
            for n in noise["warnings"]:
                ui.warn(f"noisy: {n} (bench run --tune pins and tunes, and restores afterwards)")
        precondition(client, this_session, ui)
        bundle.save()
        if "bpf" in plan.methods:
            start_bpf(client, bundle, plan, ui)
        if plan.needs_module:
            prepare_module(client, bundle, facts, ui)
            if "kernel" in plan.methods and kernel_calls is None:
                kernel_calls = calibrate_kernel(client, plan.profile.min_time,
                                                save_regs=plan.kernel_save_regs)
                bundle.data["plan"]["kernel_calls"] = kernel_calls
        budgets = CellBudget(plan.profile)
        for i, cell in enumerate(cells, 1):
            ui.cell_start(i, len(cells), cell)
            record = run_cell(client, bundle, plan, cell, function, kernel_calls, budgets)
            if session:
                record["session"] = session["session"]
            bundle.add_cell(record)
            ui.cell_done(record)
        client.request("set_mode", mode="off", function=function, timeout=120)
        restored = client.request("restore", timeout=120)
        bundle.data["tracefs_after"] = restored["after"]
        if request.get("tune"):
            noise["restored"] = not restored["problems"]
        problems_seen.update(restored["problems"])
        b, a = snap["knobs"].get("buffer_size_kb", ""), restored["after"].get("buffer_size_kb", "")
        if kernel_expanded(b, a):
            bundle.data["notes"].append(
                f"buffer_size_kb: the kernel expanded its ring buffer on first tracer use "
                f"({b.strip()!r} -> {a.strip()!r}); once per boot, only a reboot undoes it")
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except (RemoteError, MeasurementError) as e:
        bundle.data["error"] = str(e)
        raise
    finally:
        problems = []
        try:
            problems = client.close(abort=status != "complete")
        except RemoteError as e:
            bundle.data["notes"].append(f"closing the agent: {e}")
        except KeyboardInterrupt:
            client.abandon()
        problems_seen.update(problems)
        problems = sorted(problems_seen)
        if problems:
            bundle.data["restore_problems"] = problems
            bundle.data["notes"].append("restore problems: " + "; ".join(problems))
        rows = []
        if bundle.data["cells"]:
            try:
                rows = summarize_bundle(bundle)
                bundle.data["checks"] = _clean(checks(rows, bundle))
            except Exception as e:  # never lose the bundle to a statistics failure
                bundle.data["notes"].append(f"summary failed: {type(e).__name__}: {e}")
        if not resume or session is not None:
            # (a resume refused before measuring leaves the bundle as it was)
            bundle.finish(status, rows, stats.METHOD_TEXT)
        if status != "complete" and not bundle.data["cells"] and not resume:
            bundle.discard()  # nothing measured: leave no empty bundle behind
        ui.finished(bundle, status, problems)
    return bundle


def probe(target, *, ui):
    """`bench check`: start the agent, look, change nothing, leave."""
    client = AgentClient(target, lease=60.0, on_event=ui.agent_event)
    try:
        facts, pre, check = start_agent(target, client, ui, True, [], "getppid", tolerant=True)
        if pre["busy"]:
            check["tracing_in_use"] = {"ok": False, "value": pre["busy"],
                                       "reason": "; ".join(pre["busy"])}
        elif pre.get("errors"):
            check["tracing_in_use"] = {"ok": None, "value": None,
                                       "reason": "unknown: tracefs refused (see the tracefs line)"}
        else:
            check["tracing_in_use"] = {"ok": True, "value": [], "reason": "tracefs is free"}
        check.update(target.host_checks())
        return facts, check
    finally:
        client.close()
