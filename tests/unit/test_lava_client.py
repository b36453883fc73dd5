"""`bench lava submit`'s client (bench/lava/client.py) without a server:
the token's sources, the server's address, and the answers of a real
lava-server 2023.01 as captured by tests/perf/lava_server.py
(tests/data/lava/, origin in tests/data/README.md).  The client against
the live server is tests/perf/lava_server.py (docs/lava-client.md)."""
import json
import pathlib
import socket
import subprocess
import sys

import pytest
import requests
import yaml
from click.testing import CliRunner

from bench.cli import EXIT_CODES, cli
from bench.lava import client as lc
from remote.protocol.errors import BenchError

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "lava"
ROOT = pathlib.Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-" + "k" * 33  # a token that must never be shown


def env_with(tmp_path, **extra):
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    env.update(extra)
    return env


def write_ids(tmp_path, data):
    (tmp_path / "lavacli.yaml").write_text(yaml.safe_dump(data))


# -- the server's address ------------------------------------------------------------------

@pytest.mark.parametrize("typed,root", [
    ("https://lava.example.org", "https://lava.example.org/"),
    ("https://lava.example.org/", "https://lava.example.org/"),
    ("https://lava.example.org/RPC2", "https://lava.example.org/"),
    ("https://lava.example.org/RPC2/", "https://lava.example.org/"),
    ("http://127.0.0.1:8000/api/v0.2/", "http://127.0.0.1:8000/"),
    ("https://example.org/lava/RPC2", "https://example.org/lava/"),
])
def test_server_root(typed, root):
    assert lc.server_root(typed) == root


@pytest.mark.parametrize("bad", ["lava.example.org", "ftp://lava.example.org", "https://", ""])
def test_a_url_that_is_not_http_is_a_usage_error(bad):
    with pytest.raises(BenchError) as e:
        lc.server_root(bad)
    assert e.value.kind == "usage"


@pytest.mark.parametrize("url", [f"https://bench:{SECRET}@lava.example.org/RPC2",
                                 f"bench:{SECRET}@lava.example.org/RPC2",
                                 f"https:/bench:{SECRET}@lava.example.org/RPC2",
                                 f"ftp://bench:{SECRET}@lava.example.org/"])
def test_a_token_in_the_url_is_refused_without_being_repeated(url):
    with pytest.raises(BenchError) as e:
        lc.server_root(url)
    assert e.value.kind == "usage" and SECRET not in str(e.value), str(e.value)


# -- the token -----------------------------------------------------------------------------------

def test_token_from_the_environment_first(tmp_path):
    write_ids(tmp_path, {"default": {"uri": "https://lava.example.org/RPC2", "token": "other"}})
    token, where = lc.find_token("https://lava.example.org/",
                                 env=env_with(tmp_path, LAVA_TOKEN=SECRET + "\n"))
    assert token == SECRET and where == "$LAVA_TOKEN"


def test_token_from_the_identity_whose_uri_names_the_server(tmp_path):
    # lavacli 1.2's file: identity -> {uri, username, token}; the port counts.
    write_ids(tmp_path, {"prod": {"uri": "https://lava.example.org/RPC2", "username": "u",
                                  "token": SECRET},
                         "staging": {"uri": "https://lava.example.org:8443/RPC2", "token": "x"},
                         "other": {"uri": "https://other.example.org/RPC2", "token": "y"}})
    token, where = lc.find_token("https://LAVA.example.org:443/", env=env_with(tmp_path))
    assert token == SECRET and "'prod'" in where and SECRET not in where


def test_named_identity_and_default_among_several(tmp_path):
    write_ids(tmp_path, {"a": {"uri": "https://lava.example.org/RPC2", "token": "ta"},
                         "default": {"uri": "https://lava.example.org/RPC2", "token": "td"}})
    assert lc.find_token("https://lava.example.org/", env=env_with(tmp_path))[0] == "td"
    assert lc.find_token("https://lava.example.org/", "a",
                         env=env_with(tmp_path, LAVA_TOKEN="env"))[0] == "ta"


