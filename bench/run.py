"""Orchestration of one run: target -> agent -> cells -> bundle.

The controller never measures: the agent on the target does, in fresh pyperf
worker processes.  The controller decides the order of cells, checks that
each mode is what it claims (tracefs says so), keeps every completed cell in
the bundle as soon as it completes, and always asks the agent to restore.
"""
import math
import os
import time

from analysis import methods, stats, steps
from analysis.bundle import OPS_FORMAT_VERSION, Bundle, utc_now
from analysis.units import bundle_unit, clock_of
from remote.agent_client import AgentClient
from remote.cache import kmod_dir
from remote.errors import AgentError, RemoteError
from remote.protocol import modes as mode_registry
from remote.protocol.kmod import TRACEE
from remote.protocol.precondition import SMALL_INT_MAX
from remote.protocol.tracefs_text import kernel_expanded

from . import __version__
from . import eta
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


def check_cpus(cpus, cpu):
    """Under --tune, with CPUs to spare: the cell's workload could run on the
    measuring CPU alone (and ran there), and no part of the harness could
    run there (cells[].cpus keeps both; on one CPU they share it)."""
    if not cpus or cpu is None or not set(cpus["harness"]["all"]) - {cpu}:
        return
    if cpus["workload"] != [cpu] or set(cpus["ran_on"]) - {cpu}:
        raise MeasurementError(f"--tune pinned the workload to CPU {cpu}, but it could run on "
                               f"{cpus['workload']} and ran on {cpus['ran_on']}")
    on_it = sorted(part for part, c in cpus["harness"].items() if cpu in c and part != "all")
    if on_it:
        raise MeasurementError(f"--tune keeps the harness off the measuring CPU {cpu}, but "
                               f"{', '.join(on_it)} could run there ({cpus['harness']})")


def summarize_bundle(bundle):
    """Result rows from the cells' raw files (recomputable from the bundle
    alone), in the unit of the bundle's clock (analysis/units.py), and one
    set per event a method counts, in its own unit (Method.series: pmu)."""
    plan = bundle.data["plan"]
    samples = {}
    if not plan:
        return []
    for cell in bundle.data["cells"]:
        if cell.get("status") != "ok":
            continue
        # A kernel cell at an ops point is a figure of its own (cell["ops"]);
        # the baseline of every point is the run's off.
        point = (cell["ops"]["relevant"], cell["ops"]["irrelevant"]) if cell.get("ops") else None
        for label, unit, means in methods.get(cell["method"]).series(bundle.path / cell["file"],
                                                                     bundle_unit(bundle.data)):
            by_mode = samples.setdefault((cell["workload"], label, unit, point), {})
            by_mode.setdefault(cell["mode"], {})[cell["round"]] = means
    rows = []
    modes = list(plan["modes"]) + list(plan.get("check_modes", []))
    base = mode_registry.BASELINE
    # Series in the order their first cell came, each one's ops points after
    # its own modes and in ascending order (the cells come shuffled by round).
    first = {}
    for key in samples:
        first.setdefault(key[:3], len(first))
    order = sorted(samples, key=lambda k: (first[k[:3]], k[3] is not None, k[3] or (0, 0)))
    for workload, method, unit, point in order:
        by_mode = samples[(workload, method, unit, point)]
        if point is not None:
            by_mode = dict(by_mode, **{base: samples.get((workload, method, unit, None), {}).get(base, {})})
        ordered = {m: by_mode[m] for m in modes if by_mode.get(m)}
        got = stats.summarize(ordered, workload, method, unit=unit)
        if point is not None:
            got = [dict(r, ops={"relevant": point[0], "irrelevant": point[1]}) for r in got
                   if r["mode"] != base]
        rows.extend(got)
    return _clean(rows)


