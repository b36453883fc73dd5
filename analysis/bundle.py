"""The result bundle: a directory with bundle.json and the raw pyperf files.

    bundle.json          format, format_version, facts, plan, cells, results
    pyperf/<cell>.json   each pyperf cell's file exactly as pyperf wrote it
    kernel/<cell>.json   each kernel cell's runs as the module reported them
                         (calls, total_ns, hits per repetition)
    bpf/<cell>.json      each bpf cell's runs as the collector reported them
                         (calls, count, sum_ns, mean_ns, log2 and linear
                         histograms of sys_enter -> sys_exit ns per run)

bundle.json is rewritten (temp file + rename) after every completed cell, so
an interrupted run leaves a valid bundle with complete=false.

Format history:
  1  (0.1.0) first version: facts, check, plan (with skipped modes/methods),
             cells (methods pyperf and kernel, tracefs proof per cell), result
             rows (per_call_ns, overhead_ns, regs_gain_ns) with t intervals
             over rounds, module build facts.
     Later additions that version-1 readers may ignore (every new key is
     optional): method bpf (cells, bpf/ files, "bpf": the collector's
     compile facts), check modes off-aa and off-probe (plan.check_modes,
     rows like any mode), "checks" (aa, probe_cost, method_agreement),
     "noise" (tuned, warnings, cpu, changed, restored), plan.affinity and
     plan.bpf_calls.
  2  metric names without a unit (per_call, overhead, regs_gain), "clock"
     and a unit on every row (version 1 is read as 2: upgrade_v1).
     Later additions that version-2 readers may ignore: checks.steps (the
     step check, analysis/steps.py; docs/bundle.md lists its fields).
  3  "check" (what `bench check` said of the host) is "host_check", so that
     it is not one letter from "checks" (the run's own checks); version 2
     is read as 3: upgrade_v2.
     Later additions that version-3 readers may ignore: noise.placement,
     cells[].cpus and bpf cells' trace_events (where the workload and the
     harness could run under --tune; docs/bundle.md lists the fields),
     plan.pyperf_loops and plan.pyperf_loops_from (the run's one pyperf
     calibration and the cell that made it), cells[].loops (pyperf cells).
  4  3 plus the kernel method's ops points (bench run --ops, --ops-sweep):
     cells and result rows may carry "ops" ({"relevant": R, "irrelevant":
     I}), plan.ops lists the points.  A reader that ignored "ops" would
     pool the points into one figure per mode, so a bundle with points is
     written as 4 (older readers refuse it); one without is still written
     as 3, which it is.  Both are read as they are (no upgrade).

Older versions are read as the current one (upgrade()); the files on disk
are not touched.
"""
import contextlib
import datetime
import json
import os
import pathlib

from remote.protocol.errors import BenchError

from .units import clock_of, unit_of_clock

FORMAT = "ftrace-regs-bench/bundle"
FORMAT_VERSION = 3
# A bundle with ops points (see the format history above).
OPS_FORMAT_VERSION = 4
SUPPORTED_VERSIONS = (1, 2, 3, 4)

# Version 1's metric names carried a unit that was wrong under icount.
V1_METRICS = {"per_call_ns": "per_call", "overhead_ns": "overhead", "regs_gain_ns": "regs_gain"}


class BundleError(BenchError):
    """A bundle that cannot be read, or bundles that cannot be read together."""
    kind = "bundle"


class OutputError(BenchError):
    """A bundle, report or export that cannot be written where asked."""
    kind = "output"


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def prove_writable(path, what, hint="choose a writable --out", make=None):
    """Create directory `make` (default: path) with its parents and prove
    that a file can be written in path, or raise OutputError naming what
    could not be written and where."""
    path = pathlib.Path(path)
    probe = path / ".write-test"
    try:
        pathlib.Path(make or path).mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        raise OutputError(f"cannot write {what} to {path}: {e.strerror or e}", hint=hint) from None


def default_dir(results_root, host):
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in host)
    if not safe.strip("."):  # "", "." or "..": not one directory under results_root
        safe = "unnamed"
    return pathlib.Path(results_root) / safe / stamp


