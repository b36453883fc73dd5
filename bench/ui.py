"""What the user sees while a run goes on, and the table at the end (rich)."""
import math
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from analysis import methods
from analysis.stats import disagreement_reason, excludes_zero
from analysis.steps import check_lines as step_lines
from analysis.units import bundle_unit, unit_of
from remote.protocol.kmod import ops_label


def fmt_ns(v):  # a figure in any unit: the name is older than units
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.1f}"


class RunUI:
    def __init__(self, quiet=False):
        self.out = Console(stderr=True, highlight=False)
        self.quiet = quiet
        self._dots = 0
        self.unit = "ns"  # until facts() says which clock the target has

    def step(self, text):
        if not self.quiet:
            self.out.print(f"[bold]>[/bold] {text}")

    def facts(self, f):
        self.unit = unit_of(f)
        if self.quiet:
            return
        lab = f.get("lab")
        where = (f"lab {lab['kernel']} under QEMU {lab['accel']}{' icount' if lab.get('icount') else ''}"
                 if lab else f.get("hostname"))
        self.out.print(f"  {where}: {f.get('arch')} {f.get('cpu_model')} x{f.get('cpu_count')}, "
                       f"kernel {f.get('kernel_release')} (ftrace: {f.get('ftrace_variant')}), "
                       f"python {f.get('python_version')}, pyperf {f.get('pyperf_version')}")

    def skip(self, s):
        if not self.quiet:
            what = f"mode {s['mode']}" if s["mode"] else f"method {s['method']}"
            # (escaped: a reason quotes the target, e.g. make's '[Makefile:250: ...]')
            self.out.print(f"  [yellow]{what} unavailable, skipped:[/yellow] {escape(s['reason'])}")

    def warn(self, text):
        if not self.quiet:
            self.out.print(f"  [yellow]{escape(text)}[/yellow]")

    def cell_start(self, i, n, cell):
        self._dots = 0
        if not self.quiet:
            mode = f"{cell.mode} {cell.ops[0]}+{cell.ops[1]}" if cell.ops else cell.mode
            self.out.print(f"  [{i}/{n}] round {cell.round} {mode:<13} {cell.workload} "
                           f"{cell.method} ", end="")

    def estimate(self, text):
        """The run's estimated duration, before its first cell (bench/eta.py)."""
        if not self.quiet:
            self.out.print(f"[bold]>[/bold] {text}")

    def agent_event(self, ev):
        if ev.get("event") == "compiling" and not self.quiet:
            # bcc's compile is silent and takes from seconds to minutes
            self.out.print(f"[bold]>[/bold] {ev.get('text') or 'compiling on the target'} ...")
        # pyperf prints one '.' per finished worker process.
        if ev.get("event") == "progress" and not self.quiet:
            dots = ev.get("text", "").count(".")
            if dots:
                self._dots += dots
                self.out.print("." * dots, end="")

    def cell_done(self, record, left=""):
        """The cell's line ends with its figure and, while cells are left,
        what is left of the run (left: bench/eta.py's Progress.text())."""
        if self.quiet:
            return
        means = record["worker_means_ns"]
        mean = sum(means) / len(means) if means else float("nan")
        unit = methods.get(record["method"]).samples
        if record.get("counts"):
            unit += f" of {record['calls']:,} calls, counted exactly"
        self.out.print(f" {fmt_ns(mean)} {self.unit}/call ({record['n_workers']} {unit}, "
                       f"{record['elapsed_s']:.0f} s)" + (f"; {left}" if left else ""))

    def finished(self, bundle, status, problems, took=""):
        if self.quiet:
            return
        if took:
            self.out.print(f"[bold]>[/bold] {took}")
        if status == "interrupted":
            self.out.print("[yellow]interrupted: the target was restored; completed cells are in "
                           f"{bundle.path}[/yellow]")
        for p in problems:
            self.out.print(f"[red]restore problem:[/red] {p}")


def _mode(r):
    """A row's mode, with its ops point where it has one ('noregs 4+8':
    4 ops on the tracee, 8 elsewhere)."""
    o = r.get("ops")
    return f"{r['mode']} {ops_label(o['relevant'], o['irrelevant'])}" if o else r["mode"]


