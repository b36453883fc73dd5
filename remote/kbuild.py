"""The lab's own arm64 kernels: one source, one config, two ftrace mechanisms.

`regs` and `fallback` are built from the same Debian source package
(linux-source-6.1, Debian's patches applied) with the same config fragment
(remote/kconfig/lab-6.1.fragment, applied on top of allnoconfig).  The only
difference is in the source tree: the fallback's copy of arch/arm64/Kconfig
has no `select HAVE_DYNAMIC_FTRACE_WITH_REGS` (the two lines under
CLANG_/GCC_SUPPORTS_DYNAMIC_FTRACE_WITH_REGS), so Kconfig falls back to
`-pg` and recordmcount (FTRACE_MCOUNT_USE_RECORDMCOUNT): mcount-style
DYNAMIC_FTRACE with no regs caller.  Both variants' .config files are
generated on every build and compared; any difference beyond the ftrace
mechanism is reported as a confound.

Cache: cache.ROOT/kernels/<variant>-<key>/, key = hash of the source package
version, the fragment, the variant's tree edit, the compiler and BUILD_RECIPE.
The directory is used in place (the kept module build tree names its own
absolute path), so completeness is marked by manifest.json, written last; a
directory without it is an interrupted build and is wiped before the next
attempt.  A lock file keeps two builds of one variant apart.

Cross-compiles with gcc-aarch64-linux-gnu on x86_64, natively on arm64.
The suite's module is cross-built against the kept tree on the controller
(kbuild's host programs in a cross-built tree are x86 binaries, so the guest
cannot build against it) and put where bench/run.py's prepare_module finds
it for exactly this kernel build (remote/cache.py, kmod_dir).
"""
import dataclasses
import fcntl
import hashlib
import json
import os
import pathlib
import platform
import re
import resource
import shutil
import subprocess
import tempfile
import time

from . import agent_client, cache
from .errors import LabError

KCONFIG_DIR = pathlib.Path(__file__).parent / "kconfig"
DEFAULT_FRAGMENT = KCONFIG_DIR / "lab-6.1.fragment"
VARIANTS = ("regs", "fallback")
# Bump when the build steps change in a way that changes the result.
BUILD_RECIPE = 1
# Fixed build identity: /proc/version (uname -v) must not depend on when or
# where the kernel was built, so that the module cache key is reproducible.
KBUILD_ENV = {"KBUILD_BUILD_TIMESTAMP": "2026-01-01", "KBUILD_BUILD_USER": "bench",
              "KBUILD_BUILD_HOST": "ftrace-regs-bench", "KBUILD_BUILD_VERSION": "1"}

# Config symbols that are the ftrace mechanism itself: a difference in any
# other symbol's effective value between the variants is a confound.
MECHANISM = {"HAVE_DYNAMIC_FTRACE_WITH_REGS", "DYNAMIC_FTRACE_WITH_REGS",
             "FTRACE_MCOUNT_USE_PATCHABLE_FUNCTION_ENTRY", "FTRACE_MCOUNT_USE_RECORDMCOUNT"}


class Source:
    """A Debian kernel source package: the .deb carries a .tar.xz of the tree."""

    def __init__(self, name, package, tarball, series):
        self.name, self.package, self.tarball, self.series = name, package, tarball, series


SOURCES = {"debian-6.1": Source("debian-6.1", "linux-source-6.1",
                                "usr/src/linux-source-6.1.tar.xz", "6.1")}


def select_source(name):
    try:
        return SOURCES[name]
    except KeyError:
        raise LabError(f"unknown kernel source {name!r}", hint="valid sources: " + ", ".join(SOURCES))


def select_variant(name):
    if name not in VARIANTS:
        raise LabError(f"unknown kernel variant {name!r}", hint="valid variants: " + ", ".join(VARIANTS))
    return name


# -- the variant's tree edit ------------------------------------------------------

REGS_SELECT = "\tselect HAVE_DYNAMIC_FTRACE_WITH_REGS"
PATCH_TEXT = {
    "regs": "none: Debian's tree as shipped",
    "fallback": "arch/arm64/Kconfig: drop the lines '\\tselect HAVE_DYNAMIC_FTRACE_WITH_REGS' "
                "(under CLANG_ and GCC_SUPPORTS_DYNAMIC_FTRACE_WITH_REGS)",
}


