"""`bench run --host A --host B ...`: the same plan on several hosts at once.

Each host's run is today's single-host run, in a process of its own
(`python -m bench.cli run --host A ...`): its own connection, agent, lock,
snapshot and restore, its own bundle where a single run would put it, its
own one-line error and exit code.  Processes rather than threads because a
run's restore hangs on KeyboardInterrupt reaching the code that measures
(bench/run.py: finish), and only a process's main thread ever gets one.

Ctrl-C: each child runs in a process group of its own, so the terminal's
SIGINT reaches only this controller, which passes exactly one SIGINT to each
host's run: each stops and restores its target as a single run does (a
second Ctrl-C is passed on too, and, as in a single run, gives up waiting
for the restore: the agent's lease restores on its own).  A SIGINT straight
to a child would be seen twice if the terminal's also reached it.

Progress: every line a host's run writes to stderr, prefixed with
"[HOST] ", as it comes; a host's results table (its stdout) as one block
when it ends, so that two tables never interleave; then a summary of how
each host ended, and one exit code (exit_code below, documented in the
README's error table and `bench run --help`).
"""
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

# `bench run` with several hosts, when they did not all end the same way.
EXIT_HOSTS = 12

# The package root, put first on the children's PYTHONPATH: each host's run
# is this very code, installed or not.
ROOT = pathlib.Path(__file__).resolve().parent.parent


def read_hosts_file(path):
    """The hosts of --hosts-file: one name per line; '#' starts a comment;
    blank lines are skipped.  Returns the names in order."""
    from .errors import UsageError

    try:
        text = pathlib.Path(path).read_text()
    except OSError as e:
        raise UsageError(f"cannot read --hosts-file {path}: {e.strerror or e}",
                         hint="give a readable file with one host alias per line")
    names = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if len(line.split()) > 1:
            raise UsageError(f"--hosts-file {path}, line {number}: {line!r} is not one host name",
                             hint="one alias per line; '#' starts a comment")
        names.append(line)
    if not names:
        raise UsageError(f"--hosts-file {path} names no host", hint="one alias per line")
    return names


def host_list(hosts, hosts_file):
    """--host (repeatable) then --hosts-file's names, in that order; a name
    given twice is refused (two runs on one host would fight over its lock)."""
    from .errors import UsageError

    names = list(hosts) + (read_hosts_file(hosts_file) if hosts_file else [])
    seen = set()
    for n in names:
        if n in seen:
            raise UsageError(f"host {n!r} is given twice", hint="name each host once")
        seen.add(n)
    return names


def safe_name(host):
    """A host name as a directory name (as analysis.bundle.default_dir makes it)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in host)


def out_dirs(hosts, out=None, results_root="results"):
    """{host: bundle directory}.  Without --out, where a single run would put
    it: results/<host>/<UTC timestamp>/; with --out DIR, DIR/<host>/ (DIR
    then holds one bundle per host)."""
    from analysis.bundle import default_dir

    if out:
        dirs = {h: pathlib.Path(out) / safe_name(h) for h in hosts}
    else:
        dirs = {h: default_dir(results_root, h) for h in hosts}
    if len(set(dirs.values())) != len(dirs):
        from .errors import UsageError

        raise UsageError("two hosts would write the same bundle directory: "
                         + ", ".join(sorted(hosts)), hint="rename one alias")
    return dirs


def exit_code(codes, interrupted=False, interrupted_code=130):
    """One exit code for a run on several hosts, from each host's:
      - interrupted (Ctrl-C on bench): interrupted_code (130), as a single run;
      - every host the same code (0 when all succeeded): that code;
      - otherwise (some succeeded and some failed, or they failed
        differently): EXIT_HOSTS (12); the summary says which host ended how."""
    if interrupted:
        return interrupted_code
    distinct = set(codes)
    if len(distinct) == 1:
        return distinct.pop()
    return EXIT_HOSTS


def child_argv(host, out_dir, options):
    """The single-host `bench run` of one host: options is a list of the
    parent's own options (everything but --host, --hosts-file and --out)."""
    return [sys.executable, "-m", "bench.cli", "run", "--host", host, "--out", str(out_dir), *options]


