"""Units and comparisons on the committed real bundles (results/lab/, all
written as bundle format version 1): what a figure counts (ns, or
instructions under icount) is said on every row, table and axis; pooling
refuses different profiles and tuning; compare says "exact" where nothing
varies; method disagreements are explained only where the reason is known."""
import io
import json
import re

import pandas as pd
import pytest
from click.testing import CliRunner

from analysis import compare, plots, stats
from analysis.bundle import FORMAT_VERSION, Bundle
from analysis.load import COLUMNS, cells_frame, load_bundles
from analysis.report import build
from analysis.summary import summarize_cells
from bench.cli import cli
from bench.ui import print_results
from bundlecopy import ICOUNT, LAB, TCG, copy_bundle

BPF = LAB / "debian-6.1-icount-bpf"  # quick, --tune, three methods, icount
TCG_BPF = LAB / "debian-6.1-tcg-bpf-quick"


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


def one_line(result):
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


# -- the bundle format: versions 1 and 2 read as version 3 ---------------------------

def test_a_version_1_icount_bundle_reads_as_version_3_in_instructions():
    on_disk = json.loads((BPF / "bundle.json").read_text())
    assert on_disk["format_version"] == 1 and {r["unit"] for r in on_disk["results"]} == {"ns"}
    data = Bundle.load(BPF).data
    assert data["format_version"] == FORMAT_VERSION == 3 and data["upgraded_from"] == 1
    assert data["host_check"] == on_disk["check"] and "check" not in data
    assert data["clock"] == "icount"
    assert {r["unit"] for r in data["results"]} == {"instructions"}
    assert {r["metric"] for r in data["results"]} == {"per_call", "overhead", "regs_gain"}
    # The numbers are the same ones, row for row.
    assert [r["value"] for r in data["results"]] == [r["value"] for r in on_disk["results"]]
    assert "_ns" not in data["stats_method"] and "per_call = mean" in data["stats_method"]
    checks = data["checks"]
    assert {v["unit"] for v in checks["aa"].values()} == {"instructions"}
    assert checks["probe_cost"]["unit"] == "instructions"
    assert {a["metric"] for a in checks["method_agreement"]} == {"overhead", "regs_gain"}


def test_a_version_1_wall_clock_bundle_reads_as_ns():
    data = Bundle.load(TCG_BPF).data
    assert data["clock"] == "wall" and {r["unit"] for r in data["results"]} == {"ns"}
    assert data["checks"]["probe_cost"]["unit"] == "ns"


def test_a_version_2_bundle_reads_its_check_as_host_check(tmp_path):
    """Version 2 named the host's `bench check` report "check"; version 3
    reads it as "host_check", nothing else changes."""
    v3 = Bundle.load(ICOUNT).data

    def as_version_2(d):  # what upgrade_v1 changes, as upgraded; the rest as on disk
        d.update({k: v3[k] for k in ("clock", "results", "checks", "stats_method") if k in v3},
                 format_version=2)

    dest = copy_bundle(ICOUNT, tmp_path / "v2", as_version_2)
    on_disk = json.loads((dest / "bundle.json").read_text())
    data = Bundle.load(dest).data
    assert data["format_version"] == 3 and data["upgraded_from"] == 2
    assert data["host_check"] == on_disk["check"] and "check" not in data
    assert {k: v for k, v in data.items() if k not in ("host_check", "format_version", "upgraded_from")} \
        == {k: v for k, v in on_disk.items() if k not in ("check", "format_version")}


def test_a_version_3_bundle_is_read_as_written(tmp_path):
    """An upgraded bundle saved (as a resumed run would) is version 3 on
    disk, keeps the version it was first read from, and reads back unchanged."""
    b = Bundle.load(ICOUNT)
    dest = copy_bundle(ICOUNT, tmp_path / "v3")
    Bundle(dest, b.data).save()
    on_disk = json.loads((dest / "bundle.json").read_text())
    assert on_disk["format_version"] == 3 and on_disk["clock"] == "icount"
    assert on_disk["upgraded_from"] == 1 and "host_check" in on_disk and "check" not in on_disk
    assert Bundle.load(dest).data == on_disk


