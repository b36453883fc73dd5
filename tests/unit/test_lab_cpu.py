"""The lab's -cpu: QEMU's max (or the host's CPU under KVM), and without a
PMU when asked (bench lab up --no-pmu, issue 21)."""
import pathlib

from remote.lab import LabConfig, cpu_option, qemu_argv


def cpu_of(cfg, accel="tcg"):
    argv = qemu_argv(pathlib.Path("/img"), pathlib.Path("/run"), 2222, cfg, accel)
    i = argv.index("-cpu")
    return argv[i + 1], argv[i + 2:argv.index("-smp")], argv[argv.index("-smp") + 1]


def test_the_default_lab_has_a_pmu_under_icount():
    assert cpu_of(LabConfig()) == ("max,pauth-impdef=on",
                                   ["-accel", "tcg,thread=single", "-icount", "shift=0"], "1")


def test_no_pmu_is_a_property_of_the_same_model():
    assert cpu_of(LabConfig(pmu=False)) == ("max,pauth-impdef=on,pmu=off",
                                            ["-accel", "tcg,thread=single", "-icount", "shift=0"], "1")
    assert cpu_of(LabConfig(icount=False, smp=4, pmu=False)) == (
        "max,pauth-impdef=on,pmu=off", ["-accel", "tcg,thread=multi"], "4")
    assert cpu_of(LabConfig(icount=False, pmu=False), accel="kvm") == ("host,pmu=off", ["-accel", "kvm"], "2")
    assert cpu_option(LabConfig(icount=False), "kvm") == "host"
