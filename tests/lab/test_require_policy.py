"""No silent skip under ``WSLAB_REQUIRE``: in CI a missing component is a failure, in tests and notebooks.

Rules on the code's AST, not a search for the word ``assert``: every ``except ComponentMissing`` in a
notebook re-raises when the component is required; every notebook cell that looks at ``.usable``
raises under ``required(...)``; a cell whose asserts sit under an ``if`` without ``else`` is allowed
only in a notebook that raises under ``required(...)``; and every ``pytest.skip``/``importorskip``/
``skipif`` in the tests sits in a function that consults ``required()``. Then the one notebook with a
browser fallback is run with the browser hidden: required, its cell fails; not required, it says it
skipped.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
TESTS = sorted((ROOT / "tests").rglob("*.py"))
F25 = ROOT / "notebooks" / "failures" / "F25_cross_site_hijacking.ipynb"
F25_BROWSER_CELL = "f25-11"


def _parse_cell(source: str) -> ast.Module:
    """A code cell as Python: IPython magics and shell lines blanked, top-level ``await`` allowed."""
    text = re.sub(r"^\s*[%!].*$", "", source, flags=re.M)
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    tree = compile(text, "<cell>", "exec", flags=flags)
    assert isinstance(tree, ast.Module)
    return tree


def _calls(node: ast.AST, name: str) -> bool:
    """True if ``node`` contains a call to ``name(...)`` or ``something.name(...)``."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.Call):
            func = inner.func
            if (isinstance(func, ast.Name) and func.id == name) or (
                isinstance(func, ast.Attribute) and func.attr == name
            ):
                return True
    return False


def _raises_when_required(node: ast.AST) -> bool:
    """``node`` holds ``if <... required(...) ...>: ... raise ...``."""
    return any(
        isinstance(inner, ast.If)
        and _calls(inner.test, "required")
        and any(isinstance(s, ast.Raise) for stmt in inner.body for s in ast.walk(stmt))
        for inner in ast.walk(node)
    )


def _catches_component_missing(handler: ast.ExceptHandler) -> bool:
    return handler.type is not None and any(
        isinstance(n, ast.Name | ast.Attribute)
        and (getattr(n, "id", None) or getattr(n, "attr", None)) == "ComponentMissing"
        for n in ast.walk(handler.type)
    )


def skip_paths_ignoring_require(source: str) -> Iterator[str]:
    """What in one notebook cell could turn a missing required component into a quiet skip."""
    tree = _parse_cell(source)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ExceptHandler)
            and _catches_component_missing(node)
            and not _raises_when_required(node)
        ):
            yield f"line {node.lineno}: `except ComponentMissing` without `if ... required(...): raise`"
    reads_usable = any(isinstance(n, ast.Attribute) and n.attr == "usable" for n in ast.walk(tree))
    if reads_usable and not _raises_when_required(tree):
        yield "reads `.usable` (a fallback) but never raises under `required(...)`"


def conditional_checks(source: str) -> Iterator[str]:
    """Top-level ``if`` statements of a cell that assert only when their condition holds (no ``else``).

    Such a cell checks nothing when the condition is false: that is a skip, and only allowed in a
    notebook that makes the condition's failure an error under ``required(...)`` elsewhere.
    """
    for node in _parse_cell(source).body:
        if (
            isinstance(node, ast.If)
            and not node.orelse
            and any(isinstance(inner, ast.Assert) for stmt in node.body for inner in ast.walk(stmt))
        ):
            yield f"line {node.lineno}: `if {ast.unparse(node.test)}:` asserts only when it holds"


def notebook_problems(cells: list[str]) -> list[str]:
    """Every silent skip path in a notebook's code cells (see the module docstring)."""
    found = [
        f"cell {index}: {p}"
        for index, source in enumerate(cells)
        for p in skip_paths_ignoring_require(source)
    ]
    guarded = any(_raises_when_required(_parse_cell(source)) for source in cells)
    if not guarded:
        found += [
            f"cell {index}: {p}" for index, source in enumerate(cells) for p in conditional_checks(source)
        ]
    return found


OLD_05_CELL = """
ts_source = ts_path.read_text() if ts_path.exists() else ""
if ts_source:
    assert ts_table("STOP") == python_stop
print("never reconnect unchanged:", ", ".join(sorted(python_stop)))
"""

