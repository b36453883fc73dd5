"""Pure logic of the agent's files (they run on the target; here we test
their parsers on real captured text)."""
import pathlib

from remote.agent import facts, tracefs

DATA = pathlib.Path(__file__).parent.parent / "data"


def test_buffer_size_reads_both_forms():
    # fresh kernel: '7 (expanded: 1408)'; after a tracer was used: '1408'
    assert tracefs.buffer_size("7 (expanded: 1408)\n") == 1408
    assert tracefs.buffer_size("1408\n") == 1408
    assert not tracefs.same_state("buffer_size_kb", "1408\n", "2816\n")
    assert tracefs.same_state("buffer_size_kb", "1408\n", "1408\n")


def test_the_kernels_own_buffer_expansion_is_recognised():
    # Captured in the debian-6.1 lab (4 KiB pages): fresh boot, then after the
    # function tracer was first used.
    assert tracefs.kernel_expanded("7 (expanded: 1408)\n", "1410\n")
    assert tracefs.same_state("buffer_size_kb", "7 (expanded: 1408)\n", "1410\n")
    assert not tracefs.same_state("buffer_size_kb", "7 (expanded: 1408)\n", "2816\n")
    assert not tracefs.same_state("buffer_size_kb", "7 (expanded: 1408)\n", "7\n")


def test_filter_lists_compare_as_sets_and_ignore_the_banner():
    empty = "#### all functions enabled ####\n"
    assert tracefs.same_state("set_ftrace_filter", empty, "")
    assert tracefs.same_state("set_ftrace_filter", "b\na\n", "a\nb\n")
    assert not tracefs.same_state("set_ftrace_filter", empty, "__arm64_sys_getppid\n")


def test_config_lines_kept_are_the_ftrace_ones():
    text = (DATA / "config-6.1.0-56-cloud-arm64").read_text()
    kept = [l for l in text.splitlines() if facts.CONFIG_PATTERN.match(l)]
    names = {l.lstrip("# ").split("=")[0].split()[0] for l in kept}
    assert "CONFIG_DYNAMIC_FTRACE_WITH_REGS" in names
    assert "CONFIG_FUNCTION_TRACER" in names
    assert "CONFIG_EXT4_FS" not in names
    assert all("FTRACE" in n or "TRAC" in n or "KPROBE" in n or "BPF" in n or "MODULE" in n
               or "PTR_AUTH" in n or "LOCK_DOWN" in n or "VERSION" in n or "BTF" in n
               or "MCOUNT" in n or "PATCHABLE" in n or "LIVEPATCH" in n or "RETHOOK" in n
               or "FPROBE" in n or "IKHEADERS" in n or "FUNCTION_GRAPH" in n for n in names)


def test_timer_frequency_from_boot_log_lines():
    arm = ["[    0.000000] arch_timer: cp15 timer(s) running at 62.50MHz (virt)."]
    hz, line = facts.timer_frequency(arm)
    assert hz == 62.5e6 and line.startswith("arch_timer")
    x86 = ["[    0.000016] tsc: Detected 2100.000 MHz processor"]
    assert facts.timer_frequency(x86)[0] == 2100e6
    assert facts.timer_frequency([]) == (None, None)


def test_os_release_is_read_with_and_without_quotes():
    # this machine's Debian 12 and Amazon Linux 2023 (tests/data/os-release/)
    deb = facts.os_release((DATA / "os-release" / "debian-12").read_text())
    assert (deb["ID"], deb.get("ID_LIKE"), deb["PRETTY_NAME"]) == ("debian", None,
                                                                   "Debian GNU/Linux 12 (bookworm)")
    al = facts.os_release((DATA / "os-release" / "amazon-linux-2023").read_text())
    assert (al["ID"], al["ID_LIKE"], al["VERSION_ID"]) == ("amzn", "fedora", "2023")


def test_traceable_names_are_whole_lines_of_available_filter_functions():
    """The agent's check of a name against available_filter_functions ('sym'
    or 'sym [module]' per line): whole names only, a module's too."""
    from remote.agent.agent import Traceable

    t = Traceable("do_one\n__arm64_sys_getppid\n__se_sys_getppid\nbench_fn [ftrace_regs_bench]\n"
                  "__arm64_sys_getppid_x\nlast_one")
    assert "do_one" in t and "bench_fn" in t and "last_one" in t
    assert "do_on" not in t and "o_one" not in t and "ftrace_regs_bench" not in t and "" not in t
    assert t.ending_with("sys_getppid") == ["__arm64_sys_getppid", "__se_sys_getppid"]
    assert Traceable("").ending_with("sys_getppid") == [] and "x" not in Traceable("")
