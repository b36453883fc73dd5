"""The lab: a real Debian arm64 kernel under QEMU, reached over SSH like a board.

Build (once, cached under ~/.cache/ftrace-regs-bench/lab/images/<name>-<hash>):
mmdebstrap builds an arm64 root filesystem from Debian's packages only
(the kernel package included, so its initramfs carries the virtio modules);
the kernel and initrd are taken out of its /boot; a client key pair and the
guest's SSH host key are generated here and baked in; mke2fs packs the tree
into an ext4 image.  Up: qemu-system-aarch64 boots it with the image as a
read-only base (-snapshot semantics: every boot starts from the same state),
user-mode networking restricted to a 127.0.0.1 port forward to the guest's
sshd.  The guest's host key is pinned in the lab's own known_hosts; the lab
is then `--host lab` through an ssh_config written next to it.

Targets are classes whose data lives in class attributes; variants are
subclasses; select(name) lists the valid names in its error.  The QEMU
command is built as a plain list (qemu_argv) and run elsewhere (up).
"""
import dataclasses
import fcntl
import hashlib
import json
import os
import pathlib
import platform
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from . import cache
from .errors import LabError

MIRROR = os.environ.get("FTRACE_REGS_BENCH_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("FTRACE_REGS_BENCH_SECURITY_MIRROR",
                                 "http://deb.debian.org/debian-security")

# Files baked into the guest.  PID 1 is sysvinit with our own inittab: no
# rc scripts, no services but sshd, so the guest is quiet while it measures.
INITTAB = """\
# ftrace-regs-bench lab: sysinit, then sshd; nothing else runs.
id:2:initdefault:
si::sysinit:/etc/lab/rc.sysinit
ss:2:respawn:/usr/sbin/sshd -D -e
"""

RC_SYSINIT = """\
#!/bin/sh
# Mount what the initramfs did not move over, bring up the user-mode network.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mountpoint -q /run || mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mount -o remount,rw /
mkdir -p /dev/pts /dev/shm /run/sshd
mountpoint -q /dev/pts || mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mountpoint -q /dev/shm || mount -t tmpfs -o nosuid,nodev tmpfs /dev/shm
mountpoint -q /tmp || mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
mountpoint -q /sys/kernel/debug || mount -t debugfs nodev /sys/kernel/debug
hostname lab
# No udev in the guest: load the NIC's driver by hand.
modprobe virtio_net
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo "lab: sysinit done" > /dev/console
"""

POWEROFF = """\
#!/bin/sh
# Clean power-off for the lab (bench lab down): stop everything, sync,
# remount read-only, then PSCI power-off, which ends QEMU.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
echo "lab: powering off" > /dev/console
kill -TERM -1 2>/dev/null
sleep 1
sync
mount -o remount,ro / 2>/dev/null
exec poweroff -f
"""

SSHD_CONFIG = """\
# ftrace-regs-bench lab: key-only logins (root, and the sudo user as on
# Debian's cloud images), one pinned host key.
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
Subsystem sftp /usr/lib/openssh/sftp-server
"""

FSTAB = "/dev/vda / ext4 rw,relatime 0 1\n"

# The login Debian's cloud images give (cloud-init's default user): a user
# of its own with passwordless sudo, which is how users reach their boards
# and instances.  The lab's client key logs in as root and as this user.
SUDO_USER = "admin"
SUDO_UID = 1000
SUDOERS = f"{SUDO_USER} ALL=(ALL) NOPASSWD:ALL\n"


