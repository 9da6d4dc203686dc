"""Without nginx, the nginx notebooks still run: wslab's own proxy stands in and every cell asserts.

The README promises this fallback, so it is run here: F21 and F24 executed in a kernel that cannot
find nginx, with nothing required. Every cell must run without an error (their asserts included), and
the notebook must say that the stand-in is in use. Only the stored outputs differ (they show nginx),
which is why strict nbval of these notebooks needs nginx, and CI requires it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
FAILURES = ROOT / "notebooks" / "failures"

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["F21_proxy_idle_timeout.ipynb", "F24_token_in_url.ipynb"])
def test_the_notebook_runs_every_cell_with_the_stand_in_proxy(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WSLAB_NGINX", str(ROOT / "no-such-nginx"))
    monkeypatch.setenv("WSLAB_REQUIRE", "")
    path = FAILURES / name
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(FAILURES)}}
    ).execute()
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), "a cell did not run"
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert not errors, errors
    printed = "".join(o.get("text", "") for cell in code for o in cell.outputs if o.output_type == "stream")
    assert "no usable nginx here" in printed and "stands in" in printed