@pytest.mark.parametrize("ids,words", [
    (None, "no identity in"),
    ({"x": {"uri": "https://other.example.org/RPC2", "token": SECRET}}, "no identity in"),
    ({"a": {"uri": "https://lava.example.org/RPC2", "token": SECRET},
      "b": {"uri": "https://lava.example.org/RPC2", "token": SECRET}}, "2 identities"),
    ({"a": {"uri": "https://lava.example.org/RPC2"}}, "has no token"),
])
def test_no_usable_token_is_an_auth_error(tmp_path, ids, words):
    if ids is not None:
        write_ids(tmp_path, ids)
    with pytest.raises(BenchError) as e:
        lc.find_token("https://lava.example.org/", env=env_with(tmp_path))
    assert e.value.kind == "auth" and words in str(e.value) and SECRET not in str(e.value)
    assert EXIT_CODES[e.value.kind][0] == 3


def test_a_broken_identities_file_is_not_quoted(tmp_path):
    (tmp_path / "lavacli.yaml").write_text(f"default:\n  token: {SECRET}\n uri: [\n")
    with pytest.raises(BenchError) as e:
        lc.find_token("https://lava.example.org/", env=env_with(tmp_path))
    assert e.value.kind == "auth" and "line" in str(e.value) and SECRET not in str(e.value)


def test_an_unknown_identity_is_named(tmp_path):
    write_ids(tmp_path, {"a": {"uri": "https://lava.example.org/RPC2", "token": SECRET}})
    with pytest.raises(BenchError) as e:
        lc.find_token("https://lava.example.org/", "nope", env=env_with(tmp_path))
    assert "'nope'" in str(e.value) and SECRET not in str(e.value)


# -- the CLI without a server: one line, the documented code, no token -------------------------

def bench(*args, env):
    """The real command, in a process of its own (environment as given)."""
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": env.get("XDG_CONFIG_HOME")}
    p = subprocess.run([sys.executable, "-c", "import sys; sys.argv[0]='bench'; "
                        "from bench.cli import main; main()", *args],
                       capture_output=True, text=True, env=dict(base, **env), timeout=600)  # a hang only; slow under CI's load
    return p.returncode, p.stdout + p.stderr