def apply_variant(tree, variant):
    """Edit the variant's copy of the tree.  The tree is hard-linked to the
    shared extracted source, so a file is replaced (unlink, write), never
    written through."""
    if variant == "regs":
        return
    kconfig = pathlib.Path(tree) / "arch/arm64/Kconfig"
    lines = kconfig.read_text().splitlines(keepends=True)
    kept = [l for l in lines if l.rstrip("\n") != REGS_SELECT]
    if len(lines) - len(kept) != 2:
        raise LabError(f"expected 2 '{REGS_SELECT.strip()}' lines in {kconfig}, found "
                       f"{len(lines) - len(kept)}", hint="this source is not the 6.1 tree the "
                       "fallback recipe knows; see docs/lab.md, \"The eras of arm64 ftrace\"")
    kconfig.unlink()
    kconfig.write_text("".join(kept))


# -- source ------------------------------------------------------------------------

def _run(argv, log, cwd=None, env=None):
    log.write(f"$ {' '.join(str(a) for a in argv)}\n")
    log.flush()
    p = subprocess.run([str(a) for a in argv], cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                       env=None if env is None else {**os.environ, **env})
    if p.returncode != 0:
        raise LabError(f"kernel build step failed (exit {p.returncode}): {' '.join(map(str, argv[:4]))}",
                       hint=f"see {log.name}")


def fetch_source(source, log, progress):
    """The .deb (apt-get download) and its tree, extracted once.  Returns
    (package version, tree path)."""
    src_dir = cache.ROOT / "src"
    src_dir.mkdir(parents=True, exist_ok=True)
    # Both variants may be built at once (CI starts them side by side): one
    # downloads and extracts, the other waits for it here.
    with open(src_dir / f".lock-{source.package}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _fetch_source_locked(source, src_dir, log, progress)


def _fetch_source_locked(source, src_dir, log, progress):
    debs = sorted(src_dir.glob(f"{source.package}_*_all.deb"))
    if not debs:
        if shutil.which("apt-get") is None:
            raise LabError(f"no {source.package} .deb in {src_dir} and no apt-get to download it",
                           hint=f"put {source.package}_VERSION_all.deb from a Debian mirror there")
        progress(f"downloading {source.package} (apt-get download)")
        _run(["apt-get", "download", source.package], log, cwd=src_dir)
        debs = sorted(src_dir.glob(f"{source.package}_*_all.deb"))
    deb = debs[-1]
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True,
                             text=True, check=True).stdout.strip()
    tree = src_dir / f"{source.package}-{version}"
    if (tree / "Makefile").exists():
        return version, tree
    progress(f"extracting {deb.name} (about a minute)")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=".extract.", dir=src_dir))
    try:
        _run(["sh", "-c", 'dpkg-deb --fsys-tarfile "$1" | tar -xO "./$2" | tar -xJ -C "$3"', "sh",
              deb, source.tarball, tmp], log)
        top = [p for p in tmp.iterdir() if p.is_dir()]
        if len(top) != 1 or not (top[0] / "Makefile").exists():
            raise LabError(f"{deb.name} did not hold one kernel tree", hint=f"see {log.name}")
        top[0].rename(tree)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return version, tree


# -- keys and paths ------------------------------------------------------------------

def cross_compile():
    """'' on arm64 (native), 'aarch64-linux-gnu-' elsewhere."""
    return "" if platform.machine() == "aarch64" else "aarch64-linux-gnu-"


