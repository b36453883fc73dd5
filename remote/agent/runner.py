"""The standalone runner: a whole plan on this machine, without a controller.

In a LAVA job the dispatcher boots the device and runs a test shell on it;
nothing drives the device over SSH.  So this runs where the agent runs, on
the device's own python3 (>= 3.9, standard library only: no pandas, scipy or
matplotlib), with the agent and pyperf shipped next to it (the same payload
as `bench run` ships: remote/agent_client.py payload()).

It starts the agent (agent.py) as its child and talks the agent's own
protocol over pipes, so the lock, the snapshot before the first write, the
restore on every exit (bye, EOF when this process dies, the lease, signals,
the guardian after kill -9) and the ops are the agent's, unchanged.  It does
what bench/run.py does between the agent and the bundle, cell by cell, with
the same checks: tracefs before and after each cell against the mode's file
(remote/protocol/cellcheck.py, the controller's words), the pid floor before
round 0 and each pyperf cell's workload pid.  The plan is the controller's
(bench lava render: bench/plan.py's make_plan, written as JSON).

Output, in --out: records.json (facts, capabilities, plan, cells with their
tracefs proofs, restore) and the raw file of each cell, as a bundle has them;
figures.txt, one "NAME VALUE UNIT" line per preliminary figure; and on
stdout, per cell a progress line, at the end the preliminary figures and the
whole as one tar.gz in base64 between FTRACE-REGS-BENCH-BUNDLE-BEGIN/END
(bench/lava/bundle.py rebuilds the bundle from it; the controller's analysis
recomputes every figure from the raw files).

The preliminary figures are the device's own estimate, labelled so: the mean
over rounds of each cell's mean with a Student t interval (the t quantile
from a table), per mode, overhead (mode minus off in the same round) and
regs gain (regs minus noregs in the same round).

Exit: bench run's codes (the README's table): 0 complete, 2 a plan file
it cannot read (said in one line, nothing touched), 6 the kernel
refuses, 7 tracing busy or the target locked, 10 a cell failed or was not
what it claimed, 1 a bug, 130 Ctrl-C, 143 SIGTERM; the bundle is printed
whatever happened.
"""
import argparse
import base64
import hashlib
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:  # on the target: shipped next to this file as the package `protocol`
    from protocol import modes as modes_mod
    from protocol.cellcheck import kernel_problem, mode_problem
    from protocol.kmod import TRACEE
    from protocol.precondition import SMALL_INT_MAX
except ImportError:  # in the source tree, imported as remote.agent.runner
    from remote.protocol import modes as modes_mod
    from remote.protocol.cellcheck import kernel_problem, mode_problem
    from remote.protocol.kmod import TRACEE
    from remote.protocol.precondition import SMALL_INT_MAX

BEGIN = "FTRACE-REGS-BENCH-BUNDLE-BEGIN"
END = "FTRACE-REGS-BENCH-BUNDLE-END"
CHUNK = "FRB:"
CHUNK_CHARS = 72  # short lines: a serial console keeps them whole
FIGURE = "FTRACE-REGS-BENCH-FIGURE"
# The check modes measure the baseline's tracefs state (bench/plan.py CHECK_MODES).
CHECK_MODES = ("off-aa", "off-probe")
# The kernel method's calibration (analysis/methods/kernel.py calibrate_calls).
MAX_CALLS = 10**8
# The agent restores when it hears nothing for this long: we are its parent
# on the same machine (our death closes its stdin at once), so the lease only
# covers a runner that hangs; requests between cells renew it.
LEASE_S = 1800.0
# Student t, two-sided 95%, by degrees of freedom (stdlib has no t quantile).
# Every df to 30 (a run of up to 31 rounds gets its own row); past 30 the
# row below is taken, a slightly wider interval, never a narrower one.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
       9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
       17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064,
       25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000,
       120: 1.980}