def closed_port():
    """A loopback port nobody listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_errors_before_and_at_the_first_request(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("device_type: qemu\njob_name: x\n")
    env = env_with(tmp_path)
    rc, out = bench("lava", "submit", "--url", "https://lava.example.org", "--job", str(job),
                    env=env)
    assert rc == 3 and "no LAVA token" in out and out.count("\n") == 1, out
    rc, out = bench("lava", "submit", "--url", "lava.example.org", "--job", str(job), env=env)
    assert rc == 2 and "not an http(s) URL" in out and out.count("\n") == 1, out
    rc, out = bench("lava", "submit", "--url", "https://lava.example.org", env=env)
    assert rc == 2 and "--device-type or --job" in out, out
    rc, out = bench("lava", "submit", "--url", "https://lava.example.org", "--job", str(job),
                    "--device-type", "other", env=env)
    assert rc == 2 and "differs from the job's device_type" in out, out
    # A token from lavacli's file, a server that is not there (a closed loopback port).
    port = closed_port()
    write_ids(tmp_path, {"local": {"uri": f"http://127.0.0.1:{port}/RPC2", "token": SECRET}})
    rc, out = bench("lava", "submit", "--url", f"http://127.0.0.1:{port}", "--job", str(job),
                    env=env)
    assert rc == 3 and "cannot connect to LAVA server" in out and out.count("\n") == 1, out
    assert SECRET not in out and "Traceback" not in out


def test_exit_codes_of_the_client_are_documented():
    assert EXIT_CODES["lava"][0] == 13 and EXIT_CODES["lava-job"][0] == 14
    assert lc.LavaError("x").kind == "lava" and lc.LavaJobError("x").kind == "lava-job"


# -- the server's answers, as captured ------------------------------------------------------------

def response(status, body, content_type="application/json"):
    """A requests.Response holding a captured answer of the server."""
    r = requests.Response()
    r.status_code = status
    r._content = body.encode()
    r.headers["Content-Type"] = content_type
    return r


def captured(name):
    path = DATA / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run tests/perf/lava_server.py --capture {DATA}")
    return path.read_text()


@pytest.mark.parametrize("name,status,kind,words", [
    ("error-403.json", 403, "auth", "HTTP 403 (Invalid token.)"),
    ("error-404.json", 404, "lava", "HTTP 404 (Not found.)"),
    ("error-400.json", 400, "lava", "HTTP 400 (Problem with submitted job data"),
])
def test_error_answers_become_one_line(name, status, kind, words, monkeypatch):
    c = lc.Client("http://127.0.0.1:8000/", SECRET)
    monkeypatch.setattr(c.session, "request", lambda *a, **k: response(status, captured(name)))
    with pytest.raises(BenchError) as e:
        c.job(1)
    assert e.value.kind == kind and words in str(e.value), str(e.value)
    assert "\n" not in str(e.value) and SECRET not in str(e.value)


def test_the_token_is_scrubbed_from_what_a_server_echoes(monkeypatch):
    c = lc.Client("http://127.0.0.1:8000/", SECRET)
    body = json.dumps({"detail": f"bad header Token {SECRET}"})
    monkeypatch.setattr(c.session, "request", lambda *a, **k: response(401, body))
    with pytest.raises(BenchError) as e:
        c.job(1)
    assert SECRET not in str(e.value) and "<token>" in str(e.value)


def test_incomplete_job_and_its_log():
    job = json.loads(captured("job-incomplete.json"))
    lines = lc.parse_log(captured("log-incomplete.yaml"))
    assert job["state"] == "Finished" and job["health"] == "Incomplete" and "token" not in job
    assert {d["lvl"] for d in lines} >= {"info", "results", "error"}
    c = lc.Client("http://127.0.0.1:8000/", SECRET)
    with pytest.raises(lc.LavaJobError) as e:
        lc.check_health(c, job, lines)
    msg = str(e.value)
    assert "ended Incomplete" in msg and "/nonexistent/lavaclient/Image" in msg, msg
    assert f"scheduler/job/{job['id']}" in msg and "\n" not in msg
    # Canceled: the same rule (a job the server describes so).
    with pytest.raises(lc.LavaJobError, match="ended Canceled"):
        lc.check_health(c, dict(job, health="Canceled", failure_comment="canceled by bench"))
    lc.check_health(c, dict(job, health="Complete"))


def test_results_of_the_incomplete_job():
    tests = json.loads(captured("tests-incomplete.json"))["results"]
    suites = json.loads(captured("suites-incomplete.json"))["results"]
    assert {t["name"] for t in tests} >= {"validate", "job"}
    assert {s["name"] for s in suites} == {"lava"}
    assert lc.measurements(tests) == {}


def test_follow_reads_the_log_as_it_grows():
    """follow() against a stand-in for the API's two reads: the captured
    log handed out in three parts, the job Finished at the third look."""
    job = json.loads(captured("job-incomplete.json"))
    lines = lc.parse_log(captured("log-incomplete.yaml"))
    cut = [0, len(lines) // 3, 2 * len(lines) // 3, len(lines)]

    class Stage:
        n = 0
        patient_set = False

        def patient(self, yes):
            Stage.patient_set = yes

        def job(self, job_id):
            Stage.n += 1
            return dict(job, state="Finished" if Stage.n == 3 else "Running")

        def log_lines(self, job_id, start):
            return lines[start:cut[max(0, min(Stage.n, 3))]]

        def job_url(self, job_id):
            return "u"

    seen = []
    got_job, got = lc.follow(Stage(), job["id"], timeout=60, poll=0,
                             progress=lambda j, l, new: seen.append(len(new)), sleep=lambda s: None)
    assert got == lines and Stage.patient_set and len(seen) == 3
    with pytest.raises(lc.LavaJobError, match="did not finish within 5 s"):
        Stage.n = 10  # never Finished again
        ticks = iter(range(0, 100, 10))
        lc.follow(Stage(), 1, timeout=5, poll=0, clock=lambda: next(ticks), sleep=lambda s: None)


def test_the_bundle_of_a_real_job_from_its_rest_log(tmp_path):
    """Job 7 of the real server: the suite's qemu job (smoke; off, function,
    off-aa; pyperf; icount) as the API returned it.  The bundle comes out of
    the log's target lines; bench export reads it; the device's preliminary
    figures are the job's test-case measurements and agree with it."""
    job = json.loads(captured("job-complete.json"))
    assert job["health"] == "Complete" and job["actual_device"] == "bench-qemu01"
    lines = lc.parse_log(captured("log-complete.yaml"))
    c = lc.Client("http://127.0.0.1:8000/", SECRET)
    lc.check_health(c, job, lines)
    meta = lc.job_meta(c, job, job["definition"], "bench lava submit ...")
    assert meta == {"device_type": "qemu", "device": "bench-qemu01", "job_id": job["id"],
                    "url": "http://127.0.0.1:8000/", "icount": True, "accel": "tcg",
                    "command": "bench lava submit ..."}
    from bench.lava.bundle import rebuild

    path = rebuild(lc.target_text(lines), tmp_path / "b", meta)
    data = json.loads((path / "bundle.json").read_text())
    assert data["status"] == "complete" and data["clock"] == "icount"
    assert data["host"]["name"] == "bench-qemu01" and data["host"]["server"] == meta["url"]
    row = next(x for x in data["results"] if x["method"] == "pyperf" and x["mode"] == "function"
               and x["metric"] == "overhead")
    assert row["unit"] == "instructions" and row["n"] == 2
    assert row["ci_low"] <= row["value"] <= row["ci_high"]

    tests = json.loads(captured("tests-complete.json"))["results"]
    names = {s["id"]: s["name"] for s in json.loads(captured("suites-complete.json"))["results"]}
    for t in tests:
        t["suite_name"] = names[t["suite"]]
    m = lc.measurements(tests)
    value, unit, result = m["0_ftrace-regs-bench/device-pyperf-function-overhead"]
    assert unit == "instructions" and result == "pass"
    assert abs(value - row["value"]) < 0.01 * abs(row["value"]) + 0.01

    lc.save_lava_files(path, c, dict(job, token="job-token-" + SECRET), tests, lines)
    assert "token" not in json.loads((path / "lava" / "job.json").read_text())
    assert len(yaml.safe_load((path / "lava" / "log.yaml").read_text())) == len(lines)
    for f in path.rglob("*"):
        assert not f.is_file() or SECRET.encode() not in f.read_bytes(), f
    r = CliRunner().invoke(cli, ["export", str(path), "--format", "csv"])
    assert r.exit_code == 0 and "function,getppid,pyperf,overhead" in r.output, r.output


