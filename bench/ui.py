"""What the user sees while a run goes on, and the table at the end (rich)."""
import math
import sys

from rich.console import Console
from rich.table import Table

from analysis.stats import excludes_zero


def fmt_ns(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.1f}"


class RunUI:
    def __init__(self, quiet=False):
        self.out = Console(stderr=True, highlight=False)
        self.quiet = quiet
        self._dots = 0

    def step(self, text):
        if not self.quiet:
            self.out.print(f"[bold]>[/bold] {text}")

    def facts(self, f):
        if self.quiet:
            return
        lab = f.get("lab")
        where = (f"lab {lab['kernel']} under QEMU {lab['accel']}{' icount' if lab.get('icount') else ''}"
                 if lab else f.get("hostname"))
        self.out.print(f"  {where}: {f.get('arch')} {f.get('cpu_model')} x{f.get('cpu_count')}, "
                       f"kernel {f.get('kernel_release')} (ftrace: {f.get('ftrace_variant')}), "
                       f"python {f.get('python_version')}, pyperf {f.get('pyperf_version')}")

    def cell_start(self, i, n, cell):
        self._dots = 0
        if not self.quiet:
            self.out.print(f"  [{i}/{n}] round {cell.round} {cell.mode:<13} {cell.workload} "
                           f"{cell.method} ", end="")

    def agent_event(self, ev):
        # pyperf prints one '.' per finished worker process.
        if ev.get("event") == "progress" and not self.quiet:
            dots = ev.get("text", "").count(".")
            if dots:
                self._dots += dots
                self.out.print("." * dots, end="")

    def cell_done(self, record):
        if self.quiet:
            return
        means = record["worker_means_ns"]
        mean = sum(means) / len(means) if means else float("nan")
        self.out.print(f" {fmt_ns(mean)} ns/call ({record['n_workers']} workers, "
                       f"{record['elapsed_s']:.0f} s)")

    def finished(self, bundle, status, problems):
        if self.quiet:
            return
        if status == "interrupted":
            self.out.print("[yellow]interrupted: the target was restored; completed cells are in "
                           f"{bundle.path}[/yellow]")
        for p in problems:
            self.out.print(f"[red]restore problem:[/red] {p}")


def results_table(bundle):
    data = bundle.data
    facts = data.get("facts", {})
    lab = facts.get("lab")
    title = f"{data['host']['name']}: kernel {facts.get('kernel_release')} ({facts.get('ftrace_variant')})"
    if lab:
        title += f", emulated (QEMU {lab['accel']}{' icount' if lab.get('icount') else ''})"
    t = Table(title=title, caption="n = rounds; 95% CIs: Student t over rounds, overhead paired with off by round")
    for col in ("mode", "workload", "method", "ns/call", "95% CI", "overhead ns", "95% CI", "n"):
        t.add_column(col, justify="right" if col not in ("mode", "workload", "method") else "left")
    per = {(r["mode"], r["workload"], r["method"]): r for r in data["results"] if r["metric"] == "per_call_ns"}
    ovh = {(r["mode"], r["workload"], r["method"]): r for r in data["results"] if r["metric"] == "overhead_ns"}
    for key, r in per.items():
        o = ovh.get(key)
        t.add_row(key[0], key[1], key[2], fmt_ns(r["value"]),
                  f"[{fmt_ns(r['ci_low'])}, {fmt_ns(r['ci_high'])}]",
                  fmt_ns(o["value"]) if o else "(baseline)",
                  (f"[{fmt_ns(o['ci_low'])}, {fmt_ns(o['ci_high'])}]"
                   + ("" if o["ci_low"] is not None and excludes_zero(o) else " ~0")) if o else "",
                  str(r["n"]))
    return t


def print_results(bundle, file=None):
    Console(file=file or sys.stdout, highlight=False, width=140).print(results_table(bundle))
