"""Client of a LAVA server's REST API (v0.2, as in lava-server 2023.01):
submit a job, follow it, fetch its results and log, rebuild its bundle.

    POST /api/v0.2/jobs/                {"definition": YAML} -> 201 {"job_ids": [ID]}
    GET  /api/v0.2/jobs/ID/             state (Submitted, Scheduling, Scheduled,
                                        Running, Canceling, Finished), health
                                        (Unknown, Complete, Incomplete, Canceled),
                                        actual_device, failure_comment
    GET  /api/v0.2/jobs/ID/logs/?start=N the job's YAML log from line N (404
                                        while it has no line past N)
    GET  /api/v0.2/jobs/ID/tests/       the test cases, paginated (next)

Every request carries "Authorization: Token T" (lava_rest_app's
LavaTokenAuthentication).  The token comes from LAVA_TOKEN or lavacli's
identities file; it is held by the session's headers only: it is never
written to the bundle, never printed, and scrubbed from every message this
module raises (a server or a proxy could echo a header back).

Captured answers of a real lava-server 2023.01 are in tests/data/lava/.
"""
import json
import os
import pathlib
import re
import time
import urllib.parse

import requests
import yaml
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from remote.protocol.errors import BenchError

API = "api/v0.2/"
TOKEN_ENV = "LAVA_TOKEN"
FINISHED = "Finished"
COMPLETE = "Complete"
REQUEST_TIMEOUT = 30.0
# A job id as lava-server gives it: N, or N.M for a multinode sub-job.  It
# goes into the API's paths, the job's page and the bundle.
JOB_ID_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")


class LavaError(BenchError):
    """The server refused a request or answered something unreadable."""
    kind = "lava"


class LavaJobError(BenchError):
    """The job ended Incomplete or Canceled, or did not finish in time."""
    kind = "lava-job"


def _yaml_loader():
    # The C loader reads a job's log (tens of thousands of lines) ten times faster.
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# -- the server's address and the token --------------------------------------------

def server_root(url):
    """The server's root URL from what a user types: https://lava.example.org,
    .../, lavacli's .../RPC2 or .../api/v0.2/.  UsageError if it is no http(s) URL."""
    from ..errors import UsageError

    u = urllib.parse.urlsplit(url.strip())
    if u.scheme not in ("http", "https") or not u.hostname:
        raise UsageError(f"--url {_strip_userinfo(url)!r} is not an http(s) URL",
                         hint="give the server's address, e.g. https://lava.example.org")
    if u.username or u.password:
        # lavacli accepts https://user:token@host/RPC2; a token typed in a URL
        # would end up in shell history and logs, so it is refused, unnamed.
        raise UsageError("--url carries a user or token; give the token in LAVA_TOKEN or "
                         "lavacli's identities file instead")
    path = u.path.rstrip("/")
    for tail in ("/RPC2", "/api/v0.2"):
        if path.endswith(tail):
            path = path[:-len(tail)]
    return urllib.parse.urlunsplit((u.scheme, u.netloc, path + "/", "", ""))


def _strip_userinfo(url):
    u = urllib.parse.urlsplit(url)
    if u.username or u.password:
        return urllib.parse.urlunsplit((u.scheme, u.hostname or "", u.path, "", ""))
    if "@" in url:
        # No URL urlsplit can read ("bench:TOKEN@host/RPC2", "https:/u:TOKEN@host"):
        # whatever precedes the last @ may be a token.
        return "...@" + url.rsplit("@", 1)[1]
    return url


def identities_file(env=None):
    """lavacli's identities file: $XDG_CONFIG_HOME/lavacli.yaml, else
    ~/.config/lavacli.yaml (lavacli 1.2's own rule)."""
    env = os.environ if env is None else env
    return pathlib.Path(os.path.expanduser(os.path.join(env.get("XDG_CONFIG_HOME", "~/.config"),
                                                        "lavacli.yaml")))


