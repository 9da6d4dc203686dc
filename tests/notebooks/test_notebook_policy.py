"""The rules every stored notebook follows (DESIGN.md, "Rules that make notebooks reliable").

nbval checks that outputs still match; these tests check what nbval cannot: that outputs are stored at
all, that few cells opt out of comparison, that each lesson says what it is about, and that nothing in
the lesson path uses the tools the course tells learners to avoid.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
IGNORE_TAG = "nbval-ignore-output"
MAX_IGNORED_SHARE = 0.15


def code_cells(path: Path) -> list[nbformat.NotebookNode]:
    nb = nbformat.read(path, as_version=4)
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def test_there_are_notebooks() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {"00_start_here.ipynb", "01_handshake_and_frames.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_stored_with_outputs_and_no_errors(path: Path) -> None:
    for cell in code_cells(path):
        assert cell.execution_count is not None, (
            f"never executed: {cell.source[:60]!r} (run `make notebooks`)"
        )
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.source[:60]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_opens_with_what_you_will_do_learn_need(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    for heading in ("What you'll do", "What you'll learn", "What you'll need"):
        assert heading in first.source, f"{path.name}: the first cell lacks {heading!r}"


FAILURE_NOTEBOOKS = [p for p in NOTEBOOKS if p.parent.name == "failures"]
FIVE_STEPS = ["Symptom", "Reproduce", "Detect", "Fix", "Verify"]


@pytest.mark.parametrize("path", FAILURE_NOTEBOOKS, ids=[p.name for p in FAILURE_NOTEBOOKS])
def test_failure_notebooks_walk_the_five_steps_in_order(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    headings = [
        line[3:].strip()
        for cell in nb.cells
        if cell.cell_type == "markdown"
        for line in cell.source.splitlines()
        if line.startswith("## ")
    ]
    words = [re.sub(r"^\d+\.\s*", "", h).split(":")[0].split(" ")[0] for h in headings]  # "2. Reproduce: …"
    assert [w for w in words if w in FIVE_STEPS] == FIVE_STEPS, f"{path.name}: step headings are {headings}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_no_loop_hijacking_in_the_lesson_path(path: Path) -> None:
    """Cells use top-level await: no asyncio.run / uvicorn.run / nest_asyncio in the kernel itself.

    Checked at the top level of a cell; chapter 00 shows asyncio.run failing inside a try block and
    nest_asyncio working in a child process.
    """
    for cell in code_cells(path):
        source = cell.source
        for forbidden in (r"^nest_asyncio\.apply\(", r"^uvicorn\.run\(", r"^asyncio\.run\("):
            assert not re.search(forbidden, source, re.M), f"{path.name}: {forbidden} in {source[:60]!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_ends_by_closing_the_lab(path: Path) -> None:
    assert "await lab.close()" in code_cells(path)[-1].source


def test_at_most_15_percent_of_code_cells_ignore_their_output() -> None:
    cells = [c for p in NOTEBOOKS for c in code_cells(p)]
    ignored = [c for c in cells if IGNORE_TAG in c.metadata.get("tags", [])]
    assert len(ignored) <= MAX_IGNORED_SHARE * len(cells), f"{len(ignored)} of {len(cells)} cells ignored"


def test_ignored_cells_still_assert() -> None:
    """A cell whose output nbval ignores must check its values itself (or be checked by the next cell)."""
    for path in NOTEBOOKS:
        cells = code_cells(path)
        for i, cell in enumerate(cells):
            if IGNORE_TAG in cell.metadata.get("tags", []):
                following = cells[i + 1].source if i + 1 < len(cells) else ""
                assert "assert" in cell.source or "assert" in following, f"{path.name}: {cell.source[:60]!r}"


# --- learner-facing text stands on its own -------------------------------------------------------------
# A learner reads the notebooks, the README, the failure index and the instructor guide, nothing else: no
# reference to research notes they cannot open, no notes to maintainers, no failure number that no page in
# the repository explains, and no link that leads nowhere.

PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "notebooks").rglob("*.md")),
]
FAILURE_INDEX = ROOT / "notebooks" / "failures" / "README.md"
FORBIDDEN = {
    r"\bcatalog(ue)?": "a research note the learner does not have",
    r"\bbrief\b": "a research note the learner does not have",
    "†": "a footnote to research notes",
    r"not reproduced": "a note about the research behind the lesson",
    r"public hook would do": "a note to maintainers",
}
FAILURE_ID = re.compile(r"\bF(\d\d)\b")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def learner_texts(markdown_only: bool = False) -> list[tuple[str, Path, str]]:
    """(where, file, text) for every markdown cell, every code cell's source and every page."""
    texts = []
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "markdown" or not markdown_only:
                texts.append((f"{path.relative_to(ROOT)} cell {i}", path, cell.source))
    for page in PAGES:
        texts.append((str(page.relative_to(ROOT)), page, page.read_text()))
    return texts