class Kernel:
    """A lab kernel: which Debian package provides it and what it is for."""

    name = None
    description = None
    suite = "bookworm"
    # Whether the suite's -security source goes into the image's sources.
    security = True
    kernel_package = None
    # The start of the booted kernel's release (uname -r): which of the
    # userland's kernels in /boot this image boots.
    release_prefix = None
    packages = ("python3", "openssh-server", "openssh-sftp-server", "iproute2", "kmod", "procps",
                "sysvinit-core", "util-linux",
                # the login a user has on a cloud image: 'admin' with passwordless sudo
                "sudo",
                # the suite's module is built in the guest, like on a board
                "make",
                # bcc for the BPF method (the distribution's binding, never PyPI's)
                "python3-bpfcc")
    # The headers of exactly the booted kernel (they pull in its gcc and kbuild).
    headers_package = None

    @classmethod
    def userland_kernels(cls):
        """The lab's Debian kernels that share this one's userland (suite,
        sources and packages): one root filesystem holds them all, so that
        building debian-6.12 after debian-6.1 (both bookworm) costs no
        second mmdebstrap.  Each image boots its own kernel from /boot."""
        return sorted((k for k in KERNELS.values()
                       if not issubclass(k, Built61) and k.suite == cls.suite
                       and k.security == cls.security and k.packages == cls.packages),
                      key=lambda k: k.name)

    @classmethod
    def base_recipe(cls):
        """What the mmdebstrap tarball depends on (the slow stage)."""
        return {
            "suite": cls.suite,
            "kernels": [[k.kernel_package, k.headers_package] for k in cls.userland_kernels()],
            "packages": sorted(cls.packages),
            "argv": mmdebstrap_argv(cls, "ROOT"),
            "base_version": 2,
        }

    @classmethod
    def recipe(cls):
        """Everything the image depends on; its hash names the cache entry."""
        return {
            "kernel": cls.name,
            "base": cls.base_recipe(),
            "files": {"inittab": INITTAB, "rc.sysinit": RC_SYSINIT, "poweroff": POWEROFF,
                      "sshd_config": SSHD_CONFIG, "fstab": FSTAB, "sudoers": SUDOERS,
                      "sudo_user": [SUDO_USER, SUDO_UID]},
            "recipe_version": 3,
        }

    @classmethod
    def base_path(cls):
        return cache.ROOT / "lab" / "base" / f"{cls.suite}-{_hash(cls.base_recipe())}.tar"

    @classmethod
    def image_dir(cls):
        return cache.ROOT / "lab" / "images" / f"{cls.name}-{_hash(cls.recipe())}"