def start_agent(target, client, ui, force, modes, workload, tolerant=False, methods=None):
    """Start the agent; return (facts, preflight, check report).  methods:
    what the run asked for (None: everything, as `bench check` asks); bcc is
    imported on the target only when bpf is among them (an import of bcc
    loads LLVM: half a second of a small board's or the icount lab's time,
    in every run)."""
    from .check import report

    ui.step(f"connecting the agent on {target.name}")
    client.start()
    facts = client.request("facts", timeout=120)
    facts["ftrace_variant"] = ftrace_era(facts.get("kernel_config", {}), facts.get("arch"))
    facts.update(target.host_facts())
    pre = client.request("preflight", modes=modes, force=force, syscall=workload,
                         tolerant=tolerant, timeout=120)
    caps = client.request("check", bcc=methods is None or "bpf" in methods, timeout=120)
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
        # Through the agent, not SFTP: kmod/ is root's, and a sudo login is not.
        client.upload(rel, (cache / "ftrace_regs_bench.ko").read_bytes())
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




def checks(rows, bundle=None):
    """The run's own checks (bundle.data["checks"]): on its result rows, and
    the step check on the bundle's cells in run order (analysis/steps.py)."""
    out = {"aa": stats.aa_check(rows),
           "probe_cost": next(({k: r[k] for k in ("value", "ci_low", "ci_high", "n", "unit")}
                               for r in rows if r["mode"] == PROBE_MODE
                               and r["metric"] == "overhead"), None),
           # (an ops point's rows are the kernel method's alone)
           "method_agreement": stats.method_agreement([r for r in rows if not r.get("ops")])}
    if bundle is not None:
        out["steps"] = steps.step_check(bundle)
    return out


class Harness:
    """What a method's hooks get of the run (analysis/methods/: they import
    nothing from bench or remote): the bundle, the plan, the traced
    function and the ui; the controller's proofs that a cell is what it
    claims (check_mode; check_kernel_cell with the kernel method's
    settings per mode and the module's tracee; check_workload_pid), called
    as plain functions; agent_error, what the agent client raises when the
    agent refuses a request."""

    check_mode = staticmethod(check_mode)
    check_kernel_cell = staticmethod(check_kernel_cell)
    check_workload_pid = staticmethod(check_workload_pid)
    tracefs_mode = staticmethod(tracefs_mode)
    kernel_settings = staticmethod(kernel_settings)
    tracee = TRACEE
    agent_error = AgentError

    def __init__(self, bundle, plan, function, ui):
        self.bundle, self.plan, self.function, self.ui = bundle, plan, function, ui

    def drop_method(self, method, reason):
        """A method found impossible once the run began: planned no more,
        with the reason; the run goes on with the others.  Nothing left of
        what was asked is a one-line error (exit 6)."""
        skipped = {"mode": None, "method": method, "reason": reason}
        self.plan.drop_method(method, skipped)
        self._nothing_left(reason, "unsupported")
        self.ui.skip(skipped)
        self._save_plan()

    def drop_module(self, error):
        """The module did not build or load (error: the agent's): the kernel
        method and the module's modes are planned no more, said in one
        line and in the plan's skipped records; the run goes on with the
        rest."""
        skipped = self.plan.drop_module(str(error))
        self._nothing_left(str(error), error.kind)
        dropped = ", ".join(f"mode {s['mode']}" if s["mode"] else f"method {s['method']}" for s in skipped)
        self.ui.warn(f"the suite's module cannot be used, so {dropped or 'nothing'} dropped "
                     f"and the run goes on without: {error}")
        self._save_plan()

    def _nothing_left(self, reason, kind):
        if self.plan.nothing_left:
            raise MeasurementError(f"{reason} (nothing that was asked for is left to measure)",
                                   kind=kind)

    def _save_plan(self):
        self.bundle.data["plan"].update(self.plan.to_dict())  # (keeps kernel_calls of a resumed plan)
        self.bundle.save()


