"""Rebuild a bundle from a LAVA job's log.

The standalone runner on the device (remote/agent/runner.py) prints, at the
end of its run, the raw files of the bundle and its records (records.json:
facts, capabilities, plan, cells with their tracefs proofs, restore) as one
tar.gz, base64, one chunk per line prefixed with CHUNK, between BEGIN and
END lines that carry its size and sha256.  The prefix makes each chunk
findable whatever wraps the line: lava-run's YAML log ("- {dt: ..., lvl:
target, msg: 'FRB:...'}"), the "target" messages of the REST API's log
joined, or a plain console capture.  Everything a bundle holds that is
decided rather than measured (the check report, the ftrace era, the result
rows, the run's checks) is computed here, by the same code as `bench run`:
the device's preliminary figures are not read back.

rebuild(log_text, out_dir, job_meta) -> the bundle's Path (signature kept
stable: `bench lava submit` calls it).
"""
import base64
import hashlib
import io
import json
import pathlib
import re
import tarfile

from analysis.bundle import Bundle, BundleError
from analysis.units import clock_of
from remote.protocol.tracefs_text import kernel_expanded

from .. import __version__

BEGIN = "FTRACE-REGS-BENCH-BUNDLE-BEGIN"
END = "FTRACE-REGS-BENCH-BUNDLE-END"
CHUNK = "FRB:"
# Raw files a bundle may hold: one directory per method, one JSON per cell.
RAW_RE = re.compile(r"^(pyperf|kernel|bpf)/[A-Za-z0-9_.-]+\.json$")
_BEGIN_RE = re.compile(re.escape(BEGIN) + r" bytes=(\d+) sha256=([0-9a-f]{64})")
_CHUNK_RE = re.compile(re.escape(CHUNK) + r"([A-Za-z0-9+/=]+)")


def extract(log_text):
    """The tar.gz bytes of the last complete bundle block in `log_text`;
    BundleError if there is none or it does not match its checksum."""
    lines = log_text.replace("\r", "\n").split("\n")
    starts = [i for i, l in enumerate(lines) if _BEGIN_RE.search(l)]
    if not starts:
        raise BundleError(f"the job's log holds no bundle (no {BEGIN} line): the runner did not "
                          "finish; see the job's log")
    problems = []
    for start in reversed(starts):
        size, digest = _BEGIN_RE.search(lines[start]).groups()
        chunks, ended = [], False
        for line in lines[start + 1:]:
            if END in line:
                ended = True
                break
            m = _CHUNK_RE.search(line)
            if m:
                chunks.append(m.group(1))
        if not ended:
            problems.append("no end marker")
            continue
        try:
            data = base64.b64decode("".join(chunks), validate=True)
        except ValueError as e:
            problems.append(f"bad base64 ({e})")
            continue
        if len(data) != int(size) or hashlib.sha256(data).hexdigest() != digest:
            problems.append(f"{len(data)} bytes whose sha256 differs from the {size} announced")
            continue
        return data
    raise BundleError("the bundle in the job's log is damaged: " + "; ".join(problems),
                      hint="the console lost characters; run the job again")


def unpack(data):
    """{relative name: bytes} of the runner's tar.gz: records.json and raw
    files only (regular files, relative names, nothing else)."""
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t:
        for m in t.getmembers():
            if m.isdir():
                continue
            if not m.isfile() or not (m.name == "records.json" or RAW_RE.match(m.name)):
                raise BundleError(f"the job's bundle holds an unexpected member {m.name!r}")
            files[m.name] = t.extractfile(m).read()
    if "records.json" not in files:
        raise BundleError("the job's bundle has no records.json")
    return files


def lab_facts(job_meta, runner):
    """What the job says of the machine that is no fact the device can see:
    under the qemu device type, the emulation (QEMU under icount makes its
    figures instructions: analysis/units.py).  job_meta's word first, else
    what the rendered job told the runner (its records' "runner")."""
    runner = runner or {}
    if (job_meta.get("device_type") or runner.get("device_type")) != "qemu":
        return None
    icount = job_meta["icount"] if "icount" in job_meta else runner.get("clock") == "icount"
    return {"accel": job_meta.get("accel", "tcg"), "icount": bool(icount), "via": "lava"}


