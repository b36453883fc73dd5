"""bench report on the committed real bundles: the report's structure
(sections, tables, figure references), reproducible bytes, anonymization,
and bad input through the CLI."""
import hashlib
import json
import re

import pytest
from click.testing import CliRunner

from analysis import plots
from analysis.bundle import Bundle
from analysis.load import cells_frame, load_bundles
from analysis.report import SECTIONS, build
from analysis.summary import summarize_cells
from bench.cli import cli
from bundlecopy import ICOUNT, LAB, TCG, copy_bundle


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    md, html = build([str(ICOUNT), str(TCG)], out)
    return out, md.read_text(), html.read_text()


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


def test_markdown_has_every_section_in_order_and_its_tables(report):
    out, md, _ = report
    heads = re.findall(r"^## (.+)$", md, re.M)
    assert heads == SECTIONS
    assert md.startswith("# ") and "**Emulated, not hardware.**" in md
    systems = md.split("## Systems")[1].split("## Method")[0]
    for fact in ("CPU", "instance type", "kernel", "ftrace era", "ftrace variant", "accel / icount",
                 "governor", "SMT", "cmdline"):
        assert re.search(rf"^\| {re.escape(fact)}[ |(]", systems, re.M), fact
    assert "| debian-6.1-icount-standard | debian-6.1-tcg-quick |" in systems
    results = md.split("## Results")[1].split("## Figures")[0]
    assert "| debian-6.1-icount-standard | kernel | kmod-tracee | regs | instructions | 9.009 | [9.006, 9.012] |" \
        in results
    assert "95% CI (bootstrap)" in results and "p (paired t, regs - noregs)" in results
    assert "Mann-Whitney" not in md, "an unpaired test next to paired CIs"
    method = md.split("## Method")[1].split("## Results")[0]
    assert "5 rounds x 8 workers x 3 values" in method and "Student t" in method and "bootstrap" in method
    assert "no A/A check recorded" in md
    confounds = md.split("## Confounds and caveats")[1]
    assert "count of guest instructions" in confounds and "emulator" in confounds
    repro = md.split("## Reproduce")[1]
    assert "bench lab up --kernel debian-6.1 --icount" in repro
    assert "bench run --host lab --profile standard --quiet --seed 20261126" in repro


def test_every_figure_is_referenced_and_exists(report):
    out, md, html = report
    refs = re.findall(r"!\[[^]]*\]\((figures/[^)]+\.svg)\)", md)
    assert len(refs) == 6  # headline, overhead, regs gain, variants, one distribution per bundle
    for ref in refs:
        assert (out / ref).stat().st_size > 1000
        assert (out / ref.replace(".svg", ".png")).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    imgs = re.findall(r'<img src="([^"]+)"', html)
    assert len(imgs) == len(refs) and all(i.startswith("data:image/svg+xml;base64,") for i in imgs)
    # Self-contained: nothing fetched from anywhere.
    assert not re.search(r'(src|href)="(https?:|//|figures/)', html)
    for s in SECTIONS:
        assert f'id="{s.lower().replace(" ", "-")}"' in html


def test_figures_and_report_are_byte_identical_when_regenerated(tmp_path):
    def digest(d):
        return {p.relative_to(d): hashlib.sha256(p.read_bytes()).hexdigest() for p in d.rglob("*") if p.is_file()}
    build([str(ICOUNT)], tmp_path)
    first = digest(tmp_path)
    build([str(ICOUNT)], tmp_path)
    assert digest(tmp_path) == first
    svg = (tmp_path / "figures" / "overhead.svg").read_text()
    assert "<dc:date>" not in svg and "Matplotlib v" not in svg


