import pathlib

from bench.kernel import ftrace_era

DATA = pathlib.Path(__file__).parent.parent / "data"


def parse_config(text):
    out = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_"):
            k, _, v = line.partition("=")
            out[k] = v
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            out[line[2:].split()[0]] = "n"
    return out


def test_debian_bookworm_cloud_arm64_is_regs_era():
    cfg = parse_config((DATA / "config-6.1.0-56-cloud-arm64").read_text())
    assert cfg["CONFIG_DYNAMIC_FTRACE_WITH_REGS"] == "y"
    assert ftrace_era(cfg, "aarch64") == "regs"


def test_debian_6_12_cloud_arm64_has_no_regs_caller():
    cfg = parse_config((DATA / "config-6.12.117+deb12-cloud-arm64").read_text())
    assert cfg.get("CONFIG_DYNAMIC_FTRACE_WITH_REGS") in (None, "n")
    assert cfg["CONFIG_DYNAMIC_FTRACE_WITH_ARGS"] == "y"
    assert cfg["CONFIG_DYNAMIC_FTRACE_WITH_CALL_OPS"] == "y"
    assert ftrace_era(cfg, "aarch64") == "direct-calls"


def test_arm64_eras_from_options():
    base = {"CONFIG_FUNCTION_TRACER": "y", "CONFIG_DYNAMIC_FTRACE": "y"}
    assert ftrace_era(base, "aarch64") == "mcount"
    assert ftrace_era(base | {"CONFIG_DYNAMIC_FTRACE_WITH_ARGS": "y"}, "aarch64") == "args"
    ops = base | {"CONFIG_DYNAMIC_FTRACE_WITH_ARGS": "y", "CONFIG_DYNAMIC_FTRACE_WITH_CALL_OPS": "y"}
    assert ftrace_era(ops, "aarch64") == "call-ops"
    assert ftrace_era(ops | {"CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS": "y"}, "aarch64") == "direct-calls"
    assert ftrace_era({"CONFIG_FUNCTION_TRACER": "n"}, "aarch64") == "none"
    assert ftrace_era({}, "aarch64") == "unknown"