def _hash(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


class Debian61(Kernel):
    name = "debian-6.1"
    release_prefix = "6.1."
    description = "Debian 12's arm64 cloud kernel (6.1, DYNAMIC_FTRACE_WITH_REGS)"
    kernel_package = "linux-image-cloud-arm64"
    headers_package = "linux-headers-cloud-arm64"


class Debian510(Kernel):
    name = "debian-5.10"
    description = ("Debian 11's arm64 cloud kernel (5.10, DYNAMIC_FTRACE_WITH_REGS; Python 3.9): "
                   "the long-term kernel closest to 5.5, where arm64 got ftrace_regs_caller")
    suite = "bullseye"
    release_prefix = "5.10."
    # bullseye-security's index lists newer 5.10 kernels than main, but its
    # arm64 packages are gone from the archive (404): with it in the sources
    # apt would pick versions it cannot download.  bullseye's main carries
    # the last 5.10.0-NN-cloud-arm64 that its arm64 archive still serves.
    security = False
    kernel_package = "linux-image-cloud-arm64"
    headers_package = "linux-headers-cloud-arm64"


class Debian612(Kernel):
    name = "debian-6.12"
    release_prefix = "6.12."
    description = ("Debian 12's arm64 cloud kernel 6.12 from bookworm-security, the kernel of "
                   "Debian 13 (DYNAMIC_FTRACE_WITH_ARGS, CALL_OPS, DIRECT_CALLS: no regs caller)")
    kernel_package = "linux-image-6.12-cloud-arm64"
    headers_package = "linux-headers-6.12-cloud-arm64"


class Built61(Kernel):
    """The lab's own 6.1 kernels (remote/kbuild.py): one source and config,
    two ftrace mechanisms.  User space is debian-6.1's image, used as it is
    (each boot writes to a snapshot): the image dir holds links to that
    root filesystem and to the built Image, no initrd (the root device's
    drivers are built in).  The guest has no /lib/modules/REL: the suite's
    module is cross-built on the controller, bcc reads the kernel's headers
    from /sys/kernel/kheaders.tar.xz (CONFIG_IKHEADERS)."""

    variant = None
    userspace = Debian61

    @classmethod
    def recipe(cls):
        return {"kernel": cls.name, "variant": cls.variant, "userspace": cls.userspace.recipe(),
                "kernel_build": _kernel_build_dir(cls).name, "recipe_version": 1}


def _kernel_build_dir(kernel):
    from . import kbuild

    kdir = kbuild.find_built(kernel.variant)
    if kdir is None:
        raise LabError(f"the {kernel.name} kernel is not built yet",
                       hint=f"run 'bench kernel build --variant {kernel.variant}' "
                            "(about 12 CPU-minutes, once)")
    return kdir


class Regs61(Built61):
    name = "regs-6.1"
    description = ("6.1 built here from Debian's linux-source-6.1 with the lab's config: "
                   "DYNAMIC_FTRACE_WITH_REGS (ftrace_caller and ftrace_regs_caller)")
    variant = "regs"


class Fallback61(Built61):
    name = "fallback-6.1"
    description = ("the same source and config as regs-6.1, built without "
                   "DYNAMIC_FTRACE_WITH_REGS: mcount-style DYNAMIC_FTRACE (-pg), no regs caller")
    variant = "fallback"


KERNELS = {k.name: k for k in (Debian510, Debian61, Debian612, Regs61, Fallback61)}
DEFAULT_KERNEL = "debian-6.1"


def select(name):
    try:
        return KERNELS[name]
    except KeyError:
        raise LabError(f"unknown lab kernel {name!r}",
                       hint="valid names: " + ", ".join(sorted(KERNELS)))


# -- building ------------------------------------------------------------------

REQUIRED_TOOLS = {
    "mmdebstrap": "mmdebstrap",
    "qemu-system-aarch64": "qemu-system-arm",
    "mke2fs": "e2fsprogs",
    "ssh-keygen": "openssh-client",
}


def check_build_tools():
    missing = [(t, p) for t, p in REQUIRED_TOOLS.items() if shutil.which(t) is None]
    if missing:
        raise LabError("missing tools to build the lab: " + ", ".join(t for t, _ in missing),
                       hint="install: apt-get install " + " ".join(sorted({p for _, p in missing})))
    if platform.machine() != "aarch64" and not os.path.exists("/proc/sys/fs/binfmt_misc/qemu-aarch64"):
        raise LabError("arm64 binaries cannot run here (no binfmt_misc entry qemu-aarch64), "
                       "so the arm64 root filesystem cannot be configured",
                       hint="apt-get install qemu-user-static binfmt-support, then "
                            "update-binfmts --enable qemu-aarch64")
    if os.geteuid() != 0:
        raise LabError("building the lab image needs root (mmdebstrap and mke2fs make root-owned "
                       "files)", hint="run 'bench lab up' as root once; later boots need no root")


def mmdebstrap_argv(kernel, rootdir):
    return [
        "mmdebstrap", "--arch=arm64", "--variant=minbase", "--mode=root",
        "--include=" + ",".join(list(kernel.packages) + [
            p for k in kernel.userland_kernels() for p in (k.kernel_package, k.headers_package) if p]),
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        # Before the kernel package installs: an initramfs with just the
        # virtio modules the lab boots from (MODULES=most copies every driver,
        # which takes minutes under user-mode emulation).
        "--essential-hook=mkdir -p \"$1/etc/initramfs-tools/conf.d\" "
        "\"$1/usr/share/initramfs-tools/modules.d\" && "
        "echo MODULES=list > \"$1/etc/initramfs-tools/conf.d/lab.conf\" && "
        "printf 'virtio_pci\\nvirtio_blk\\n' > \"$1/usr/share/initramfs-tools/modules.d/lab\"",
        kernel.suite, str(rootdir),
        f"deb {MIRROR} {kernel.suite} main",
        f"deb {MIRROR} {kernel.suite}-updates main",
    ] + ([f"deb {SECURITY_MIRROR} {kernel.suite}-security main"] if kernel.security else [])


def _write(path, text, mode=0o644):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _run(argv, log, **kw):
    log.write(f"$ {' '.join(argv)}\n")
    log.flush()
    p = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, **kw)
    if p.returncode != 0:
        raise LabError(f"lab build step failed (exit {p.returncode}): {argv[0]}",
                       hint=f"see {log.name}")


