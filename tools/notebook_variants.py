"""Build the student and the solution copies of the notebooks (``make student``).

Exercise cells are recognised by what they contain: a notebook binds its chapter with
``ex = exercises.bind("NN", globals())`` (``"F01"`` in a failure notebook), and each exercise cell ends
with ``ex.qK.check()`` (or ``await ex.qK.check()``). Everything above that line is the learner's answer.

- **student**: the notebooks as learners get them (exercise cells unanswered), outputs cleared, with
  the files they read (``failures/k8s/``). It is what a workshop hands out.
- **solution**: every answer replaced by the exercise's reference solution, outputs cleared. Executing
  it must turn every check "Correct" (nbgrader's ``validate``); executing the student copy must turn
  every check "Not attempted", without an error (``validate --invert``).
  tests/notebooks/test_notebook_variants.py runs both.

    python tools/notebook_variants.py student build/student
    python tools/notebook_variants.py solution build/solution
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import nbformat

from wslab.exercises import bind

ROOT = Path(__file__).resolve().parent.parent
BIND_RE = re.compile(r"""exercises\.bind\(\s*["'](\d\d|F\d\d)["']""")
CHECK_RE = re.compile(r"^(?:await\s+)?ex\.(q\d+)\.check\(\)\s*$", re.M)


def exercise_cells(nb: nbformat.NotebookNode) -> list[tuple[int, str, str]]:
    """(cell index, chapter id, question) for every exercise cell of a notebook."""
    chapter = None
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if match := BIND_RE.search(cell.source):
            chapter = match.group(1)
        if (match := CHECK_RE.search(cell.source)) and chapter is not None:
            found.append((index, chapter, match.group(1)))
    return found


def rewrite(nb: nbformat.NotebookNode, variant: str) -> int:
    """Clear outputs; in the solution copy, put the reference answer in each exercise cell.

    The student copy keeps the notebook's own exercise cells (with their task comments), because the
    stored notebooks are the learner's version; tests/notebooks/test_notebook_variants.py runs the student
    copy and fails if any check there is not "Not attempted", so a solved notebook cannot slip out.
    """
    cells = exercise_cells(nb)
    for index, chapter, question in cells:
        if variant == "student":
            continue
        exercise = getattr(bind(chapter, {}), question)
        cell = nb.cells[index]
        check_line = CHECK_RE.search(cell.source).group(0)  # type: ignore[union-attr]
        cell.source = f"{exercise.solution_code.strip()}\n\n\n{check_line}"
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return len(cells)


def build(variant: str, destination: Path) -> list[Path]:
    """Write every notebook, rewritten for ``variant``, under ``destination`` (same layout)."""
    if variant not in ("student", "solution"):
        raise ValueError(f"variant is 'student' or 'solution', not {variant!r}")
    source = ROOT / "notebooks"
    if destination.exists():
        shutil.rmtree(destination)
    # everything the notebooks read (failures/k8s/*.yaml, READMEs) comes along
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    written = []
    for target in sorted(destination.rglob("*.ipynb")):
        nb = nbformat.read(target, as_version=4)
        rewrite(nb, variant)
        nbformat.write(nb, target)
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    written = build(argv[0], Path(argv[1]))
    print(f"{len(written)} notebooks written to {argv[1]} ({argv[0]} copy)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