def rebuild(log_text: str, out_dir: pathlib.Path, job_meta: dict) -> pathlib.Path:
    """Write the bundle of a LAVA job's runner into out_dir (created; an
    existing bundle is never overwritten) and return its path.

    job_meta: what the caller knows of the job (no secrets): device_type,
    device (hostname, if known), job_id, url (the server, without token),
    icount and accel (the qemu device type's options), command (how the
    job was submitted)."""
    from ..check import report
    from ..kernel import ftrace_era
    from ..run import checks, summarize_bundle, _clean
    from analysis import stats

    files = unpack(extract(log_text))
    try:
        rec = json.loads(files["records.json"])
    except ValueError as e:
        raise BundleError(f"the job's records.json is not valid JSON ({e})")
    device_type = job_meta.get("device_type") or (rec.get("runner") or {}).get("device_type")
    host = {"kind": "lava", "name": job_meta.get("device") or device_type or "lava",
            "device_type": device_type, "job_id": job_meta.get("job_id"),
            "server": job_meta.get("url")}
    bundle = Bundle.create(out_dir, host=host, tool_version=__version__,
                           command=job_meta.get("command"))
    d = bundle.data
    facts = dict(rec.get("facts") or {})
    facts["ftrace_variant"] = ftrace_era(facts.get("kernel_config", {}), facts.get("arch"))
    lab = lab_facts(job_meta, rec.get("runner"))
    if lab is not None:
        facts["lab"] = lab
    d["facts"] = facts
    d["clock"] = clock_of(facts)
    pre = rec.get("preflight") or {}
    if rec.get("caps") is not None:
        d["host_check"] = report(facts, rec["caps"], pre, "root")
    d["plan"] = rec.get("plan") or {}
    if pre:
        d["target"] = {"tracefs": pre.get("tracefs"), "function": pre.get("function"),
                       "tracefs_mounted_by_run": pre.get("mounted_by_us"),
                       "lockdown": pre.get("lockdown")}
    for key in ("tracefs_before", "noise", "precondition", "module", "tracefs_after",
                "restore_problems"):
        if rec.get(key) is not None:
            d[key] = rec[key]
    d["lava"] = {"runner": rec.get("runner"), "job_id": job_meta.get("job_id"),
                 "device_type": device_type,
                 "device_figures": "the device's preliminary figures are in the job's results; "
                                   "this bundle's results are recomputed from its raw files"}
    d["notes"] += list(rec.get("notes") or [])
    b, a = (rec.get("tracefs_before") or {}).get("buffer_size_kb", ""), \
        (rec.get("tracefs_after") or {}).get("buffer_size_kb", "")
    if kernel_expanded(b, a):  # as bench run notes it (bench/run.py restore_target)
        d["notes"].append(
            f"buffer_size_kb: the kernel expanded its ring buffer on first tracer use "
            f"({b.strip()!r} -> {a.strip()!r}); once per boot, only a reboot undoes it")
    if rec.get("error"):
        d["error"] = rec["error"]
    for name, data in sorted(files.items()):
        if name != "records.json":
            bundle.write_raw(name, data)
    for cell in rec.get("cells") or []:
        if cell.get("file") and cell["file"] not in files:
            raise BundleError(f"cell {cell.get('id')} names {cell['file']}, which the job's bundle lacks")
        d["cells"].append(cell)
    bundle.save()
    rows = []
    if d["cells"]:
        try:
            rows = summarize_bundle(bundle)
            d["checks"] = _clean(checks(rows, bundle))
        except Exception as e:  # a statistics failure is a note, never a lost bundle
            d["notes"].append(f"summary failed: {type(e).__name__}: {e}")
    status = rec.get("status") or "failed"
    bundle.finish(status, rows, stats.METHOD_TEXT)
    return bundle.path