def build_base(kernel, work, log, progress):
    """The mmdebstrap tarball (slow: minutes under user-mode emulation), cached
    apart from the guest's configuration so that changing an init script
    does not rebuild it."""
    base = kernel.base_path()
    if base.exists():
        return base
    base.parent.mkdir(parents=True, exist_ok=True)
    # Kernels that share the userland build it once: the second waits here.
    with open(base.parent / f".lock-{base.stem}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if base.exists():
            return base
        names = ", ".join(k.name for k in kernel.userland_kernels())
        progress(f"building the {kernel.suite} root filesystem with mmdebstrap "
                 f"(arm64; the kernels of {names}; several minutes, once)")
        tmp = work / "base.tar"
        _run(mmdebstrap_argv(kernel, tmp), log)
        shutil.move(tmp, base)
    return base


def build_built61(kernel, progress=print):
    """The image dir of a lab-built kernel: links to its Image and to the
    debian-6.1 root filesystem, the same keys; the suite's module is
    cross-built for it.  Seconds, once the kernel and debian-6.1 exist."""
    from . import kbuild

    kdir = _kernel_build_dir(kernel)
    base = build(kernel.userspace, progress=progress)
    kbuild.build_module(kdir, progress=progress)
    dest = kernel.image_dir()
    if (dest / "manifest.json").exists():
        return dest
    km = kbuild.load_manifest(kdir)
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"build-{kernel.name}.", dir=dest.parent))
    try:
        (work / "vmlinuz").symlink_to(kdir / "Image")
        (work / "rootfs.ext4").symlink_to(base / "rootfs.ext4")
        for name in ("id_ed25519", "id_ed25519.pub", "ssh_host_ed25519_key.pub"):
            shutil.copy(base / name, work / name)
        shutil.copy(kdir / "config", work / "config")
        base_manifest = json.loads((base / "manifest.json").read_text())
        manifest = {
            "kernel": kernel.name,
            "kernel_release": km["kernel_release"],
            "kernel_build": str(kdir),
            "variant": kernel.variant,
            "recipe": kernel.recipe(),
            "userspace": str(base),
            "packages": base_manifest.get("packages"),
            "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host_key_fingerprint": base_manifest.get("host_key_fingerprint"),
        }
        (work / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        work.rename(dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return dest


def build(kernel, progress=print):
    """Build the image for `kernel` unless cached.  Returns the image dir.
    Two builds of one image at once (CI builds it beside the first tests,
    then the lab fixture asks for it) take turns: the second finds it built."""
    if issubclass(kernel, Built61):
        return build_built61(kernel, progress)
    dest = kernel.image_dir()
    if (dest / "manifest.json").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f".lock-{kernel.name}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (dest / "manifest.json").exists():
            return dest
        return _build_image(kernel, dest, progress)


def _build_image(kernel, dest, progress):
    check_build_tools()
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"build-{kernel.name}.", dir=dest.parent))
    log_path = work / "build.log"
    t0 = time.monotonic()
    try:
        with open(log_path, "w") as log:
            root = work / "root"
            base = build_base(kernel, work, log, progress)
            progress("configuring the guest (init, sshd, keys)")
            root.mkdir()
            _run(["tar", "-C", str(root), "--numeric-owner", "-xpf", str(base)], log)
            _configure_root(root, work, log)
            boot = root / "boot"
            # The userland may hold several kernels: this image boots its own.
            vmlinuz = sorted(boot.glob(f"vmlinuz-{kernel.release_prefix}*"))
            initrd = sorted(boot.glob(f"initrd.img-{kernel.release_prefix}*"))
            config = sorted(boot.glob(f"config-{kernel.release_prefix}*"))
            if not (vmlinuz and initrd and config):
                raise LabError(f"the kernel package left no vmlinuz/initrd in /boot",
                               hint=f"see {log_path}")
            shutil.copy(vmlinuz[-1], work / "vmlinuz")
            shutil.copy(initrd[-1], work / "initrd.img")
            shutil.copy(config[-1], work / "config")
            release = vmlinuz[-1].name[len("vmlinuz-"):]
            packages = _dpkg_versions(root)
            progress("packing the ext4 image")
            _run(["mke2fs", "-q", "-t", "ext4", "-L", "labroot", "-d", str(root),
                  str(work / "rootfs.ext4"), "3G"], log)
            shutil.rmtree(root)
        manifest = {
            "kernel": kernel.name,
            "kernel_release": release,
            "recipe": kernel.recipe(),
            "packages": packages,
            "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(time.monotonic() - t0, 1),
            "base": str(base),
            "host_key_fingerprint": _fingerprint(work / "ssh_host_ed25519_key.pub"),
        }
        (work / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        work.rename(dest)
        return dest
    except BaseException:
        # Keep the log of a failed build next to the cache, drop the rest.
        failed = dest.parent / f"failed-{kernel.name}.log"
        if log_path.exists():
            shutil.copy(log_path, failed)
        _unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
        raise


def _unmount_under(path):
    """Lazily unmount what an interrupted mmdebstrap left mounted in its chroot,
    deepest first, so that removing the build tree never walks into /proc or /sys."""
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/mounts") as f:
        points = [line.split()[1] for line in f if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _configure_root(root, work, log):
    _write(root / "etc/inittab", INITTAB)
    _write(root / "etc/lab/rc.sysinit", RC_SYSINIT, 0o755)
    _write(root / "usr/local/sbin/lab-poweroff", POWEROFF, 0o755)
    _write(root / "etc/ssh/sshd_config", SSHD_CONFIG)
    _write(root / "etc/fstab", FSTAB)
    _write(root / "etc/hostname", "lab\n")
    _write(root / "etc/hosts", "127.0.0.1 localhost\n127.0.1.1 lab\n")
    # Host key generated here and pinned by the controller; the keys the
    # openssh-server package generated under emulation are removed.
    for old in (root / "etc/ssh").glob("ssh_host_*"):
        old.unlink()
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ftrace-regs-bench-lab-host",
          "-f", str(work / "ssh_host_ed25519_key")], log)
    shutil.copy(work / "ssh_host_ed25519_key", root / "etc/ssh/ssh_host_ed25519_key")
    shutil.copy(work / "ssh_host_ed25519_key.pub", root / "etc/ssh/ssh_host_ed25519_key.pub")
    (root / "etc/ssh/ssh_host_ed25519_key").chmod(0o600)
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ftrace-regs-bench-lab-client",
          "-f", str(work / "id_ed25519")], log)
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copy(work / "id_ed25519.pub", ssh_dir / "authorized_keys")
    (ssh_dir / "authorized_keys").chmod(0o600)
    _add_sudo_user(root, work / "id_ed25519.pub")
    # The guest keeps no machine-id and no apt lists: smaller, reproducible.
    shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    shutil.rmtree(root / "var/cache/apt", ignore_errors=True)


