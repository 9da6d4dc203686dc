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

ROOT = Path(__file__).resolve().parents[2]
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


def test_student_copy_is_the_stored_notebooks_and_every_check_says_not_attempted(tmp_path: Path) -> None:
    """The student copy has the stored notebooks' exact cells, outputs cleared.

    So nbval's strict run of the stored notebooks in this same test session *is* a run of the student
    copy: it re-executes every cell in a fresh kernel and compares with the stored outputs, in which every
    check below says "Not attempted". Executing the copy once more here would only repeat that run.
    """
    notebook_variants.build("student", tmp_path)
    for source in NOTEBOOKS:
        stored = nbformat.read(source, as_version=4)
        copy = nbformat.read(tmp_path / source.relative_to(ROOT / "notebooks"), as_version=4)
        assert [c.source for c in copy.cells] == [c.source for c in stored.cells], source.name
        assert not any(c.get("outputs") for c in copy.cells if c.cell_type == "code")
        for index, _, _ in notebook_variants.exercise_cells(stored):
            texts = [
                o.get("data", {}).get("text/plain", "") for o in stored.cells[index].outputs if "data" in o
            ]
            assert texts and texts[-1].startswith("Not attempted"), (source.name, index, texts)


@pytest.fixture(scope="module")
def solution_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The solution copy, built once for every notebook's run below."""
    target = tmp_path_factory.mktemp("solution")
    notebook_variants.build("solution", target)
    return target


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.name)
def test_solution_copy_passes_every_check(solution_copy: Path, source: Path) -> None:
    """One notebook at a time: each runs in its own kernel, so one failure names its notebook, and a
    course with many exercise notebooks does not add up to one test past its time limit."""
    copy = solution_copy / source.relative_to(ROOT / "notebooks")
    assert not any(c.get("outputs") for c in nbformat.read(copy, as_version=4).cells if c.cell_type == "code")
    results = check_outputs(copy)
    assert results and all(r.startswith("Correct") for r in results), (copy.name, results)