# -- bench export: unit and clock on every row --------------------------------------

def export(*paths):
    r = run("export", *paths)
    assert r.exit_code == 0, r.output
    return pd.read_csv(io.StringIO(r.output))


def test_export_carries_unit_and_clock_on_every_row():
    df = export(ICOUNT)
    assert list(df.columns) == COLUMNS and {"unit", "clock"} <= set(df.columns)
    assert set(df.unit) == {"instructions"} and set(df.clock) == {"icount"}
    assert set(df.metric) == {"per_call", "overhead", "regs_gain"}
    df = export(TCG)
    assert set(df.unit) == {"ns"} and set(df.clock) == {"wall"}
    # Two exports concatenated keep their units apart.
    both = export(ICOUNT, TCG)
    assert both.groupby("clock")["unit"].unique().map(list).to_dict() == {"icount": ["instructions"],
                                                                          "wall": ["ns"]}


# -- what the reports and the terminal say ---------------------------------------------

def test_no_table_or_axis_of_an_icount_report_says_ns(tmp_path):
    md = build([str(ICOUNT)], tmp_path)[0].read_text()
    for block in re.findall(r"(?:^\|.*\|\n)+", md, re.M):
        lines = block.splitlines()
        head = [c.strip() for c in lines[0].strip("|").split("|")]
        if "unit" in head:
            i = head.index("unit")
            units = {l.strip("|").split("|")[i].strip() for l in lines[2:]}
            assert units == {"instructions"}, (head, units)
    assert "clock / unit | icount / instructions" in md
    assert f"v1 (read as v{FORMAT_VERSION})" in md
    fig = plots.distribution_figure(Bundle.load(ICOUNT), "icount")
    labels = {ax.get_xlabel() for ax in fig.axes if ax.get_visible()}
    assert labels == {"guest instructions per call (icount, emulated)"}
    assert "ns per call" in {ax.get_xlabel() for ax in plots.distribution_figure(Bundle.load(TCG), "t").axes}


def test_terminal_tables_and_check_lines_say_instructions_under_icount():
    out = io.StringIO()
    print_results(Bundle.load(BPF), file=out)
    text = out.getvalue()
    assert "instructions/call" in text and "overhead instructions" in text
    assert "] instructions (n=4)" in text
    assert not re.search(r"(?<![a-z])ns/call| ns |\] ns \(n=", text)
    out = io.StringIO()
    print_results(Bundle.load(TCG_BPF), file=out)
    assert re.search(r"(?<![a-z])ns/call", out.getvalue()) and "instructions" not in out.getvalue()


# -- pooling ----------------------------------------------------------------------------

def test_pooling_a_quick_tuned_run_with_a_standard_untuned_one_is_refused(tmp_path):
    r = run("report", ICOUNT, BPF, "--out", tmp_path / "out", "--pool")
    line = one_line(r)
    assert r.exit_code == 8
    assert "profile differs ('quick' vs 'standard')" in line and "tune differs (False vs True)" in line
    assert "--group-by profile,tune" in line
    assert not (tmp_path / "out" / "report.md").exists()
    r = run("report", ICOUNT, BPF, "--out", tmp_path / "out", "--pool", "--group-by", "profile,tune")
    assert r.exit_code == 0, r.output


def test_a_pooled_report_names_the_keys_it_checked(tmp_path):
    again = copy_bundle(ICOUNT, tmp_path / "again", lambda d: d["facts"].update(boot_id="another-boot"))
    r = run("report", ICOUNT, again, "--out", tmp_path / "out", "--pool")
    assert r.exit_code == 0, r.output
    md = (tmp_path / "out" / "report.md").read_text()
    assert ("these keys were checked to be equal: host, arch, cpu_model, cpu_count, kernel_release, "
            "kernel_version, ftrace_variant, accel, icount, lab_smp, lab_cpu_model, qemu_version, profile, "
            "tune.") in md
    assert "Student t over the per-bundle means" in md
    assert "| 2 bundles (10 rounds) |" in md


