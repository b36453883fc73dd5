"""The kernel variants' recipe on real captured data: the fallback's tree
edit on an excerpt of 6.1's arch/arm64/Kconfig, and the comparison of the
two .config files a real build generated (tests/data/README.md)."""
import pathlib

import pytest
from click.testing import CliRunner

from bench.cli import EXIT_CODES, cli
from remote import agent_client, cache, kbuild
from remote.errors import LabError

DATA = pathlib.Path(__file__).parent.parent / "data"
REGS = (DATA / "config-6.1.192-lab-regs").read_text()
FALLBACK = (DATA / "config-6.1.192-lab-fallback").read_text()


def test_fallback_edit_drops_exactly_the_two_selects(tmp_path):
    tree = tmp_path / "tree"
    (tree / "arch/arm64").mkdir(parents=True)
    src = tmp_path / "shared-Kconfig"
    src.write_text((DATA / "arm64-Kconfig-6.1.192-excerpt").read_text())
    # The tree is hard-linked to the shared source: the edit must not write through.
    (tree / "arch/arm64/Kconfig").hardlink_to(src)
    kbuild.apply_variant(tree, "fallback")
    edited = (tree / "arch/arm64/Kconfig").read_text()
    assert "select HAVE_DYNAMIC_FTRACE_WITH_REGS" not in edited
    assert src.read_text().count("select HAVE_DYNAMIC_FTRACE_WITH_REGS") == 2
    assert edited.count("\n") == src.read_text().count("\n") - 2
    kbuild.apply_variant(tree, "regs")  # the regs tree is Debian's as shipped
    with pytest.raises(LabError, match="expected 2"):
        kbuild.apply_variant(tree, "fallback")  # nothing left to drop: not the known tree


def test_the_variants_differ_only_in_the_ftrace_mechanism():
    c = kbuild.compare_configs(REGS, FALLBACK)
    assert set(c["mechanism"]) == kbuild.MECHANISM
    assert c["mechanism"]["DYNAMIC_FTRACE_WITH_REGS"] == {"regs": "y", "fallback": "n"}
    assert c["mechanism"]["FTRACE_MCOUNT_USE_RECORDMCOUNT"] == {"regs": "n", "fallback": "y"}
    # SHADOW_CALL_STACK is only visible in regs, but off in both: no confound.
    assert c["confounds"] == {}
    kbuild.check_variant_config("regs", REGS)
    kbuild.check_variant_config("fallback", FALLBACK)
    with pytest.raises(LabError):
        kbuild.check_variant_config("fallback", REGS)


def test_a_confound_is_flagged():
    pac = FALLBACK.replace("# CONFIG_ARM64_PTR_AUTH is not set", "CONFIG_ARM64_PTR_AUTH=y")
    assert kbuild.compare_configs(REGS, pac)["confounds"] == {
        "ARM64_PTR_AUTH": {"regs": "n", "fallback": "y"}}


def test_fragment_options_lost_to_kconfig_are_named():
    fragment = kbuild.DEFAULT_FRAGMENT.read_text()
    assert kbuild.missing_from_config(fragment, REGS) == []
    assert kbuild.missing_from_config(fragment + "CONFIG_KALLSYMS_ALL=y\n", REGS) == [
        "CONFIG_KALLSYMS_ALL=y"]


COMPILER = "aarch64-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0"


def a_build(variant, fragment_text="CONFIG_FTRACE=y\n", source_tree="/src", jobs=1):
    return kbuild.KernelBuild(variant, kbuild.select_source("debian-6.1"), "6.1.192-3",
                              pathlib.Path(source_tree), pathlib.Path("/lab-6.1.fragment"),
                              fragment_text, COMPILER, jobs)


def test_the_recipe_hash_is_the_cache_key_of_existing_builds(tmp_path, monkeypatch):
    """Pinned from the code before KernelBuild (main at 481f261): a change of
    the hash would orphan every built kernel.  The shipped fragment gave the
    lab's cached regs-6.1-a8de5b57ce15 and fallback-6.1-bd4c33340188; a fixed
    fragment keeps this test independent of edits to it."""
    monkeypatch.setattr(cache, "ROOT", tmp_path)
    assert a_build("regs").kdir == tmp_path / "kernels" / "regs-6.1-5fe605166cf5"
    assert a_build("fallback").kdir == tmp_path / "kernels" / "fallback-6.1-b5dfb9ca23c1"
    # Where the source was extracted and how many jobs run do not change what is built.
    assert a_build("regs", source_tree="/elsewhere", jobs=8).kdir == a_build("regs").kdir
    assert a_build("regs", fragment_text="").kdir != a_build("regs").kdir


