"""Parsing of real enabled_functions lines (tests/data, with origins)."""
import pathlib

from remote.protocol.tracefs_text import enabled_flags

DATA = pathlib.Path(__file__).parent.parent / "data"


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


def test_lines_parse_into_symbol_module_ops_count_and_flags():
    from remote.protocol.tracefs_text import enabled_line

    regs, noregs = (DATA / "enabled_functions-6.1-lab.txt").read_text().splitlines()
    assert enabled_line(regs) == {"symbol": "__arm64_sys_getppid", "module": None, "count": 1,
                                  "flags": ["R"]}
    assert enabled_line(noregs)["flags"] == []
    module, _ = (DATA / "enabled_functions-6.12-lab.txt").read_text().splitlines()
    assert enabled_line(module) == {"symbol": "__arm64_sys_getppid", "module": None, "count": 1,
                                    "flags": ["O"]}
    # 6.1 print_rec(): ' [module]' after a module function's symbol
    assert enabled_line("frb_tracee [ftrace_regs_bench] (2) R    ") == {
        "symbol": "frb_tracee", "module": "ftrace_regs_bench", "count": 2, "flags": ["R"]}
    assert enabled_line("#### all functions enabled ####") is None


def test_6_1_module_tracee_lines_keep_their_blank_flag_fields():
    from remote.protocol.tracefs_text import enabled_line

    regs, noregs, dropped = (DATA / "enabled_functions-6.1-lab-kmod.txt").read_text().splitlines()
    assert regs.endswith(" R    ") and noregs.endswith(")      ")  # ' R' / '  ', then I, D blank
    assert enabled_line(regs) == {"symbol": "frb_tracee", "module": "ftrace_regs_bench",
                                  "count": 1, "flags": ["R"]}
    assert enabled_line(noregs)["flags"] == enabled_line(dropped)["flags"] == []