class Bundle:
    def __init__(self, path, data):
        self.path = pathlib.Path(path)
        self.data = data

    # -- creation -------------------------------------------------------------
    @classmethod
    def create(cls, path, *, host, tool_version, command):
        path = pathlib.Path(path)
        if (path / "bundle.json").exists():
            raise OutputError(f"{path} already holds a bundle; results are never overwritten",
                              hint="choose another --out")
        prove_writable(path, "the bundle", make=path / "pyperf")
        data = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "tool": {"name": "ftrace-regs-bench", "version": tool_version},
            "command": command,
            "created_utc": utc_now().isoformat(timespec="seconds"),
            "finished_utc": None,
            "complete": False,
            "status": "running",
            "host": host,
            "facts": {},
            "clock": None,
            "plan": {},
            "cells": [],
            "results": [],
            "stats_method": None,
            "notes": [],
        }
        b = cls(path, data)
        b.save()
        return b

    def save(self):
        tmp = self.path / "bundle.json.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(self.data, f, indent=1, sort_keys=False, default=_json_default)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path / "bundle.json")
        except OSError as e:
            # Disk full or gone: the last complete bundle.json stays as it was.
            tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {self.path / 'bundle.json'}: {e.strerror or e}",
                              hint="free space or choose another --out")

    def write_raw(self, rel, data: bytes):
        dest = self.path / rel
        if dest.exists():
            raise OutputError(f"{dest} exists; results are never overwritten")
        tmp = dest.with_suffix(dest.suffix + ".tmp")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {dest}: {e.strerror or e}",
                              hint="free space or choose another --out")
        return rel

    def add_cell(self, cell):
        self.data["cells"].append(cell)
        self.save()

    def finish(self, status, results, stats_method):
        self.data["results"] = results
        self.data["stats_method"] = stats_method
        self.data["status"] = status
        self.data["complete"] = status == "complete"
        self.data["finished_utc"] = utc_now().isoformat(timespec="seconds")
        self.save()

    def discard(self):
        """Remove a bundle that holds no measurement (only what create() made)."""
        for name in ("bundle.json", "bundle.json.tmp"):
            (self.path / name).unlink(missing_ok=True)
        for d in (self.path / "pyperf", self.path):
            try:
                d.rmdir()
            except OSError:
                pass

    # -- reading --------------------------------------------------------------
    @classmethod
    def load(cls, path):
        path = pathlib.Path(path)
        f = path / "bundle.json" if path.is_dir() else path
        try:
            text = f.read_text()
        except FileNotFoundError:
            raise BundleError(f"{path}: no bundle.json here", hint="give a bundle directory")
        except OSError as e:
            raise BundleError(f"cannot read {f}: {e.strerror or e}")
        try:
            data = json.loads(text)
        except ValueError as e:
            raise BundleError(f"{f} is not valid JSON ({e.msg} at line {e.lineno}): truncated or corrupt")
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BundleError(f"{f} is not an ftrace-regs-bench bundle")
        v = data.get("format_version")
        if v not in SUPPORTED_VERSIONS:
            raise BundleError(f"{f} has bundle format version {v!r}; this bench reads "
                              + ", ".join(map(str, SUPPORTED_VERSIONS)),
                              hint="use a bench release that knows that version")
        if v not in (FORMAT_VERSION, OPS_FORMAT_VERSION):
            upgrade(data)
        return cls(f.parent, data)


def _v1_names(text):
    for old, new in V1_METRICS.items():
        text = text.replace(old, new)
    return text


def upgrade(data):
    """An older bundle's data as the current version, in place, one version
    at a time.  "upgraded_from" records the version read, so a report can
    say so; a bundle already upgraded once (a resumed one, written back as
    the then current version) keeps the version it was first read from."""
    read = data["format_version"]
    if data["format_version"] == 1:
        upgrade_v1(data)
    if data["format_version"] == 2:
        upgrade_v2(data)
    data["upgraded_from"] = data.get("upgraded_from") or read
    return data


def upgrade_v1(data):
    """A version 1 bundle's data as version 2, in place: metric names
    without a unit, and every unit the one its clock implies (version 1
    wrote "ns" under icount too).  The numbers are not touched."""
    clock = data.get("clock") or clock_of(data.get("facts"))
    unit = unit_of_clock(clock)
    data["clock"] = clock
    for r in data.get("results") or []:
        r["metric"] = V1_METRICS.get(r.get("metric"), r.get("metric"))
        r["unit"] = unit
        if isinstance(r.get("ci_method"), str):
            r["ci_method"] = _v1_names(r["ci_method"])
    if isinstance(data.get("stats_method"), str):
        data["stats_method"] = _v1_names(data["stats_method"])
    checks = data.get("checks") or {}
    aa = checks.get("aa")
    if isinstance(aa, dict):
        for v in aa.values():
            if isinstance(v, dict) and "value" in v:
                v["unit"] = unit
    if isinstance(checks.get("probe_cost"), dict):
        checks["probe_cost"]["unit"] = unit
    for a in checks.get("method_agreement") or []:
        if isinstance(a, dict):
            a["metric"] = V1_METRICS.get(a.get("metric"), a.get("metric"))
    data["format_version"] = 2
    return data


def upgrade_v2(data):
    """A version 2 bundle's data as version 3, in place: "check" is
    "host_check"."""
    if "check" in data:
        data["host_check"] = data.pop("check")
    data["format_version"] = 3
    return data


def _json_default(o):
    # NaN never reaches here (json writes floats itself): bench/run.py stores
    # missing intervals as None.
    if isinstance(o, pathlib.Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
