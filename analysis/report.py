"""Bundles -> report.md + a self-contained report.html (+ figures/*.svg, *.png).

A report must stand on its own: where it ran (a system table per bundle),
how it was measured (modes, workload, methods, sample sizes, how the CIs
were computed), the figures with their intervals, what could mislead
(emulation, config differences between kernel variants, A/A failures,
incomplete bundles) and the commands that reproduce it.

Everything is derived from the bundles alone, with no clock and no random
state, so regenerating a report from the same bundles gives the same bytes.
`anonymize=True` drops hostnames, addresses, serials and instance IDs
before anything is rendered.
"""
import base64
import copy
import math
import os
import pathlib
import re
import shlex

import jinja2

from . import plots, stats, steps
from .bundle import Bundle, OutputError, prove_writable
from .load import SETUP_KEYS, cells_frame, load_bundles, mode_key
from .summary import aa_from_cells, is_check_mode, mode_label, ops_summary, point_key, summarize_cells, variant_table
from .units import bundle_clock, bundle_unit

TEMPLATES = pathlib.Path(__file__).parent / "templates"

# Section titles: the structure tests check these, readers navigate by them.
SECTIONS = ["Summary", "Systems", "Method", "Results", "Figures", "Checks", "Confounds and caveats",
            "Reproduce"]


# -- anonymization --------------------------------------------------------------

_PATTERNS = [
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), "<address>"),
    (re.compile(r"\b(?:[0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}\b"), "<mac>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
     "<uuid>"),
    (re.compile(r"\bi-[0-9a-f]{8,17}\b"), "<instance-id>"),
    (re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4}\b"), "<address>"),
]
_SECRET_KEYS = re.compile(r"serial|instance_id|instance-id|uuid|boot_id|mac_address|hw_addr|ip_addr",
                          re.I)
# Host names that are the tool's own keywords identify nobody.
_KEYWORD_HOSTS = {"lab", "local"}


def _scrub(o, names):
    if isinstance(o, str):
        for name, repl in names:
            o = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", repl, o)
        for pat, repl in _PATTERNS:
            o = pat.sub(repl, o)
        return o
    if isinstance(o, dict):
        return {k: ("<removed>" if _SECRET_KEYS.search(str(k)) and v not in (None, "") else _scrub(v, names))
                for k, v in o.items()}
    if isinstance(o, list):
        return [_scrub(v, names) for v in o]
    return o


def host_names(bundles):
    """[(name, placeholder)], longest first: every host name, SSH address and
    recorded hostname of the bundles, each mapped to host-1, host-2..."""
    hosts = {}
    for b in bundles:
        for n in (b.data["host"].get("name"), b.data["host"].get("hostname"),
                  b.data.get("facts", {}).get("hostname")):
            if n and n not in _KEYWORD_HOSTS and n not in hosts:
                hosts[n] = f"host-{len(hosts) + 1}"
    return sorted(hosts.items(), key=lambda kv: -len(kv[0]))


def scrub(text, names):
    """text without the given host names, addresses, MACs, UUIDs and instance IDs."""
    return _scrub(text, names)


def anonymize(bundles):
    """Copies of the bundles with hostnames (replaced by host-1, host-2...),
    addresses, MACs, UUIDs, serials and instance IDs removed from every
    string and fact; the bundles on disk are not touched."""
    names = host_names(bundles)
    hosts = dict(names)
    out = []
    for b in bundles:
        data = copy.deepcopy(b.data)
        host = data["host"]
        data["host"] = {"kind": host.get("kind"), "name": hosts.get(host.get("name"), host.get("name"))}
        facts = data.get("facts", {})
        if facts.get("hostname"):
            facts["hostname"] = data["host"]["name"]
        data = _scrub(data, names)
        a = Bundle(b.path, data)
        a.anonymous_label = _scrub(b.path.name, names)
        out.append(a)
    return out


# -- formatting -----------------------------------------------------------------

def _nan(v):
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt(v, width=None):
    """A figure with as many decimals as its interval's width deserves."""
    if _nan(v):
        return "n/a"
    if width is None or _nan(width) or width <= 0:
        digits = 1 if abs(v) >= 100 else 3
    else:
        digits = min(3, max(0, 1 - math.floor(math.log10(width))))
    return f"{v:,.{digits}f}"


def fmt_ci(lo, hi):
    if _nan(lo) or _nan(hi):
        return "n/a (n < 2)"
    w = hi - lo
    return f"[{fmt(lo, w)}, {fmt(hi, w)}]"


def fmt_p(p, exact=False):
    """A p value; "exact" where the replications did not vary (no test applies)."""
    if exact:
        return "exact"
    return "" if _nan(p) else (f"{p:.4f}" if p >= 0.0001 else f"{p:.1e}")


def fmt_n(r):
    """The n behind a row's interval: rounds, or bundles when pooled (the
    interval is then over per-bundle means, analysis/summary.py)."""
    if r["ci_over"] == "bundles":
        return f"{r['n_bundles']} bundles ({r['n_rounds']} rounds)"
    return r["n"]


def table(header, rows):
    return {"header": header, "rows": [[("" if c is None else str(c)) for c in r] for r in rows]}


# -- the sections ---------------------------------------------------------------

def bundle_labels(bundles, anonymous=False):
    """Short, unique names: the bundle directory's name (scrubbed when
    anonymous); where two clash, the parent's name too (or a number when
    anonymous), and a #n where even that clashes (one bundle given twice)."""
    labels = [getattr(b, "anonymous_label", b.path.name) for b in bundles]
    clash = [labels.count(label) > 1 for label in labels]
    labels = [(f"bundle-{i + 1}" if anonymous else f"{b.path.parent.name}/{label}") if c else label
              for i, (b, label, c) in enumerate(zip(bundles, labels, clash))]
    seen = {}
    for i, label in enumerate(labels):
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            labels[i] = f"{label}#{seen[label]}"
    return labels