def find_token(root, identity=None, env=None):
    """(token, where it came from) for the server at `root`.

    Order: LAVA_TOKEN; lavacli's identity named by --identity; else the
    identities whose uri names this server (scheme, host and port): one of
    them, or the one called "default".  lavacli's format:
        ID: {uri: https://HOST/RPC2, username: USER, token: TOKEN}
    """
    env = os.environ if env is None else env
    if env.get(TOKEN_ENV) and not identity:
        return _checked_token(env[TOKEN_ENV], f"${TOKEN_ENV}")
    path = identities_file(env)
    ids = _read_identities(path)
    if identity:
        if identity not in ids:
            raise BenchError(f"no identity {identity!r} in {path}",
                             hint="lavacli identities add --uri URL --username USER --token T "
                                  f"{identity}", kind="auth")
        entry = ids[identity]
    else:
        want = _origin(root)
        matches = {k: v for k, v in ids.items()
                   if isinstance(v, dict) and v.get("uri") and _origin(v["uri"]) == want}
        if len(matches) > 1 and "default" in matches:
            matches = {"default": matches["default"]}
        if len(matches) != 1:
            found = (f"{len(matches)} identities in {path} name it ({', '.join(sorted(matches))})"
                     if matches else f"no identity in {path} names it")
            raise BenchError(f"no LAVA token for {root}: ${TOKEN_ENV} is not set and {found}",
                             hint=f"export {TOKEN_ENV}=... or pass --identity ID", kind="auth")
        identity, entry = next(iter(matches.items()))
    token = entry.get("token") if isinstance(entry, dict) else None
    if not token:
        raise BenchError(f"identity {identity!r} in {path} has no token", kind="auth",
                         hint=f"lavacli identities add --token ... {identity}, or export {TOKEN_ENV}")
    return _checked_token(token, f"identity {identity!r} of {path}")


def _checked_token(token, where):
    """(token, where) if the token can travel in a header; never quoted: a
    header value requests refuses comes back in its error message whole."""
    token = str(token).strip()
    if not token or any(not (33 <= ord(c) <= 126) for c in token):
        raise BenchError(f"the LAVA token of {where} is empty or holds spaces, control or "
                         "non-ASCII characters", kind="auth",
                         hint="copy the token again from the server's API tokens page")
    return token, where


def _read_identities(path):
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise BenchError(f"cannot read {path}: {e.strerror or e}", kind="auth")
    try:
        data = yaml.load(text, Loader=_yaml_loader())
    except yaml.YAMLError as e:
        # The file holds tokens: its text is never quoted, only where it broke.
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise BenchError(f"{path} is not valid YAML{where}", kind="auth")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BenchError(f"{path} is not a mapping of identities", kind="auth")
    return data


def _origin(url):
    u = urllib.parse.urlsplit(url)
    port = u.port or {"http": 80, "https": 443}.get(u.scheme)
    return (u.scheme, (u.hostname or "").lower(), port)


# -- the REST API --------------------------------------------------------------------

