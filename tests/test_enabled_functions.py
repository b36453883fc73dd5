"""Parsing of real enabled_functions lines (tests/data, with origins)."""
import pathlib

import pytest

from remote.agent.tracefs import enabled_flags

DATA = pathlib.Path(__file__).parent / "data"


def test_6_1_regs_and_noregs_lines():
    regs, noregs = (DATA / "enabled_functions-6.1-lab.txt").read_text().splitlines()
    assert enabled_flags(regs) == ["R"]
    assert enabled_flags(noregs) == []


def test_6_1_format_from_the_source():
    # kernel/trace/ftrace.c (6.1) t_show: " (%ld)%s%s%s" with " R"/"  ", " I"/"  ", " D"/"  "
    assert enabled_flags("frb_tracee [ftrace_regs_bench] (2) R    ") == ["R"]
    assert enabled_flags("frb_tracee [ftrace_regs_bench] (1)      ") == []
    assert enabled_flags("schedule (1) R I   ") == ["R", "I"]


def test_newer_kernel_lines():
    path = DATA / "enabled_functions-6.12-lab.txt"
    if not path.exists():
        pytest.skip("no 6.12 capture committed")
    for line in path.read_text().splitlines():
        flags = enabled_flags(line)
        assert "R" not in flags, line  # 6.12 arm64 has no regs caller
        assert all(len(f) == 1 for f in flags)