def hosts_of(bundles):
    """Each bundle's host name, in order (host-1, host-2... when anonymous)."""
    return [b.data["host"].get("name") or "?" for b in bundles]


def several_hosts(bundles):
    return len(set(hosts_of(bundles))) > 1


def host_labels(bundles, labels):
    """Labels for a report of several hosts: each bundle's label led by its
    host (lab/20261201T224810Z), unless the label is the host already (a
    run on several hosts with --out DIR keeps DIR/<host>/); one host's
    bundles keep their labels."""
    if not several_hosts(bundles):
        return labels
    out = []
    for host, label in zip(hosts_of(bundles), labels):
        out.append(label if label == host or label.startswith(host + "/") else f"{host}/{label}")
    return out


def by_host_table(summary):
    """Every metric side by side: one row per (metric, method, workload,
    mode), one column per group (per host: a bundle of each), each cell the
    mean with its 95% Student-t CI and n; "-" where a host has no such row
    (a mode its kernel could not do)."""
    groups = list(dict.fromkeys(summary["group"]))
    order = {"regs_gain": 0, "overhead": 1, "per_call": 2}
    cells = {}
    for _, r in summary.iterrows():
        key = (order.get(r["metric"], 3), r["method"] != "kernel", r["method"], r["workload"],
               mode_key(r["mode"]), r["metric"], r["mode"], r["unit"])
        w = None if _nan(r["ci_high"]) or _nan(r["ci_low"]) else r["ci_high"] - r["ci_low"]
        cells.setdefault(key, {})[r["group"]] = (f"{fmt(r['value'], w)} {fmt_ci(r['ci_low'], r['ci_high'])} "
                                                 f"(n={fmt_n(r)})")
    metric_text = {"regs_gain": "regs gain", "overhead": "overhead over off", "per_call": "per call"}
    rows = [[metric_text.get(k[5], k[5]), k[2], k[3], mode_label(k[6]), k[7]] + [v.get(g, "-") for g in groups]
            for k, v in sorted(cells.items(), key=lambda kv: kv[0][:5])]
    return table(["metric", "method", "workload", "mode", "unit"] + groups, rows)


# The headline metrics, each a figure by host in a report of several hosts:
# the regs gain, then every tracer mode's overhead over off.
def headline_metrics(summary):
    out = [("regs_gain", None)] if (summary["metric"] == "regs_gain").any() else []
    over = summary[(summary["metric"] == "overhead") & ~summary["mode"].map(is_check_mode)]
    return out + [("overhead", m) for m in sorted(set(over["mode"]), key=mode_key)]


def host_figures(summary, out_dir):
    figs = []
    for metric, mode in headline_metrics(summary):
        name = "by-host-regs-gain" if metric == "regs_gain" else f"by-host-overhead-{mode}"
        what = "Regs gain" if metric == "regs_gain" else f"Overhead of {mode} over off"
        caption = ("Side by side by host: " + ("the regs gain (regs - noregs, paired by round)"
                                               if metric == "regs_gain" else f"{mode} - off, paired by round")
                   + ", mean over rounds with its 95% Student-t CI, one panel per method and unit "
                   "(instruction counts and nanoseconds never share an axis); n in the table by host.")
        figs.append(_figure_entry(out_dir / "figures", name, f"{what} by host", caption,
                                  plots.host_figure(summary, metric, mode)))
    return figs


def _era(b):
    era = (b.data.get("host_check") or {}).get("ftrace_era") or {}
    return f"{era.get('value')} ({era.get('reason')})" if era else "not recorded"


def _lab_text(lab):
    if not lab:
        return "no (a real machine)"
    if lab.get("icount"):
        return (f"QEMU {lab.get('accel')} with -icount shift=0: 1 ns of guest time = 1 executed "
                "instruction (emulated; instruction counts, not time)")
    if lab.get("accel") == "kvm":
        return "QEMU KVM (hardware virtualisation: real CPU, virtual machine)"
    return f"QEMU {lab.get('accel')} (emulated: wall-clock time of an emulator, not of arm64 hardware)"


def _clusters(f):
    """Each kind of core with its CPUs: 'Neoverse-N1 r3p1 on CPUs 0-63'."""
    kinds = f.get("cpu_clusters")
    if not kinds:
        return "not recorded"
    return "; ".join(f"{c['name']} r{int(c['variant'], 16)}p{c['revision']} on CPUs {c['cpus']}"
                     for c in kinds)


def _kv(d):
    if not isinstance(d, dict):
        return "" if d is None else str(d)
    return ", ".join(f"{k}={'none' if v in (None, '') else v}" for k, v in d.items())