def _add_sudo_user(root, pubkey):
    """SUDO_USER as a cloud image has it: its own group, a home with the
    lab's client key, passwordless sudo.  Written into the tree directly (no
    useradd under emulation); '*' in shadow: no password, yet not locked, so
    sshd (UsePAM no) lets the key in."""
    name, uid = SUDO_USER, SUDO_UID
    with open(root / "etc/passwd", "a") as f:
        f.write(f"{name}:x:{uid}:{uid}:Debian:/home/{name}:/bin/bash\n")
    with open(root / "etc/shadow", "a") as f:
        f.write(f"{name}:*:20000:0:99999:7:::\n")
    with open(root / "etc/group", "a") as f:
        f.write(f"{name}:x:{uid}:\n")
    if (root / "etc/gshadow").exists():
        with open(root / "etc/gshadow", "a") as f:
            f.write(f"{name}:!::\n")
    home = root / "home" / name
    (home / ".ssh").mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copy(pubkey, home / ".ssh/authorized_keys")
    (home / ".ssh/authorized_keys").chmod(0o600)
    for path in (home, home / ".ssh", home / ".ssh/authorized_keys"):
        os.chown(path, uid, uid)
    home.chmod(0o755)
    _write(root / "etc/sudoers.d/90-cloud-users", SUDOERS, 0o440)


def _dpkg_versions(root):
    versions = {}
    name = None
    status = (root / "var/lib/dpkg/status").read_text()
    for line in status.splitlines():
        if line.startswith("Package: "):
            name = line.split(": ", 1)[1]
        elif line.startswith("Version: ") and name:
            versions[name] = line.split(": ", 1)[1]
    return versions


def _fingerprint(pub):
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(pub)], capture_output=True, text=True)
    return out.stdout.split()[1] if out.returncode == 0 else None


# -- running -------------------------------------------------------------------

# One lab at a time per run directory.  FTRACE_REGS_BENCH_LAB_RUN moves it,
# so that two work trees (or two users' test runs) can each have a lab.
RUN_DIR = pathlib.Path(os.environ.get("FTRACE_REGS_BENCH_LAB_RUN", cache.ROOT / "lab" / "run"))


