"""Which package to install for what a method needs, per distribution.

Chosen from the target's os-release (facts os_id, os_id_like: ID and
ID_LIKE of os-release(5)), so that `bench check` names the one package
that distribution has instead of a list.  Here, under analysis/, because
the methods' availability answers (analysis/methods) name these packages
and analysis imports nothing from bench.

bcc's Python binding always comes from the distribution: PyPI's 'bcc' is
an unrelated project (docs/method.md).
"""

# family -> (install command, {need: package; '{release}' is uname -r})
FAMILIES = {
    "debian": ("apt-get install", {"headers": "linux-headers-{release}", "bcc": "python3-bpfcc",
                                   "compiler": "gcc", "make": "make", "kmod": "kmod", "xz": "xz-utils"}),
    # Fedora, Amazon Linux 2023 (ID_LIKE=fedora) and the RHEL family: the
    # devel package of the running kernel; bcc and its Python binding.
    "fedora": ("dnf install", {"headers": "kernel-devel-{release}", "bcc": "bcc python3-bcc",
                               "compiler": "gcc", "make": "make", "kmod": "kmod", "xz": "xz"}),
}
# os-release IDs -> family (ID first, then each ID_LIKE word)
IDS = {"debian": "debian", "ubuntu": "debian", "raspbian": "debian",
       "fedora": "fedora", "amzn": "fedora", "rhel": "fedora", "centos": "fedora"}
# Said when the distribution is not known (an older bundle, another distribution).
UNKNOWN = {"headers": "linux-headers-{release} (Debian/Ubuntu) or kernel-devel-{release} "
                      "(Amazon Linux, Fedora)",
           "bcc": "python3-bpfcc (Debian/Ubuntu) or bcc and python3-bcc (Amazon Linux, Fedora)",
           "compiler": "gcc", "make": "make", "kmod": "kmod", "xz": "xz-utils (Debian/Ubuntu) or xz"}


def family(facts):
    """'debian', 'fedora' or None, from os-release's ID then ID_LIKE."""
    ids = [facts.get("os_id") or ""] + (facts.get("os_id_like") or "").split()
    for i in ids:
        if i in IDS:
            return IDS[i]
    return None


def package(facts, need):
    """The package(s) that provide `need` ('headers', 'bcc', 'compiler',
    'make', 'kmod', 'xz') on the target, as words to paste."""
    fam = family(facts)
    names = FAMILIES[fam][1] if fam else UNKNOWN
    return names[need].format(release=facts.get("kernel_release") or "$(uname -r)")


def install(facts, need):
    """'run apt-get install X (on Debian GNU/Linux 12 (bookworm))' where the
    distribution is known, 'install X (Debian/Ubuntu) or Y (...)' otherwise:
    the hint a reason ends with."""
    fam = family(facts)
    pkg = package(facts, need)
    if fam is None:
        return f"install {pkg}"
    return f"run {FAMILIES[fam][0]} {pkg} (on {facts.get('os_release') or facts.get('os_id')})"