SYSTEM_FACTS = [
    ("host", lambda b, f, lab: b.data["host"].get("name")),
    ("hostname", lambda b, f, lab: f.get("hostname")),
    ("address", lambda b, f, lab: b.data["host"].get("hostname") or "not recorded"),
    ("arch", lambda b, f, lab: f.get("arch")),
    ("CPU", lambda b, f, lab: f"{f.get('cpu_model')} (implementer {f.get('cpu_implementer')}, "
                              f"part {f.get('cpu_part')}, variant {f.get('cpu_variant')}, "
                              f"revision {f.get('cpu_revision')})"),
    ("CPU cores", lambda b, f, lab: _clusters(f)),
    ("CPU product", lambda b, f, lab: f"{f['cpu_product']} ({f.get('cpu_product_evidence')})"
     if f.get("cpu_product") else ("not known: the MIDR names the core, not the chip"
                                   if f.get("cpu_clusters") else "not recorded")),
    ("machine", lambda b, f, lab: f.get("machine_model") or "not recorded"),
    ("CPUs", lambda b, f, lab: f"{f.get('cpu_count')} (online: {f.get('cpus_online')})"),
    ("instance type", lambda b, f, lab: f.get("instance_type")
     or ("none: the QEMU lab" if lab else "not recorded")),
    ("instance ID", lambda b, f, lab: f.get("instance_id") or "not recorded"),
    ("memory", lambda b, f, lab: f"{f['memory_kb'] // 1024} MiB" if f.get("memory_kb") else None),
    ("OS", lambda b, f, lab: f.get("os_release")),
    ("kernel", lambda b, f, lab: f"{f.get('kernel_release')} {f.get('kernel_version')}"),
    ("kernel config", lambda b, f, lab: f.get("kernel_config_source")),
    ("ftrace era (bench check)", lambda b, f, lab: _era(b)),
    ("ftrace variant", lambda b, f, lab: f.get("ftrace_variant")),
    ("emulated", lambda b, f, lab: _lab_text(lab)),
    ("lab", lambda b, f, lab: (f"kernel {lab.get('kernel')}, -cpu {lab.get('cpu_model')}, "
                               f"{lab.get('smp')} vCPU, {lab.get('memory_mb')} MiB") if lab else "no"),
    ("accel / icount", lambda b, f, lab: f"{lab.get('accel')} / {'yes' if lab.get('icount') else 'no'}"
     if lab else "n/a"),
    ("QEMU", lambda b, f, lab: lab.get("qemu_version") if lab else "n/a"),
    ("governor", lambda b, f, lab: f.get("governor") or "none (no cpufreq)"),
    ("SMT", lambda b, f, lab: f.get("smt_control")),
    ("isolated CPUs", lambda b, f, lab: f.get("cpus_isolated") or "none"),
    ("tuning", lambda b, f, lab: _kv(f.get("tuning"))
     or _kv(((b.data.get("host_check") or {}).get("tuning") or {}).get("value"))),
    ("noise", lambda b, f, lab: _kv(f.get("noise")) or "not recorded"),
    ("cmdline", lambda b, f, lab: f.get("cmdline")),
    ("clocksource", lambda b, f, lab: f.get("clocksource")),
    ("timer", lambda b, f, lab: f"{f['timer_frequency_hz'] / 1e6:g} MHz" if f.get("timer_frequency_hz")
     else None),
    ("lockdown", lambda b, f, lab: f.get("lockdown")),
    ("python / pyperf (target)", lambda b, f, lab: f"{f.get('python_version')} / {f.get('pyperf_version')}"),
    ("bench", lambda b, f, lab: f"{(b.data.get('tool') or {}).get('version')}, bundle format "
                                + (f"v{b.data['upgraded_from']} (read as v{b.data.get('format_version')})"
                                   if b.data.get("upgraded_from") else f"v{b.data.get('format_version')}")),
    ("clock / unit", lambda b, f, lab: f"{bundle_clock(b.data)} / {bundle_unit(b.data)}"),
    ("run", lambda b, f, lab: f"{b.data.get('created_utc')} to {b.data.get('finished_utc')}, "
                              f"{b.data.get('status')}"),
]


def systems_table(bundles, labels, anonymous):
    rows = []
    for name, get in SYSTEM_FACTS:
        if anonymous and name in ("hostname", "address", "instance ID"):
            continue
        rows.append([name] + [get(b, b.data.get("facts", {}), b.data.get("facts", {}).get("lab"))
                              for b in bundles])
    return table(["fact"] + labels, rows)


def method_table(bundles, labels):
    rows = []
    for b, label in zip(bundles, labels):
        plan = b.data.get("plan", {})
        p = plan.get("profile", {})
        skipped = "; ".join(f"{s.get('name', s.get('mode', s.get('method')))}: {s.get('reason')}"
                            if isinstance(s, dict) else str(s) for s in plan.get("skipped", [])) or "none"
        rows.append([label, ", ".join(plan.get("modes", [])), ", ".join(plan.get("methods", [])),
                     plan.get("workload"),
                     f"{p.get('name')}: {plan.get('rounds')} rounds x {p.get('processes')} workers x "
                     f"{p.get('values')} values (warmups {p.get('warmups')}, min time {p.get('min_time')} s"
                     + (f"; {plan['pyperf_loops']:,} loops, calibrated once" if plan.get("pyperf_loops") else "")
                     + ")",
                     f"{plan.get('kernel_calls'):,} calls per run" if plan.get("kernel_calls") else "",
                     plan.get("seed"), skipped])
    return table(["bundle", "modes", "methods", "workload", "pyperf effort", "kernel method", "seed",
                  "skipped"], rows)


def _result_row(r, with_p=True):
    w = r["ci_high"] - r["ci_low"] if not (_nan(r["ci_high"]) or _nan(r["ci_low"])) else None
    row = [r["group"], r["method"], r["workload"], mode_label(r["mode"]), r["unit"], fmt(r["value"], w),
           fmt_ci(r["ci_low"], r["ci_high"]), fmt_ci(r["boot_low"], r["boot_high"])]
    if with_p:
        row.append(fmt_p(r["p"], r["exact"]))
    return row + [fmt_n(r), r["n_workers"]]