def run_cell(client, run, cell, budgets=None):
    """Measure one cell with its method; returns its record (written to the
    bundle by the caller).  run: the Harness.

    budgets (CellBudget): the measuring request declares the cell's budget,
    so that nothing passes between controller and agent while it runs."""
    method = methods.get(cell.method)
    record = {"id": cell.id, "round": cell.round, "mode": cell.mode, "workload": cell.workload,
              "method": cell.method, "status": "ok"}
    if cell.ops:  # (the kernel method's ops point: absent for the mode's own 1+0)
        record["ops"] = {"relevant": cell.ops[0], "irrelevant": cell.ops[1]}
    budget = budgets.for_cell(cell.method) if budgets is not None else None
    # cell: the agent names it if the cell overruns its budget (and pyperf's files)
    quiet = dict(cell=cell.id)
    if budget is not None:
        quiet.update(budget_s=budget.agent_s, quiet_s=budget.quiet_s)
    fields = method.measure(client, run, cell, quiet)
    host_s = fields.pop("host_s")
    record.update(fields)
    check_cpus(record.get("cpus"), run.plan.affinity)
    means, n_values = method.read(run.bundle.path / record["file"])
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


def connect(target, client, bundle, request, ui, force, resume):
    """Start the agent and keep what the host is (a resumed bundle: check
    that it is the same host); returns (facts, preflight, check report)."""
    from . import resume as resume_mod

    facts, pre, check = start_agent(target, client, ui, force, request["modes"],
                                    request.get("workload", "getppid"), methods=request["methods"])
    if (client.ready or {}).get("lock_recovered"):
        bundle.data["notes"].append(client.ready["lock_recovered"])
    if resume:
        bundle.data["notes"] += resume_mod.check_target(bundle, facts)
    else:
        bundle.data["facts"] = facts
        bundle.data["clock"] = clock_of(facts)
        bundle.data["host_check"] = check
    ui.facts(facts)
    return facts, pre, check


def plan_run(bundle, request, facts, check, ui, resume, command):
    """Plan what the host supports; returns (plan, the cells to measure,
    the resumed session's record or None).  A resume measures the cells
    its bundle is missing, in a session of its own."""
    from . import resume as resume_mod
    from .plan import make_plan, restrict

    modes, methods_kept, skipped = restrict(request["modes"], request["methods"], check)
    if not methods_kept:  # (one line: the skipped methods' reasons are its own)
        raise MeasurementError("no measurement method is possible on this host: "
                               + "; ".join(s_["reason"] for s_ in skipped if s_["method"]),
                               kind="unsupported")
    for s_ in skipped:
        ui.skip(s_)
    plan = make_plan(request["profile"], modes, methods=methods_kept, seed=request.get("seed"),
                     skipped=skipped, ops=request.get("ops") or ())
    if not resume:
        bundle.data["plan"] = plan.to_dict()
        if plan.ops:  # cells an older reader would pool: analysis/bundle.py
            bundle.data["format_version"] = OPS_FORMAT_VERSION
        return plan, plan.cells, None
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
    return plan, cells, session


def begin(client, bundle, pre, facts, request, session, ui):
    """Keep the target's tracefs and snapshot it before the first write;
    returns (the traced function, the snapshot, this session's record, its
    noise record).  A resumed session's snapshot and noise go into its own
    record (the first session's stay the bundle's)."""
    if pre["busy"]:
        bundle.data["notes"].append("tracing was in use and --force was given: "
                                    + "; ".join(pre["busy"]))
    function = pre["function"]
    bundle.data["target"] = {"tracefs": pre["tracefs"], "function": function,
                             "tracefs_mounted_by_run": pre["mounted_by_us"],
                             "lockdown": pre["lockdown"]}
    snap = client.request("begin", timeout=60)["snapshot"]
    this_session = session if session is not None else bundle.data
    this_session["tracefs_before"] = snap["knobs"]
    noise = this_session["noise"] = {"tuned": bool(request.get("tune")),
                                     "warnings": noise_notes(facts)}
    return function, snap, this_session, noise


def tune(client, bundle, plan, noise, ui):
    """--tune: measure on one CPU, pinned and tuned (restored afterwards)."""
    tuned = client.request("tune", timeout=60)
    plan.affinity = tuned["cpu"]
    bundle.data["plan"]["affinity"] = tuned["cpu"]
    noise.update(cpu=tuned["cpu"], changed=tuned["changed"], housekeeping=tuned.get("housekeeping"),
                 placement=tuned.get("placement"))
    house = tuned.get("housekeeping")
    ui.step(f"tuned: measuring on CPU {tuned['cpu']}, "
            + (f"the agent on CPU {','.join(map(str, house))}; " if house
               else "one CPU: the agent shares it (and keeps quiet during cells); ")
            + ("; ".join(f"{c['path']}: {c['before']} -> {c['after']}" for c in tuned["changed"])
               or "no setting needed changing"))