def test_a_log_read_while_its_last_line_is_written():
    text = captured("log-incomplete.yaml")
    whole = lc.parse_log(text)
    cut = text[:text.rindex("\n", 0, len(text) - 1) + 1] + text.splitlines()[-1][:25]
    assert lc.parse_log(cut) == whole[:-1]
    with pytest.raises(lc.LavaError, match="not YAML"):
        lc.parse_log("- {dt: [\n")


# -- review: the token goes nowhere else ----------------------------------------------------------

@pytest.mark.parametrize("bad", ["abc\n" + SECRET, SECRET + " x", SECRET + "\u201d", "  \n"])
def test_a_token_that_cannot_be_a_header_is_refused_unquoted(tmp_path, bad):
    # requests refuses such a header value with an error that quotes it whole
    # ('Token abc\\ndef...'), which scrub() cannot find in its repr form.
    with pytest.raises(BenchError) as e:
        lc.find_token("https://lava.example.org/", env=env_with(tmp_path, LAVA_TOKEN=bad))
    assert e.value.kind == "auth" and SECRET not in str(e.value) and "abc" not in str(e.value)
    write_ids(tmp_path, {"a": {"uri": "https://lava.example.org/RPC2", "token": bad}})
    with pytest.raises(BenchError) as e:
        lc.find_token("https://lava.example.org/", env=env_with(tmp_path))
    assert e.value.kind == "auth" and SECRET not in str(e.value)