def _n_header(summary):
    return "n (bundles: CI over per-bundle means)" if (summary["ci_over"] == "bundles").any() else "n rounds"


def results_tables(summary):
    def rows(metric):
        s = summary[summary["metric"] == metric]
        return sorted((r for _, r in s.iterrows()),
                      key=lambda r: (r["method"] != "pyperf", r["method"], r["group"], mode_key(r["mode"])))
    head = ["group", "method", "workload", "mode", "unit", "mean", "95% CI (t)", "95% CI (bootstrap)"]
    tail = [_n_header(summary), "n workers/runs"]
    return {
        "gain": table(head + ["p (paired t, regs - noregs)"] + tail,
                      [_result_row(r) for r in rows("regs_gain")]),
        "overhead": table(head + ["p (paired t, mode - off)"] + tail,
                          [_result_row(r) for r in rows("overhead")]),
        "per_call": table(head + tail, [_result_row(r, with_p=False) for r in rows("per_call")]),
    }


def _fig_ci(r):
    """'value [low, high]' of a summary row, or '-' without one."""
    if r is None:
        return "-"
    return f"{fmt(r['value'], r['ci_high'] - r['ci_low'])} {fmt_ci(r['ci_low'], r['ci_high'])}"


def ops_tab(ops):
    """The kernel method at each ops point (bench run --ops): one row per
    group and point, noregs and regs per call and over off, and the regs
    gain, each with its 95% t CI."""
    by = {}
    for _, r in ops.iterrows():
        by.setdefault((r["group"], r["ops"]), {})[(r["mode"], r["metric"])] = r
    rows = []
    # (by irrelevant count, then relevant: the rows of one line of the figure together)
    for (group, point), got in sorted(by.items(), key=lambda kv: (kv[0][0], point_key(kv[0][1])[::-1])):
        any_row = next(iter(got.values()))
        gain = got.get(("regs", "regs_gain"))
        rel, irr = point_key(point)
        rows.append([group, any_row["kernel_release"], rel, irr, any_row["unit"],
                     _fig_ci(got.get(("noregs", "per_call"))), _fig_ci(got.get(("regs", "per_call"))),
                     _fig_ci(got.get(("noregs", "overhead"))), _fig_ci(got.get(("regs", "overhead"))),
                     _fig_ci(gain), fmt_p(gain["p"], gain["exact"]) if gain is not None else "",
                     fmt_n(any_row)])
    return table(["group", "kernel", "relevant ops", "irrelevant ops", "unit", "noregs per call [95% CI]",
                  "regs per call [95% CI]", "noregs over off", "regs over off", "regs gain (regs - noregs)",
                  "p (paired t)", _n_header(ops) if len(ops) else "n rounds"], rows)


def variants_tab(variants):
    return table(["caller path", "group", "method", "unit", "overhead over off", "95% CI (t)",
                  _n_header(variants)],
                 [[r["path"], r["group"], r["method"], r["unit"],
                   fmt(r["value"], r["ci_high"] - r["ci_low"]), fmt_ci(r["ci_low"], r["ci_high"]), fmt_n(r)]
                  for _, r in variants.iterrows()])


def _generic(obj):
    """A recorded check of a shape this version does not know, as a table."""
    if isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        keys = list(dict.fromkeys(k for x in obj for k in x))
        return table(keys, [[_cell(x.get(k)) for k in keys] for x in obj])
    if isinstance(obj, dict):
        return table(["key", "value"], [[k, _cell(v)] for k, v in obj.items()])
    return table(["value"], [[_cell(obj)]])


def _cell(v):
    if isinstance(v, float):
        return fmt(v)
    if isinstance(v, (dict, list)):
        return _kv(v) if isinstance(v, dict) else ", ".join(map(_cell, v))
    return v


def _is_ci(d):
    return isinstance(d, dict) and {"value", "ci_low", "ci_high"} <= set(d)


def _figure_ci(d):
    """'value [low, high]' with the results tables' formatting."""
    w = None if _nan(d["ci_high"]) or _nan(d["ci_low"]) else d["ci_high"] - d["ci_low"]
    return f"{fmt(d['value'], w)} {fmt_ci(d['ci_low'], d['ci_high'])}"


def _yes_no(v):
    return {True: "yes", False: "no"}.get(v, "n/a")


def aa_recorded(aa, unit):
    """checks.aa ({method: {value, ci_low, ci_high, n, significant}}) as a
    table and a plain sentence; None when of another shape."""
    if not (isinstance(aa, dict) and aa and all(_is_ci(v) for v in aa.values())):
        return None
    rows = [[m, v.get("unit", unit), fmt(v["value"], v["ci_high"] - v["ci_low"]),
             fmt_ci(v["ci_low"], v["ci_high"]), v.get("n"),
             {True: "YES: numbers cannot be trusted at this resolution", False: "no"}.get(
                 v.get("significant"), "n/a")] for m, v in aa.items()]
    bad = [m for m, v in aa.items() if v.get("significant")]
    text = ("off-aa - off, paired by round; significant means the 95% CI excludes 0.  "
            + (f"Significant for {', '.join(bad)}: that method's numbers cannot be trusted at this resolution"
               if bad else "No A/A difference is significant: differences between modes smaller than the "
               "CI's half-width cannot be resolved"))
    return table(["method", "unit", "off-aa - off", "95% CI (t)", "n rounds", "significant"], rows), text


