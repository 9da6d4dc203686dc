"""The tests' layout holds: folders by area, no test module importing another, and docs naming real tests.

A test module that imports another runs that module's collection-time code a second time and ties two
files together that ``--dist loadfile`` sends to different workers; what tests share lives in
``tests/support/`` (plain helpers) or an area's ``conftest.py`` (fixtures and hooks). Paths such as
``tests/chat/test_chat.py`` in the README, docs/ and the notebooks are claims a reader follows: each must
name a file (and a test or class, after ``::``) that exists.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
TEST_MODULES = sorted(TESTS.rglob("test_*.py"))
PYTHON_FILES = sorted(TESTS.rglob("*.py"))
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "examples").glob("*.md")])
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
TEST_PATH = re.compile(r"tests/[\w/]+\.(?:py|cfg)(?:::\w+)?")


def imported_test_modules(source: str, test_modules: set[str]) -> list[str]:
    """The imports in ``source`` (at any depth, ``from x import y`` included) that name a test module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = [module] + [f"{module}.{alias.name}" if module else alias.name for alias in node.names]
        else:
            continue
        if any(set(name.split(".")) & test_modules for name in names):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_import_check_finds_test_modules_however_they_are_imported() -> None:
    modules = {"test_chat", "test_fanout"}
    source = (
        "import os\nfrom support.chat import join\nfrom test_chat import join\nimport test_fanout as f\n"
        "def helper():\n    from chat.test_chat import token\n    from chat import test_chat\n"
    )
    assert [line.split(":")[0] for line in imported_test_modules(source, modules)] == [
        "line 3",
        "line 4",
        "line 6",
        "line 7",
    ]
    assert imported_test_modules("from support.fanout import until_equal\nimport pytest\n", modules) == []


@pytest.mark.parametrize("path", PYTHON_FILES, ids=lambda p: str(p.relative_to(TESTS)))
def test_no_file_under_tests_imports_a_test_module(path: Path) -> None:
    """Test modules, conftest.py files and tests/support/ alike: shared code goes to tests/support/."""
    found = imported_test_modules(path.read_text(encoding="utf-8"), {p.stem for p in TEST_MODULES})
    assert not found, f"{path.relative_to(ROOT)} imports test modules (helpers go to tests/support/): {found}"


def test_test_modules_sit_in_area_folders_with_unique_names() -> None:
    """pytest imports each test file by its bare name (no ``__init__.py``), so two with one name clash."""
    assert TEST_MODULES, "no test module found"
    names = [p.name for p in TEST_MODULES]
    assert sorted(names) == sorted(set(names)), f"test file names used twice: {names}"
    misplaced = [str(p.relative_to(TESTS)) for p in TEST_MODULES if len(p.relative_to(TESTS).parts) != 2]
    assert not misplaced, f"test files outside an area folder (tests/<area>/test_x.py): {misplaced}"
    assert not list((TESTS / "support").glob("test_*.py")), "tests/support/ holds helpers, not tests"


def _mentions() -> list[tuple[str, str]]:
    """Every ``tests/...`` path in the README, docs/, examples/ and the notebooks' markdown."""
    found = [(str(doc.relative_to(ROOT)), m) for doc in DOCS for m in TEST_PATH.findall(doc.read_text())]
    for notebook in NOTEBOOKS:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        found += [(str(notebook.relative_to(ROOT)), m) for m in TEST_PATH.findall(text)]
    return found


def _top_level_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}


def test_every_tests_path_named_in_the_docs_exists() -> None:
    mentions = _mentions()
    assert len(mentions) > 20, "the docs name tests/ paths: the pattern must still find them"
    missing = []
    for where, mention in mentions:
        file, _, name = mention.partition("::")
        if not (ROOT / file).is_file():
            missing.append(f"{where}: {mention} (no such file)")
        elif name and name not in _top_level_names(ROOT / file):
            missing.append(f"{where}: {mention} (no test or class {name} in {file})")
    assert not missing, "docs name tests that do not exist:\n" + "\n".join(missing)