def results_table(bundle):
    data = bundle.data
    facts = data.get("facts", {})
    lab = facts.get("lab")
    unit = bundle_unit(data)
    title = f"{data['host']['name']}: kernel {facts.get('kernel_release')} ({facts.get('ftrace_variant')})"
    if lab:
        title += f", emulated (QEMU {lab['accel']}{' icount' if lab.get('icount') else ''})"
        if unit == "instructions":
            title += ": figures are guest instructions, not time"
    # Counted series (the pmu method's cycles, ...) have units of their own:
    # then every row names its unit.
    mixed = any(r.get("unit", unit) != unit for r in data["results"])
    t = Table(title=title, caption=(f"unit: {unit} per call" if not mixed else "unit: per call, as each row "
                                    "says") + "; n = rounds; 95% CIs: Student t over rounds, "
                                   "overhead paired with off and regs gain with noregs by round")
    cols = (("mode", "workload", "method", "unit", "per call", "95% CI", "overhead", "95% CI", "n") if mixed else
            ("mode", "workload", "method", f"{unit}/call", "95% CI", f"overhead {unit}", "95% CI", "n"))
    for col in cols:
        t.add_column(col, justify="right" if col not in ("mode", "workload", "method", "unit") else "left")
    per = {(_mode(r), r["workload"], r["method"]): r for r in data["results"] if r["metric"] == "per_call"}
    ovh = {(_mode(r), r["workload"], r["method"]): r for r in data["results"] if r["metric"] == "overhead"}
    for key, r in per.items():
        o = ovh.get(key)
        t.add_row(key[0], key[1], key[2], *([r.get("unit", unit)] if mixed else []), fmt_ns(r["value"]),
                  f"[{fmt_ns(r['ci_low'])}, {fmt_ns(r['ci_high'])}]",
                  fmt_ns(o["value"]) if o else "(baseline)",
                  (f"[{fmt_ns(o['ci_low'])}, {fmt_ns(o['ci_high'])}]"
                   + ("" if excludes_zero(o) else " ~0")) if o else "",
                  str(r["n"]))
    return t


def gain_table(bundle):
    rows = [r for r in bundle.data["results"] if r["metric"] == "regs_gain"]
    if not rows:
        return None
    unit = bundle_unit(bundle.data)
    mixed = any(r.get("unit", unit) != unit for r in rows)
    t = Table(title="regs gain: ftrace_regs_caller - ftrace_caller, per call",
              caption=(f"unit: {unit}" if not mixed else "unit: as each row says")
              + " per call; paired by round (regs - noregs); n = rounds")
    points = any(r.get("ops") for r in rows)
    cols = (("method", "workload") + (("ops",) if points else ())
            + (("unit", "regs gain", "95% CI", "n") if mixed else (f"regs gain {unit}", "95% CI", "n")))
    for col in cols:
        t.add_column(col, justify="right" if col not in ("method", "workload", "ops", "unit") else "left")
    for r in rows:
        o = r.get("ops")
        point = ((ops_label(o["relevant"], o["irrelevant"]) if o else "1+0"),) if points else ()
        t.add_row(r["method"], r["workload"], *point, *([r.get("unit", unit)] if mixed else []), fmt_ns(r["value"]),
                  f"[{fmt_ns(r['ci_low'])}, {fmt_ns(r['ci_high'])}]"
                  + ("" if excludes_zero(r) else " ~0"), str(r["n"]))
    return t


def print_results(bundle, file=None):
    c = Console(file=file or sys.stdout, highlight=False, width=140)
    c.print(results_table(bundle))
    gain = gain_table(bundle)
    if gain is not None:
        c.print(gain)
    for s in bundle.data.get("plan", {}).get("skipped", []):
        what = f"mode {s['mode']}" if s["mode"] else f"method {s['method']}"
        c.print(f"{what} unavailable: {escape(s['reason'])}")
    for line in check_lines(bundle.data):
        c.print(line)


def _ci_text(r, unit):
    return f"{fmt_ns(r['value'])} [{fmt_ns(r['ci_low'])}, {fmt_ns(r['ci_high'])}] {unit} (n={r['n']})"