def agreement_recorded(ma, unit):
    """checks.method_agreement ([{metric, mode, methods: [A, B], A: ci, B: ci,
    agree}]) as a table; None when of another shape."""
    if not (isinstance(ma, list) and ma and all(
            isinstance(x, dict) and len(x.get("methods") or []) == 2
            and all(_is_ci(x.get(m)) for m in x["methods"]) for x in ma)):
        return None
    rows = [[x.get("metric"), mode_label(x.get("mode")), unit,
             f"{x['methods'][0]}: {_figure_ci(x[x['methods'][0]])}",
             f"{x['methods'][1]}: {_figure_ci(x[x['methods'][1]])}", _yes_no(x.get("agree"))] for x in ma]
    # A reason only for the disagreeing pairs whose reason is known
    # (stats.disagreement_reason); pairs sharing a reason share a sentence.
    why = {}
    for x in ma:
        reason = stats.disagreement_reason(x.get("metric"), x.get("mode"), x["methods"])
        if x.get("agree") is False and reason:
            what = "regs gain" if x.get("metric") == "regs_gain" else f"{x.get('mode')} overhead"
            why.setdefault(reason, []).append(f"{' and '.join(x['methods'])} on the {what}")
    text = "two methods agree when their 95% CIs overlap" + "".join(
        f".  Expected to disagree ({'; '.join(pairs)}): {reason}" for reason, pairs in why.items())
    return table(["metric", "mode", "unit", "method A [95% CI]", "method B [95% CI]", "agree"], rows), text


def probe_recorded(pc, unit):
    """checks.probe_cost ({value, ci_low, ci_high, n, unit}) as a table."""
    if not _is_ci(pc):
        return None
    return (table(["figure", "unit", "mean [95% CI]", "n rounds"],
                  [["probe cost: off-probe - off (pyperf, paired by round)", unit, _figure_ci(pc), pc.get("n")]]),
            "what attaching the bpf method's probes adds to every call: pyperf's loop with the probes on and "
            "the tracer off (off-probe), against off (probes off, tracer off), paired by round.  The probes "
            "fire in every mode alike, so their cost cancels in the bpf method's overheads (mode - off), "
            "not in its per-call figures")


STEP_HEADER = ["method", "workload", "mode", "unit", "step (split - rest)", "threshold (set by)", "|step| / se",
               "cells of the split", "where the level changed", "verdict"]


def _step_row(r):
    by = {"spread": "within-cell spread", "level": f"{steps.LEVEL_FRACTION:.1%} of level",
          "unit": f"{steps.UNIT_FLOOR:g} unit"}.get(r.get("threshold_by"), "n/a")
    verdict = {True: "FAIL: a step; this mode's figures cannot be trusted at that resolution",
               False: "pass", None: "n/a (too few cells or samples)"}[r.get("flagged")]
    return [r.get("method"), r.get("workload"), mode_label(r.get("mode")), r.get("unit"),
            steps._num(r.get("step")), f"{steps._num(r.get('threshold'))} ({by})", steps._num(r.get("z")),
            steps.cells_text(r), (steps.edges_text(r) if r.get("flagged") else "") or "-", verdict]


def _is_step_rows(rec):
    return isinstance(rec, list) and rec and all(
        isinstance(x, dict) and {"method", "mode", "step", "threshold", "flagged"} <= set(x) for x in rec)


def steps_recorded(rec, unit):
    """checks.steps (analysis/steps.py: one row per method and mode) as a
    table and a sentence; None when of another shape."""
    if not _is_step_rows(rec):
        return None
    bad = [f"{x['method']} {x['mode']}" for x in rec if x.get("flagged")]
    text = ("each mode's cells in run order, every contiguous run of them against the rest; a step is flagged "
            "above max(t x se, 0.5% of the level, 1 unit).  "
            + (f"Flagged: {', '.join(bad)}: those figures cannot be trusted at that resolution" if bad else
               "No step is flagged"))
    return table(STEP_HEADER, [_step_row(x) for x in rec]), text


def steps_computed(bundles, labels):
    """The step check computed here from every bundle's cells: a table (one
    row per bundle, method and mode) and the sentences for the caveats."""
    rows, notes = [], []
    for b, label in zip(bundles, labels):
        got = steps.step_check(b)
        rows += [[label, *_step_row(r)] for r in got]
        notes += [f"{label}: {line}." for kind, line in steps.check_lines(got) if kind == "fail"]
    return (table(["bundle", *STEP_HEADER], rows) if rows else None), notes


def checks_section(bundles, labels, aa_computed):
    """The checks bench run recorded (checks.aa, checks.method_agreement,
    checks.probe_cost) as tables when of the shape bench run writes, as a
    generic table otherwise, and the A/A computed here from the cells."""
    out = []
    for b, label in zip(bundles, labels):
        checks = b.data.get("checks") or {}
        unit = bundle_unit(b.data)
        for key, name, render in (("aa", "A/A check", aa_recorded),
                                  ("steps", "step check", steps_recorded),
                                  ("method_agreement", "method agreement check", agreement_recorded),
                                  ("probe_cost", "bpf probe cost", probe_recorded)):
            rec = checks.get(key)
            if rec is None:
                # (bundles from before the step check: it is computed below from their cells)
                if key not in ("probe_cost", "steps"):
                    out.append({"bundle": label, "name": f"{name} (recorded by bench run)",
                                "text": f"no {name} recorded", "table": None})
                continue
            shown = render(rec, unit)
            out.append({"bundle": label, "name": f"{name} (recorded by bench run)",
                        "text": shown[1] if shown else None, "table": shown[0] if shown else _generic(rec)})
    computed = None
    if len(aa_computed):
        computed = table(["group", "method", "workload", "pair", "difference", "95% CI (t)", "p (paired t)",
                          "n rounds", "verdict"],
                         [[r["group"], r["method"], r["workload"], r["pair"],
                           fmt(r["value"], r["ci_high"] - r["ci_low"]), fmt_ci(r["ci_low"], r["ci_high"]),
                           fmt_p(r["p"], r["exact"]), r["n"],
                           {True: "pass (CI includes 0)",
                            False: "FAIL (CI excludes 0): numbers cannot be trusted at this resolution",
                            None: "n/a (n < 2)"}[r["ok"]]] for _, r in aa_computed.iterrows()])
    return out, computed


