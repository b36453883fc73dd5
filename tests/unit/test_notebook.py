"""notebooks/analysis.ipynb runs as committed (nbclient, a real ipykernel)."""
import pathlib
import re

from conftest import need

NOTEBOOK = pathlib.Path(__file__).parent.parent.parent / "notebooks" / "analysis.ipynb"


def test_analysis_notebook_executes():
    try:
        import ipykernel  # noqa: F401
        import nbclient
        import nbformat
    except ImportError as e:
        need(False, f"{e.name} (pip, in the dev extra)")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    svgs = [o for o in outputs if "image/svg+xml" in o.get("data", {})]
    assert len(svgs) >= 3 + 2, "regs gain, overhead, variants and one distribution per bundle"
    text = "".join(str(o.get("data", {}).get("text/plain", "")) + o.get("text", "") for o in outputs)
    assert re.search(r"cannot pool these bundles: .*icount differs", text)
    assert "no A/A check recorded" in text
