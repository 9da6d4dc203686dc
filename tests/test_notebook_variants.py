"""The student copy reports every exercise "Not attempted"; the solution copy reports every one "Correct".

This is nbgrader's ``validate --invert`` and ``validate``: the copy a workshop hands out runs without an
error and gives nothing away, and every checker accepts its own reference solution in a real kernel.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import notebook_variants  # noqa: E402

pytestmark = pytest.mark.slow

NOTEBOOKS = sorted(
    p
    for p in (ROOT / "notebooks").rglob("*.ipynb")
    if ".ipynb_checkpoints" not in p.parts
    and notebook_variants.exercise_cells(nbformat.read(p, as_version=4))
)


def check_outputs(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    results = []
    for index, _, _ in notebook_variants.exercise_cells(nb):
        texts = [o.get("data", {}).get("text/plain", "") for o in nb.cells[index].outputs if "data" in o]
        results.append(texts[-1] if texts else "")
    return results


def test_every_exercise_cell_is_found() -> None:
    assert NOTEBOOKS, "no notebook has exercises"
    for path in NOTEBOOKS:
        for _, chapter, _ in notebook_variants.exercise_cells(nbformat.read(path, as_version=4)):
            assert path.name.startswith(chapter)


def test_the_copies_carry_what_the_notebooks_read(tmp_path: Path) -> None:
    notebook_variants.build("student", tmp_path)
    assert (tmp_path / "failures" / "k8s" / "ingress-nginx-websocket.yaml").exists()
    assert (tmp_path / "failures" / "README.md").exists()


@pytest.mark.parametrize("variant", ["student", "solution"])
def test_variant_builds_and_checks(variant: str, tmp_path: Path) -> None:
    notebook_variants.build(variant, tmp_path)
    expected = "Not attempted" if variant == "student" else "Correct"
    for source in NOTEBOOKS:
        copy = tmp_path / source.relative_to(ROOT / "notebooks")
        assert not any(
            c.get("outputs") for c in nbformat.read(copy, as_version=4).cells if c.cell_type == "code"
        )
        results = check_outputs(copy)
        assert results and all(r.startswith(expected) for r in results), (copy.name, results)