def _config_diff(bundles, labels):
    """What the bundles can say about kernel config differences between
    bundles of different kernels or variants: the recorded lines (the
    ftrace-related ones bench records) that differ, how many lines each
    bundle carries, and where the rest is, since it is not in the bundles."""
    notes = []
    seen = {}
    for b, label in zip(bundles, labels):
        f = b.data.get("facts", {})
        key = (f.get("kernel_release"), f.get("kernel_version"), f.get("ftrace_variant"))
        seen.setdefault(key, (label, f.get("kernel_config") or {}, f.get("kernel_config_source")))
    items = list(seen.items())
    for (k1, (l1, c1, s1)), (k2, (l2, c2, s2)) in zip(items, items[1:]):
        diff = sorted(k for k in set(c1) | set(c2) if c1.get(k) != c2.get(k))
        shown = ", ".join(f"{k}: {c1.get(k, 'unset')} -> {c2.get(k, 'unset')}" for k in diff[:40])
        more = f" and {len(diff) - 40} more" if len(diff) > 40 else ""
        what = (f"in {len(diff)} of the recorded ftrace-related lines: {shown}{more}." if diff else
                "in none of the recorded ftrace-related lines.")
        notes.append(f"Kernel config differs between {l1} ({k1[0]}, {k1[2]}) and {l2} ({k2[0]}, {k2[2]}) "
                     f"{what}  The bundles carry only those lines ({len(c1)} from {s1 or 'an unrecorded source'}"
                     f" and {len(c2)} from {s2 or 'an unrecorded source'}); a difference outside them is not "
                     "visible here.  For the lab kernels built by `bench kernel build`, config.diff in the "
                     "kernel cache (~/.cache/ftrace-regs-bench/kernels/*/) holds the full diff; for other "
                     "kernels compare the full .config files (a fallback kernel cannot have pointer "
                     "authentication for the kernel, ARM64_PTR_AUTH_KERNEL, which Debian's kernel enables).")
    return notes


def confounds(bundles, labels, summary, aa_computed, cell_notes, pooled, step_notes=()):
    notes = []
    for b, label in zip(bundles, labels):
        lab = b.data.get("facts", {}).get("lab")
        if lab and lab.get("icount"):
            notes.append(f"{label}: emulated under QEMU TCG with -icount shift=0: every figure is a count "
                         "of guest instructions (the guest clock advances 1 ns per instruction), labelled "
                         "instructions, repeatable and independent of host load, not a time and not a cycle "
                         "count on any arm64 CPU.")
        elif lab and lab.get("accel") == "tcg":
            notes.append(f"{label}: emulated under QEMU TCG: wall-clock time of an emulator on the host, "
                         "noisy under load; it says nothing about what arm64 hardware costs.")
        elif lab:
            notes.append(f"{label}: a virtual machine (QEMU {lab.get('accel')}): hardware timings through a "
                         "hypervisor.")
        if not b.data.get("complete"):
            notes.append(f"{label}: the bundle is incomplete (status {b.data.get('status')!r}): figures "
                         "cover only the cells that completed.")
        bad = [c.get("id") for c in b.data.get("cells", []) if c.get("status") != "ok"]
        if bad:
            notes.append(f"{label}: {len(bad)} cell(s) failed and are left out: {', '.join(map(str, bad))}.")
        for n in b.data.get("notes", []):
            notes.append(f"{label}: {n}")
    notes += _config_diff(bundles, labels)
    if len(aa_computed):
        for _, r in aa_computed[aa_computed["ok"] == False].iterrows():  # noqa: E712
            notes.append(f"A/A check FAILED for {r['group']} {r['method']} ({r['pair']}): two cells of the "
                         f"same mode differ by {fmt(r['value'])} [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]; "
                         "differences of that size between modes are not trustworthy there.")
    notes += step_notes
    for b, label in zip(bundles, labels):
        aa = (b.data.get("checks") or {}).get("aa")
        if isinstance(aa, dict) and aa.get("ok") is False:
            notes.append(f"{label}: the A/A check recorded by bench run failed: {_kv(aa)}")
        elif isinstance(aa, dict):
            for method, v in aa.items():
                if isinstance(v, dict) and v.get("significant") and _is_ci(v):
                    notes.append(f"{label}: the A/A difference recorded by bench run is significant for "
                                 f"{method} ({_figure_ci(v)}): {method}'s numbers cannot be trusted at this "
                                 "resolution.")
    small = summary[(summary["n"] < 2)]
    if len(small):
        notes.append("Figures from fewer than two rounds have no interval (n/a).")
    if (summary["n"] <= 5).any():
        notes.append("With 5 rounds or fewer the bootstrap interval cannot reach beyond the observed "
                     "range and is too narrow; the Student-t interval is the one to quote.")
    if pooled:
        notes.append(pooled)
    notes += cell_notes
    return notes