def _own_group():
    """In the child before exec: a process group of its own (the terminal's
    Ctrl-C reaches only bench, which passes it on once), and SIGINT at its
    default, so that Python installs KeyboardInterrupt even where bench was
    started with SIGINT ignored (a shell's background job): otherwise the
    SIGINT passed on would do nothing."""
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class HostRun:
    """One host's run as a child process: its stderr relayed with a prefix,
    its stdout kept for the end."""

    def __init__(self, host, out_dir, argv, env, echo, width):
        self.host, self.out_dir, self.argv = host, pathlib.Path(out_dir), argv
        self.prefix = f"[{host}]".ljust(width) + " "
        self.echo = echo
        self.stdout = b""
        self.last_error = None
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, preexec_fn=_own_group)
        self._threads = [threading.Thread(target=self._relay, daemon=True),
                         threading.Thread(target=self._keep_stdout, daemon=True)]
        for t in self._threads:
            t.start()

    def _relay(self):
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith("bench: "):  # the run's one-line error (or "interrupted")
                self.last_error = line[len("bench: "):]
            self.echo(self.prefix + line)

    def _keep_stdout(self):
        self.stdout = self.proc.stdout.read()

    def interrupt(self):
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass

    def wait(self):
        code = self.proc.wait()
        for t in self._threads:
            t.join()
        return code

    def outcome(self, code):
        """{host, code, status, bundle, message}: what the summary says."""
        b = self.out_dir / "bundle.json"
        status = None
        if b.exists():
            import json

            try:
                status = json.loads(b.read_text()).get("status")
            except (OSError, ValueError):
                status = "unreadable"
        if code == 0:
            what = "ok"
        elif code == 130 or self.last_error == "interrupted":
            what = "interrupted"
        else:
            what = "failed"
        return {"host": self.host, "code": code, "outcome": what, "bundle": str(self.out_dir) if status else None,
                "bundle_status": status,
                "message": None if code == 0 or not self.last_error else self.last_error.removeprefix("error: ")}


def run_hosts(hosts, dirs, options, *, echo, write_block, env=None):
    """Run every host at once; returns ([outcome per host, in order], interrupted).

    echo(line): a progress line (stderr); write_block(host, text): a host's
    results table (stdout), when it ends; env: more environment for the runs
    (BENCH_DEBUG=1 for --debug, which is bench's option, not run's)."""
    env = dict(os.environ, **(env or {}))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    # rich wraps at COLUMNS (80 on a pipe): a wrapped line would lose its
    # prefix's meaning; the terminal may wrap the prefixed line instead.
    env["COLUMNS"] = "200"
    lock = threading.Lock()

    def say(line):
        with lock:
            echo(line)

    width = max(len(h) for h in hosts) + 2
    runs = []
    interrupted = False
    old_term = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    # SIGTERM on bench stops every host as Ctrl-C does, restore included.
    signal.signal(signal.SIGTERM, on_term)
    try:
        try:
            for h in hosts:
                runs.append(HostRun(h, dirs[h], child_argv(h, dirs[h], options), env, say, width))
        except KeyboardInterrupt:
            interrupted = True
            for r in runs:
                r.interrupt()
        codes = {}
        pending = list(runs)
        while pending:
            try:
                done = [r for r in pending if r.proc.poll() is not None]
                if not done:
                    time.sleep(0.2)
                for r in done:  # each host's table as soon as its run ends
                    codes[r.host] = r.wait()
                    pending.remove(r)
                    with lock:
                        if r.stdout.strip():
                            write_block(r.host, r.stdout.decode("utf-8", "replace"))
            except KeyboardInterrupt:
                interrupted = True
                running = [p.host for p in pending if p.proc.poll() is None]
                say(f"bench: interrupted: stopping the run on {', '.join(running) or 'no host'}; each "
                    "restores its target before it exits")
                for p in pending:
                    p.interrupt()
    finally:
        signal.signal(signal.SIGTERM, old_term)
    return [r.outcome(codes[r.host]) for r in runs], interrupted


def summary_lines(outcomes):
    """The summary: one line per host, how it ended, its exit code, its bundle."""
    width = max(len(o["host"]) for o in outcomes)
    out = []
    for o in outcomes:
        bundle = (f"bundle {o['bundle']} ({o['bundle_status']})" if o["bundle"] else "no bundle")
        what = o["outcome"] + (f": {o['message']}" if o["message"] and o["outcome"] != "interrupted" else "")
        out.append(f"  {o['host']:<{width}}  exit {o['code']:>3}  {what}; {bundle}")
    return out


def options_of(params, passthrough):
    """The parent's options as a child's argv: passthrough is [(name, flag)]
    of click parameters; flags (True/False) are given or not, values as
    --name VALUE (a repeated option once per value), None left out."""
    argv = []
    for name, flag in passthrough:
        v = params.get(name)
        if v is None or v is False:
            continue
        if isinstance(v, (tuple, list)):  # a repeatable option (--ops): once per value
            for item in v:
                argv += [flag, str(item)]
            continue
        argv += [flag] if v is True else [flag, str(v)]
    return argv