def test_a_next_page_on_another_host_gets_no_token(monkeypatch):
    """A "next" link whose path starts with // joins to another host: the
    request is refused before it is sent."""
    c = lc.Client("http://127.0.0.1:8000/", SECRET)
    sent = []
    pages = [{"results": [{"id": 1, "name": "lava"}],
              "next": "http://127.0.0.1:8000//evil.example.org/steal?offset=1"},
             {"results": [], "next": None}]

    def request(method, url, **kw):
        sent.append(url)
        return response(200, json.dumps(pages[min(len(sent), 2) - 1]))

    monkeypatch.setattr(c.session, "request", request)
    with pytest.raises(lc.LavaError, match="another server") as e:
        c.tests(7)
    assert all(u.startswith("http://127.0.0.1:8000/") and "evil" not in u.split("/")[2]
               for u in sent), sent
    assert SECRET not in str(e.value) and EXIT_CODES[e.value.kind][0] == 13


# -- review: what a server answers is checked before it builds a path -----------------------------

def fake_server(monkeypatch, c, job_id=7, job_changes=None, fail=None):
    """c's session answering as the real server did for job 7 (captured),
    with job_changes applied to the job, and `fail` {path tail: status}."""
    job = dict(json.loads(captured("job-complete.json")), **(job_changes or {}))
    answers = {"jobs/": (201, json.dumps({"job_ids": [job_id]})),
               f"jobs/{job_id}/": (200, json.dumps(job)),
               f"jobs/{job_id}/suites/": (200, captured("suites-complete.json")),
               f"jobs/{job_id}/tests/": (200, captured("tests-complete.json"))}
    answers.update(fail or {})

    def request(method, url, params=None, **kw):
        tail = url.split("/api/v0.2/", 1)[1]
        if tail.endswith("logs/"):
            if params and params.get("start"):
                return response(404, '{"detail": "Not found."}')
            return response(200, captured("log-complete.yaml"), "application/yaml")
        status, body = answers[tail]
        return response(status, body)

    monkeypatch.setattr(c.session, "request", request)
    return job


@pytest.mark.parametrize("answer", ['{"job_ids": ["../../admin"]}', '{"job_ids": [true]}',
                                    '{"job_ids": "7"}', '[7]', '"7"'])
def test_a_job_id_that_is_no_job_id_is_refused(monkeypatch, answer):
    c = lc.Client("http://127.0.0.1:8000/", SECRET)
    monkeypatch.setattr(c.session, "request", lambda *a, **k: response(201, answer))
    with pytest.raises(lc.LavaError) as e:
        c.submit("device_type: qemu\n")
    assert EXIT_CODES[e.value.kind][0] == 13 and "\n" not in str(e.value)


@pytest.mark.parametrize("body", ['[]', '"Finished"', 'null'])
def test_a_job_answer_that_is_no_object_is_a_lava_error(monkeypatch, body):
    c = lc.Client("http://127.0.0.1:8000/", SECRET)
    monkeypatch.setattr(c.session, "request", lambda *a, **k: response(200, body))
    with pytest.raises(lc.LavaError, match="not a JSON object"):
        c.job(7)


@pytest.mark.parametrize("device", ["..", ".", "../..", 12])
def test_the_devices_name_stays_one_directory_under_results(tmp_path, monkeypatch, device):
    c = lc.Client("http://127.0.0.1:8000/", SECRET)
    fake_server(monkeypatch, c, job_changes={"actual_device": device})
    results = tmp_path / "a" / "results"
    path, job, tests = lc.run_job(c, "device_type: qemu\n", results_root=str(results),
                                  timeout=60, poll=0)
    assert path.resolve().parent.parent == results.resolve(), path
    assert (path / "bundle.json").exists() and list((tmp_path / "a").iterdir()) == [results]