def test_save_writes_no_date_or_software(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure()
    fig.subplots().plot([1, 2], [3, 4])
    svg, png = plots.save(fig, tmp_path, "x")
    assert b"dc:date" not in svg.read_bytes() and b"Software" not in png.read_bytes()


def test_anonymize_removes_hostnames_addresses_serials_and_instance_ids(tmp_path):
    secrets = ["gv3-prod-17.corp.example.com", "gv3-prod-17", "10.20.30.40", "i-0123456789abcdef0",
               "SER-77-1234", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "02:42:ac:11:00:02"]

    def real_host(d):
        d["host"].update(name="gv3-prod-17.corp.example.com", hostname="10.20.30.40", user="alice")
        d["facts"].update(hostname="gv3-prod-17", instance_type="c6g.metal", instance_id="i-0123456789abcdef0",
                          board_serial="SER-77-1234", mac="02:42:ac:11:00:02",
                          cmdline="root=UUID=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 ro ip=10.20.30.40")
        del d["facts"]["lab"]
        d["command"] = "bench run --host gv3-prod-17.corp.example.com --profile standard"
    b = copy_bundle(ICOUNT, tmp_path / "gv3-prod-17", real_host)
    plain = tmp_path / "plain"
    build([str(b)], plain)
    text = (plain / "report.md").read_text()
    assert all(s in text for s in secrets[:4]), "the test's secrets must be there without --anonymize"
    r = run("report", b, "--out", tmp_path / "anon", "--anonymize")
    assert r.exit_code == 0, r.output
    for name in ("report.md", "report.html"):
        text = (tmp_path / "anon" / name).read_text()
        for s in secrets:
            assert s not in text, f"{s} left in {name}"
        assert "host-1" in text and "c6g.metal" in text, "instance type is kept: it is not an identity"
    for f in (tmp_path / "anon" / "figures").iterdir():
        assert b"gv3-prod-17" not in f.read_bytes()
    assert json.loads((b / "bundle.json").read_text())["host"]["name"] == "gv3-prod-17.corp.example.com"


def one_line(result):
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_report_refuses_unknown_format_version(tmp_path):
    b = copy_bundle(ICOUNT, tmp_path / "v7", lambda d: d.update(format_version=7))
    r = run("report", b, "--out", tmp_path / "out")
    assert r.exit_code == 8 and "bundle format version 7" in one_line(r)
    assert not (tmp_path / "out" / "report.md").exists()


def test_report_refuses_truncated_bundles(tmp_path):
    b = copy_bundle(ICOUNT, tmp_path / "trunc")
    text = (b / "bundle.json").read_text()
    (b / "bundle.json").write_text(text[: len(text) // 2])
    r = run("report", b, "--out", tmp_path / "out")
    assert r.exit_code == 8 and "truncated or corrupt" in one_line(r)
    b = copy_bundle(ICOUNT, tmp_path / "norawfile")
    (b / "kernel" / "r03-regs-kmod-tracee-kernel.json").unlink()
    r = run("report", b, "--out", tmp_path / "out")
    assert r.exit_code == 8 and "r03-regs-kmod-tracee-kernel.json, which is missing" in one_line(r)


def test_report_refuses_to_pool_different_setups(tmp_path):
    r = run("report", ICOUNT, TCG, "--out", tmp_path / "out", "--pool")
    assert r.exit_code == 8 and "icount differs (False vs True)" in one_line(r)
    assert not (tmp_path / "out" / "report.md").exists()
    r = run("report", ICOUNT, "--out", tmp_path / "out", "--group-by", "nonsense", "--pool")
    assert r.exit_code == 2 and "unknown --group-by key 'nonsense'" in one_line(r)
    r = run("report", ICOUNT, "--out", tmp_path / "out", "--group-by", "icount")
    assert r.exit_code == 2 and "--group-by needs --pool" in one_line(r)


def test_report_pools_when_grouped_by_the_differing_key(tmp_path):
    r = run("report", ICOUNT, TCG, "--out", tmp_path / "out", "--pool", "--group-by", "icount")
    assert r.exit_code == 0, r.output
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| icount=True | kernel | kmod-tracee | regs | instructions | 9.009 |" in md
    assert "Bundles are pooled by icount" in md


def test_report_to_unwritable_out(tmp_path):
    r = run("report", ICOUNT, "--out", "/proc/bench-report")
    assert r.exit_code == 8 and "writable --out" in one_line(r)


def test_recorded_checks_of_unknown_shape_are_shown(tmp_path):
    def checks(d):
        d["checks"] = {"aa": {"mode": "off", "ok": False, "diff_ns": 3.25},
                       "method_agreement": [{"pair": "pyperf/kernel", "agree": True}]}
    b = copy_bundle(ICOUNT, tmp_path / "checks", checks)
    md, _ = build([str(b)], tmp_path / "out")
    text = md.read_text()
    assert "| diff_ns | 3.250 |" in text and "| pyperf/kernel | True |" in text
    assert "the A/A check recorded by bench run failed" in text


def test_config_differences_between_kernels_are_a_confound(tmp_path):
    def fallback(d):
        d["facts"].update(kernel_release="6.1.0-56-fallback-arm64", ftrace_variant="mcount")
        cfg = d["facts"]["kernel_config"]
        del cfg["CONFIG_DYNAMIC_FTRACE_WITH_REGS"]
        cfg["CONFIG_ARM64_PTR_AUTH_KERNEL"] = "n"
    b = copy_bundle(ICOUNT, tmp_path / "fallback", fallback)
    md, _ = build([str(ICOUNT), str(b)], tmp_path / "out")
    confounds = md.read_text().split("## Confounds and caveats")[1]
    assert "Kernel config differs between debian-6.1-icount-standard" in confounds
    assert "CONFIG_ARM64_PTR_AUTH_KERNEL: y -> n" in confounds
    assert "CONFIG_DYNAMIC_FTRACE_WITH_REGS: y -> unset" in confounds
    variants = md.read_text().split("### Kernel-variant comparison")[1]
    assert "| mcount (fallback) ftrace_caller | fallback |" in variants


BPF = LAB / "debian-6.1-icount-bpf"  # bench run --methods pyperf,kernel,bpf in the icount lab


def test_the_bpf_histograms_are_the_probes_slots_summed_over_runs():
    hists = plots.bpf_histograms(Bundle.load(BPF))
    assert len(hists) == 24  # 6 modes (off-aa included) x 4 rounds
    cell, mode, h = next(x for x in hists if x[0] == "r00-regs-getppid-bpf")
    # Two runs of 10,007 calls: every call in one log2 and one linear slot.
    assert sum(h["log2"].values()) == sum(h["linear"].values()) == 2 * 10007
    assert (h["lo"], h["step"], h["buckets"]) == (0, 4, 1024)
    assert h["linear"][1025] == 211 + 210  # the overflow slot, summed
    # bcc's bpf_log2l: slot s holds [2^(s-1), 2^s); mean_ns 1,448 lands in slot 11.
    assert plots.log2_edges(11) == (1024, 2048) and plots.log2_edges(1) == (0, 2)
    assert max(h["log2"], key=h["log2"].get) == 11
    assert plots.linear_edges(349, 0, 4, 1024) == (1392, 1396)
    assert plots.linear_edges(0, 0, 4, 1024) == (None, 0)
    assert plots.linear_edges(1025, 0, 4, 1024) == (4096, None)
    fig = plots.histogram_figure(hists, "bpf", "instructions")
    assert all("guest instructions" in ax.get_xlabel() for ax in fig.axes)
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert any(t.startswith("function-all: none in range, 80,056 calls (100.00%) at or above 4,096")
               for t in legend), legend


def test_the_bpf_bundle_report_has_histograms_and_its_checks_as_tables(tmp_path):
    md, html = build([str(BPF)], tmp_path / "out")
    text = md.read_text()
    assert "| debian-6.1-icount-bpf | bpf | getppid | regs | instructions | 8.7 | [7.5, 9.9] |" in text
    assert "figures/bpf-histograms-1.svg" in text and (tmp_path / "out/figures/bpf-histograms-1.png").exists()
    overhead = text.split("### Overhead over off")[1].split("### Per-call cost")[0]
    assert "| off-aa (A/A: second off) | instructions | -0.1 | [-1.8, 1.7] |" in overhead
    assert "| off-probe (probe cost) |" in overhead
    checks = text.split("## Checks")[1].split("## Confounds")[0]
    assert not re.search(r"\d\.\d{5,}", checks), "raw floats in the Checks section"
    assert "| pyperf | instructions | -0.1 | [-1.8, 1.7] | 4 | no |" in checks
    assert "No A/A difference is significant" in checks
    assert ("| overhead | function-all | instructions | bpf: 12,228 [12,185, 12,272] | "
            "pyperf: 4,347 [4,327, 4,368] | no |") in checks
    assert "| regs_gain | regs | instructions | bpf: 8.7 [7.5, 9.9] | kernel: 8.999 [8.992, 9.007] | yes |" \
        in checks
    assert "| probe cost: off-probe - off (pyperf, paired by round) | instructions | 2,022.8 [2,019.3, 2,026.3] |" \
        in checks and "probes on and the tracer off" in checks
    # off-aa is off's A/A twin: the A/A is computed from the cells too.
    assert "| debian-6.1-icount-bpf | bpf | getppid | off-aa - off | -0.1 | [-0.8, 0.7] |" in checks
    assert "No A/A check could be computed" not in text
    assert "<td>off-aa - off</td>" in html.read_text()
    # The overhead figure has tracer modes only.
    s = summarize_cells(cells_frame(load_bundles([BPF]), ["bpf"])[0])
    titles = [ax.get_title() for ax in plots.overhead_figure(s).axes if ax.get_visible()]
    assert titles and not [t for t in titles if "off-aa" in t or "off-probe" in t]


def test_a_significant_recorded_aa_says_the_numbers_cannot_be_trusted(tmp_path):
    def bad(d):
        d["checks"]["aa"]["kernel"].update(value=0.5, ci_low=0.25, ci_high=0.75, significant=True)
    b = copy_bundle(BPF, tmp_path / "bad-aa", bad)
    text = build([str(b)], tmp_path / "out")[0].read_text()
    checks = text.split("## Checks")[1].split("## Confounds")[0]
    assert "| kernel | instructions | 0.50 | [0.25, 0.75] | 4 | YES: numbers cannot be trusted at this resolution |" \
        in checks
    assert "Significant for kernel" in checks
    assert "kernel's numbers cannot be trusted at this resolution" in text.split("## Confounds")[1]


def test_an_interrupted_bundle_is_reported_as_incomplete(tmp_path):
    def interrupted(d):
        d["cells"] = d["cells"][:8]  # round 0 only
        d.update(results=[], complete=False, status="interrupted")
    b = copy_bundle(ICOUNT, tmp_path / "cut", interrupted)
    md, _ = build([str(b)], tmp_path / "out")
    text = md.read_text()
    assert "no interval (fewer than two rounds)" in text
    assert "the bundle is incomplete (status 'interrupted')" in text
    assert "| n/a (n < 2) | n/a (n < 2) |  | 1 |" in text, "no CI and no Mann-Whitney p from one round"


def test_regenerating_into_the_same_directory_drops_stale_figures(tmp_path):
    build([str(ICOUNT), str(TCG)], tmp_path)
    assert (tmp_path / "figures" / "distribution-2.svg").exists()
    build([str(ICOUNT)], tmp_path)
    assert not (tmp_path / "figures" / "distribution-2.svg").exists()
    assert (tmp_path / "figures" / "distribution-1.svg").exists()
