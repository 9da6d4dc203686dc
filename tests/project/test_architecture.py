"""The map in docs/architecture.md stays true: no import cycle in wslab, and nothing imports what its row
in the doc's tables does not allow. Also: every name a notebook imports from wslab is in that module's
``__all__``, so what the lessons rely on is declared as public.

The import graph is read from the source with ``ast`` (every import, including those inside functions
and under ``TYPE_CHECKING``: a lazy import is still a dependency), not by importing anything.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "wslab"
DOC = ROOT / "docs" / "architecture.md"

Graph = dict[str, set[str]]


def module_names() -> dict[str, Path]:
    """Every module of wslab by dotted name (a package by its own name, for its ``__init__``)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: Iterable[str]) -> set[str]:
    """The wslab modules ``name`` imports (``from pkg import submodule`` counts as the submodule)."""
    known = set(modules)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "wslab")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "wslab":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {module for module in found if module != name}


def module_graph() -> Graph:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def unit(module: str) -> str:
    """The package a module belongs to in the doc's first table: ``wslab.chat.rooms`` -> ``wslab.chat``."""
    parts = module.split(".")
    if len(parts) >= 2 and (PACKAGE / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (or a node importing itself), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def doc_table(name: str) -> list[tuple[str, set[str]]]:
    """The rows of the table between ``<!-- imports: name -->`` and ``<!-- end -->``, in order."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"<!-- imports: {name} -->\n(.*?)<!-- end -->", text, re.S)
    assert match, f"docs/architecture.md has no '<!-- imports: {name} -->' table"
    rows = []
    for line in match.group(1).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[0].startswith("`"):
            continue
        allowed = set(re.findall(r"`([\w.]+)`", cells[1]))
        assert allowed or cells[1] == "nothing", line
        rows.append((cells[0].strip("`"), allowed))
    return rows


def check_rows(rows: list[tuple[str, set[str]]], actual: Mapping[str, set[str]]) -> list[str]:
    """What is wrong between a table and the real graph restricted to the table's rows."""
    problems = []
    names = [name for name, _ in rows]
    for position, (name, allowed) in enumerate(rows):
        if name not in actual:
            problems.append(f"{name}: listed in the doc but there is no such module")
            continue
        for extra in sorted(actual[name] - allowed):
            problems.append(f"{name} imports {extra}, which its row does not allow")
        for later in sorted(allowed & set(names[position:])):
            problems.append(f"{name} may import {later}, which is not in a row above it")
    for missing in sorted(set(actual) - set(names)):
        problems.append(f"{missing} has no row in the doc")
    return problems


def test_wslab_has_no_import_cycle() -> None:
    assert find_cycles(module_graph()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    assert find_cycles(graph) == [["a", "b", "c"], ["e"]]


def test_packages_import_only_what_the_doc_allows() -> None:
    actual: dict[str, set[str]] = {}
    for module, targets in module_graph().items():
        actual.setdefault(unit(module), set()).update(unit(t) for t in targets if unit(t) != unit(module))
    assert check_rows(doc_table("packages"), actual) == []


def test_chat_feed_and_runtime_modules_import_only_what_the_doc_allows() -> None:
    rows = doc_table("modules")
    listed = {name for name, _ in rows}
    scope = ("wslab.chat", "wslab.feed", "wslab.runtime")
    actual = {
        module: {target if target in listed else unit(target) for target in targets}
        for module, targets in module_graph().items()
        if module.startswith(scope)
    }
    assert check_rows(rows, actual) == []


def test_a_row_that_allows_too_little_is_reported() -> None:
    rows = [("x", set()), ("y", {"x"})]
    assert check_rows(rows, {"x": {"y"}, "y": {"x"}, "z": set()}) == [
        "x imports y, which its row does not allow",
        "z has no row in the doc",
    ]


def notebook_imports() -> dict[str, set[str]]:
    """``{module: names}`` for every ``from wslab... import name`` in the notebooks' code cells."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "code":
                continue
            lines = "".join(cell["source"]).splitlines()
            source = "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))
            flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT  # cells use top-level await
            tree = compile(source, str(path), "exec", flags=flags)
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "wslab":
                    found.setdefault(str(node.module), set()).update(alias.name for alias in node.names)
    return found


def test_every_name_a_notebook_imports_is_in_its_module_s_all() -> None:
    modules = module_names()
    missing = []
    for module, names in notebook_imports().items():
        public = getattr(importlib.import_module(module), "__all__", None)
        for name in sorted(names):
            if f"{module}.{name}" in modules:
                continue  # a submodule: ``from wslab.pitfalls import f25_cookie_no_origin_check``
            if public is None or name not in public:
                missing.append(f"{module}.{name}")
    assert missing == []


def test_lessons_never_import_the_runtime() -> None:
    """The lab's process plumbing is reached through ``Lab``; a notebook that imports it is a smell."""
    assert sorted(m for m in notebook_imports() if m.startswith("wslab.runtime")) == []


def mentioned_names() -> dict[str, set[str]]:
    """Every ```wslab.x.y``` and ```wslab/x/y.py``` in the notebooks' markdown, the README and docs/."""
    texts: dict[str, str] = {
        str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in DOC.parent.glob("*.md")
    }
    texts["README.md"] = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        texts[str(path.relative_to(ROOT))] = "\n".join(
            "".join(c["source"]) for c in cells if c["cell_type"] == "markdown"
        )
    return {
        where: set(re.findall(r"`(wslab(?:\.\w+)+|wslab/[\w/]+\.py)[`(]", text))
        for where, text in texts.items()
    }


def resolves(name: str) -> bool:
    """A path that exists, or a dotted name that is a module of wslab or an attribute of one."""
    if "/" in name:
        return (ROOT / name).is_file()
    modules = module_names()
    parts = name.split(".")
    cut = max((n for n in range(1, len(parts) + 1) if ".".join(parts[:n]) in modules), default=0)
    if cut == len(parts):
        return True  # found as a file; not imported (``wslab.__main__`` runs the command line)
    obj: object = importlib.import_module(".".join(parts[:cut]))
    for attribute in parts[cut:]:
        if not hasattr(obj, attribute):
            return False
        obj = getattr(obj, attribute)
    return True


def test_every_module_the_prose_names_exists() -> None:
    """After a module moves, the README, docs/ and the notebooks must not send anyone to its old place."""
    stale = sorted(
        f"{where}: {name}"
        for where, names in mentioned_names().items()
        for name in names
        if not resolves(name)
    )
    assert stale == []


def test_a_moved_module_is_reported_as_stale() -> None:
    assert resolves("wslab.runtime.servers.ThreadServer") and resolves("wslab/chat/fanout/pubsub.py")
    assert not resolves("wslab.servers.ThreadServer") and not resolves("wslab/chat/fanout_pubsub.py")
    assert not resolves("wslab.chat.NoSuchThing")
