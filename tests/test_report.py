"""bench report on the committed real bundles: the report's structure
(sections, tables, figure references), reproducible bytes, anonymization,
and bad input through the CLI."""
import hashlib
import json
import re

import pytest
from click.testing import CliRunner

from analysis import plots
from analysis.report import SECTIONS, build
from bench.cli import cli
from bundlecopy import ICOUNT, TCG, copy_bundle


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
    assert "95% CI (bootstrap)" in results and "Mann-Whitney" in results
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
    assert len(refs) == 5  # overhead, regs gain, variants, one distribution per bundle
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


def test_a_bpf_method_is_tabulated_and_its_histograms_plotted(tmp_path):
    # The bpf method's cell format belongs to another branch: this checks
    # the tolerant reading (a raw JSON with count/sum/mean and a log2
    # histogram), not that format's details.
    def bpf(d):
        for c in [c for c in d["cells"] if c["method"] == "kernel"]:
            n = dict(c, id=c["id"].replace("kernel", "bpf"), method="bpf", workload="getppid",
                     file=c["file"].replace("kernel", "bpf"))
            n.pop("worker_means_ns")
            d["cells"].append(n)
    b = copy_bundle(ICOUNT, tmp_path / "bpf", bpf)
    (b / "bpf").mkdir()
    for k in (b / "kernel").iterdir():
        runs = json.loads(k.read_text())["runs"]
        mean = sum(r["total_ns"] for r in runs) / sum(r["calls"] for r in runs)
        raw = {"count": 1000, "sum": mean * 1000, "mean": mean,
               "log2": {"64": 10, "128": 900, "256": 90}, "linear": [{"low": 150, "count": 1000}]}
        (b / "bpf" / k.name.replace("kernel", "bpf")).write_text(json.dumps(raw))
    md, html = build([str(b)], tmp_path / "out")
    text = md.read_text()
    assert "| bpf | getppid | regs | instructions | 9.009 |" in text
    assert "figures/bpf-histograms-1.svg" in text and (tmp_path / "out/figures/bpf-histograms-1.png").exists()


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
