"""Soak: many consecutive quick runs against one target leave nothing behind.

    python tests/perf/soak.py [--runs 30] [--host lab] [--modes off]

Runs `bench run` in this process, one after another (so that a leak of
the controller shows here: file descriptors, threads, child processes,
temporary files), and checks the target after each run and at the end: the
tracefs knobs as before, no module, no agent or guardian process, no agent
directory, no target lock.  Prints the figures: runs, exit codes, wall time
per run (mean with a 95% t interval, min, max), leftovers on each side.
Exit status 1 if anything was left behind or a run failed.

The default target is the lab (it must be up: `bench lab up`); any Host
alias works with --ssh-config.
"""
import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import threading
import time

TESTS = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(TESTS), str(TESTS / "lab")]  # labtools; test_faults (the target's state)

from click.testing import CliRunner  # noqa: E402

from bench.cli import cli  # noqa: E402
from test_faults import differences, target_state  # noqa: E402

T975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23,
        15: 2.13, 20: 2.09, 25: 2.06, 29: 2.05, 30: 2.04}


def t975(df):
    return T975.get(df) or T975[max(k for k in T975 if k <= df)]


def controller_state(settle=10.0, threads_at_most=None, agent_dirs_are_ours=True):
    """What this process holds: open descriptors, threads, children, /tmp
    entries.  A finished run's pinger thread wakes up to 7.5 s later (a
    quarter of the lease) to notice and end, and a closed SSH transport's
    thread ends a moment after the run: give threads that long to end (down
    to threads_at_most, when given).  A leaked thread is still there after."""
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and (
            any(t.name.endswith(("(_pinger)", "(_reader)")) for t in threading.enumerate())
            or (threads_at_most is not None and threading.active_count() > threads_at_most)):
        time.sleep(0.2)
    kids = [p for p in os.listdir("/proc") if p.isdigit() and _ppid(p) == os.getpid()]
    # Only names this suite would make: other programs on a shared machine
    # come and go in /tmp too.
    tmp = {n for n in os.listdir(tempfile.gettempdir()) if n.startswith(("ftrace-regs-bench", "bench"))
           and (agent_dirs_are_ours or not n.startswith(("ftrace-regs-bench.", "bench-sshd-")))}
    return {"fds": len(os.listdir("/proc/self/fd")), "threads": threading.active_count(),
            "children": kids, "tmp": tmp}


def _ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[1])
    except OSError:
        return None


def open_target(host, ssh_config):
    from remote.hosts import open_target as open_

    return open_(host, ssh_config=ssh_config)


def soak(runs, host="lab", modes="off", ssh_config=None, out_root=None, log=print, profile="quick",
         methods="pyperf"):
    """Run `runs` runs (quick profile, pyperf unless told); returns a dict of
    figures and leftovers."""
    out_root = pathlib.Path(out_root or tempfile.mkdtemp(prefix="bench-soak-"))
    local = host != "lab"  # the target may be this machine (loopback sshd, --host local)
    target = open_target(host, ssh_config)
    before_target = target_state(target)
    target.close()
    # One warm-up run: the first run imports modules, starts paramiko's
    # threads' pools, builds the module: not a leak.
    args = ["run", "--host", host, "--profile", profile, "--modes", modes, "--methods", methods,
            "--quiet"] + (["--ssh-config", ssh_config] if ssh_config else [])
    codes, walls, per_run_leftovers = [], [], []
    before_ctl = None
    for i in range(runs):
        if i == 1:
            # Agent directories in this machine's /tmp are a target's, and with
            # a remote target not ours: another test may be using this machine
            # as its target meanwhile (with its own sshd fixture).
            before_ctl = controller_state(agent_dirs_are_ours=local)
        t0 = time.monotonic()
        r = CliRunner().invoke(cli, args + ["--out", str(out_root / f"run{i:02d}")])
        walls.append(time.monotonic() - t0)
        codes.append(r.exit_code)
        target = open_target(host, ssh_config)
        left = differences(before_target, target_state(target))
        target.close()
        per_run_leftovers.append(left)
        log(f"run {i + 1}/{runs}: exit {r.exit_code}, {walls[-1]:.1f} s, controller fds "
            f"{len(os.listdir('/proc/self/fd'))} threads {threading.active_count()}"
            + (f", left on the target: {left}" if left else "")
            + ("" if r.exit_code == 0 else f"\n{r.output}"))
    after_ctl = controller_state(threads_at_most=before_ctl and before_ctl["threads"],
                                 agent_dirs_are_ours=local)
    before_ctl = before_ctl or after_ctl
    n = len(walls)
    mean = statistics.mean(walls)
    half = t975(n - 1) * statistics.stdev(walls) / n ** 0.5 if n > 1 else float("nan")
    return {
        "runs": n, "ok": codes.count(0), "codes": codes,
        "wall_mean_s": mean, "wall_ci_s": (mean - half, mean + half),
        "wall_min_s": min(walls), "wall_max_s": max(walls), "wall_total_s": sum(walls),
        "target_leftovers": [x for x in per_run_leftovers if x],
        "controller": {"fds": (before_ctl["fds"], after_ctl["fds"]),
                       "threads": (before_ctl["threads"], after_ctl["threads"]),
                       "children": sorted(set(after_ctl["children"]) - set(before_ctl["children"])),
                       "new_tmp": sorted(after_ctl["tmp"] - before_ctl["tmp"])},
        "bundles": str(out_root),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--host", default="lab")
    ap.add_argument("--modes", default="off")
    ap.add_argument("--ssh-config", default=None)
    ns = ap.parse_args()
    f = soak(ns.runs, ns.host, ns.modes, ns.ssh_config)
    c = f["controller"]
    print(f"soak: {f['runs']} runs of `bench run --host {ns.host} --profile quick --modes {ns.modes} "
          f"--methods pyperf`, {f['ok']} exit 0 (codes {sorted(set(f['codes']))})")
    print(f"wall per run: mean {f['wall_mean_s']:.1f} s, 95% CI [{f['wall_ci_s'][0]:.1f}, "
          f"{f['wall_ci_s'][1]:.1f}] (t, n={f['runs']}), min {f['wall_min_s']:.1f}, max "
          f"{f['wall_max_s']:.1f}; total {f['wall_total_s'] / 60:.1f} min")
    print(f"controller: fds {c['fds'][0]} after run 1 -> {c['fds'][1]} at the end, threads "
          f"{c['threads'][0]} -> {c['threads'][1]}, child processes {c['children']}, "
          f"new entries in /tmp {c['new_tmp']}")
    print(f"target: runs that left something: {len(f['target_leftovers'])} {f['target_leftovers']}")
    print(f"bundles: {f['bundles']}")
    clean = (f["ok"] == f["runs"] and not f["target_leftovers"] and c["fds"][1] <= c["fds"][0]
             and not c["children"] and c["threads"][1] <= c["threads"][0] and not c["new_tmp"])
    print("leftovers: none" if clean else "leftovers or failures: see above")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