@dataclasses.dataclass
class LabConfig:
    kernel: str = DEFAULT_KERNEL
    accel: str = "tcg"  # auto | tcg | kvm
    # vCPUs; None: 1 under TCG (one host thread emulates it, leaving the other
    # core of a small host to the controller: per-cell spread measured here
    # fell by about half against -smp 2), 2 under KVM.
    smp: int = None
    memory_mb: int = 2048
    # icount by default: only instruction counts resolve the regs gain (about
    # nine instructions) in an emulator; plain TCG's wall clock on a shared
    # host moves by more than that between cells.
    icount: bool = True
    # The guest's PMU (QEMU's PMUv3 under TCG, the host's under KVM); False
    # boots it without one (-cpu ...,pmu=off), as a cloud VM whose hypervisor
    # does not pass the PMU through: what bench check and the pmu method say
    # there is tested on it.
    pmu: bool = True


def cpu_option(cfg, accel):
    """-cpu's value: the model, then its properties.  Under KVM the host's
    own CPU; under TCG QEMU's 'max' (every feature it emulates: the regs
    era's pointer auth and BTI, a PMUv3), whose pointer-auth hash is QEMU's
    own (pauth-impdef: much cheaper to emulate than the architected QARMA;
    the guest cannot tell the difference).  A named model would replace
    'max' here, keeping the properties."""
    model, props = ("host", []) if accel == "kvm" else ("max", ["pauth-impdef=on"])
    if not cfg.pmu:
        props.append("pmu=off")
    return ",".join([model] + props)


def host_accel(requested="auto"):
    kvm_ok = platform.machine() == "aarch64" and os.access("/dev/kvm", os.R_OK | os.W_OK)
    if requested == "kvm" and not kvm_ok:
        raise LabError("KVM for arm64 guests needs an aarch64 host with /dev/kvm",
                       hint="use --accel tcg")
    if requested == "auto":
        return "kvm" if kvm_ok else "tcg"
    return requested


def qemu_argv(image, run_dir, port, cfg, accel):
    cpu = ["-cpu", cpu_option(cfg, accel)]
    if accel == "kvm":
        cpu += ["-accel", "kvm"]
    elif cfg.icount:
        cpu += ["-accel", "tcg,thread=single", "-icount", "shift=0"]
    else:
        cpu += ["-accel", "tcg,thread=multi"]
    smp = 1 if cfg.icount else cfg.smp or (2 if accel == "kvm" else 1)
    return [
        "qemu-system-aarch64", "-M", "virt", *cpu,
        "-smp", str(smp), "-m", str(cfg.memory_mb),
        "-name", "ftrace-regs-bench-lab",
        "-display", "none", "-monitor", "none", "-parallel", "none",
        "-serial", f"file:{run_dir / 'console.log'}",
        "-qmp", f"unix:{run_dir / 'qmp.sock'},server=on,wait=off",
        "-pidfile", str(run_dir / "qemu.pid"),
        "-kernel", str(image / "vmlinuz"),
        # The lab's own kernels have their root device's drivers built in.
        *(["-initrd", str(image / "initrd.img")] if (image / "initrd.img").exists() else []),
        "-append", "root=/dev/vda ro console=ttyAMA0 net.ifnames=0 panic=-1",
        "-drive", f"file={image / 'rootfs.ext4'},if=none,format=raw,id=hd0,snapshot=on",
        "-device", "virtio-blk-pci,drive=hd0",
        "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
        "-device", "virtio-net-pci,netdev=n0,romfile=",
        "-no-reboot",
    ]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0): read its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def read_state():
    try:
        state = json.loads((RUN_DIR / "state.json").read_text())
    except (OSError, ValueError):
        return None
    state["alive"] = _pid_alive(state.get("pid", -1))
    return state


def ssh_argv(ssh_config, command=()):
    """The ssh command line for `bench lab ssh [-- COMMAND...]`, as a list.

    As ssh(1) does, the words of COMMAND are joined with spaces and the string
    goes to the remote shell: ('uname -r; id',) runs two commands, and
    ('ls', '/tmp/a b') lists two paths.  Quote for the remote shell what it
    must keep whole.  No COMMAND: an interactive shell.
    """
    argv = ["ssh", "-F", str(ssh_config), "lab"]
    if command:
        argv += ["--", " ".join(command)]
    return argv


def _ssh_config_arg(value):
    """A path as one ssh_config argument (double quotes when it has a space)."""
    value = str(value)
    return f'"{value}"' if any(c.isspace() for c in value) else value