# bench run's exit codes by kind (bench/cli.py EXIT_CODES, the README's
# table), for the kinds the agent reports; any other failure is 10.
EXIT_CODES = {"usage": 2, "no-root": 5, "unsupported": 6, "refused": 6, "invalid": 6, "tracefs": 6,
              "module-refused": 6, "module-build": 6, "busy": 7, "target-locked": 7,
              "module-busy": 7}


class RunnerError(Exception):
    def __init__(self, message, kind="measure"):
        super().__init__(message)
        self.kind = kind


class Terminated(Exception):
    """SIGTERM (a LAVA timeout, a test shell stopped): the run ends as after
    Ctrl-C, through main()'s finally: bye (the agent restores), the bundle."""


def say(text):
    """One progress line on stdout (the LAVA log), at once."""
    sys.stdout.write("ftrace-regs-bench: %s\n" % text)
    sys.stdout.flush()


# -- the agent, as a child ------------------------------------------------------

class Agent:
    """agent.py in a process of its own, spoken to over pipes."""

    def __init__(self, workdir, lease):
        argv = [sys.executable, os.path.join(HERE, "agent.py"), "--workdir", workdir,
                "--lease", str(lease), "--lock-holder", "lava-runner pid %d" % os.getpid()]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.ids = 0
        self.answers = {}
        self.cond = threading.Condition()
        self.eof = False
        threading.Thread(target=self._read, daemon=True).start()
        ready = self._wait(lambda: self.answers.pop("event:ready", None)
                           or self.answers.get("event:fatal"), 120)
        if ready is None or ready.get("event") == "fatal":
            raise RunnerError("the agent did not start: %s" % (ready or {}).get("error", "no answer"),
                              kind=(ready or {}).get("kind") or "agent")
        self.ready = ready

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            with self.cond:
                if "event" in msg:
                    if msg["event"] == "progress" and msg.get("text"):
                        for line in msg["text"].strip().splitlines()[-3:]:
                            say("  pyperf: " + line)
                    self.answers["event:" + msg["event"]] = msg
                else:
                    self.answers[msg.get("id")] = msg
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def _wait(self, get, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = get()
                if got is not None or self.eof or time.monotonic() > deadline:
                    return got
                self.cond.wait(0.5)

    def request(self, op, timeout=600, **kw):
        self.ids += 1
        rid = self.ids
        self.proc.stdin.write((json.dumps(dict(kw, id=rid, op=op)) + "\n").encode())
        self.proc.stdin.flush()
        msg = self._wait(lambda: self.answers.pop(rid, None), timeout)
        if msg is None:
            raise RunnerError("the agent %s during %r" % ("went away" if self.eof else
                                                          "did not answer in %d s" % timeout, op),
                              kind="agent")
        if not msg.get("ok"):
            raise RunnerError(msg.get("error"), kind=msg.get("kind") or "agent")
        return msg.get("result")

    def close(self, abort=False):
        """bye: the agent restores, releases the lock and exits; its problems.
        abort=True first stops a measurement still running (as bench run's
        client does): else the bye waits behind it, up to its 2 h budget."""
        problems = []
        if self.proc.poll() is None and not self.eof:
            try:
                if abort:
                    self.proc.stdin.write(b'{"id": "abort", "op": "abort"}\n')
                    self.proc.stdin.flush()
                problems = self.request("bye", timeout=300).get("problems", [])
            except (RunnerError, OSError) as e:
                problems = ["closing the agent: %s" % e]
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return problems


# -- the run --------------------------------------------------------------------

def tracefs_mode(mode):
    return modes_mod.BASELINE if mode in CHECK_MODES else mode


def check(problem):
    if problem:
        raise RunnerError(problem, kind="measure")


def write_raw(out, rel, data):
    path = os.path.join(out, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return rel


def measure_pyperf(agent, run, cell):
    tmode = tracefs_mode(cell["mode"])
    before = agent.request("set_mode", mode=tmode, function=run["function"])
    check(mode_problem(tmode, run["function"], before))
    # The loop count is calibrated once per run, as bench run does
    # (analysis/methods/pyperf.py): by pyperf in the first pyperf cell, then
    # given to every later cell.
    loops = run["plan"].get("pyperf_loops")
    args = run["plan"]["pyperf_args"] + (["--loops=%d" % loops] if loops else [])
    m = agent.request("measure", cell=cell["id"], pyperf_args=args,
                      bpf_probe=cell["mode"] == "off-probe", timeout=7200)
    after = agent.request("verify", function=run["function"])
    check(mode_problem(tmode, run["function"], after))
    pid = m.get("workload_pid")
    if pid is not None and pid <= SMALL_INT_MAX:
        raise RunnerError("the workload's parent got pid %d (<= %d): its workers' getppid() returns "
                          "a cached int, so this cell would not compare" % (pid, SMALL_INT_MAX))
    with open(m["file"], "rb") as f:
        rel = write_raw(run["out"], "pyperf/%s.json" % cell["id"], f.read())
    if not loops:
        run["plan"]["pyperf_loops"] = loops = pyperf_loops(os.path.join(run["out"], rel))
        run["plan"]["pyperf_loops_from"] = cell["id"]
    fields = dict(file=rel, elapsed_s=round(m["elapsed_s"], 2), workload_pid=pid, loops=loops,
                  tracefs={"before": before, "after": after})
    if m.get("bpf_probe"):
        fields["bpf_probe"] = m["bpf_probe"]
    return fields


def pyperf_loops(path):
    """The loop count pyperf's workers timed in a raw file (pyperf's JSON:
    a run's own metadata, else the file's common metadata)."""
    with open(path) as f:
        data = json.load(f)
    common = data.get("metadata", {})
    counts = {r.get("metadata", {}).get("loops", common.get("loops"))
              for b in data["benchmarks"] for r in b["runs"] if r.get("values")}
    if len(counts) != 1 or not isinstance(next(iter(counts)), int):
        raise RunnerError("%s: pyperf's workers timed %r loops, not one count" % (path, sorted(map(str, counts))),
                          kind="measure")
    return counts.pop()


def kernel_settings(mode):
    settings = modes_mod.get(mode).kernel
    if settings is None:
        raise RunnerError("mode %r has no kernel-method cells" % mode, kind="bench")
    return dict(settings)


def measure_kernel(agent, run, cell):
    calls = run["plan"]["kernel_calls"]
    p = run["plan"]["profile"]
    tmode = tracefs_mode(cell["mode"])
    settings = kernel_settings(tmode)
    agent.request("set_mode", mode="off", function=run["function"])
    before = agent.request("kmod_hold", **settings)
    check(kernel_problem(tmode, before, settings))
    k = agent.request("kmod_time", calls=calls, reps=p["processes"] * p["values"], timeout=7200,
                      **settings)
    after = agent.request("verify", function=TRACEE)
    agent.request("kmod_release")
    check(kernel_problem(tmode, after, settings))
    rel = write_raw(run["out"], "kernel/%s.json" % cell["id"],
                    json.dumps({"cell": cell["id"], "runs": k["runs"]}, indent=1).encode())
    return dict(file=rel, elapsed_s=round(k["elapsed_s"], 2), calls=calls,
                tracefs={"before": before, "after": after})


def measure_bpf(agent, run, cell):
    tmode = tracefs_mode(cell["mode"])
    before = agent.request("set_mode", mode=tmode, function=run["function"])
    check(mode_problem(tmode, run["function"], before))
    calls, reps = run["plan"]["bpf_calls"], run["plan"]["profile"]["processes"]
    b = agent.request("bpf_measure", calls=calls, reps=reps, timeout=7200)
    after = agent.request("verify", function=run["function"])
    check(mode_problem(tmode, run["function"], after))
    rel = write_raw(run["out"], "bpf/%s.json" % cell["id"], json.dumps(
        {"cell": cell["id"], "calls": calls, "runs": b["runs"]}, indent=1).encode())
    return dict(file=rel, elapsed_s=round(b["elapsed_s"], 2), calls=calls,
                counts=[r["count"] for r in b["runs"]], tracefs={"before": before, "after": after})


MEASURE = {"pyperf": measure_pyperf, "kernel": measure_kernel, "bpf": measure_bpf}


def read_means(out, method, rel):
    """A cell's per-worker (pyperf) or per-run means in the clock's ns: ns of
    the virtual clock under icount, which are instructions (run["unit"])."""
    with open(os.path.join(out, rel)) as f:
        data = json.load(f)
    if method == "pyperf":
        means = []
        for b in data["benchmarks"]:
            for r in b["runs"]:
                if r.get("values"):
                    means.append(sum(r["values"]) / len(r["values"]) * 1e9)
        return means
    if method == "kernel":
        return [r["total_ns"] / r["calls"] for r in data["runs"]]
    return [r["sum_ns"] / r["count"] for r in data["runs"]]


def calibrate_calls(agent, min_time, save_regs):
    """As the controller does (analysis/methods/kernel.py): double from 1000
    until one run with one ops lasts min_time, or MAX_CALLS."""
    calls = 1000
    while True:
        r = agent.request("kmod_time", calls=calls, save_regs=save_regs, relevant=1, reps=1)["runs"][0]
        if r["total_ns"] >= min_time * 1e9 or calls >= MAX_CALLS:
            return calls
        calls *= 2


def prepare(agent, run, rec, kmod):
    """Module (when the plan needs it), the kernel method's calls, bpf's program."""
    plan = run["plan"]
    if plan.get("needs_module"):
        prebuilt = None
        if kmod:
            prebuilt = "kmod/ftrace_regs_bench.ko"
            shutil.copy(kmod, os.path.join(run["workdir"], prebuilt))
            say("loading the module shipped with the job")
        else:
            say("building the module against this kernel's headers")
        prep = agent.request("kmod_prepare", prebuilt=prebuilt, timeout=3600)
        info = agent.request("kmod_load")
        rec["module"] = {"built_on_target": prep.get("built"), "prebuilt": bool(prebuilt),
                         "build_seconds": prep.get("build_seconds"), "info": info,
                         "leftover_removed": prep.get("leftover_removed")}
        if prep.get("leftover_removed"):
            rec["notes"].append("a ftrace_regs_bench module left loaded by an earlier run was "
                                "found and removed before loading ours")
    if "bpf" in plan["methods"]:
        rec["bpf"] = agent.request("bpf_start", syscall=plan["workload"], timeout=3600)
    if "kernel" in plan["methods"] and plan.get("kernel_calls") is None:
        plan["kernel_calls"] = calibrate_calls(agent, plan["profile"]["min_time"],
                                               plan.get("kernel_save_regs", False))
        say("kernel method: %d calls per timing" % plan["kernel_calls"])


def run_plan(agent, run, rec, kmod):
    plan = run["plan"]
    rec["facts"] = agent.request("facts", timeout=300)
    pre = rec["preflight"] = agent.request("preflight", modes=plan["modes"], force=False,
                                           syscall=plan["workload"], timeout=300)
    rec["caps"] = agent.request("check", timeout=300)
    run["function"] = pre["function"]
    say("kernel %s on %s, traced function %s" % (rec["facts"].get("kernel_release"),
                                                 rec["facts"].get("arch"), pre["function"]))
    snap = agent.request("begin")["snapshot"]
    rec["tracefs_before"] = snap["knobs"]
    rec["noise"] = {"tuned": False, "warnings": []}
    rec["precondition"] = agent.request("precondition", timeout=1200)
    prepare(agent, run, rec, kmod)
    cells = run["cells"]
    for i, cell in enumerate(cells, 1):
        t0 = time.monotonic()
        record = {"id": cell["id"], "round": cell["round"], "mode": cell["mode"],
                  "workload": cell["workload"], "method": cell["method"], "status": "ok"}
        record.update(MEASURE[cell["method"]](agent, run, cell))
        means = read_means(run["out"], cell["method"], record["file"])
        if not means:
            raise RunnerError("cell %s gave no values (%s)" % (cell["id"], record["file"]))
        record.update(worker_means_ns=means, n_workers=len(means))
        rec["cells"].append(record)
        write_records(run["out"], rec)
        # the clock's unit: instructions under icount, where nothing may call them ns
        say("cell %d/%d %s: %.1f %s per call, %.0f s"
            % (i, len(cells), cell["id"], sum(means) / len(means), run["unit"], time.monotonic() - t0))
    agent.request("set_mode", mode="off", function=run["function"])
    restored = agent.request("restore")
    rec["tracefs_after"] = restored["after"]
    return restored["problems"]


def write_records(out, rec):
    tmp = os.path.join(out, "records.json.tmp")
    with open(tmp, "w") as f:
        json.dump(rec, f, indent=1)
    os.replace(tmp, os.path.join(out, "records.json"))


# -- the device's preliminary figures -------------------------------------------

def t95(df):
    best = None
    for k in sorted(T95):
        if k <= df:
            best = T95[k]
    return best if df >= 1 else float("nan")


def estimate(values):
    """(mean, ci_low, ci_high, n): Student t over the values."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan"), float("nan"), n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t95(n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half, n


def figures(cells, unit):
    """[(name, mean, low, high, n, unit)]: per method, per mode the per-call
    figure, its overhead against off in the same round, and the regs gain."""
    by = {}
    for c in cells:
        if c.get("status") == "ok" and c.get("worker_means_ns"):
            means = c["worker_means_ns"]
            by.setdefault(c["method"], {}).setdefault(c["mode"], {})[c["round"]] = \
                sum(means) / len(means)
    out = []
    for method, modes in sorted(by.items()):
        base = modes.get(modes_mod.BASELINE, {})
        for mode, rounds in sorted(modes.items()):
            out.append(("%s-%s-per-call" % (method, mode),) + estimate(list(rounds.values())) + (unit,))
            if mode != modes_mod.BASELINE:
                d = [v - base[r] for r, v in rounds.items() if r in base]
                if d:
                    out.append(("%s-%s-overhead" % (method, mode),) + estimate(d) + (unit,))
        if "regs" in modes and "noregs" in modes:
            d = [v - modes["noregs"][r] for r, v in modes["regs"].items() if r in modes["noregs"]]
            if d:
                out.append(("%s-regs-gain" % method,) + estimate(d) + (unit,))
    return out


def report_figures(out, cells, unit):
    lines = []
    for name, mean, low, high, n, u in figures(cells, unit):
        say("%s %s %.3f %s [%.3f, %.3f] n=%d (the device's preliminary figure: mean over rounds, "
            "t interval; the controller's analysis is the authority)"
            % (FIGURE, name, mean, u, low, high, n))
        lines.append("%s %.3f %s" % (name, mean, u))
    with open(os.path.join(out, "figures.txt"), "w") as f:
        f.write("".join(l + "\n" for l in lines))


# -- the bundle in the log ------------------------------------------------------

def print_bundle(out):
    """records.json and the raw files as tar.gz, base64, between markers."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for root, dirs, files in os.walk(out):
            dirs.sort()
            for name in sorted(files):
                rel = os.path.relpath(os.path.join(root, name), out)
                if rel == "records.json" or (rel.endswith(".json") and "/" in rel):
                    t.add(os.path.join(root, name), arcname=rel, recursive=False)
    data = buf.getvalue()
    text = base64.b64encode(data).decode()
    lines = ["%s bytes=%d sha256=%s" % (BEGIN, len(data), hashlib.sha256(data).hexdigest())]
    lines += [CHUNK + text[i:i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)]
    lines.append(END)
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def read_job(path):
    """The plan file bench lava render wrote, or None after one line that
    says what is wrong with it (before anything on the target is touched)."""
    try:
        with open(path, encoding="utf-8") as f:
            job = json.load(f)
        plan = job["plan"]
        for key in ("methods", "modes", "check_modes", "profile"):
            plan[key]
        if not isinstance(job["cells"], list):
            raise TypeError("cells is not a list")
        return job
    except OSError as e:
        say("error: cannot read the plan %s: %s" % (path, e.strerror or e))
    except ValueError as e:  # not JSON, or not UTF-8
        say("error: the plan %s is not JSON: %s; render it again with bench lava render" % (path, e))
    except (KeyError, TypeError) as e:
        say("error: the plan %s is not a plan of bench lava render (%s: %s); render it again"
            % (path, type(e).__name__, e))
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan", required=True, help="the plan (JSON, from bench lava render)")
    ap.add_argument("--out", required=True, help="directory for records.json and the raw files")
    ap.add_argument("--kmod", help="a module built for this kernel (else built here)")
    ap.add_argument("--lease", type=float, default=LEASE_S)
    ns = ap.parse_args(argv)
    job = read_job(ns.plan)
    if job is None:
        return EXIT_CODES["usage"]  # said; nothing on the target was touched
    os.makedirs(ns.out, exist_ok=True)
    unit = job.get("unit", "ns")
    rec = {"runner": {"version": job.get("tool_version"), "python": sys.version.split()[0],
                      "plan_file": os.path.basename(ns.plan), "clock": job.get("clock"),
                      "device_type": job.get("device_type")},
           "plan": job["plan"], "cells": [], "notes": [], "status": "failed"}
    # The agent's directory (it removes it when it exits), with the module's sources.
    workdir = tempfile.mkdtemp(prefix="ftrace-regs-bench.")
    if os.path.isdir(os.path.join(HERE, "kmod")):
        shutil.copytree(os.path.join(HERE, "kmod"), os.path.join(workdir, "kmod"))
    run = {"plan": job["plan"], "cells": job["cells"], "out": ns.out, "workdir": workdir, "unit": unit}
    say("runner: %d cells, methods %s, modes %s, profile %s"
        % (len(job["cells"]), ",".join(job["plan"]["methods"]),
           ",".join(job["plan"]["modes"] + job["plan"]["check_modes"]), job["plan"]["profile"]["name"]))
    code, agent, problems = 0, None, []

    def terminated(signum, frame):
        # Once: a second SIGTERM must not cut the restore short in finally.
        signal.signal(signum, signal.SIG_IGN)
        raise Terminated("signal %d" % signum)

    caller_sigterm = signal.signal(signal.SIGTERM, terminated)
    try:
        agent = Agent(workdir, ns.lease)
        if agent.ready.get("lock_recovered"):
            rec["notes"].append(agent.ready["lock_recovered"])
        problems = run_plan(agent, run, rec, ns.kmod)
        rec["status"] = "complete"
    except RunnerError as e:
        rec["error"] = str(e)
        say("error: %s" % e)
        code = EXIT_CODES.get(e.kind, 10)
    except KeyboardInterrupt:
        rec["status"] = "interrupted"
        code = 130
    except Terminated as e:
        rec["status"] = "interrupted"
        rec["error"] = "terminated by %s" % e
        say("error: %s" % rec["error"])
        code = 128 + signal.SIGTERM
    except Exception as e:  # a bug: said in one line, and the bundle still printed
        rec["error"] = "internal error: %s: %s" % (type(e).__name__, e)
        say("error: %s" % rec["error"])
        code = 1
    finally:
        # From here SIGTERM is ignored: bye, the records and the bundle come
        # first (killed anyway, the agent restores on its stdin's EOF).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if agent is not None:
            problems = sorted(set(problems) | set(agent.close(abort=rec["status"] != "complete")))
            if problems:
                rec["restore_problems"] = problems
                rec["notes"].append("restore problems: " + "; ".join(problems))
        shutil.rmtree(workdir, ignore_errors=True)
        write_records(ns.out, rec)
    try:
        report_figures(ns.out, rec["cells"], unit)
    except Exception as e:  # the device's own estimate: never at the cost of the bundle
        say("error: the preliminary figures failed: %s: %s" % (type(e).__name__, e))
        code = code or 1
    print_bundle(ns.out)
    say("runner: %s, %d cells" % (rec["status"], len(rec["cells"])))
    signal.signal(signal.SIGTERM, caller_sigterm)
    return code


if __name__ == "__main__":
    sys.exit(main())