def check_lines(data):
    """The run's checks in words: A/A, probe cost, method agreement, noise."""
    out = []
    checks = data.get("checks") or {}
    unit = bundle_unit(data)
    for method, r in sorted((checks.get("aa") or {}).items()):
        unit = r.get("unit") or bundle_unit(data)  # (a counted series' own)
        if r["significant"]:
            out.append(f"[red]A/A check FAILED ({method}): off measured twice differs by "
                       f"{_ci_text(r, unit)}; the numbers of this run cannot be trusted at that "
                       f"resolution[/red]")
        else:
            half = ((r["ci_high"] - r["ci_low"]) / 2 if r["ci_low"] is not None
                    and r["ci_high"] is not None else None)
            out.append(f"A/A check ({method}): off twice per round differs by {_ci_text(r, unit)}: "
                       "no significant difference"
                       + (f"; differences within +/-{fmt_ns(half)} {unit} are not resolved" if half else ""))
    # The step check next to the A/A, failed in red like it (analysis/steps.py).
    for kind, line in step_lines(checks.get("steps") or []):
        out.append(f"[red]{line}[/red]" if kind == "fail" else line)
    unit = bundle_unit(data)
    probe = checks.get("probe_cost")
    if probe:
        out.append(f"bpf probe cost (pyperf, probes on vs off, tracer off): {_ci_text(probe, unit)} per call")
    told = set()
    for a in checks.get("method_agreement") or []:
        if a["agree"] is False:
            m1, m2 = a["methods"]
            what = "regs gain" if a["metric"] == "regs_gain" else f"{a['mode']} overhead"
            # A known reason is said once; a disagreement without one gets none.
            why = disagreement_reason(a["metric"], a["mode"], a["methods"])
            because = "" if not why else ("; expected, as above" if why in told else f"; expected: {why}")
            told.add(why)
            u = a.get("unit") or unit
            out.append(f"[yellow]methods disagree on the {what}: {m1} {_ci_text(a[m1], u)} vs "
                       f"{m2} {_ci_text(a[m2], u)} (CIs do not overlap){because}[/yellow]")
    noise = data.get("noise") or {}
    if noise.get("tuned"):
        out.append(f"tuned: measured on CPU {noise.get('cpu')}, settings restored: "
                   f"{noise.get('restored')}")
    elif noise.get("warnings"):
        out.append("[yellow]not tuned; noisy: " + "; ".join(noise["warnings"]) + "[/yellow]")
    return out


def print_check(host, report, file=None):
    c = Console(file=file or sys.stdout, highlight=False, width=140)
    t = Table(title=f"bench check: {host}", show_lines=False)
    for col in ("what", "ok", "value", "reason"):
        t.add_column(col)

    def mark(ok):
        return "[green]yes[/green]" if ok else ("[red]no[/red]" if ok is False else "-")

    for key, a in report.items():
        if key in ("modes", "methods"):
            continue
        value = a["value"]
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        t.add_row(key, mark(a["ok"]), "" if value is None else escape(str(value)), escape(a["reason"]))
    for group in ("modes", "methods"):
        for name, a in report[group].items():
            t.add_row(f"{group[:-1]} {name}", mark(a["ok"]), "", escape(a["reason"]))
    c.print(t)


def print_compare(result, file=None):
    """`bench compare`: one row per shared cell, B - A with its Welch CI."""
    c = Console(file=file or sys.stdout, highlight=False, width=160)
    a, b = result["a"], result["b"]

    def side(x):
        where = (f"emulated, QEMU {x['accel']}{' icount' if x['icount'] else ''}"
                 if x["emulated"] else (x["accel"] or "hardware"))
        return f"{x['kernel']} ({x['ftrace_variant']}, {where})"

    unit = result["unit"]
    title = f"A = {side(a)}\nB = {side(b)}"
    if unit == "instructions":
        title += "\nicount: figures are guest instruction counts, not time"
    t = Table(title=title, caption=result["method"])
    for col in ("method", "mode", "metric", "A", "95% CI", "B", "95% CI", "B - A", "95% CI",
                "significant"):
        t.add_column(col, justify="left" if col in ("method", "mode", "metric") else "right")
    for r in result["rows"]:
        exact = r.get("exact")
        t.add_row(r["method"], r["mode"], r["metric"],
                  fmt_ns(r["a"]), f"[{fmt_ns(r['a_ci'][0])}, {fmt_ns(r['a_ci'][1])}]",
                  fmt_ns(r["b"]), f"[{fmt_ns(r['b_ci'][0])}, {fmt_ns(r['b_ci'][1])}]",
                  fmt_ns(r["diff"]),
                  "exact" if exact else f"[{fmt_ns(r['diff_ci'][0])}, {fmt_ns(r['diff_ci'][1])}]",
                  "exact" if exact else ("yes" if r["significant"] else "no"))
    c.print(t)
    c.print(f"unit: {unit} per call; n = rounds (A {a['path']}, B {b['path']})")
    if any(r.get("exact") for r in result["rows"]):
        c.print("exact: every round of both bundles gave the same figure, so B - A is the difference "
                "itself: no interval or significance applies")
    for o in result["only_in_one"]:
        c.print(f"only in {o['in']}: {o['method']} {o['mode']} {o['metric']}")
