"""Running every cell of a notebook twice in one kernel works (DESIGN rule 2: re-running is safe).

nbval runs each notebook once, top to bottom, in a fresh kernel. Learners do something else: they run a
cell again, or the whole notebook again without restarting. Here each notebook is executed, then every
cell executed a second time in the same kernel; any error fails the test, and the second run must leave
no lab open.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

# The chapters, which learners step through and re-run most; the failure notebooks use the same Lab and
# the same patterns, and running all of them twice more would double CI's time for little news.
NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_cell_twice_in_one_kernel(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    with client.setup_kernel():
        for _ in range(2):
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)  # raises CellExecutionError on any error output
        probe = nbformat.v4.new_code_cell(
            "import wslab.lab as _l; print(sum(not lab.closed for lab in _l._open_labs))"
        )
        nb.cells.append(probe)
        client.execute_cell(probe, len(nb.cells) - 1)
    assert probe.outputs[0]["text"].strip() == "0", "a lab is still open after the notebook's last cell"
