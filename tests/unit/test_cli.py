"""The CLI in-process: help texts, the README's tables, bad input."""
import pathlib
import re

import click
from click.testing import CliRunner

from bench.cli import EXIT_CODES, cli

README = (pathlib.Path(__file__).parent.parent.parent / "README.md").read_text()


def all_commands(group=cli, prefix="bench"):
    for name, cmd in group.commands.items():
        yield f"{prefix} {name}", cmd
        if isinstance(cmd, click.Group):
            yield from all_commands(cmd, f"{prefix} {name}")


def test_every_command_has_help_and_is_in_the_readme():
    for name, cmd in all_commands():
        assert cmd.help, f"{name} has no help text"
        if not isinstance(cmd, click.Group):
            assert f"`{name}" in README, f"{name} is missing from the README"
        for p in cmd.params:
            if isinstance(p, click.Option):
                assert p.help, f"{name} {p.opts[0]} has no help text"


def test_every_exit_code_is_in_the_readme_table():
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", README, re.M)}
    for kind, (code, _) in EXIT_CODES.items():
        assert code in documented, f"exit code {code} ({kind}) not in the README's error table"


def test_every_error_kind_is_a_row_of_the_readme_table():
    rows = set(re.findall(r"^\| (\d+) \| `([a-z-]+)` \|", README, re.M))
    for kind, (code, _) in EXIT_CODES.items():
        assert (str(code), kind) in rows, f"kind {kind!r} (exit {code}) has no row in the README"


def run(*args):
    return CliRunner().invoke(cli, list(args))


def one_line(result):
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_unknown_profile_and_mode_are_usage_errors():
    r = run("run", "--host", "local", "--profile", "fast")
    assert r.exit_code == 2 and "quick, standard, rigorous" in one_line(r)
    r = run("run", "--host", "local", "--modes", "off,kprobe")
    assert r.exit_code == 2 and "unknown mode 'kprobe'" in one_line(r)


def test_unwritable_out_is_refused_before_connecting(tmp_path):
    r = run("run", "--host", "no-such-alias-anywhere", "--out", "/proc/bench-out")
    assert r.exit_code == 8 and "writable --out" in one_line(r)


def test_existing_bundle_is_never_overwritten(tmp_path):
    (tmp_path / "bundle.json").write_text("{}")
    r = run("run", "--host", "local", "--out", str(tmp_path))
    assert r.exit_code == 8 and "never overwritten" in one_line(r)
    assert (tmp_path / "bundle.json").read_text() == "{}"


def test_export_refuses_bad_bundles(tmp_path):
    (tmp_path / "bundle.json").write_text('{"format": "ftrace-regs-bench/bundle", "format_version": 99}')
    r = run("export", str(tmp_path))
    assert r.exit_code == 8 and "format version 99" in one_line(r)
    (tmp_path / "bundle.json").write_text('{"format": "ftrace-regs-bench/bundle", "format_ver')
    r = run("export", str(tmp_path))
    assert r.exit_code == 8 and "truncated or corrupt" in one_line(r)
    r = run("export", str(tmp_path / "nowhere"))
    assert r.exit_code == 8 and "no bundle.json" in one_line(r)


def test_lab_ssh_joins_the_command_with_spaces_as_ssh_does():
    from remote.lab import ssh_argv

    assert ssh_argv("/run/ssh_config") == ["ssh", "-F", "/run/ssh_config", "lab"]
    # bench lab ssh -- 'uname -r; id': one word, which the remote shell splits.
    argv = ssh_argv("/run/ssh_config", ("uname -r; id",))
    assert argv == ["ssh", "-F", "/run/ssh_config", "lab", "--", "uname -r; id"]
    # bench lab ssh -- echo a 'b  c': words joined with one space, as ssh(1) does.
    assert ssh_argv("c", ("echo", "a", "b  c"))[-1] == "echo a b  c"
    # sshd hands that string to the user's shell as 'sh -c STRING': two commands,
    # not one named 'echo one; echo two'.
    import subprocess

    remote = ssh_argv("c", ("echo one;", "echo", "two"))[-1]
    out = subprocess.run(["sh", "-c", remote], capture_output=True, text=True).stdout
    assert out.splitlines() == ["one", "two"]


def test_lab_ssh_help_says_how_the_command_is_passed():
    r = run("lab", "ssh", "--help")
    assert r.exit_code == 0 and "joined with spaces" in r.output
