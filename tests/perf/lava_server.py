"""`bench lava submit` against a real lava-server (2023.01, Debian 12).

Not a pytest test: a full server (PostgreSQL, lava-server's gunicorn and
scheduler, a lava-worker with lava-dispatcher) takes ~5 min of apt on a fresh
machine and runs as services, too much for CI's budget; this script is run
by hand and its output recorded (docs/lava.md).  It needs, once:

    apt-get install lava-server lava-dispatcher qemu-utils   # ~5 min here
    pg_ctlcluster 15 main start; /usr/bin/python3 /usr/share/lava-server/postinst.py

(postinst.py creates the database when PostgreSQL runs: where no init
system starts it, the package's own postinst skips that.)

It starts what is not running (PostgreSQL's cluster, gunicorn on
127.0.0.1:PORT, the scheduler, a worker, an HTTP server for the test
overlay on 127.0.0.1) and stops what it started; it adds, idempotently, a
superuser 'bench', a token (new each run, never printed), the qemu device
type, worker 'benchworker' and device 'bench-qemu01'.  Then, through the
real CLI (a subprocess), with the outputs searched for the token:

    no token                    exit 3    wrong token (HTTP 403)     exit 3
    nothing listening           exit 3    wrong URL path (HTTP 404)  exit 13
    a job the server refuses    exit 13   a job that ends Incomplete exit 14
    (400)                                 (token from lavacli's identities file)
    --full: the suite's qemu job (bench lava render's, the lab's kernel
    and image): exit 0, the bundle rebuilt, `bench export` and `bench
    report` on it, its figures as LAVA test-case measurements.

--full boots a QEMU: run it under /work/helpers/labslot.  --capture DIR
saves the server's raw answers (the job's token and original_definition removed) for the unit tests
(tests/data/lava/, README there).

    PYTHONPATH=$PWD python3 tests/perf/lava_server.py [--full] [--capture DIR]
"""
import argparse
import http.server
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import requests
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.cli import EXIT_CODES  # noqa: E402
PY = "/usr/bin/python3"  # lava-server's own python (Debian's, with Django)
DOWNLOAD_DIR = pathlib.Path("/var/lib/lava/dispatcher/tmp")  # lava_common.constants
DEVICES = pathlib.Path("/etc/lava-server/dispatcher-config/devices")
DISPATCHER_D = pathlib.Path("/etc/lava-server/dispatcher.d")
WORKER = "benchworker"
DEVICE = "bench-qemu01"
USER = "bench"


def log(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def manage(*args, check=True):
    r = subprocess.run(["lava-server", "manage", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"lava-server manage {args[0]} {args[1] if len(args) > 1 else ''} "
                         f"failed: {r.stderr.strip()[-300:]}")
    return r


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(what, cond, timeout=60):
    t = time.monotonic()
    while not cond():
        if time.monotonic() - t > timeout:
            raise SystemExit(f"{what} not ready within {timeout} s")
        time.sleep(0.5)


class Services:
    """What this script started, to stop it again (nothing else)."""

    def __init__(self, port, workdir):
        self.port = port
        self.workdir = workdir
        self.procs = []
        self.pg_started = False
        self.httpd = None
        self.files = []

    def start(self):
        t = time.monotonic()
        if "online" not in subprocess.run(["pg_lsclusters", "-h"], capture_output=True,
                                          text=True).stdout:
            subprocess.run(["pg_ctlcluster", "15", "main", "start"], check=True)
            self.pg_started = True
            log("PostgreSQL 15/main started")
        if not list(pathlib.Path("/etc/lava-server/settings.d").glob("*database*")):
            raise SystemExit("lava-server has no database: run /usr/bin/python3 "
                             "/usr/share/lava-server/postinst.py with PostgreSQL running")
        if listening(self.port):
            raise SystemExit(f"127.0.0.1:{self.port} is in use: pass --port")
        # The server drops its privileges to lavaserver: its logs go where it can write.
        logs = self.workdir / "server"
        logs.mkdir()
        shutil.chown(logs, "lavaserver", "lavaserver")
        self.workdir.chmod(0o755)
        self.spawn("gunicorn", ["/usr/bin/gunicorn3", "lava_server.wsgi", "--log-level", "INFO",
                                "--log-file", str(logs / "gunicorn.log"), "-u",
                                "lavaserver", "-g", "lavaserver", "--worker-class", "eventlet",
                                "--workers", "2", "--bind", f"127.0.0.1:{self.port}"])
        wait_for("gunicorn", lambda: listening(self.port))
        self.spawn("scheduler", ["lava-server", "manage", "lava-scheduler", "--level", "INFO",
                                 "--log-file", str(logs / "scheduler.log")])
        self.overlay_server()
        log(f"server up on 127.0.0.1:{self.port} in {time.monotonic() - t:.1f} s")

    def start_worker(self, token_file):
        self.spawn("worker", ["lava-worker", "--name", WORKER, "--url",
                              f"http://127.0.0.1:{self.port}/", "--token-file", str(token_file),
                              "--worker-dir", str(self.workdir / "worker"),
                              "--log-file", str(self.workdir / "worker.log"), "--level", "INFO"])

        def online():
            return "Online" in manage("workers", "details", WORKER).stdout
        wait_for("lava-worker", online, 90)
        log("worker online")

    def spawn(self, name, argv):
        out = open(self.workdir / f"{name}.out", "w")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, p))

    def overlay_server(self):
        """A worker's web server's /tmp/ (transfer_overlay), on 127.0.0.1:
        the guest's 10.0.2.2 under QEMU's user network."""
        class Handler(http.server.SimpleHTTPRequestHandler):
            def translate_path(self, path):
                rel = path.split("?", 1)[0]
                if not rel.startswith("/tmp/") or ".." in rel:
                    return "/nonexistent"
                return str(DOWNLOAD_DIR / rel[len("/tmp/"):])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, 15)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, 9)
                    p.wait()
            log(f"stopped {name}")
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
        for f in self.files:
            f.unlink(missing_ok=True)
        if self.pg_started:
            subprocess.run(["pg_ctlcluster", "15", "main", "stop"], check=False)
            log("PostgreSQL 15/main stopped")


