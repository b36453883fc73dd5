"""From bundles to numbers, plots and reports.  Never imports remote/."""
from .load import COLUMNS, load_bundles, load_frame  # noqa: F401
