"""Copies of the committed real bundles (results/lab/..., and the three
standard icount bundles as first published, kept in tests/data/stepped/) to
alter for bad-input and pooling tests; the originals are never touched."""
import json
import pathlib
import shutil

RESULTS = pathlib.Path(__file__).parent.parent / "results"
LAB = RESULTS / "lab"
# The standard icount bundles published on 2026-11-26, with the early step
# (results/README.md): real data whose every figure the tests know; results/
# holds their re-measured successors (tests/data/README.md).
STEPPED = pathlib.Path(__file__).parent / "data" / "stepped"
ICOUNT = STEPPED / "debian-6.1-icount-standard"
TCG = LAB / "debian-6.1-tcg-quick"


def copy_bundle(src, dest, edit=None):
    """Copy bundle src to dest (without its report/); edit(data) may change bundle.json."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("report"))
    if edit:
        f = dest / "bundle.json"
        data = json.loads(f.read_text())
        edit(data)
        f.write_text(json.dumps(data, indent=1))
    return dest