def _lab_up(lab):
    args = ["bench", "lab", "up", "--kernel", lab.get("kernel") or "debian-6.1"]
    if lab.get("icount"):
        args.append("--icount")
    elif lab.get("accel"):
        args += ["--accel", lab["accel"]]
    if lab.get("smp") and lab.get("smp") != (2 if lab.get("accel") == "kvm" else 1):
        args += ["--smp", str(lab["smp"])]
    if lab.get("memory_mb") and lab.get("memory_mb") != 2048:
        args += ["--memory", str(lab["memory_mb"])]
    return shlex.join(args)


def _run_command(b):
    """The recorded command, or one rebuilt from the plan when none was."""
    if b.data.get("command"):
        return b.data["command"]
    plan = b.data.get("plan", {})
    args = ["bench", "run", "--host", b.data["host"].get("name") or "HOST",
            "--profile", (plan.get("profile") or {}).get("name", "standard"),
            "--modes", ",".join(plan.get("modes", [])), "--methods", ",".join(plan.get("methods", []))]
    if plan.get("seed") is not None:
        args += ["--seed", str(plan["seed"])]
    return shlex.join(args)


def reproduce(bundles, labels, report_args):
    items = []
    for b, label in zip(bundles, labels):
        lab = b.data.get("facts", {}).get("lab")
        cmds = ([_lab_up(lab)] if lab else []) + [_run_command(b)]
        items.append({"bundle": label, "commands": cmds})
    return items, "bench report " + " ".join(report_args)


# -- figures ---------------------------------------------------------------------

HEADLINE_CAPTION = (
    "Overhead over off of a traced call by ftrace entry path (the kernel method where a bundle has it), with "
    "95% Student-t CIs and the regs gain (ftrace_regs_caller - ftrace_caller, paired by round) marked; one "
    "panel per unit.")


def _figure_entry(fig_dir, name, title, caption, fig):
    svg, png = plots.save(fig, fig_dir, name)
    return {"name": name, "title": title, "caption": caption,
            "svg": f"figures/{svg.name}", "png": f"figures/{png.name}",
            "data_uri": "data:image/svg+xml;base64," + base64.b64encode(svg.read_bytes()).decode()}


def headline_figure(summary, variants, out_dir):
    """The report's first figure (plots.headline_figure), or None when no
    bundle has an entry-path row."""
    if not len(variants):
        return None
    return _figure_entry(out_dir / "figures", "headline", "Per-call cost by entry path", HEADLINE_CAPTION,
                         plots.headline_figure(summary))


def figures(bundles, labels, summary, variants, out_dir, ops=None):
    figs = []
    fig_dir = out_dir / "figures"

    def add(name, title, caption, fig):
        figs.append(_figure_entry(fig_dir, name, title, caption, fig))

    add("overhead", "Overhead per call by mode",
        "Mean over rounds of (mode - off in the same round), one panel per method and mode, with the 95% "
        "Student-t CI over rounds (n in the results table).", plots.overhead_figure(summary))
    add("regs-gain", "Regs gain per kernel and host",
        "Mean over rounds of (regs - noregs in the same round), with the 95% Student-t CI; instruction "
        "counts (icount) and nanoseconds are drawn on separate panels.", plots.regs_gain_figure(summary))
    add("variants", "Kernel-variant comparison",
        "Overhead over off of the suite module's ftrace_ops, by the entry path it takes: mcount fallback, "
        "ftrace_caller and ftrace_regs_caller of the regs era, the args/call-ops ftrace_caller.  Paths not "
        "measured in these bundles are absent.", plots.variant_figure(variants))
    if ops is not None and len(ops):
        add("ops", "Cost per call against the ops a call carries (kernel method)",
            "The module's tracee with R ops attached to it (x axis) and I attached to a function never "
            "called (solid: none; dashed: the run's other counts), without SAVE_REGS (noregs) and with "
            "(regs): per-call cost (left) and the regs gain, regs - noregs paired by round (right), one row "
            "per group, each point with its 95% Student-t CI over rounds (n in the ops table).",
            plots.ops_figure(ops))
    for i, (b, label) in enumerate(zip(bundles, labels)):
        add(f"distribution-{i + 1}", f"Distributions: {label}",
            "Every raw value (pyperf: one value = mean per call over a calibrated loop; kernel: one module "
            "run = total time / calls), one row per round, in the bundle's unit ("
            + bundle_unit(b.data) + ").", plots.distribution_figure(b, label))
        hists = plots.bpf_histograms(b)
        if hists:
            unit = bundle_unit(b.data)
            add(f"bpf-histograms-{i + 1}", f"BPF histograms: {label}",
                "The bpf method's two in-kernel histograms of each getppid call's time from sys_enter to "
                "sys_exit (probe included), summed over runs and rounds per mode, as the share of calls per "
                "bucket: log2 buckets (bcc's bpf_log2l: bucket s holds [2^(s-1), 2^s)) and linear buckets "
                "(calls below or above the linear range are counted in the legend)"
                + ("; under icount the buckets count guest instructions." if unit == "instructions"
                   else "."),
                plots.histogram_figure(hists, label, unit))
    return figs


# -- entry point -------------------------------------------------------------------

