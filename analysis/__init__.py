"""The bundle format (bundle.py, units.py) and from bundles to numbers, plots
and reports.  Never imports bench/; of remote/ only remote.protocol (the
error base, the mode list)."""
from .load import COLUMNS, load_bundles, load_frame  # noqa: F401
