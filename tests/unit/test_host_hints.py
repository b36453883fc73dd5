"""What bench check tells a user about their host: the package of their
distribution (chosen from real os-release texts, tests/data/os-release/)
and their kernel's ftrace era with what to do (real kernel configs,
tests/data)."""
import pathlib

import pytest

from analysis import packages
from bench.check import report
from remote.agent import facts as agent_facts
from test_check import CFG61, PRE, bcc_caps, caps, facts
from test_kernel import parse_config

DATA = pathlib.Path(__file__).parent.parent / "data"
RELEASE = "6.1.0-56-cloud-arm64"


def os_facts(name):
    """The os facts the agent records from one real os-release text."""
    osr = agent_facts.os_release((DATA / "os-release" / name).read_text())
    return {"os_release": osr.get("PRETTY_NAME"), "os_id": osr.get("ID"), "os_id_like": osr.get("ID_LIKE"),
            "os_version_id": osr.get("VERSION_ID")}


# os-release file -> (family, headers package, bcc package(s), install command)
DISTROS = {
    "debian-12": ("debian", f"linux-headers-{RELEASE}", "python3-bpfcc", "apt-get install"),
    "ubuntu-24.04": ("debian", f"linux-headers-{RELEASE}", "python3-bpfcc", "apt-get install"),
    "amazon-linux-2023": ("fedora", f"kernel-devel-{RELEASE}", "bcc python3-bcc", "dnf install"),
    "fedora-42": ("fedora", f"kernel-devel-{RELEASE}", "bcc python3-bcc", "dnf install"),
}


@pytest.mark.parametrize("distro", sorted(DISTROS))
def test_each_distribution_gets_its_own_packages(distro):
    fam, headers, bcc_pkg, command = DISTROS[distro]
    f = facts(CFG61, **os_facts(distro))
    assert packages.family(f) == fam
    r = report(f, caps(headers=False), PRE, "root")
    # the module needs headers: the one package, with the command that installs it
    assert f"run {command} {headers} (on {f['os_release']})" in r["module_build"]["reason"]
    other = "kernel-devel" if fam == "debian" else "linux-headers"
    assert other not in r["module_build"]["reason"]
    # bcc missing: the distribution's binding, never PyPI's
    assert f"run {command} {bcc_pkg} (on " in r["bcc"]["reason"] and "never PyPI" in r["bcc"]["reason"]
    assert r["methods"]["bpf"]["reason"] == r["bcc"]["reason"]
    # bcc present but no headers: the bpf method names the headers package
    r = report(f, bcc_caps(headers=None), PRE, "root")
    assert f"{command} {headers}" in r["methods"]["bpf"]["reason"]


def test_amazon_linux_is_found_through_id_like():
    f = os_facts("amazon-linux-2023")
    assert (f["os_id"], f["os_id_like"]) == ("amzn", "fedora")
    assert packages.family({"os_id": "rocky", "os_id_like": "rhel centos fedora"}) == "fedora"
    assert packages.family({"os_id": "linuxmint", "os_id_like": "ubuntu debian"}) == "debian"


def test_an_unknown_distribution_or_an_old_bundle_gets_both_names():
    for f in ({}, {"os_id": "arch"}):
        hint = packages.install(dict(f, kernel_release=RELEASE), "headers")
        assert hint == (f"install linux-headers-{RELEASE} (Debian/Ubuntu) or kernel-devel-{RELEASE} "
                        "(Amazon Linux, Fedora)")
    assert packages.package({"os_id": "fedora"}, "headers") == "kernel-devel-$(uname -r)"


def test_regs_era_kernel_says_it_measures_the_regs_gain_as_it_is():
    # Debian 12's 6.1 (and Amazon Linux 2023's 6.1): DYNAMIC_FTRACE_WITH_REGS
    r = report(facts(CFG61, **os_facts("debian-12")), caps(), PRE, "root")
    assert r["ftrace_era"]["value"] == "regs"
    assert r["ftrace_era"]["reason"].startswith("arm64 5.5-6.1 with DYNAMIC_FTRACE_WITH_REGS: "
                                                "ftrace_caller and ftrace_regs_caller (from /boot/config-")
    assert r["regs_caller"]["ok"] and "measures the regs gain as it is" in r["regs_caller"]["reason"]


def test_a_kernel_without_regs_caller_says_what_to_do():
    # Debian 12's 6.12 (as Ubuntu 24.04's 6.8: ARGS + CALL_OPS + DIRECT_CALLS)
    cfg = parse_config((DATA / "config-6.12.117+deb12-cloud-arm64").read_text())
    f = facts(cfg, kernel_release="6.12.117+deb12-cloud-arm64", **os_facts("ubuntu-24.04"))
    r = report(f, caps(syms=("ftrace_caller",)), PRE, "root")
    assert r["ftrace_era"]["reason"].startswith("arm64 6.4+ with CALL_OPS and DIRECT_CALLS: one "
                                                "ftrace_caller, no regs caller")
    why = r["regs_caller"]["reason"]
    assert why.startswith("6.12.117+deb12-cloud-arm64 is in arm64 ftrace era 'direct-calls': it has no "
                          "regs caller")
    assert "the regs mode is skipped and the other modes run" in why
    assert "bench kernel build --variant regs" in why and "modroot/" in why
    assert "Amazon Linux 2023's 6.1" in why
    assert r["modes"]["regs"]["reason"] == why and r["modes"]["noregs"]["ok"]


def test_the_fallback_build_is_the_mcount_era():
    cfg = parse_config((DATA / "config-6.1.192-lab-fallback").read_text())
    r = report(facts(cfg, kernel_release="6.1.192-fallback"), caps(syms=("ftrace_caller", "_mcount")),
               PRE, "root")
    assert r["ftrace_era"]["value"] == "mcount"
    assert r["ftrace_era"]["reason"].startswith("DYNAMIC_FTRACE without WITH_REGS/ARGS")
    assert "no regs caller" in r["regs_caller"]["reason"]


def test_check_names_the_cpu_and_where_its_product_came_from():
    from remote.agent import cpuname
    from test_cpuname import cpuinfo

    cpu = cpuname.describe(cpuinfo(*["0x411fd401"] * 2), machine={"sys_vendor": "Amazon EC2",
                                                                 "product_name": "c7g.16xlarge"})
    r = report(dict(facts(CFG61), **cpu), caps(), PRE, "root")
    assert r["cpu"]["value"] == "Neoverse-V1 (AWS Graviton3)"
    assert r["cpu"]["reason"] == ("implementer 0x41 part 0xd40; product from DMI sys_vendor 'Amazon EC2', "
                                  "instance type c7g.16xlarge")
