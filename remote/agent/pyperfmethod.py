"""The agent's side of the pyperf method: run workload.py under pyperf for a cell.

Runs on the target (stdlib only; pyperf itself runs in its own processes).
The agent serves OPS as its own (agent.py: every *method.py next to it);
each op gets the agent as a plain object and raises agent.Fatal.
"""
import os
import re
import subprocess
import sys
import time

try:  # on the target, and next to agent.py (which puts its directory on sys.path)
    import bpfmethod
    import tune as tune_mod
except ImportError:  # in the source tree, imported as remote.agent.pyperfmethod
    from remote.agent import bpfmethod
    from remote.agent import tune as tune_mod

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(agent, req):
    """One cell: pyperf's manager and workers on workload.py; with bpf_probe,
    the bpf method's probes attached to every process (its off-probe check)."""
    cell = req["cell"]
    if not re.match(r"^[A-Za-z0-9_.-]+$", cell):
        raise agent.Fatal("bad cell id %r" % cell, kind="usage")
    args = [str(a) for a in req.get("pyperf_args", [])]
    for a in args:
        if not re.match(r"^--?[a-z-]+(=[A-Za-z0-9_.,-]+)?$|^[0-9.]+$", a):
            raise agent.Fatal("bad pyperf argument %r" % a, kind="usage")
    out_dir = os.path.join(agent.workdir, "results")
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, cell + ".json")
    argv = [sys.executable, os.path.join(HERE, "workload.py"), "--output", out] + args
    probe = bool(req.get("bpf_probe"))
    if probe:
        # The probe's own cost: the same program, attached for every
        # process (the pyperf workers come and go), tracer off.
        bpfmethod.collector(agent).attach(0)
    t0 = time.monotonic()
    # pyperf's output goes to a file and is forwarded once the cell is
    # over: read as it comes, each line would wake this thread, sshd and
    # the network between (and, on one CPU, during) timed values.
    log = os.path.join(out_dir, cell + ".out")
    with open(log, "wb") as logf:
        agent.workload = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True,
                                          cwd=agent.workdir)
    # pyperf's workers are this process's children: their getppid()
    # returns its pid, and whether that is a cached small int changes the
    # per-call cost (precondition.py).  Kept in the cell as proof.
    workload_pid = agent.workload.pid
    harness = agent.placement({"pyperf_manager": workload_pid})
    with open(os.path.join(agent.workdir, "workload.pgid"), "w") as f:
        f.write(str(agent.workload.pid))
    rc = agent.workload.wait()  # blocks in waitpid: no wake-up until pyperf exits
    agent.workload = None
    probed = bpfmethod.collector(agent).collect() if probe else None
    with open(log, "rb") as f:
        output = f.read().decode("utf-8", "replace")
    if output:
        agent.send({"event": "progress", "cell": cell, "text": output})
    if rc != 0 or not os.path.exists(out):
        tail = " | ".join(output.strip().splitlines()[-3:])
        raise agent.Fatal("pyperf failed for cell %s (exit %d): %s" % (cell, rc, tail), kind="measure")
    res = {"file": out, "elapsed_s": time.monotonic() - t0, "output": output[-2000:],
           "workload_pid": workload_pid,
           "cpus": {"workload": worker_cpus(out, harness.get("pyperf_manager")), "ran_on": [],
                    "harness": harness}}
    if probed is not None:
        res["bpf_probe"] = {k: probed[k] for k in ("count", "sum_ns", "mean_ns")}
    return res


def worker_cpus(path, inherited):
    """The CPUs pyperf's workers could run on, from the result file: each
    worker records its mask as metadata 'cpu_affinity' (once pinned by
    --affinity), or nothing when it may use every CPU; then the mask they
    inherited from the manager (`inherited`)."""
    import json
    with open(path) as f:
        data = json.load(f)
    lists = [data.get("metadata", {}).get("cpu_affinity")]
    for b in data.get("benchmarks", []):
        lists.append(b.get("metadata", {}).get("cpu_affinity"))
        lists.extend(r.get("metadata", {}).get("cpu_affinity") for r in b.get("runs", []))
    cpus = {c for text in lists if text for c in tune_mod.parse_cpu_list(text)}
    return sorted(cpus) if cpus else inherited


OPS = {"measure": measure}
QUIET_OPS = ("measure",)