def host_block(alias, port, user, key, known_hosts):
    """The `Host` block that reaches the lab: what the lab's own ssh_config
    holds (for 'lab', as root) and what `bench lab ssh-config` prints."""
    return (f"Host {alias}\n"
            "  HostName 127.0.0.1\n"
            f"  Port {port}\n"
            f"  User {user}\n"
            f"  IdentityFile {_ssh_config_arg(key)}\n"
            "  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {_ssh_config_arg(known_hosts)}\n"
            "  StrictHostKeyChecking yes\n"
            # A guest just booted under TCG on a loaded host can take more
            # than 20 s to finish the key exchange (cold CI of 2194f9f: the
            # 4-vCPU lab beside two icount labs and two builds): each stage
            # of the connection gets 60 s.
            "  ConnectTimeout 60\n"
            # An emulated guest tracing every function answers slowly: allow
            # 3 x 30 s of silence before the connection counts as dead.
            "  ServerAliveInterval 30\n"
            "  ServerAliveCountMax 3\n")


# The image's logins (_configure_root, _add_sudo_user), as `--user` takes them.
LOGINS = ("root", SUDO_USER)
ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# Host names bench itself gives a meaning (--host lab, --host local): an alias so named
# would never be looked up in ~/.ssh/config.
RESERVED_HOSTS = ("lab", "local")


def user_ssh_config(user=SUDO_USER, alias=None):
    """A `Host` block for the running lab, to paste into ~/.ssh/config: the
    lab as a user's own host is reached (`bench run --host ALIAS`), by the
    login a real host has (the sudo user) or as root.  It holds for this
    boot: the port changes with every `bench lab up`."""
    if user not in LOGINS:
        raise LabError(f"the lab has no login {user!r}", hint=f"use one of: {', '.join(LOGINS)}",
                       kind="usage")
    alias = alias or f"lab-{user}"
    if not ALIAS_RE.match(alias) or alias in RESERVED_HOSTS:
        raise LabError(f"bad alias {alias!r}",
                       hint="use letters, digits, '.', '_' or '-', and not 'lab' or 'local' "
                            "(bench gives those their own meaning)", kind="usage")
    state = read_state()
    if not state or not state["alive"]:
        raise LabError("the lab is not running", hint="start it with 'bench lab up'")
    run_dir = pathlib.Path(state["ssh_config"]).parent
    return host_block(alias, state["port"], user, run_dir / "id_ed25519", run_dir / "known_hosts")