def test_tune_is_read_from_the_command_when_noise_was_not_recorded(tmp_path):
    frame, _ = cells_frame(load_bundles([ICOUNT, BPF]), ["a", "b"])
    assert dict(zip(frame["bundle"], frame["tune"])) == {"a": False, "b": True}
    assert dict(zip(frame["bundle"], frame["profile"])) == {"a": "standard", "b": "quick"}


# -- compare: exact where nothing varies ------------------------------------------------

def _counted(src, dest, per_call):
    """A copy of src whose kernel cells count exactly per_call[mode] per call
    in every run (no spread, as icount gives for some paths)."""
    b = copy_bundle(src, dest)
    for cell in json.loads((b / "bundle.json").read_text())["cells"]:
        if cell["method"] == "kernel":
            f = b / cell["file"]
            d = json.loads(f.read_text())
            for r_ in d["runs"]:
                r_["total_ns"] = per_call[cell["mode"]] * r_["calls"]
            f.write_text(json.dumps(d))
    return b


def test_compare_says_exact_where_neither_side_varies(tmp_path):
    a = _counted(ICOUNT, tmp_path / "a", {"off": 13, "noregs": 169, "regs": 178})
    b = _counted(ICOUNT, tmp_path / "b", {"off": 13, "noregs": 169, "regs": 180})
    res = compare.compare(a, b)
    by = {(r["method"], r["mode"], r["metric"]): r for r in res["rows"]}
    gain = by[("kernel", "regs", "regs_gain")]
    assert gain["exact"] and gain["significant"] is None and gain["diff"] == pytest.approx(2)
    assert gain["diff_ci"] == [None, None]
    assert by[("kernel", "off", "per_call")]["exact"] and by[("kernel", "off", "per_call")]["diff"] == 0
    assert not by[("pyperf", "off", "per_call")]["exact"]
    r = run("compare", a, b)
    assert r.exit_code == 0, r.output
    row = next(l for l in r.output.splitlines() if "kernel" in l and "regs_gain" in l)
    assert row.count("exact") == 2 and "yes" not in row and "[2.0, 2.0]" not in row
    assert "no interval or significance applies" in r.output


# -- method agreement: a reason only where one is known --------------------------------------

def test_disagreement_reasons_are_given_only_where_known():
    bpf_all = stats.disagreement_reason("overhead", "function-all", ["bpf", "pyperf"])
    assert "probe's own kernel work" in bpf_all
    assert "own tracee" in stats.disagreement_reason("overhead", "noregs", ["kernel", "pyperf"])
    assert stats.disagreement_reason("regs_gain", "regs", ["bpf", "pyperf"]) is None
    assert stats.disagreement_reason("overhead", "function", ["bpf", "pyperf"]) is None


def test_the_agreement_sentence_explains_the_known_disagreements_only(tmp_path):
    def unexplained(d):
        for a in d["checks"]["method_agreement"]:
            if a["metric"] == "regs_gain_ns" and a["methods"] == ["bpf", "pyperf"]:
                a["agree"] = False  # a regs gain disagreement: no reason is known
    b = copy_bundle(BPF, tmp_path / "bpf", unexplained)
    md = build([str(b)], tmp_path / "out")[0].read_text()
    sentence = next(l for l in md.splitlines() if "method agreement check" in l)
    assert "disagreements are expected" not in sentence
    assert ("Expected to disagree (bpf and pyperf on the function-all overhead): under function-all the "
            "tracer also traces the bpf probe's own kernel work") in sentence
    assert "kernel and pyperf on the noregs overhead" in sentence
    assert "regs gain" not in sentence and "function overhead" not in sentence
    table = md.split(sentence)[1]
    assert "| regs_gain | regs | instructions | bpf: 8.7 [7.5, 9.9] | pyperf: 9.5 [6.9, 12.0] | no |" in table