def test_the_make_command_lines_are_unchanged(tmp_path, monkeypatch):
    """As the code before KernelBuild ran them (main at 481f261)."""
    ran = []
    monkeypatch.setattr(kbuild, "_run", lambda argv, log, env=None: ran.append(
        (" ".join(map(str, argv)), env)))
    monkeypatch.setattr(kbuild, "cross_compile", lambda: "aarch64-linux-gnu-")
    (tmp_path / "build").mkdir()
    (tmp_path / "build/.config").write_text("CONFIG_FTRACE=y\n")
    b = a_build("fallback", jobs=2)
    config, configure_command = kbuild.configure(b, tmp_path / "source", tmp_path / "build",
                                                 log=None)
    assert config == "CONFIG_FTRACE=y\n"
    build_command = kbuild._make(b, "T", "O", None, f"-j{b.jobs}", "Image", "modules")
    kbuild._make(b, "T", "O", None, "INSTALL_MOD_PATH=/m", "modules_install")
    base = "make -C T O=O ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- LOCALVERSION=-fallback"
    assert ran == [(f"make -C {tmp_path}/source O={tmp_path}/build ARCH=arm64 "
                    "CROSS_COMPILE=aarch64-linux-gnu- LOCALVERSION=-fallback "
                    "KCONFIG_ALLCONFIG=/lab-6.1.fragment allnoconfig", kbuild.KBUILD_ENV),
                   (f"{base} -j2 Image modules", kbuild.KBUILD_ENV),
                   (f"{base} INSTALL_MOD_PATH=/m modules_install", kbuild.KBUILD_ENV)]
    # What the manifest records ("make"): the command lines as run.
    assert [configure_command, build_command] == [argv for argv, _ in ran[:2]]


def test_the_module_cache_key_is_unchanged(tmp_path, monkeypatch):
    """Pinned from bench/run.py's _kmod_cache_dir before it moved to
    remote/cache.py: a change would orphan every kept module."""
    src = tmp_path / "kmod"
    src.mkdir()
    for name in agent_client.KMOD_FILES:
        (src / name).write_text(f"the {name}\n")
    monkeypatch.setattr(agent_client, "KMOD_DIR", src)
    monkeypatch.setattr(cache, "ROOT", tmp_path / "cache")
    facts = {"kernel_release": "6.1.192-regs", "kernel_version": "#1 SMP PREEMPT 2026-01-01",
             "arch": "aarch64"}
    assert cache.kmod_dir(facts) == tmp_path / "cache/kmod/6.1.192-regs-102e369bac7a"


def test_bad_variant_and_unknown_lab_kernel_are_one_line_errors():
    r = CliRunner().invoke(cli, ["kernel", "build", "--variant", "mcount"])
    assert r.exit_code == EXIT_CODES["usage"][0]
    r = CliRunner().invoke(cli, ["lab", "up", "--kernel", "debian-4.19"])
    assert r.exit_code == EXIT_CODES["lab"][0]
    line = r.output.strip()
    assert "\n" not in line and "unknown lab kernel 'debian-4.19'" in line
    for name in ("debian-5.10", "debian-6.1", "debian-6.12", "regs-6.1", "fallback-6.1"):
        assert name in line


def test_debian_5_10_image_is_bullseye_without_its_security_source():
    """bullseye-security lists newer 5.10 kernels than bullseye, but its arm64
    packages answer 404: with it among the sources apt picks versions it
    cannot download.  Bookworm's images keep their -security source (6.12
    comes from it)."""
    from remote import lab as labmod

    argv = labmod.mmdebstrap_argv(labmod.select("debian-5.10"), "ROOT")
    sources = [a for a in argv if a.startswith("deb ")]
    assert sources == [f"deb {labmod.MIRROR} bullseye main",
                       f"deb {labmod.MIRROR} bullseye-updates main"]
    assert argv[argv.index("ROOT") - 1] == "bullseye"
    include = next(a for a in argv if a.startswith("--include="))[len("--include="):].split(",")
    assert {"python3", "python3-bpfcc", "linux-image-cloud-arm64",
            "linux-headers-cloud-arm64", "sudo"} <= set(include)
    for name in ("debian-6.1", "debian-6.12"):
        argv = labmod.mmdebstrap_argv(labmod.select(name), "ROOT")
        assert f"deb {labmod.SECURITY_MIRROR} bookworm-security main" in argv


def test_kernels_of_one_userland_share_its_build():
    """debian-6.1 and debian-6.12 are both bookworm: one mmdebstrap tarball
    holds both kernels (and their headers), and each image boots its own
    kernel from /boot by release; debian-5.10's bullseye has a build of its own."""
    from remote import lab as labmod

    k61, k612, k510 = (labmod.select(n) for n in ("debian-6.1", "debian-6.12", "debian-5.10"))
    assert k61.base_path() == k612.base_path()
    assert k61.base_path().name.startswith("bookworm-")
    assert k510.base_path() != k61.base_path()
    assert k61.image_dir() != k612.image_dir()
    include = next(a for a in labmod.mmdebstrap_argv(k61, "ROOT")
                   if a.startswith("--include="))[len("--include="):].split(",")
    assert {k61.kernel_package, k61.headers_package,
            k612.kernel_package, k612.headers_package} <= set(include)
    # The release prefixes tell the kernels in /boot apart (6.1. is no prefix of 6.12.).
    assert not "6.12.57+deb12-cloud-arm64".startswith(k61.release_prefix)
    assert "6.1.0-57-cloud-arm64".startswith(k61.release_prefix)
    assert "5.10.0-32-cloud-arm64".startswith(k510.release_prefix)