def ssh_banner(port, timeout=5.0):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def qemu_version():
    out = subprocess.run(["qemu-system-aarch64", "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0] if out.returncode == 0 and out.stdout else None


def up(cfg=None, progress=print, boot_timeout=300.0):
    cfg = cfg or LabConfig()
    kernel = select(cfg.kernel)
    state = read_state()
    if state and state["alive"]:
        if (state["kernel"] == kernel.name and state.get("icount") == cfg.icount
                and state.get("pmu", True) == cfg.pmu):
            return state
        raise LabError(f"the lab is already up with {state['kernel']} "
                       f"({'icount' if state.get('icount') else 'QEMU ' + state.get('accel', '?')}"
                       f"{'' if state.get('pmu', True) else ', no PMU'})",
                       hint="run 'bench lab down' first")
    if shutil.which("qemu-system-aarch64") is None:
        raise LabError("qemu-system-aarch64 not found", hint="apt-get install qemu-system-arm")
    if cfg.icount and cfg.accel == "kvm":
        raise LabError("icount needs TCG; it cannot be combined with KVM", hint="use --accel kvm alone")
    image = build(kernel, progress=progress)
    accel = "tcg" if cfg.icount else host_accel(cfg.accel)
    if RUN_DIR.exists():
        shutil.rmtree(RUN_DIR)
    RUN_DIR.mkdir(parents=True, mode=0o700)
    port = _free_port()
    manifest = json.loads((image / "manifest.json").read_text())
    # Pin the host key generated at build time: known_hosts and ssh_config
    # for this boot's port.
    pub = (image / "ssh_host_ed25519_key.pub").read_text().split()
    (RUN_DIR / "known_hosts").write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
    key = RUN_DIR / "id_ed25519"
    shutil.copy(image / "id_ed25519", key)
    key.chmod(0o600)
    (RUN_DIR / "ssh_config").write_text(host_block("lab", port, "root", key, RUN_DIR / "known_hosts"))
    argv = qemu_argv(image, RUN_DIR, port, cfg, accel)
    progress(f"booting {kernel.name} ({manifest['kernel_release']}) under QEMU {accel}"
             f"{' icount' if cfg.icount else ''}{'' if cfg.pmu else ', no PMU'}; SSH on 127.0.0.1:{port}")
    t0 = time.monotonic()
    with open(RUN_DIR / "qemu.stderr", "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                start_new_session=True)
    state = {
        "kernel": kernel.name,
        "kernel_release": manifest["kernel_release"],
        "image": str(image),
        "pid": proc.pid,
        "port": port,
        "accel": accel,
        "icount": cfg.icount,
        "smp": int(argv[argv.index("-smp") + 1]),
        "memory_mb": cfg.memory_mb,
        "cpu_model": cpu_option(cfg, accel),
        "pmu": cfg.pmu,
        "qemu_version": qemu_version(),
        "qemu_argv": argv,
        "ssh_config": str(RUN_DIR / "ssh_config"),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (RUN_DIR / "state.json").write_text(json.dumps(state, indent=1) + "\n")
    deadline = t0 + boot_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"QEMU exited during boot (exit {proc.returncode}): "
                           f"{_tail(RUN_DIR / 'qemu.stderr') or _tail(RUN_DIR / 'console.log')}",
                           hint="see 'bench lab logs'")
        if ssh_banner(port, timeout=2.0):
            state["boot_seconds"] = round(time.monotonic() - t0, 1)
            (RUN_DIR / "state.json").write_text(json.dumps(state, indent=1) + "\n")
            state["alive"] = True
            return state
        time.sleep(1.0)
    _kill(proc.pid)
    raise LabError(f"the lab did not answer SSH within {boot_timeout:.0f} s; last console line: "
                   f"{_tail(RUN_DIR / 'console.log')}", hint="see 'bench lab logs'")


def _tail(path, n=1):
    try:
        lines = [l for l in pathlib.Path(path).read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def _kill(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def qemu_usage(pid):
    """(CPU seconds, seconds up) of the lab's QEMU, from /proc/PID/stat; None
    when it is not readable.  TCG makes every guest instruction host work, so
    this is what a lab cost the machine (docs/testing.md reads it per lab)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    # fields[0] is stat's 3rd field (state): utime, stime are the 14th and
    # 15th, starttime the 22nd.
    cpu = (int(fields[11]) + int(fields[12])) / tick
    return cpu, uptime - int(fields[19]) / tick


def down(timeout=60.0, progress=print):
    """Clean power-off over SSH, then SIGTERM, then SIGKILL.  Returns how it ended."""
    state = read_state()
    if not state:
        return "not running"
    pid = state["pid"]
    how = "already stopped"
    if state["alive"]:
        usage = qemu_usage(pid)
        progress("powering the lab off" + (f" (its QEMU used {usage[0]:.0f} CPU-s in {usage[1]:.0f} s up)"
                                            if usage else ""))
        log = os.environ.get("FTRACE_REGS_BENCH_QEMU_USAGE_LOG")
        if usage and log:  # the test session's account of its labs (tests/conftest.py)
            with open(log, "a") as f:
                f.write(f"{RUN_DIR}\t{usage[0]:.0f}\t{usage[1]:.0f}\n")
        ssh = ["ssh", "-F", state["ssh_config"], "-o", "BatchMode=yes", "lab", "/usr/local/sbin/lab-poweroff"]
        try:
            subprocess.run(ssh, capture_output=True, timeout=20)
        except subprocess.TimeoutExpired:
            pass
        how = "powered off"
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if _pid_alive(pid):
            how = "killed (SIGTERM) after the power-off timeout"
            _kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.5)
        if _pid_alive(pid):
            how = "killed (SIGKILL)"
            _kill(pid, signal.SIGKILL)
    _reap(pid)
    (RUN_DIR / "state.json").unlink(missing_ok=True)
    return how


def _reap(pid, timeout=10.0):
    """Collect the exit status of a QEMU this process started, so that no
    zombie is left behind.  QEMU is multi-threaded: its main thread shows as a
    zombie as soon as it exits, while the other threads may still be ending,
    and until they have, waitpid(WNOHANG) has nothing to collect; hence the
    loop.  A QEMU another process started is its parent's to collect."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            return
        if time.monotonic() > deadline:
            return
        time.sleep(0.1)