# What the agent says when the module did not build or load on this target
# (remote/agent/kmod.py): no headers or make, the build failed, the kernel
# refused it.  The run goes on without the module.  A build that ran out of
# time, a module from an earlier run that cannot be removed, a lost
# connection: errors as any other.
MODULE_CANNOT = ("unsupported", "module-build", "module-refused")


def start_methods(client, run, facts, resumed=False):
    """Each planned method's start (the bpf program), the module when the
    plan needs it, then each method's calibration (the kernel method's calls).
    A module that cannot be used drops what needs it (a resumed run's plan is
    its bundle's: there it stays an error)."""
    for name in list(run.plan.methods):  # (a method may drop itself)
        methods.get(name).start(client, run)
    if run.plan.needs_module:
        try:
            prepare_module(client, run.bundle, facts, run.ui)
        except AgentError as e:
            if e.kind not in MODULE_CANNOT or resumed:
                raise
            run.drop_module(e)
    for name in run.plan.methods:
        methods.get(name).calibrate(client, run)


def estimate_run(bundle, plan, cells, facts, session, ui):
    """Say how long the run should take, before its first cell (a guess from
    the plan and the host's kind: bench/eta.py), and keep the guess beside
    the run's actual duration (finish)."""
    kind = eta.host_kind(facts)
    cached = (kmod_dir(facts) / "ftrace_regs_bench.ko").exists()
    setup_s, cells_s = eta.plan_guess(plan.profile, cells, kind, cached)
    per = ", ".join(f"{n} {m}" for m, n in eta.counts(cells).items())
    ui.estimate(f"estimated {eta.duration(setup_s + cells_s)} in all: {len(cells)} cells ({per}) "
                f"{eta.duration(cells_s)}, setup {eta.duration(setup_s)}; a guess from the "
                f"{plan.profile.name} profile for {eta.SPEEDS[kind].label}, refined as cells finish"
                + eta.load_note(kind, os.getloadavg()[0], os.cpu_count()))
    (session if session is not None else bundle.data)["estimate"] = {
        "host_kind": kind, "setup_s": round(setup_s, 1), "cells_s": round(cells_s, 1)}


def measure_cells(client, run, cells, session, ui, kind="hardware"):
    """Every cell in the plan's order, each kept in the bundle as it
    completes; each cell's line says what is left of the run (bench/eta.py)."""
    budgets = CellBudget(run.plan.profile)
    progress = eta.Progress(run.plan.profile, cells, kind)
    for i, cell in enumerate(cells, 1):
        ui.cell_start(i, len(cells), cell)
        t0 = time.monotonic()
        record = run_cell(client, run, cell, budgets)
        if session:
            record["session"] = session["session"]
        run.bundle.add_cell(record)
        progress.done(cell.method, time.monotonic() - t0)
        for gone in set(progress.left) - set(run.plan.methods):  # dropped during the run
            progress.drop(gone)
        ui.cell_done(record, progress.text())


def restore_target(client, bundle, function, snap, noise):
    """Tracing off and the target restored from its snapshot; returns the
    restore's problems."""
    client.request("set_mode", mode="off", function=function, timeout=120)
    restored = client.request("restore", timeout=120)
    bundle.data["tracefs_after"] = restored["after"]
    if noise["tuned"]:
        noise["restored"] = not restored["problems"]
    b, a = snap["knobs"].get("buffer_size_kb", ""), restored["after"].get("buffer_size_kb", "")
    if kernel_expanded(b, a):
        bundle.data["notes"].append(
            f"buffer_size_kb: the kernel expanded its ring buffer on first tracer use "
            f"({b.strip()!r} -> {a.strip()!r}); once per boot, only a reboot undoes it")
    return restored["problems"]


