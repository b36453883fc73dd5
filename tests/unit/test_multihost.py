"""Several hosts in one `bench run`, without a target: the exit-code rule,
the hosts file, where the bundles go, what is passed on to each host's run,
and a real two-host run whose hosts both fail before touching anything (an
unknown alias, an --out that already holds a bundle).  Then `bench report`
on bundles of two hosts (copies of committed bundles, host renamed): the
systems table and every metric side by side by host, a figure per
headline metric by host.

The same with a real lab and a refusing real host: tests/lab/test_lab_multihost.py."""
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from analysis.load import cells_frame, load_bundles
from analysis.report import build, bundle_labels, host_labels
from analysis.summary import summarize_cells
from bench import multihost
from bench.cli import EXIT_CODES, EXIT_INTERRUPTED, cli
from bench.errors import UsageError
from bundlecopy import STEPPED, copy_bundle


# -- the exit-code rule --------------------------------------------------------------

def test_the_exit_code_rule():
    assert EXIT_CODES["hosts"][0] == multihost.EXIT_HOSTS == 12
    assert multihost.exit_code([0, 0, 0]) == 0                      # every host succeeded
    assert multihost.exit_code([6, 6]) == 6                         # every host failed the same way
    assert multihost.exit_code([3]) == 3
    assert multihost.exit_code([0, 6]) == 12                        # some failed
    assert multihost.exit_code([3, 6]) == 12                        # failed differently
    assert multihost.exit_code([0, 6], interrupted=True, interrupted_code=EXIT_INTERRUPTED) == 130
    assert multihost.exit_code([0, 0], interrupted=True) == 130     # Ctrl-C wins, as in a single run


def test_the_rule_is_documented_in_the_readme_and_help():
    import pathlib

    readme = (pathlib.Path(__file__).parent.parent.parent / "README.md").read_text()
    assert re.search(r"^\| 12 \| `hosts` \|", readme, re.M)
    text = CliRunner().invoke(cli, ["run", "--help"]).output
    assert "--hosts-file" in text and "otherwise 12" in text and "that code" in text


# -- hosts, bundles, options -----------------------------------------------------------

def test_hosts_file_comments_blanks_and_order(tmp_path):
    f = tmp_path / "hosts"
    f.write_text("# the farm\ngraviton2   # m6g\n\n  graviton3\n#board-x\n")
    assert multihost.host_list(["lab"], str(f)) == ["lab", "graviton2", "graviton3"]


@pytest.mark.parametrize("text,words", [
    ("a b\n", "is not one host name"),
    ("# nothing\n\n", "names no host"),
    ("a\na\n", "given twice"),
])
def test_bad_hosts_files(tmp_path, text, words):
    f = tmp_path / "hosts"
    f.write_text(text)
    with pytest.raises(UsageError, match=words):
        multihost.host_list([], str(f))
    with pytest.raises(UsageError, match="cannot read"):
        multihost.host_list([], str(tmp_path / "missing"))


def test_where_the_bundles_go(tmp_path):
    # --out DIR with several hosts: DIR/<host>/
    assert multihost.out_dirs(["lab", "g3"], str(tmp_path)) == {"lab": tmp_path / "lab", "g3": tmp_path / "g3"}
    # without: where a single run would put each: results/<host>/<UTC timestamp>/
    dirs = multihost.out_dirs(["lab", "g3"], None, results_root=str(tmp_path))
    assert [d.parent for d in dirs.values()] == [tmp_path / "lab", tmp_path / "g3"]
    assert re.fullmatch(r"\d{8}T\d{6}Z", dirs["lab"].name)
    with pytest.raises(UsageError, match="same bundle directory"):
        multihost.out_dirs(["a/b", "a_b"], str(tmp_path))


@pytest.mark.parametrize("args,words", [
    (["--host", "a", "--host", "a"], "given twice"),
    (["--host", "a", "--host", "b", "--resume", "x"], "--resume takes one bundle"),
])
def test_refused_before_any_host_is_run(args, words):
    r = CliRunner().invoke(cli, ["run", *args])
    assert r.exit_code == EXIT_CODES["usage"][0], r.output


def test_only_typed_options_are_passed_on():
    params = {"profile": "smoke", "force": True, "seed": None, "quiet": False, "lease": 10.0}
    got = multihost.options_of(params, [("profile", "--profile"), ("force", "--force"), ("seed", "--seed"),
                                        ("quiet", "--quiet"), ("lease", "--lease")])
    assert got == ["--profile", "smoke", "--force", "--lease", "10.0"]


