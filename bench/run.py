"""Orchestration of one run: target -> agent -> cells -> bundle.

The controller never measures: the agent on the target does, in fresh pyperf
worker processes.  The controller decides the order of cells, checks that
each mode is what it claims (tracefs says so), keeps every completed cell in
the bundle as soon as it completes, and always asks the agent to restore.
"""
import json
import math

from analysis import stats
from remote.agent.tracefs import kernel_expanded
from remote.agent_client import AgentClient
from remote.errors import RemoteError

from . import __version__
from .bundle import Bundle
from .errors import MeasurementError
from .kernel import ftrace_variant


def _clean(o):
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_clean(v) for v in o]
    return o


def check_mode(mode, function, v):
    """Refuse a cell whose tracefs state is not what its mode claims."""
    if mode == "off":
        ok = v["current_tracer"] == "nop" and v["enabled_functions_count"] == 0
        want = "current_tracer nop and enabled_functions empty"
    elif mode == "function":
        ok = (v["current_tracer"] == "function" and v["target_line"] is not None
              and v["enabled_functions_count"] == 1 and v["tracing_on"] == "1")
        want = f"function tracer on {function} alone (enabled_functions: 1 line)"
    else:  # function-all
        ok = (v["current_tracer"] == "function" and v["enabled_functions_count"] > 1
              and v["tracing_on"] == "1")
        want = "function tracer on every function"
    if not ok:
        raise MeasurementError(
            f"mode {mode!r} is not in effect on the target: tracefs shows current_tracer="
            f"{v['current_tracer']!r}, tracing_on={v['tracing_on']}, "
            f"{v['enabled_functions_count']} enabled function(s); expected {want}")


def summarize_bundle(bundle):
    """Result rows from the cells' raw pyperf files (recomputable from the bundle alone)."""
    plan = bundle.data["plan"]
    samples = {}
    for cell in bundle.data["cells"]:
        if cell.get("status") != "ok":
            continue
        means, _ = stats.worker_means_ns(bundle.path / cell["file"])
        by_mode = samples.setdefault((cell["workload"], cell["method"]), {})
        by_mode.setdefault(cell["mode"], {})[cell["round"]] = means
    rows = []
    for (workload, method), by_mode in samples.items():
        ordered = {m: by_mode[m] for m in plan["modes"] if m in by_mode}
        rows.extend(stats.summarize(ordered, workload, method))
    return _clean(rows)


def execute(target, plan, out_dir, *, force=False, lease=30.0, ui, lab_state=None, command=None):
    """Run `plan` on `target`; returns the finished Bundle.

    The bundle is created first, so that an unwritable --out fails before
    anything happens on the target.
    """
    bundle = Bundle.create(out_dir, host=dict(target.describe()), tool_version=__version__,
                           command=command)
    bundle.data["plan"] = plan.to_dict()
    bundle.save()
    client = AgentClient(target, lease=lease, on_event=ui.agent_event)
    status = "failed"
    problems_seen = set()
    try:
        ui.step(f"connecting the agent on {target.name}")
        client.start()
        facts = client.request("facts", timeout=120)
        facts["ftrace_variant"] = ftrace_variant(facts.get("kernel_config", {}), facts.get("arch"))
        if lab_state:
            from remote.lab import lab_facts
            facts["lab"] = lab_facts(lab_state)
        bundle.data["facts"] = facts
        bundle.save()
        ui.facts(facts)
        pre = client.request("preflight", modes=plan.modes, force=force, syscall=plan.workload,
                             timeout=120)
        if pre["busy"]:
            bundle.data["notes"].append("tracing was in use and --force was given: "
                                        + "; ".join(pre["busy"]))
        function = pre["function"]
        bundle.data["target"] = {"tracefs": pre["tracefs"], "function": function,
                                 "tracefs_mounted_by_run": pre["mounted_by_us"],
                                 "lockdown": pre["lockdown"]}
        snap = client.request("begin", timeout=60)["snapshot"]
        bundle.data["tracefs_before"] = snap["knobs"]
        bundle.save()
        args = plan.pyperf_args()
        for i, cell in enumerate(plan.cells, 1):
            ui.cell_start(i, len(plan.cells), cell)
            before = client.request("set_mode", mode=cell.mode, function=function, timeout=120)
            check_mode(cell.mode, function, before)
            m = client.request("measure", cell=cell.id, pyperf_args=args, timeout=3600)
            after = client.request("verify", function=function, timeout=60)
            check_mode(cell.mode, function, after)
            rel = bundle.write_raw(f"pyperf/{cell.id}.json", client.fetch(m["file"]))
            means, n_values = stats.worker_means_ns(bundle.path / rel)
            record = {"id": cell.id, "round": cell.round, "mode": cell.mode,
                      "workload": cell.workload, "method": cell.method, "status": "ok",
                      "file": rel, "elapsed_s": round(m["elapsed_s"], 2),
                      "tracefs": {"before": before, "after": after},
                      "worker_means_ns": means, "n_workers": len(means), "n_values": n_values}
            bundle.add_cell(record)
            ui.cell_done(record)
        client.request("set_mode", mode="off", function=function, timeout=120)
        restored = client.request("restore", timeout=120)
        bundle.data["tracefs_after"] = restored["after"]
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
            except Exception as e:  # never lose the bundle to a statistics failure
                bundle.data["notes"].append(f"summary failed: {type(e).__name__}: {e}")
        bundle.finish(status, rows, stats.METHOD_TEXT)
        if status != "complete" and not bundle.data["cells"]:
            bundle.discard()  # nothing measured: leave no empty bundle behind
        ui.finished(bundle, status, problems)
    return bundle


def bundle_json(bundle):
    return json.dumps(bundle.data, indent=1)