def objects(svc):
    """User, token, device type, worker, device: added when missing.
    Returns the user's new token."""
    r = manage("users", "add", USER, "--superuser", "--email", "bench@localhost", check=False)
    if r.returncode != 0 and "exists" not in (r.stdout + r.stderr):
        raise SystemExit(f"users add failed: {r.stderr.strip()[-300:]}")
    token = manage("tokens", "add", "--user", USER, "--description",
                   "tests/perf/lava_server.py").stdout.strip().splitlines()[-1].strip()
    if "qemu" not in manage("device-types", "list", "--all").stdout:
        manage("device-types", "add", "qemu")
    if WORKER not in manage("workers", "list", "--all").stdout:
        manage("workers", "add", WORKER)
    (DISPATCHER_D / WORKER).mkdir(parents=True, exist_ok=True)
    disp = DISPATCHER_D / WORKER / "dispatcher.yaml"
    disp.write_text(f"dispatcher_http_ip: '10.0.2.2:{svc.httpd.server_address[1]}'\n")
    svc.files.append(disp)
    # The device dictionary: LAVA's qemu device type, the rest from the job's context.
    (DEVICES / f"{DEVICE}.jinja2").write_text("{% extends 'qemu.jinja2' %}\n"
                                               "{% set mac_addr = '52:54:00:12:34:59' %}\n")
    if DEVICE not in manage("devices", "list", "--all").stdout:
        manage("devices", "add", "--device-type", "qemu", "--worker", WORKER, DEVICE)
    wtoken = next(l.split(":", 1)[1].strip() for l in manage("workers", "details", WORKER)
                  .stdout.splitlines() if l.startswith("token"))
    tf = svc.workdir / "worker-token"
    tf.write_text(wtoken)
    tf.chmod(0o600)
    return token