class Client:
    """The REST API of one server with one token."""

    def __init__(self, root, token, *, timeout=REQUEST_TIMEOUT):
        self.root = root
        self.api = urllib.parse.urljoin(root, API)
        self._token = token
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self.session.headers["Accept"] = "application/json"
        # No proxy or .netrc from the environment decides where the token goes.
        self.session.trust_env = False
        self.patient(False)

    def patient(self, yes):
        """Retries of the requests to come.  Not patient (submitting): a
        server that does not answer is said at once.  Patient (following a
        job for hours): a reset connection or a restarting server (502-504)
        is retried with backoff (2, 4 ... 120 s: about 4 min in all), reads
        only: a POST is never sent twice."""
        n = 8 if yes else 0
        retry = Retry(total=n, connect=n, read=n, status=n, backoff_factor=1,
                      allowed_methods=frozenset({"GET"}), status_forcelist=(502, 503, 504),
                      raise_on_status=False)
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, HTTPAdapter(max_retries=retry))

    def close(self):
        self.session.close()

    def scrub(self, text):
        return str(text).replace(self._token, "<token>") if self._token else str(text)

    def job_url(self, job_id):
        """The job's page for a person."""
        return urllib.parse.urljoin(self.root, f"scheduler/job/{job_id}")

    def _request(self, method, path, *, what, ok=(200,), **kw):
        url = urllib.parse.urljoin(self.api, path)
        if _origin(url) != _origin(self.api):
            # A path from an answer ("next": "//other.host/...") joined to ours:
            # the session's token would go there.
            raise LavaError(f"LAVA server {self.root}: {what}: its answer leads to another "
                            f"server ({_origin(url)[1]}); the token is not sent there")
        try:
            r = self.session.request(method, url, timeout=self.timeout, **kw)
        except requests.exceptions.Timeout:
            raise BenchError(f"LAVA server {self.root}: no answer within {self.timeout:g} s ({what})",
                             hint="check the URL and that the server is up", kind="connect")
        except requests.exceptions.SSLError as e:
            raise BenchError(self.scrub(f"LAVA server {self.root}: TLS failed ({what}): "
                                        f"{_reason(e)}"), kind="connect")
        except requests.exceptions.ConnectionError as e:
            raise BenchError(self.scrub(f"cannot connect to LAVA server {self.root} ({what}): "
                                        f"{_reason(e)}"),
                             hint="check the URL and that the server is up", kind="connect")
        except requests.exceptions.RequestException as e:
            raise LavaError(self.scrub(f"LAVA server {self.root}: {what} failed: {_reason(e)}"))
        if r.history and r.request.method != method:
            # A 301/302 (e.g. http:// to https://) makes requests resend a POST
            # as a GET, whose answer would read as a refused submission.
            u = urllib.parse.urlsplit(r.url)  # its scheme, host and port only: no userinfo, no path
            where = f"{u.scheme}://{u.hostname}" + (f":{u.port}" if u.port else "")
            raise LavaError(f"LAVA server {self.root}: {what}: the server redirected the {method} to "
                            f"{where}, which turned it into a {r.request.method}",
                            hint=f"give --url {where} (the address it redirects to)")
        if r.status_code in ok:
            return r
        detail = self.scrub(_detail(r))
        if r.status_code in (401, 403):
            raise BenchError(f"LAVA server {self.root} refused the token ({what}): HTTP "
                             f"{r.status_code}{detail}",
                             hint=f"check {TOKEN_ENV} or the lavacli identity, and the user's "
                                  "rights on the server", kind="auth")
        if r.status_code == 404:
            raise LavaError(f"LAVA server {self.root}: not found ({what}): HTTP 404{detail}",
                            hint="check the URL (the server's root, e.g. https://lava.example.org)"
                                 " and the job id")
        raise LavaError(f"LAVA server {self.root}: {what} refused: HTTP {r.status_code}{detail}")

    def _json(self, r, what):
        """The answer's JSON object (every answer this client reads is one)."""
        try:
            data = r.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise LavaError(f"LAVA server {self.root}: {what}: the answer is not a JSON object "
                            f"(HTTP {r.status_code}, {r.headers.get('Content-Type', '?')})",
                            hint="is --url a LAVA server's root?")
        return data

    def version(self):
        r = self._request("GET", "system/version/", what="reading its version")
        return self._json(r, "reading its version").get("version")

    def submit(self, definition):
        """The new job's id."""
        what = "submitting the job"
        r = self._request("POST", "jobs/", what=what, ok=(201,), json={"definition": definition})
        ids = self._json(r, what).get("job_ids") or []
        if not isinstance(ids, list) or len(ids) != 1:
            raise LavaError(f"LAVA server {self.root}: {what}: expected one job id, got "
                            f"{str(ids)[:100]!r}", hint="multinode jobs are not supported")
        if isinstance(ids[0], bool) or not JOB_ID_RE.match(str(ids[0])):
            raise LavaError(f"LAVA server {self.root}: {what}: {str(ids[0])[:100]!r} is no job id")
        return ids[0]

    def job(self, job_id):
        what = f"reading job {job_id}"
        return self._json(self._request("GET", f"jobs/{job_id}/", what=what), what)

    def log_lines(self, job_id, start=0):
        """The job's log lines from `start` (dicts: dt, lvl, msg); [] while
        there is none past it."""
        what = f"reading job {job_id}'s log"
        try:
            r = self._request("GET", f"jobs/{job_id}/logs/", what=what,
                              params={"start": start} if start else None,
                              headers={"Accept": "*/*"})
        except LavaError as e:
            if "HTTP 404" in str(e):  # the view's answer when no line is past `start`
                return []
            raise
        return parse_log(r.text, self.root)

    def tests(self, job_id):
        """Every test case of the job, each with its suite's name ("suite_name":
        the API gives the suite's id only)."""
        names = {s.get("id"): s.get("name") for s in self._pages(f"jobs/{job_id}/suites/", job_id)}
        out = self._pages(f"jobs/{job_id}/tests/", job_id)
        for t in out:
            t["suite_name"] = names.get(t.get("suite"))
        return out

    def _pages(self, path, job_id):
        """A paginated list of the API, followed to its end."""
        what = f"reading job {job_id}'s results"
        out = []
        params = {"limit": 500}
        while path:
            data = self._json(self._request("GET", path, what=what, params=params), what)
            out += data.get("results") or []
            params = None
            nxt = data.get("next")
            # Only the next page's path and query are taken, joined to our own
            # root: behind a proxy the server may name itself http://..., and
            # the token goes to no other address than --url's.
            path = _path_and_query(nxt) if nxt else None
        return out


def _path_and_query(url):
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(("", "", u.path, u.query, ""))