def build(paths, out_dir, *, anonymize_hosts=False, group_by=("bundle",), title=None, report_args=None):
    """Write out_dir/report.md, out_dir/report.html and out_dir/figures/.
    Returns the two report paths.  group_by=("bundle",) reports each bundle
    on its own; other keys pool bundles (refused when their setup differs in
    a key not grouped by)."""
    out_dir = pathlib.Path(out_dir)
    bundles = load_bundles(paths)
    names = host_names(bundles) if anonymize_hosts else []
    if anonymize_hosts:
        bundles = anonymize(bundles)
    labels = host_labels(bundles, bundle_labels(bundles, anonymize_hosts))
    frame, cell_notes = cells_frame(bundles, labels)
    summary = summarize_cells(frame, group_by)
    ops = ops_summary(frame, group_by)
    variants = variant_table(summary)
    # The A/A is a check of one run: per bundle, pooled or not.
    aa_computed = aa_from_cells(frame)
    pooled = None
    if list(group_by) != ["bundle"]:
        checked = [k for k in SETUP_KEYS if k not in group_by]
        pooled = ("Bundles are pooled by " + (", ".join(group_by) or "nothing (all in one group)")
                  + ": within each group these keys were checked to be equal: " + ", ".join(checked)
                  + ".  With two or more bundles in a group the bundle (one boot's run) is the replication "
                  "unit: each figure's CI is Student t over the per-bundle means (each bundle's mean over its "
                  "rounds, differences paired within a round), n = bundles, because rounds of one boot vary "
                  "less than boots do; a group of one bundle keeps its rounds as the unit.")
    prove_writable(out_dir, "the report")
    headline_fig = headline_figure(summary, variants, out_dir)
    figs = figures(bundles, labels, summary, variants, out_dir, ops)
    # Several hosts, each bundle on its own: every metric side by side by host.
    by_host = several_hosts(bundles) and list(group_by) == ["bundle"]
    host_figs = host_figures(summary, out_dir) if by_host else []
    figs = host_figs + figs
    # A figure of an earlier report in the same place (say, of a bundle no
    # longer reported) would be left to mislead: figures/ is the report's own.
    current = {f[k] for f in [headline_fig, *figs] if f for k in ("svg", "png")}
    for old in (out_dir / "figures").glob("*"):
        if old.suffix in (".svg", ".png") and f"figures/{old.name}" not in current:
            old.unlink()
    checks, aa_table = checks_section(bundles, labels, aa_computed)
    # The step check, like the A/A, is a check of one run: per bundle, pooled or not.
    step_table, step_notes = steps_computed(bundles, labels)
    repro, report_cmd = reproduce(bundles, labels, report_args or
                                  [*(shlex.quote(str(p)) for p in paths), "--out", shlex.quote(str(out_dir))])
    if anonymize_hosts:
        report_cmd = scrub(report_cmd, names)
    emulated = [b.data.get("facts", {}).get("lab") for b in bundles]
    ctx = {
        "title": title or "ftrace per-call overhead: " + ", ".join(labels),
        "sections": SECTIONS,
        "bundles": [{"label": l, "path": "" if anonymize_hosts else os.path.relpath(b.path / "bundle.json", out_dir),
                     "created": b.data.get("created_utc"), "status": b.data.get("status"),
                     "kernel": b.data.get("facts", {}).get("kernel_release"),
                     "variant": b.data.get("facts", {}).get("ftrace_variant"),
                     "emulation": _lab_text(b.data.get("facts", {}).get("lab"))}
                    for b, l in zip(bundles, labels)],
        "all_emulated": all(emulated),
        "any_emulated": any(emulated),
        "any_icount": any(lab and lab.get("icount") for lab in emulated),
        "headline": _headline(summary),
        "headline_figure": headline_fig,
        "systems": systems_table(bundles, labels, anonymize_hosts),
        "method": method_table(bundles, labels),
        "ci_texts": sorted({t for t in (b.data.get("stats_method") for b in bundles) if t})
                    + [stats.GAIN_TEXT, stats.BOOTSTRAP_TEXT, stats.PAIRED_T_TEXT],
        "grouping": pooled or "Each bundle is reported on its own (no pooling across bundles).",
        "results": results_tables(summary),
        "by_host": by_host_table(summary) if by_host else None,
        "variants": variants_tab(variants),
        "ops": ops_tab(ops),
        "figures": figs,
        "checks": checks,
        "aa_table": aa_table,
        "step_table": step_table,
        "step_text": steps.METHOD_TEXT,
        "confounds": confounds(bundles, labels, summary, aa_computed, cell_notes, pooled, step_notes),
        "reproduce": repro,
        "report_command": report_cmd,
        "anonymized": anonymize_hosts,
    }
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), keep_trailing_newline=True,
                             autoescape=jinja2.select_autoescape(["html.j2"]), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["mdcell"] = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    md, html = out_dir / "report.md", out_dir / "report.html"
    try:
        md.write_text(env.get_template("report.md.j2").render(**ctx))
        html.write_text(env.get_template("report.html.j2").render(**ctx))
    except OSError as e:
        raise OutputError(f"cannot write the report to {out_dir}: {e.strerror or e}",
                          hint="choose a writable --out")
    return md, html


def _headline(summary):
    """One sentence per regs gain: the figure a reader will quote."""
    out = []
    for _, r in summary[summary["metric"] == "regs_gain"].iterrows():
        w = r["ci_high"] - r["ci_low"]
        sig = ("no interval (fewer than two rounds)" if _nan(r["ci_low"]) else
               "exact (every replication gave the same figure)" if r["exact"] else
               "the CI excludes 0" if stats.excludes_zero(r) else "the CI includes 0: not resolved")
        n = (f"{r['n_bundles']} bundles ({r['n_rounds']} rounds)" if r["ci_over"] == "bundles"
             else f"{r['n']} rounds")
        out.append(f"{r['group']} ({r['kernel_release']}, {r['method']}): regs gain "
                   f"{fmt(r['value'], w)} {r['unit']} per call, 95% CI {fmt_ci(r['ci_low'], r['ci_high'])}, "
                   f"n = {n}; {sig}.")
    return out