def compiler_version():
    cc = cross_compile() + "gcc"
    if shutil.which(cc) is None:
        pkg = "gcc" if not cross_compile() else "gcc-aarch64-linux-gnu"
        raise LabError(f"no {cc} to build the arm64 kernel", hint=f"apt-get install {pkg} flex bison "
                       "bc libssl-dev libelf-dev cpio kmod")
    out = subprocess.run([cc, "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0]


@dataclasses.dataclass(frozen=True)
class KernelBuild:
    """One variant's build from one extracted source.  Its recipe (what the
    result depends on) is hashed into the cache directory's name; where the
    shared source was extracted and how many make jobs run are not part of
    it: they do not change what is built."""

    variant: str
    source: Source
    source_version: str
    source_tree: pathlib.Path  # the shared extracted tree; each build hard-links a copy
    fragment: pathlib.Path
    fragment_text: str
    compiler: str  # first line of `gcc --version`
    jobs: int = 1

    def recipe(self):
        return {"variant": self.variant, "source": self.source.name,
                "package": self.source.package, "source_version": self.source_version,
                "fragment": self.fragment_text, "patch": PATCH_TEXT[self.variant],
                "compiler": self.compiler, "build_recipe": BUILD_RECIPE}

    @property
    def kdir(self):
        return (cache.ROOT / "kernels"
                / f"{self.variant}-{self.source.series}-{_key(self.recipe())}")

    def make_argv(self, tree, out, *args):
        # LOCALVERSION names the variant in the release (6.1.192-regs): the two
        # kernels' modules and module caches can never be mixed up.
        return ["make", "-C", tree, f"O={out}", "ARCH=arm64", f"CROSS_COMPILE={cross_compile()}",
                f"LOCALVERSION=-{self.variant}", *args]


def _key(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def find_built(variant, source_name="debian-6.1"):
    """The newest complete build of a variant from a source, or None.  Used by
    the lab, which must not need apt or the compiler just to boot a kernel
    that is already built."""
    source = select_source(source_name)
    found = []
    for d in (cache.ROOT / "kernels").glob(f"{variant}-{source.series}-*"):
        m = d / "manifest.json"
        if m.exists():
            found.append((m.stat().st_mtime, d))
    return max(found)[1] if found else None


def load_manifest(kdir):
    return json.loads((pathlib.Path(kdir) / "manifest.json").read_text())


# -- config ----------------------------------------------------------------------------

def parse_config(text):
    """.config text -> {SYMBOL: value}; '# CONFIG_X is not set' -> 'n'."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^CONFIG_(\w+)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
            continue
        m = re.match(r"^# CONFIG_(\w+) is not set$", line)
        if m:
            out[m.group(1)] = "n"
    return out


def compare_configs(regs_text, fallback_text):
    """Symbols whose effective value differs (absent counts as n), split into
    the ftrace mechanism and confounds."""
    a, b = parse_config(regs_text), parse_config(fallback_text)
    diff = {}
    for sym in sorted(set(a) | set(b)):
        va, vb = a.get(sym, "n"), b.get(sym, "n")
        if va != vb:
            diff[sym] = {"regs": va, "fallback": vb}
    return {"mechanism": {k: v for k, v in diff.items() if k in MECHANISM},
            "confounds": {k: v for k, v in diff.items() if k not in MECHANISM}}


def missing_from_config(fragment_text, config_text):
    """Fragment lines that did not survive Kconfig (a dependency is off)."""
    want = parse_config(fragment_text)
    have = parse_config(config_text)
    return sorted(f"CONFIG_{k}={v}" for k, v in want.items() if have.get(k, "n") != v)


def _make(b, tree, out, log, *args):
    """Run make for build b on a tree; returns the command line, for the manifest."""
    argv = b.make_argv(tree, out, *args)
    _run(argv, log, env=KBUILD_ENV)
    return " ".join(map(str, argv))


def configure(b, tree, out, log):
    """(the .config text, the make command line for the manifest)"""
    command = _make(b, tree, out, log, f"KCONFIG_ALLCONFIG={b.fragment}", "allnoconfig")
    return (pathlib.Path(out) / ".config").read_text(), command


def check_variant_config(variant, config):
    c = parse_config(config)
    if variant == "regs" and c.get("DYNAMIC_FTRACE_WITH_REGS") != "y":
        raise LabError("the regs build has no DYNAMIC_FTRACE_WITH_REGS",
                       hint="the compiler must support -fpatchable-function-entry=2 (GCC >= 8)")
    if variant == "fallback" and (c.get("DYNAMIC_FTRACE_WITH_REGS", "n") != "n"
                                  or c.get("FTRACE_MCOUNT_USE_RECORDMCOUNT") != "y"):
        raise LabError("the fallback build still has DYNAMIC_FTRACE_WITH_REGS or lacks "
                       "FTRACE_MCOUNT_USE_RECORDMCOUNT", hint="see docs/lab.md, \"The eras of arm64 ftrace\"")
    if c.get("DYNAMIC_FTRACE") != "y":
        raise LabError(f"the {variant} build has no DYNAMIC_FTRACE", hint="check the fragment")


# -- build ---------------------------------------------------------------------------

def build(variant="regs", source_name="debian-6.1", fragment=None, jobs=None, progress=print):
    """Build one variant unless cached; returns its directory (manifest.json inside)."""
    select_variant(variant)
    source = select_source(source_name)
    fragment = pathlib.Path(fragment or DEFAULT_FRAGMENT).resolve()
    if not fragment.is_file():
        raise LabError(f"config fragment {fragment} not found", hint="pass an existing --config file")
    fragment_text = fragment.read_text()
    compiler = compiler_version()
    for tool, pkg in (("flex", "flex"), ("bison", "bison"), ("bc", "bc"), ("cpio", "cpio"),
                      ("depmod", "kmod")):
        if shutil.which(tool) is None:
            raise LabError(f"no {tool} to build the kernel", hint=f"apt-get install {pkg}")
    root = cache.ROOT / "kernels"
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / f"build-{variant}.log"
    with open(log_path, "a") as log:  # appended: a concurrent caller may be building
        log.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} bench kernel build "
                  f"--variant {variant} --source {source_name} --config {fragment}\n")
        version, src = fetch_source(source, log, progress)
        b = KernelBuild(variant, source, version, src, fragment, fragment_text, compiler,
                        jobs or os.cpu_count())
        kdir = b.kdir
        if (kdir / "manifest.json").exists():
            return kdir
        with open(root / f".lock-{kdir.name}", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (kdir / "manifest.json").exists():  # built meanwhile by someone else
                return kdir
            if kdir.exists():
                progress(f"removing an interrupted build in {kdir}")
                shutil.rmtree(kdir)
            try:
                return _build(b, log, progress)
            except BaseException:
                log.flush()
                shutil.copy(log_path, root / f"failed-{variant}.log")
                shutil.rmtree(kdir, ignore_errors=True)
                raise


def _tree_copy(b, dest):
    """A hard-linked copy of the extracted source (seconds, no space), edited
    for the variant."""
    subprocess.run(["cp", "-al", str(b.source_tree), str(dest)], check=True)
    apply_variant(dest, b.variant)


def _children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _build(b, log, progress):
    t0, cpu0 = time.monotonic(), _children_cpu()
    variant, kdir = b.variant, b.kdir
    kdir.mkdir(parents=True)
    tree, out = kdir / "source", kdir / "build"
    _tree_copy(b, tree)
    progress(f"configuring {variant} ({b.source.package} {b.source_version}, {b.fragment.name})")
    config, configure_command = configure(b, tree, out, log)
    missing = missing_from_config(b.fragment_text, config)
    if missing:
        raise LabError("the fragment's options did not all survive Kconfig: " + ", ".join(missing),
                       hint="add the options they depend on to the fragment")
    check_variant_config(variant, config)
    # Both variants' configs, from this build's tree and a scratch copy for the other.
    other = dataclasses.replace(b, variant="fallback" if variant == "regs" else "regs")
    scratch = pathlib.Path(tempfile.mkdtemp(prefix=".config-", dir=kdir))
    try:
        _tree_copy(other, scratch / "source")
        other_config, _ = configure(other, scratch / "source", scratch / "build", log)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    configs = {variant: config, other.variant: other_config}
    (kdir / "config.regs").write_text(configs["regs"])
    (kdir / "config.fallback").write_text(configs["fallback"])
    diff = subprocess.run(["diff", "-u", "--label", "config.regs", "--label", "config.fallback",
                           str(kdir / "config.regs"), str(kdir / "config.fallback")],
                          capture_output=True, text=True).stdout
    (kdir / "config.diff").write_text(diff)
    comparison = compare_configs(configs["regs"], configs["fallback"])
    if comparison["confounds"]:
        progress("confounds: the variants differ beyond the ftrace mechanism in "
                 + ", ".join(f"{k} ({v['regs']} vs {v['fallback']})"
                             for k, v in comparison["confounds"].items()))
    progress(f"building {variant} with make -j{b.jobs} Image modules (about 15 CPU-minutes)")
    build_command = _make(b, tree, out, log, f"-j{b.jobs}", "Image", "modules")
    modroot = kdir / "modroot"
    install_command = _make(b, tree, out, log, f"INSTALL_MOD_PATH={modroot}", "modules_install")
    release = (out / "include/config/kernel.release").read_text().strip()
    uts = (out / "include/generated/utsversion.h").read_text()
    uts_version = re.search(r'UTS_VERSION "([^"]*)"', uts).group(1)
    shutil.copy(out / "arch/arm64/boot/Image", kdir / "Image")
    shutil.copy(out / "System.map", kdir / "System.map")
    shutil.copy(out / ".config", kdir / "config")
    _prune_build_tree(out)
    build_seconds = round(time.monotonic() - t0, 1)
    manifest = {
        "variant": variant,
        "recipe": b.recipe(),
        "fragment_path": str(b.fragment),
        "kernel_release": release,
        "kernel_version": uts_version,
        "ftrace": {k: parse_config(config).get(k, "n") for k in sorted(MECHANISM)},
        "config_comparison": comparison,
        "image_bytes": (kdir / "Image").stat().st_size,
        "build_seconds": build_seconds,
        # CPU time of make and the compilers: what the build costs on a host
        # shared with other work, where wall time depends on the neighbours.
        "build_cpu_seconds": round(_children_cpu() - cpu0, 1),
        "jobs": b.jobs,
        # How to redo it by hand (the build log is shared by all builds of a variant).
        "make": {"env": KBUILD_ENV,
                 "commands": [configure_command, build_command, install_command]},
        "host": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (kdir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    progress(f"built {variant}: {release}, Image {manifest['image_bytes'] / 2**20:.1f} MiB "
             f"in {build_seconds:.0f} s")
    return kdir


def _prune_build_tree(out):
    """Keep what an external module build needs (config, generated headers,
    scripts, Module.symvers, vmlinux for inspection); drop object files."""
    for p in out.rglob("*"):
        if p.is_file() and (p.suffix in (".o", ".a") or p.name.endswith(".o.cmd")) \
                and "scripts" not in p.relative_to(out).parts[:1]:
            p.unlink()


# -- the suite's module for a built kernel ------------------------------------------

def build_module(kdir, progress=print):
    """Cross-build remote/kmod against the kernel's tree and put the .ko where
    prepare_module looks for this exact kernel build.  Returns the .ko path."""
    kdir = pathlib.Path(kdir)
    m = load_manifest(kdir)
    facts = {"kernel_release": m["kernel_release"], "kernel_version": m["kernel_version"],
             "arch": "aarch64"}
    dest = cache.kmod_dir(facts)
    ko = dest / "ftrace_regs_bench.ko"
    if ko.exists():
        return ko
    progress(f"cross-building the suite's module for {m['kernel_release']}")
    work = pathlib.Path(tempfile.mkdtemp(prefix="kmod-", dir=kdir))
    try:
        for name in agent_client.KMOD_FILES:
            shutil.copy(agent_client.KMOD_DIR / name, work / name)
        with open(work / "build.log", "w") as log:
            _run(["make", "-C", kdir / "build", f"M={work}", "ARCH=arm64",
                  f"CROSS_COMPILE={cross_compile()}", "modules"], log)
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "cross-built.json").write_text(json.dumps(
            {"kernel_build": str(kdir), "kernel_release": m["kernel_release"],
             "kernel_version": m["kernel_version"], "built_utc": time.strftime(
                 "%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=1) + "\n")
        # A name of its own: `bench kernel build` and a test may finish the
        # same module at the same moment; each renames a whole file over ko.
        fd, tmp = tempfile.mkstemp(prefix="ftrace_regs_bench.ko.", dir=dest)
        os.close(fd)
        shutil.copy(work / "ftrace_regs_bench.ko", tmp)
        os.rename(tmp, ko)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ko