def _reason(e):
    """The innermost reason of a requests error, without its repr noise."""
    inner = e
    while getattr(inner, "__context__", None) is not None or getattr(inner, "reason", None):
        nxt = getattr(inner, "reason", None) or inner.__context__
        if nxt is None or nxt is inner or isinstance(nxt, str):
            break
        inner = nxt
    text = str(inner)
    # urllib3: "<urllib3.connection.HTTPConnection object at 0x..>: Failed to establish a new
    # connection: [Errno 111] Connection refused" -> the part after the object.
    if ">: " in text:
        text = text.split(">: ", 1)[1]
    return " ".join(text.split())[:200]


def _detail(r):
    """The server's own words on an error, short."""
    try:
        data = r.json()
    except ValueError:
        return ""
    if isinstance(data, dict):
        msg = data.get("message") or data.get("detail") or data
    else:
        msg = data
    text = msg if isinstance(msg, str) else json.dumps(msg, sort_keys=True)
    return " (" + " ".join(text.split())[:300] + ")"


def parse_log(text, root="the server"):
    """A job's YAML log (a list of {dt, lvl, msg}) as a list of dicts."""
    if not text.strip():
        return []
    try:
        data = yaml.load(text, Loader=_yaml_loader())
    except yaml.YAMLError as e:
        # The server writes one flow mapping per line: read line by line, up
        # to a last line still being written (it is read again next time).
        data = []
        for line in text.splitlines():
            try:
                data += yaml.load(line, Loader=_yaml_loader()) or []
            except (yaml.YAMLError, TypeError):
                break
        if not data:
            raise LavaError(f"LAVA server {root}: the job's log is not YAML ({type(e).__name__})")
    if not isinstance(data, list):
        raise LavaError(f"LAVA server {root}: the job's log is not a list of lines")
    return [d for d in data if isinstance(d, dict)]


def target_text(lines):
    """What the device printed (the log's "target" lines), one line each:
    the text rebuild() reads the bundle from."""
    out = []
    for d in lines:
        if d.get("lvl") == "target":
            msg = d.get("msg")
            out.append(msg if isinstance(msg, str) else json.dumps(msg))
    return "\n".join(out) + "\n"


def measurements(tests):
    """The job's test cases that carry a measurement: {suite/name: (value, unit, result)}."""
    out = {}
    for t in tests:
        if t.get("measurement") in (None, ""):
            continue
        try:
            value = float(t["measurement"])
        except (TypeError, ValueError):
            continue
        key = f"{t.get('suite_name') or t.get('suite', '?')}/{t.get('name', '?')}"
        out[key] = (value, t.get("unit") or "", t.get("result"))
    return out


# -- following a job ----------------------------------------------------------------------

def follow(client, job_id, *, timeout, poll=5.0, progress=None, clock=time.monotonic,
           sleep=time.sleep):
    """Poll the job until it is Finished; returns (job, log lines).
    progress(job, lines, new_lines) is called after each poll.  The log is
    read as it grows (?start=N), so the whole log is in hand at the end."""
    start = clock()
    lines = []
    client.patient(True)
    while True:
        job = client.job(job_id)
        new = client.log_lines(job_id, len(lines))
        lines += new
        if progress:
            progress(job, lines, new)
        if job.get("state") == FINISHED:
            # The log's last lines may land after the state changes.
            lines += client.log_lines(job_id, len(lines))
            return job, lines
        if clock() - start > timeout:
            raise LavaJobError(f"job {job_id} did not finish within {timeout:g} s (state "
                               f"{job.get('state')}); it is left running: {client.job_url(job_id)}",
                               hint="raise --timeout, or cancel it on the server")
        sleep(poll)


def job_meta(client, job, definition, command):
    """What rebuild() is told of the job: no secret (no token, no job token)."""
    try:
        d = yaml.load(definition, Loader=_yaml_loader()) or {}
    except yaml.YAMLError:
        d = {}
    d = d if isinstance(d, dict) else {}
    context = d.get("context") if isinstance(d.get("context"), dict) else {}
    extra = " ".join(str(x) for x in context.get("extra_options") or [])
    accel = "tcg"
    for part in extra.split():
        if part.startswith("tcg") or part.startswith("kvm"):
            accel = part.split(",")[0]
    return {"device_type": job.get("requested_device_type") or d.get("device_type"),
            "device": job.get("actual_device"), "job_id": job.get("id"),
            "url": client.root, "icount": "-icount" in extra, "accel": accel,
            "command": command}


def device_dir_name(job):
    """The results/ directory of the job's device: the server's name for it
    (default_dir makes it one safe directory name)."""
    return str(job.get("actual_device") or job.get("requested_device_type") or "lava")


def public_job(job):
    """The job as the server described it, without the job's own token."""
    return {k: v for k, v in job.items() if k != "token"}