def test_no_reference_a_learner_cannot_follow() -> None:
    found = [
        f"{where}: {why} ({match.group(0)!r})"
        for where, _, text in learner_texts()
        for pattern, why in FORBIDDEN.items()
        for match in re.finditer(pattern, text, re.I)
    ]
    assert not found, "\n".join(found)


def test_every_failure_number_is_explained_in_the_failure_index() -> None:
    index = FAILURE_INDEX.read_text()
    rows = {
        m.group(0) for line in index.splitlines() if line.startswith("|") for m in FAILURE_ID.finditer(line)
    }
    mentioned = {(m.group(0), where) for where, _, text in learner_texts() for m in FAILURE_ID.finditer(text)}
    missing = sorted(f"{fid} in {where}" for fid, where in mentioned if fid not in rows)
    assert not missing, "add these to notebooks/failures/README.md:\n" + "\n".join(missing)
    for path in FAILURE_NOTEBOOKS:
        assert f"({path.name})" in index, f"the failure index does not link {path.name}"


def test_every_relative_link_resolves() -> None:
    broken = []
    for where, path, text in learner_texts(markdown_only=True):
        for target in LINK.findall(re.sub(r"`[^`]*`", "", text)):  # code spans are not links
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor on the same page
            if not (path.parent / target.split("#")[0]).exists():
                broken.append(f"{where}: {target}")
    assert not broken, "\n".join(broken)


CHAPTERS = [p for p in NOTEBOOKS if p.parent.name == "notebooks"]


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_each_chapter_ends_with_a_next_line_that_links_somewhere_real(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nexts = [c.source for c in nb.cells if c.cell_type == "markdown" and "**Next:**" in c.source]
    assert nexts, f"{path.name} has no **Next:** line"
    line = nexts[-1][nexts[-1].index("**Next:**") :]
    targets = LINK.findall(line)
    assert targets, f"{path.name}: the Next line names no notebook: {line[:80]!r}"
    for target in targets:
        assert (path.parent / target.split("#")[0]).exists(), f"{path.name}: Next links to {target}"


# --- the lesson's code on screen ------------------------------------------------------------------------
MAX_CODE_LINES = 40
SETUP_TAG = "setup"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_code_cells_are_short_unless_tagged_setup(path: Path) -> None:
    """A long cell hides the lesson in harness: move the harness into ``wslab`` (``wslab.lessons``).

    A cell that must stay long (imports and the lab's set-up) carries the ``setup`` tag and opens with a
    comment saying what it sets up, so a reader knows it is safe to skim.
    """
    for cell in code_cells(path):
        lines = cell.source.strip().splitlines()
        if SETUP_TAG in cell.metadata.get("tags", []):
            assert lines[0].startswith("#"), f"{path.name}: a setup cell opens with a comment: {lines[0]!r}"
            continue
        assert len(lines) <= MAX_CODE_LINES, (
            f"{path.name}: a {len(lines)}-line code cell (cap {MAX_CODE_LINES}; tag it `setup` only if it is "
            f"set-up): {lines[0]!r}"
        )