def summarize(bundle):
    """The bundle's result rows and checks from its cells; a statistics
    failure is a note, never a lost bundle."""
    rows = []
    if bundle.data["cells"]:
        try:
            rows = summarize_bundle(bundle)
            bundle.data["checks"] = _clean(checks(rows, bundle))
        except Exception as e:  # never lose the bundle to a statistics failure
            bundle.data["notes"].append(f"summary failed: {type(e).__name__}: {e}")
    return rows


def took(bundle, session, started):
    """The run's wall time next to its estimate (kept in the estimate's
    record: how good the guesses are is read from bundles); '' when the
    run never got as far as an estimate."""
    est = (session if session is not None else bundle.data).get("estimate")
    if est is None:
        return ""
    est["actual_s"] = round(time.monotonic() - started, 1)
    guess = est["setup_s"] + est["cells_s"]
    return (f"took {eta.duration(est['actual_s'])} ({est['actual_s']:.0f} s); estimated "
            f"{eta.duration(guess)} ({guess:.0f} s) before the first cell")


def finish(client, bundle, status, problems_seen, resume, session, ui, started=None):
    """Whatever happened: close the agent (it restores what is left), note
    the restore's problems, summarize and write the bundle's final state."""
    problems = []
    try:
        problems = client.close(abort=status != "complete")
    except RemoteError as e:
        bundle.data["notes"].append(f"closing the agent: {e}")
    except KeyboardInterrupt:
        client.abandon()
    problems = sorted(problems_seen | set(problems))
    if problems:
        bundle.data["restore_problems"] = problems
        bundle.data["notes"].append("restore problems: " + "; ".join(problems))
    rows = summarize(bundle)
    spent = took(bundle, session, started) if started is not None and status == "complete" else ""
    if not resume or session is not None:
        # (a resume refused before measuring leaves the bundle as it was)
        bundle.finish(status, rows, stats.METHOD_TEXT)
    if status != "complete" and not bundle.data["cells"] and not resume:
        bundle.discard()  # nothing measured: leave no empty bundle behind
    ui.finished(bundle, status, problems, spent)


def execute(target, request, out_dir, *, force=False, lease=30.0, ui, command=None, resume=None):
    """Check the host, plan what it supports, measure, restore; returns the Bundle.

    request: dict(profile, modes, methods, seed).  The bundle is created
    first, so that an unwritable --out fails before anything happens on the
    target.  resume: an incomplete Bundle (bench/resume.py) whose missing
    cells are measured into it instead.
    """
    bundle = resume or Bundle.create(out_dir, host=dict(target.describe()), tool_version=__version__,
                                     command=command)
    client = AgentClient(target, lease=lease, on_event=ui.agent_event, lock=True)
    status, session, problems_seen = "failed", None, set()
    started = time.monotonic()
    try:
        facts, pre, check = connect(target, client, bundle, request, ui, force, resume)
        plan, cells, session = plan_run(bundle, request, facts, check, ui, resume, command)
        estimate_run(bundle, plan, cells, facts, session, ui)
        function, snap, this_session, noise = begin(client, bundle, pre, facts, request, session, ui)
        if request.get("tune"):
            tune(client, bundle, plan, noise, ui)
        else:
            for n in noise["warnings"]:
                ui.warn(f"noisy: {n} (bench run --tune pins and tunes, and restores afterwards)")
        precondition(client, this_session, ui)
        bundle.save()
        run = Harness(bundle, plan, function, ui)
        start_methods(client, run, facts, resumed=session is not None)
        planned = {c.id for c in plan.cells}  # (less what a method or the module dropped)
        measure_cells(client, run, [c for c in cells if c.id in planned], session, ui,
                      eta.host_kind(facts))
        problems_seen.update(restore_target(client, bundle, function, snap, noise))
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except (RemoteError, MeasurementError) as e:
        bundle.data["error"] = str(e)
        raise
    finally:
        finish(client, bundle, status, problems_seen, resume, session, ui, started)
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