def failure_reason(job, lines):
    """Why a job failed, in the server's or the dispatcher's words: the
    failure comment, else the job's "lava/job" result's error, else the
    log's last error line."""
    if job.get("failure_comment"):
        return job["failure_comment"]
    for d in reversed(lines):
        msg = d.get("msg")
        if d.get("lvl") == "results" and isinstance(msg, dict) and msg.get("case") == "job" \
                and msg.get("error_msg"):
            return f"{msg.get('error_type', 'Job')} error: {msg['error_msg']}"
    for d in reversed(lines):
        if d.get("lvl") == "error" and isinstance(d.get("msg"), str):
            return d["msg"]
    return "no reason given"


def check_health(client, job, lines=()):
    if job.get("health") != COMPLETE:
        comment = failure_reason(job, lines)
        raise LavaJobError(client.scrub(
            f"job {job.get('id')} on {job.get('actual_device') or job.get('requested_device_type')} "
            f"ended {job.get('health')}: {' '.join(str(comment).split())[:300]}"),
            hint=f"see its log: {client.job_url(job.get('id'))}")


def save_lava_files(bundle_dir, client, job, tests, lines):
    """The job's description, test cases and log beside the bundle (lava/):
    what the server said, for whoever checks the rebuilt bundle against it."""
    d = pathlib.Path(bundle_dir) / "lava"
    d.mkdir(exist_ok=True)
    (d / "job.json").write_text(client.scrub(json.dumps(public_job(job), indent=1,
                                                        sort_keys=True)) + "\n")
    if tests is not None:  # None: the server did not give them
        (d / "tests.json").write_text(client.scrub(json.dumps(tests, indent=1, sort_keys=True))
                                      + "\n")
    (d / "log.yaml").write_text(client.scrub(yaml.safe_dump(lines, default_flow_style=None,
                                                            width=1 << 20, sort_keys=False)))


# -- the whole of `bench lava submit` ---------------------------------------------------------

def run_job(client, definition, *, out=None, results_root="results", timeout, poll=5.0,
            command=None, echo=None):
    """Submit `definition`, follow the job, check its health, rebuild its
    bundle; returns (bundle path, job, tests).  echo(text) shows progress."""
    echo = echo or (lambda text: None)
    job_id = client.submit(definition)
    echo(f"job {job_id} submitted: {client.job_url(job_id)}")
    seen = {"state": None, "t": 0.0}

    def progress(job, lines, new):
        state = job.get("state")
        if state != seen["state"]:
            where = f" on {job['actual_device']}" if job.get("actual_device") else ""
            echo(f"job {job_id}: {state}{where}")
            seen["state"] = state
        now = time.monotonic()
        if new and now - seen["t"] >= 30:
            # The device's last line: where the runner is (boot, cell N of M...).
            last = next((d.get("msg") for d in reversed(new)
                         if d.get("lvl") in ("target", "info") and isinstance(d.get("msg"), str)),
                        None)
            if last:
                echo(f"job {job_id}: {len(lines)} log lines; {' '.join(last.split())[:100]}")
            seen["t"] = now

    job, lines = follow(client, job_id, timeout=timeout, poll=poll, progress=progress)
    # Imported here: analysis/ loads pandas and scipy (seconds), needed only now.
    from analysis import bundle as bundle_mod

    from .bundle import BEGIN, rebuild

    meta = job_meta(client, job, definition, command)
    if out is None:
        out = bundle_mod.default_dir(results_root, device_dir_name(job))
    try:
        check_health(client, job, lines)
    except LavaJobError as e:
        text = target_text(lines)
        if BEGIN not in text:
            raise
        # Incomplete or Canceled after the runner printed its bundle (a later
        # step timed out, the job was canceled): the bundle is kept all the same.
        try:
            path = rebuild(text, pathlib.Path(out), meta)
        except BenchError:
            raise e from None
        save_lava_files(path, client, job, None, lines)
        raise LavaJobError(f"{e.message}; the bundle the runner printed is saved: {path}",
                           hint=e.hint) from e
    # The bundle first, from the log in hand: a server failing the requests
    # that follow costs the test cases, never hours of measurement.
    path = rebuild(target_text(lines), pathlib.Path(out), meta)
    try:
        tests = client.tests(job_id)
    except BenchError as e:
        save_lava_files(path, client, job, None, lines)
        raise type(e)(f"{e.message}; the job's bundle is saved: {path}", hint=e.hint,
                      kind=e.kind) from e
    save_lava_files(path, client, job, tests, lines)
    return path, job, tests