class Checks:
    def __init__(self, token, workdir):
        self.token = token
        self.workdir = workdir
        self.failed = 0
        self.passed = 0

    def bench(self, *args, env_extra=None, drop_token=False):
        env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(self.workdir / "noconf"))
        env.pop("LAVA_TOKEN", None)
        if not drop_token:
            env["LAVA_TOKEN"] = self.token
        env.update(env_extra or {})
        t = time.monotonic()
        p = subprocess.run([sys.executable, "-c", "import sys; sys.argv[0]='bench'; "
                            "from bench.cli import main; main()", *args],
                           capture_output=True, text=True, env=env, cwd=self.workdir)
        return p.returncode, p.stdout, p.stderr, time.monotonic() - t

    def expect(self, name, result, code, words=()):
        rc, out, err, secs = result
        problems = []
        if rc != code:
            problems.append(f"exit {rc}, expected {code}")
        if self.token in out + err:
            problems.append("THE TOKEN IS IN THE OUTPUT")
        if "Traceback" in out + err:
            problems.append("a traceback")
        errors = [l for l in err.splitlines() if l.startswith("bench: error")]
        if code and len(errors) != 1:
            problems.append(f"{len(errors)} error lines")
        for w in words:
            if w not in err + out:
                problems.append(f"no {w!r}")
        last = (errors or err.strip().splitlines() or [""])[-1]
        status = "FAIL" if problems else "ok"
        self.failed += bool(problems)
        self.passed += not problems
        log(f"{status}: {name}: exit {rc} in {secs:.1f} s: {last[:230]}"
            + (f"  [{'; '.join(problems)}]" if problems else ""))
        return rc, out, err

    def no_token_in(self, path):
        hits = [str(p) for p in pathlib.Path(path).rglob("*") if p.is_file()
                and self.token.encode() in p.read_bytes()]
        status = "FAIL" if hits else "ok"
        self.failed += bool(hits)
        self.passed += not hits
        log(f"{status}: no token in the {sum(1 for _ in pathlib.Path(path).rglob('*'))} files "
            f"under {path}" + (f": {hits}" if hits else ""))


BAD_JOB = """device_type: qemu
job_name: lavaclient perf, a kernel that does not exist
timeouts: {job: {minutes: 5}, action: {minutes: 5}}
priority: medium
visibility: public
context: {arch: arm64}
actions:
- deploy:
    to: tmpfs
    timeout: {minutes: 2}
    images:
      kernel: {image_arg: '-kernel {kernel}', url: 'file:///nonexistent/lavaclient/Image'}
- boot: {method: qemu, media: tmpfs, timeout: {minutes: 2}, prompts: ['# ']}
"""


def capture(url, token, job_id, dest, tag):
    """The server's raw answers about one job (its own token removed)."""
    s = requests.Session()
    s.headers["Authorization"] = f"Token {token}"
    api = f"{url}/api/v0.2/"
    job = s.get(f"{api}jobs/{job_id}/").json()
    job.pop("token", None)
    job.pop("original_definition", None)  # the submitted text again (the payload: 148 kB)
    (dest / f"job-{tag}.json").write_text(json.dumps(job, indent=1) + "\n")
    for what in ("tests", "suites"):
        (dest / f"{what}-{tag}.json").write_text(s.get(f"{api}jobs/{job_id}/{what}/").text + "\n")
    (dest / f"log-{tag}.yaml").write_text(s.get(f"{api}jobs/{job_id}/logs/").text)
    errors = {"403": s.get(f"{api}jobs/{job_id}/", headers={"Authorization": "Token wrong"}),
              "404": s.get(f"{api}jobs/99999999/"),
              "400": s.post(f"{api}jobs/", json={"definition": "device_type: qemu\njob_name: x\n"})}
    for code, r in errors.items():
        assert str(r.status_code) == code, (code, r.status_code)
        (dest / f"error-{code}.json").write_text(r.text + "\n")
    (dest / "version.json").write_text(s.get(f"{api}system/version/").text + "\n")
    for p in dest.iterdir():
        assert token not in p.read_text(), p


def full_job(checks, url, workdir, capture_dir):
    from remote import lab as labmod

    image = labmod.build(labmod.select("debian-6.1"), progress=lambda t: None)
    rootfs = workdir / "rootfs.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                    str(image / "rootfs.ext4"), str(rootfs)], check=True)
    # No --out: the bundle goes where `bench run`'s would, results/<device>/<UTC time>/
    # under the working directory (the script's workdir).
    rc, stdout, err = checks.expect(
        "the suite's qemu job (smoke, function, pyperf)",
        checks.bench("lava", "submit", "--url", url, "--device-type", "qemu", "--profile", "smoke",
                     "--modes", "function", "--methods", "pyperf", "--seed", "1", "--poll", "5",
                     "--set", f"kernel_url=file://{image / 'vmlinuz'}",
                     "--set", f"initrd_url=file://{image / 'initrd.img'}",
                     "--set", f"rootfs_url=file://{rootfs}", "--set", "rootfs_format=qcow2"),
        0, ["bundle: results/bench-qemu01/", "device-pyperf-function-overhead"])
    print(stdout + err, flush=True)
    if rc != 0:
        return
    out = workdir / next(l for l in err.splitlines() if l.startswith("bundle: ")).split(" ", 1)[1]
    checks.expect("bench export on it", checks.bench("export", str(out)), 0,
                  ["function,getppid,pyperf,overhead"])
    checks.expect("bench report on it", checks.bench("report", str(out), "--out",
                                                     str(workdir / "report")), 0)
    checks.no_token_in(out)
    checks.no_token_in(workdir / "report")
    data = json.loads((out / "bundle.json").read_text())
    row = next(x for x in data["results"] if x["method"] == "pyperf" and x["mode"] == "function"
               and x["metric"] == "overhead")
    log(f"bundle {data['status']}, clock {data['clock']}, host {data['host']}; function overhead "
        f"{row['value']:.1f} [{row['ci_low']:.1f}, {row['ci_high']:.1f}] {row['unit']} "
        f"(n={row['n']})")
    if capture_dir:
        job_id = data["host"]["job_id"]
        capture(url, checks.token, job_id, capture_dir, "complete")


