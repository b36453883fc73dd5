"""Which pyperf the agent ships to a target, chosen for the target's Python.

The agent runs pyperf on the target's own python3.  The controller's own
installed pyperf is shipped when its declared Requires-Python admits the
target's version: then both sides run the same pyperf.  Otherwise a pinned
older release that does, kept in this package as its pure-Python wheel
(remote/wheels/, read with zipfile: a board without internet, and a
controller without it, still get it).  Where neither fits, the target is
refused before anything is measured (TargetUnsupported, exit 6).

Why not trust the controller's pyperf everywhere: pyperf 2.11.0 declares
Requires-Python >=3.11, and on Python 3.9 its Runner fails at start
(Runner.__init__ -> _hooks.get_hooks() calls
importlib.metadata.entry_points().select(...), which 3.9's plain dict does
not have: AttributeError: 'dict' object has no attribute 'select').

The JSON the target writes is read by the controller's pyperf (analysis):
pyperf's file format has been version 1.0 since pyperf 1.0, and the pinned
release is older than any controller's pyperf it stands in for (it is only
shipped when the controller's own declares a newer Python), so the reader is
never older than the writer.
"""
import dataclasses
import hashlib
import importlib.metadata
import pathlib
import zipfile

from packaging.specifiers import SpecifierSet

from .errors import TargetUnsupported

WHEELS_DIR = pathlib.Path(__file__).parent / "wheels"

# The pinned release for targets the controller's pyperf does not admit
# (Python 3.9 and 3.10 when the controller has pyperf 2.11).  Origin: PyPI,
# https://pypi.org/project/pyperf/2.10.0/ (pip download --no-deps
# pyperf==2.10.0); MIT licence (its COPYING is inside the wheel, and goes
# with it to the target).  A new pin: replace the wheel, the version and the
# sha256 together.
PINNED_VERSION = "2.10.0"
PINNED_WHEEL = WHEELS_DIR / "pyperf-2.10.0-py3-none-any.whl"
PINNED_SHA256 = "79196bc4a11e3c926dd4c6b14c80136c6b37f884fe913cbc57037f37636e9841"


@dataclasses.dataclass(frozen=True)
class Choice:
    version: str  # pyperf's version
    source: str  # "controller" (the controller's installed pyperf) or "pinned" (the wheel)
    reason: str  # one line: why this one


def _admits(requires_python, python_version):
    """Does a Requires-Python string (None: no constraint) admit (major, minor)?"""
    if not requires_python:
        return True
    return SpecifierSet(requires_python).contains("%d.%d" % tuple(python_version[:2]))


def controller_pyperf():
    """(version, Requires-Python or None) of the controller's installed pyperf."""
    meta = importlib.metadata.metadata("pyperf")
    return meta["Version"], meta.get("Requires-Python")


def _pinned_wheel():
    data = PINNED_WHEEL.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != PINNED_SHA256:
        raise RuntimeError(f"{PINNED_WHEEL}: sha256 {digest}, not the pinned {PINNED_SHA256} "
                           "(a corrupt or replaced wheel: reinstall ftrace-regs-bench)")
    return data


def _wheel_requires_python(zf):
    name = f"pyperf-{PINNED_VERSION}.dist-info/METADATA"
    for line in zf.read(name).decode().splitlines():
        if line.startswith("Requires-Python:"):
            return line.split(":", 1)[1].strip()
        if not line:  # end of the headers
            break
    return None


def pinned_requires_python():
    import io

    with zipfile.ZipFile(io.BytesIO(_pinned_wheel())) as zf:
        return _wheel_requires_python(zf)


def choose(python_version):
    """The pyperf to ship to a target whose python3 is python_version
    ((major, minor) or "3.9.2"); TargetUnsupported when none fits."""
    if isinstance(python_version, str):
        python_version = tuple(int(x) for x in python_version.split(".")[:2])
    shown = "%d.%d" % tuple(python_version[:2])
    own, own_req = controller_pyperf()
    if _admits(own_req, python_version):
        return Choice(own, "controller", f"the controller's pyperf {own} (Requires-Python "
                                         f"{own_req or 'any'}) runs on the target's Python {shown}")
    pin_req = pinned_requires_python()
    if _admits(pin_req, python_version):
        return Choice(PINNED_VERSION, "pinned",
                      f"pinned pyperf {PINNED_VERSION} (Requires-Python {pin_req}): the controller's "
                      f"pyperf {own} needs Python {own_req}, the target has {shown}")
    raise TargetUnsupported(
        f"the target's python3 is {shown}: no pyperf the controller can ship runs on it (the "
        f"controller's {own} needs Python {own_req}, the pinned {PINNED_VERSION} needs {pin_req})",
        hint="install a newer python3 on the target")


def files(choice):
    """{relative path: bytes} of the chosen pyperf: its package without its
    tests, and for the pinned wheel its .dist-info too (less RECORD, which
    lists the tests left out).

    The .dist-info is not decoration: pyperf 2.10's Runner looks up its hooks
    with importlib.metadata.entry_points()["pyperf.hook"] on Python 3.9, a
    KeyError where no distribution on sys.path declares that group; the
    wheel's entry_points.txt next to the package (workload.py puts its own
    directory first on sys.path) declares it.  It also carries the licence
    (licenses/COPYING, MIT)."""
    out = {}
    if choice.source == "controller":
        import pyperf

        root = pathlib.Path(pyperf.__file__).parent
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root)
            if rel.parts[0] == "tests":
                continue
            out[str(pathlib.Path("pyperf") / rel)] = path.read_bytes()
        return out
    import io

    dist_info = f"pyperf-{PINNED_VERSION}.dist-info/"
    with zipfile.ZipFile(io.BytesIO(_pinned_wheel())) as zf:
        for name in sorted(zf.namelist()):
            parts = name.split("/")
            if parts[0] == "pyperf" and name.endswith(".py") and parts[1] != "tests":
                out[name] = zf.read(name)
            elif name.startswith(dist_info) and not name.endswith("/RECORD"):
                out[name] = zf.read(name)
    return out