OLD_F25_CELL = """
try:
    browser_component = require_or_skip("browser")
except ComponentMissing as missing:
    browser_component = None
    print("no browser here, skipped:", missing.component.describe())

if browser_component is not None:
    outcomes = await run_it()
    assert outcomes == {"other site": "closed 4001"}
"""


def test_the_rule_catches_a_silent_skip_and_accepts_a_required_one() -> None:
    assert list(skip_paths_ignoring_require(OLD_F25_CELL)) == [
        "line 4: `except ComponentMissing` without `if ... required(...): raise`"
    ]
    fixed = OLD_F25_CELL.replace(
        "    browser_component = None\n",
        '    if "browser" in required():\n        raise\n    browser_component = None\n',
    )
    assert list(skip_paths_ignoring_require(fixed)) == []
    assert notebook_problems([OLD_05_CELL]) == ["cell 0: line 3: `if ts_source:` asserts only when it holds"]
    assert notebook_problems([OLD_05_CELL.replace("if ts_source:\n    assert", "assert")]) == []
    fallback = "USE_NGINX = nginx_component.usable\n"
    assert list(skip_paths_ignoring_require(fallback)) == [
        "reads `.usable` (a fallback) but never raises under `required(...)`"
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_notebook_skips_a_required_component(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    found = notebook_problems([cell.source for cell in nb.cells if cell.cell_type == "code"])
    assert not found, f"{path.name} (code cells counted from 0): {found}"


def _skips(tree: ast.AST) -> Iterator[ast.Call]:
    names = ("skip", "importorskip", "skipif")
    for node in ast.walk(tree):
        func = node.func if isinstance(node, ast.Call) else None
        on_pytest = isinstance(func, ast.Attribute) and ast.unparse(func.value) in ("pytest", "pytest.mark")
        if on_pytest and isinstance(node, ast.Call) and func.attr in names:  # type: ignore[union-attr]
            yield node


@pytest.mark.parametrize("path", TESTS, ids=lambda p: str(p.relative_to(ROOT / "tests")))
def test_every_skip_in_the_tests_consults_required(path: Path) -> None:
    """A skip is allowed only where the code around it asks ``required()`` (or ``require_or_skip``), or
    for a platform (``sys.platform``): a kernel feature a platform lacks is not a missing component."""
    tree = ast.parse(path.read_text())
    scopes = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    bad = []
    for skip in _skips(tree):
        owner = min(
            (f for f in scopes if f.lineno <= skip.lineno <= (f.end_lineno or f.lineno)),
            key=lambda f: (f.end_lineno or f.lineno) - f.lineno,
            default=tree,
        )
        platform_fact = "sys.platform" in ast.unparse(skip)  # Linux-only kernel features, not components
        if not (platform_fact or _calls(owner, "required") or _calls(owner, "require_or_skip")):
            bad.append(f"line {skip.lineno}: {ast.unparse(skip)[:80]}")
    assert not bad, f"{path.name}: skips that ignore WSLAB_REQUIRE: {bad}"


def _run_f25_to_the_browser_cell(monkeypatch: pytest.MonkeyPatch, require: str) -> nbformat.NotebookNode:
    """Run F25 up to and including its browser cell, in a kernel that cannot find a browser."""
    monkeypatch.setenv("WSLAB_CHROMIUM", str(ROOT / "no-such-browser"))
    monkeypatch.setenv("WSLAB_REQUIRE", require)
    nb = nbformat.read(F25, as_version=4)
    ids = [cell.get("id") for cell in nb.cells]
    nb.cells = nb.cells[: ids.index(F25_BROWSER_CELL) + 1]
    client = NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(F25.parent)}}
    )
    assert os.environ["WSLAB_REQUIRE"] == require  # the kernel inherits this environment
    client.execute()
    return nb


@pytest.mark.slow
def test_f25_fails_without_a_required_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CellExecutionError) as failed:
        _run_f25_to_the_browser_cell(monkeypatch, "browser")
    assert "ComponentMissing" in str(failed.value) and "required by WSLAB_REQUIRE" in str(failed.value)


@pytest.mark.slow
def test_f25_says_it_skipped_when_the_browser_is_not_required(monkeypatch: pytest.MonkeyPatch) -> None:
    nb = _run_f25_to_the_browser_cell(monkeypatch, "")
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    assert text.startswith("no browser here, skipped:"), text
