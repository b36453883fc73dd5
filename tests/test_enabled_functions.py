"""Parsing of real enabled_functions lines (tests/data, with origins)."""
import pathlib

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


def test_6_12_lines_carry_call_ops_and_an_ops_field():
    module, tracer = (DATA / "enabled_functions-6.12-lab.txt").read_text().splitlines()
    # '__arm64_sys_getppid (1)       O   \tops: 0x... (frb_attach_cb+0x0/0x50 [ftrace_regs_bench])'
    assert enabled_flags(module) == ["O"]
    assert enabled_flags(tracer) == ["O"]
    assert "frb_attach_cb" in module and "function_trace_call" in tracer