def test_a_finished_job_keeps_its_bundle_when_its_test_cases_cannot_be_read(tmp_path, monkeypatch):
    """The log is in hand when the results' request fails (HTTP 500): the
    bundle is written all the same, the error is one line, exit 13, and says where."""
    c = lc.Client("http://127.0.0.1:8000/", SECRET)
    fake_server(monkeypatch, c, fail={"jobs/7/tests/": (500, '{"detail": "Server Error"}')})
    with pytest.raises(lc.LavaError) as e:
        lc.run_job(c, "device_type: qemu\n", results_root=str(tmp_path / "results"), timeout=60,
                   poll=0)
    msg = str(e.value)
    assert "HTTP 500" in msg and "bundle is saved" in msg and "\n" not in msg, msg
    assert EXIT_CODES[e.value.kind][0] == 13 and SECRET not in msg
    (bundle,) = (tmp_path / "results" / "bench-qemu01").iterdir()
    assert json.loads((bundle / "bundle.json").read_text())["status"] == "complete"
    assert str(bundle) in msg and (bundle / "lava" / "log.yaml").exists()
    assert (bundle / "lava" / "job.json").exists() and not (bundle / "lava" / "tests.json").exists()


def test_a_job_that_ended_incomplete_after_printing_its_bundle_keeps_it(tmp_path, monkeypatch):
    """Incomplete after the runner's bundle (a later step timed out): exit 14,
    and the bundle is saved; without a bundle in the log nothing is written."""
    c = lc.Client("http://127.0.0.1:8000/", SECRET)
    fake_server(monkeypatch, c, job_changes={"health": "Incomplete",
                                             "failure_comment": "lava-test-shell timed out"})
    with pytest.raises(lc.LavaJobError) as e:
        lc.run_job(c, "device_type: qemu\n", results_root=str(tmp_path / "results"), timeout=60,
                   poll=0)
    msg = str(e.value)
    assert "ended Incomplete" in msg and "timed out" in msg and "bundle the runner printed" in msg
    assert EXIT_CODES[e.value.kind][0] == 14 and "\n" not in msg and SECRET not in msg
    (bundle,) = (tmp_path / "results" / "bench-qemu01").iterdir()
    assert str(bundle) in msg and (bundle / "bundle.json").exists()
    assert (bundle / "lava" / "log.yaml").exists()

    monkeypatch.setattr(lc, "target_text", lambda lines: "Kernel panic\n")
    with pytest.raises(lc.LavaJobError) as e:
        lc.run_job(c, "device_type: qemu\n", results_root=str(tmp_path / "r2"), timeout=60, poll=0)
    assert "saved" not in str(e.value) and not (tmp_path / "r2").exists()


def test_a_job_file_that_is_not_text_is_a_usage_error(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_bytes(b"device_type: qemu\n\xff\xfe\x00garbage\n")
    r = CliRunner().invoke(cli, ["lava", "submit", "--url", "https://lava.example.org", "--job",
                                 str(job)], env={"XDG_CONFIG_HOME": str(tmp_path), "LAVA_TOKEN": ""})
    assert r.exit_code == 2 and "cannot read" in r.output and "internal error" not in r.output, \
        r.output


def test_a_post_redirected_into_a_get_says_which_url_to_give():
    """A server that answers the submission with 301 (as an http:// address
    that moved to https:// does): requests resends the POST as a GET, so
    the client says where it was sent and what --url to give instead of
    "refused: HTTP 200".  A real HTTP server on loopback (the stdlib's)."""
    import http.server
    import threading

    class Moved(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(301)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/moved/api/v0.2/jobs/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            body = b'{"count": 0, "results": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Moved)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        c = lc.Client(f"http://127.0.0.1:{server.server_port}/", SECRET)
        with pytest.raises(lc.LavaError) as e:
            c.submit("job_name: x\n")
        text = str(e.value)
        assert "redirected the POST" in text and "into a GET" in text, text
        assert f"--url http://127.0.0.1:{server.server_port}" in e.value.hint
        assert SECRET not in text and "\n" not in text and EXIT_CODES[e.value.kind][0] == 13
    finally:
        server.shutdown()
        server.server_close()