def test_two_hosts_failing_differently_before_touching_anything(tmp_path):
    """Real child processes: 'nosuch' is no alias (exit 3); 'other' is one,
    but its --out already holds a bundle (exit 8, before connecting).  Each
    error is prefixed with its host, the summary says which ended how, and
    the exit code is 12."""
    config = tmp_path / "ssh_config"
    config.write_text("Host other\n  HostName 127.0.0.1\n  Port 1\n")
    out = tmp_path / "out"
    (out / "other").mkdir(parents=True)
    (out / "other" / "bundle.json").write_text("{}")
    # The timeout bounds a hang only: three Pythons importing bench took 60 s
    # wall (9 s of CPU) at load 15 on the 2-core machine during a cold .ci/run.
    r = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--host", "nosuch", "--host", "other",
                        "--ssh-config", str(config), "--profile", "smoke", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 12, r.stderr
    assert re.search(r"^\[nosuch\] +bench: error: unknown host 'nosuch'", r.stderr, re.M), r.stderr
    assert re.search(r"^\[other\] +bench: error: .*already holds a bundle", r.stderr, re.M), r.stderr
    lines = r.stdout.split("hosts:\n")[1].splitlines()
    assert lines[0].split()[:4] == ["nosuch", "exit", "3", "failed:"] and "no bundle" in lines[0]
    assert lines[1].split()[:4] == ["other", "exit", "8", "failed:"]
    assert not (out / "nosuch").exists()


def test_two_hosts_failing_the_same_way_give_that_code(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host other\n  HostName 127.0.0.1\n")
    r = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--host", "nosuch-a", "--host", "nosuch-b",
                        "--ssh-config", str(config), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=600)  # (a hang only, as above)
    assert r.returncode == EXIT_CODES["host-not-found"][0], r.stderr
    assert not (tmp_path / "out").exists(), "an empty --out was left behind"


# -- the report, side by side ------------------------------------------------------------

def _host(name):
    def edit(data):
        data["host"]["name"] = name
    return edit


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory):
    base = tmp_path_factory.mktemp("hosts")
    a = copy_bundle(STEPPED / "regs-6.1-icount-standard", base / "board-a" / "20261126T100000Z", _host("board-a"))
    b = copy_bundle(STEPPED / "fallback-6.1-icount-standard", base / "board-b", _host("board-b"))
    md, html = build([str(a), str(b)], base / "report")
    return [a, b], base / "report", md.read_text(), html.read_text()


def test_labels_lead_with_the_host_only_when_there_are_several(two_hosts):
    paths = two_hosts[0]
    bundles = load_bundles([str(p) for p in paths])
    assert host_labels(bundles, bundle_labels(bundles)) == ["board-a/20261126T100000Z", "board-b"]
    one = load_bundles([str(STEPPED / "regs-6.1-icount-standard")])
    assert host_labels(one, bundle_labels(one)) == bundle_labels(one)


def test_systems_table_has_a_column_per_host(two_hosts):
    md = two_hosts[2]
    systems = md.split("## Systems")[1].split("## Method")[0]
    assert "| fact | board-a/20261126T100000Z | board-b |" in systems
    assert "| host | board-a | board-b |" in systems


def test_every_metric_side_by_side_by_host_with_its_ci(two_hosts):
    paths, _, md, html = two_hosts
    section = md.split("### Side by side, by host")[1].split("### ")[0]
    rows = [l for l in section.splitlines() if l.startswith("| ")]
    assert rows[0] == ("| metric | method | workload | mode | unit | board-a/20261126T100000Z | board-b |")
    table = {tuple(c.strip() for c in r.strip("|").split("|")[:5]): [c.strip() for c in r.strip("|").split("|")[5:]]
             for r in rows[2:]}
    bundles = load_bundles([str(p) for p in paths])
    labels = host_labels(bundles, bundle_labels(bundles))
    summary = summarize_cells(cells_frame(bundles, labels)[0])
    # every (metric, method, mode) of every host is in the table, in its host's column
    assert len(table) == len(summary.drop_duplicates(["metric", "method", "workload", "mode", "unit"]))
    row = table[("regs gain", "kernel", "kmod-tracee", "regs", "instructions")]
    assert row[0].startswith("9.0") and re.search(r"\[[\d.]+, [\d.]+\] \(n=\d+\)$", row[0]), row
    assert row[1] == "-"  # the fallback kernel has no regs caller: no regs gain
    over = table[("overhead over off", "kernel", "kmod-tracee", "noregs", "instructions")]
    assert all(re.fullmatch(r"[\d,.]+ \[[\d,.]+, [\d,.]+\] \(n=\d+\)", c) for c in over), over
    assert "Side by side, by host" in html


def test_a_figure_per_headline_metric_by_host(two_hosts):
    _, out, md, html = two_hosts
    for name in ("by-host-regs-gain", "by-host-overhead-function", "by-host-overhead-function-all",
                 "by-host-overhead-noregs", "by-host-overhead-regs"):
        assert (out / "figures" / f"{name}.svg").exists(), name
        assert f"figures/{name}.svg" in md and f'id="fig-{name}"' in html
    assert "by-host-overhead-off-aa" not in md  # a check, not a headline metric


def test_one_host_has_no_by_host_section(tmp_path):
    md, _ = build([str(STEPPED / "regs-6.1-icount-standard")], tmp_path / "r")
    assert "Side by side, by host" not in md.read_text()
    assert not list((tmp_path / "r" / "figures").glob("by-host-*"))