def main():
    # Killed by a timeout: stop what was started all the same (finally: below).
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--full", action="store_true", help="also the suite's qemu job (boots QEMU)")
    ap.add_argument("--capture", type=pathlib.Path, help="save the server's answers here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if not shutil.which("lava-server") or not shutil.which("lava-worker"):
        raise SystemExit("needs lava-server and lava-dispatcher: apt-get install lava-server "
                         "lava-dispatcher qemu-utils")
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="lavaclient-perf-"))
    (workdir / "noconf").mkdir()
    svc = Services(args.port, workdir)
    url = f"http://127.0.0.1:{args.port}"
    t0 = time.monotonic()
    try:
        svc.start()
        token = objects(svc)
        svc.start_worker(workdir / "worker-token")
        r = requests.get(f"{url}/api/v0.2/system/version/", timeout=10).json()
        log(f"lava-server {r['version']}")
        c = Checks(token, workdir)
        (workdir / "job.yaml").write_text(BAD_JOB)
        c.expect("no token", c.bench("lava", "submit", "--url", url, "--job", "job.yaml",
                                     drop_token=True), 3, ["LAVA_TOKEN"])
        c.expect("wrong token", c.bench("lava", "submit", "--url", url, "--job", "job.yaml",
                                        env_extra={"LAVA_TOKEN": "x" * 40}), 3, ["HTTP 403"])
        c.expect("nothing listening", c.bench("lava", "submit", "--url", "http://127.0.0.1:9",
                                              "--job", "job.yaml"), 3, ["cannot connect"])
        c.expect("wrong path", c.bench("lava", "submit", "--url", url + "/nope", "--job",
                                       "job.yaml"), EXIT_CODES["lava"][0], ["HTTP 404"])
        (workdir / "refused.yaml").write_text("device_type: qemu\njob_name: no actions\n")
        c.expect("a job the server refuses", c.bench("lava", "submit", "--url", url, "--job",
                                                     "refused.yaml"), EXIT_CODES["lava"][0], ["HTTP 400"])
        conf = workdir / "conf"
        conf.mkdir()
        (conf / "lavacli.yaml").write_text(yaml.safe_dump(
            {"other": {"uri": "https://lava.example.org/RPC2", "token": "x"},
             "local": {"uri": f"{url}/RPC2", "username": USER, "token": token}}))
        rc, out, err = c.expect(
            "an Incomplete job, token from lavacli's identities file",
            c.bench("lava", "submit", "--url", url, "--job", "job.yaml", "--poll", "2",
                    drop_token=True, env_extra={"XDG_CONFIG_HOME": str(conf)}), EXIT_CODES["lava-job"][0],
            ["ended Incomplete", "/nonexistent/lavaclient/Image"])
        if args.capture:
            args.capture.mkdir(parents=True, exist_ok=True)
            job_id = int(next(l for l in err.splitlines() if l.startswith("job ")).split()[1])
            capture(url, token, job_id, args.capture, "incomplete")
        if args.full:
            full_job(c, url, workdir, args.capture)
        if (workdir / "results").exists():
            c.no_token_in(workdir / "results")
        log(f"{c.passed} passed, {c.failed} failed ({time.monotonic() - t0:.0f} s in all)")
        return 1 if c.failed else 0
    finally:
        svc.stop()
        shutil.rmtree(workdir / "worker", ignore_errors=True)
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
