"""The student copy reports every exercise "Not attempted"; the solution copy reports every one "Correct";
every chapter's cells run a second time in the same kernel.

The first two are nbgrader's ``validate --invert`` and ``validate``: the copy a workshop hands out runs
without an error and gives nothing away, and every checker accepts its own reference solution in a real
kernel.

The third is DESIGN rule 2, re-running is safe. nbval runs each notebook once, top to bottom, in a fresh
kernel. Learners do something else: they run a cell again, or the whole notebook again without
restarting. So each chapter is executed, then every cell executed a second time in the same kernel; any
error fails, and the second run must leave no lab open. A chapter with exercises is re-run in its
solution copy, the same kernel that has just checked every answer: the stored cells with each answer
filled in, so the second pass also re-runs every checker (the unanswered copy's exercise cells only
print "Not attempted", which nbval has just compared).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
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
# The chapters, which learners step through and re-run most; the failure notebooks use the same Lab and
# the same patterns.
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@dataclass
class Run:
    """One execution of a notebook: the checks after the first pass, and the second pass if asked."""

    checks: list[str]
    error: Exception | None = None  # raised by the first pass
    second_pass_error: Exception | None = None
    labs_open_after: int | None = None  # after the second pass; None if there was none


_RUNS: dict[Path, Run] = {}


def execute(path: Path, twice: bool) -> Run:
    """Execute ``path`` in a fresh kernel; with ``twice``, every cell again, then count open labs."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    with client.setup_kernel():
        try:
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)  # raises CellExecutionError on any error output
        except Exception as exc:
            return Run([], error=exc)
        run = Run(
            checks=[_last_text(nb.cells[index]) for index, _, _ in notebook_variants.exercise_cells(nb)]
        )
        if twice:
            try:
                for index, cell in enumerate(nb.cells):
                    client.execute_cell(cell, index)
            except Exception as exc:
                run.second_pass_error = exc
                return run
            probe = nbformat.v4.new_code_cell(
                "import wslab.lab as _l; print(sum(not lab.closed for lab in _l._open_labs))"
            )
            nb.cells.append(probe)
            client.execute_cell(probe, len(nb.cells) - 1)
            run.labs_open_after = int(probe.outputs[0]["text"].strip())
    return run


def _last_text(cell: nbformat.NotebookNode) -> str:
    texts = [o.get("data", {}).get("text/plain", "") for o in cell.outputs if "data" in o]
    return texts[-1] if texts else ""


def run_once(path: Path, twice: bool) -> Run:
    """The run of ``path`` (a solution copy or a stored notebook), executed the first time it is asked for."""
    if path not in _RUNS:
        _RUNS[path] = execute(path, twice)
    return _RUNS[path]


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
            shown = _last_text(stored.cells[index])
            assert shown.startswith("Not attempted"), (source.name, index, shown)


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
    run = run_once(copy, twice=source in CHAPTERS)
    if run.error is not None:
        raise run.error
    assert run.checks and all(r.startswith("Correct") for r in run.checks), (copy.name, run.checks)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_cell_twice_in_one_kernel(solution_copy: Path, path: Path) -> None:
    """The chapter's solution copy if it has exercises (see the module's docstring), else the notebook."""
    target = solution_copy / path.relative_to(ROOT / "notebooks") if path in NOTEBOOKS else path
    run = run_once(target, twice=True)
    for error in (run.error, run.second_pass_error):
        if error is not None:
            raise error
    assert run.labs_open_after == 0, "a lab is still open after the notebook's last cell"
