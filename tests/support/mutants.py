"""Small automatic mutations of an exercise's solution, for checking that its checker rejects them.

A checker that accepts a solution with a comparison flipped, a constant changed, a statement dropped or
``and`` swapped for ``or`` is a checker whose success message claims more than it tests. Each mutant is
the solution's source with exactly one node changed; :func:`mutants` yields them with a stable,
human-readable description (``"compare at line 5: counts[room] == 1 -> counts[room] != 1"``), which is
what the list of known equivalent mutants is keyed by.
"""

from __future__ import annotations

import ast
import copy
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass

_COMPARE_SWAPS: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.Lt: (ast.GtE, ast.LtE),
    ast.LtE: (ast.Gt, ast.Lt),
    ast.Gt: (ast.LtE, ast.GtE),
    ast.GtE: (ast.Lt, ast.Gt),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
}
_BINOP_SWAPS: dict[type[ast.operator], tuple[type[ast.operator], ...]] = {
    ast.Add: (ast.Sub,),
    ast.Sub: (ast.Add,),
    ast.Mult: (ast.Div, ast.Add),
    ast.Div: (ast.Mult,),
    ast.Pow: (ast.Mult,),
    ast.Mod: (ast.FloorDiv,),
    ast.FloorDiv: (ast.Div,),
    ast.BitXor: (ast.BitOr,),
}
_NAME_SWAPS = {"min": "max", "max": "min", "True": "False", "False": "True"}


@dataclass(frozen=True)
class Mutant:
    """One mutation: what changed (stable across runs) and the mutated source."""

    description: str
    source: str


def _constant_variants(value: object) -> list[object]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int | float):
        variants: list[object] = [value + 1, value - 1, value * 2]
        if value != 0:
            variants.append(0)
        return [v for v in dict.fromkeys(variants) if v != value]
    if isinstance(value, str) and value:
        return ["", value + "x"]
    return []


def _targets(tree: ast.Module) -> Iterator[tuple[ast.AST, str, Callable[[ast.AST], list[ast.AST]]]]:
    """(node, kind, function returning replacement nodes) for every mutable node, in source order.

    Imports are left alone (a missing import is a NameError, not a subtle mistake), and so are the
    definitions themselves; module constants (the handshake's GUID) are mutated like any other.
    """
    annotations = {
        id(inner)
        for owner in ast.walk(tree)
        for annotation in (getattr(owner, "annotation", None), getattr(owner, "returns", None))
        if isinstance(annotation, ast.AST)
        for inner in ast.walk(annotation)
    }
    skip = (ast.Module, ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.Pass)
    for node in ast.walk(tree):
        if id(node) in annotations or isinstance(node, skip):  # types are not behaviour
            continue
        if isinstance(node, ast.Compare):
            yield node, "compare", _swap_compare
        elif isinstance(node, ast.BoolOp):
            yield node, "boolop", _swap_boolop
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAPS:
            yield node, "binop", _swap_binop
        elif isinstance(node, ast.Constant) and not _is_docstring(node, tree):
            yield node, "constant", _swap_constant
        elif isinstance(node, ast.Name) and node.id in _NAME_SWAPS:
            yield node, "name", _swap_name
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
            yield node, "unary", lambda n: [n.operand]  # type: ignore[attr-defined]
        elif isinstance(node, ast.Call) and node.args:
            yield node, "argument", _drop_or_swap_arguments
        elif isinstance(node, ast.Tuple) and len(node.elts) > 1:
            yield node, "tuple", _drop_element
        elif isinstance(node, ast.ExceptHandler) and node.type is not None:
            yield node, "except", _broaden_except
        if isinstance(node, ast.stmt):
            yield node, "drop", lambda n: [ast.Pass()]


def _is_docstring(node: ast.Constant, tree: ast.AST) -> bool:
    for owner in ast.walk(tree):
        body = getattr(owner, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and body[0].value is node:
            return True
    return False


def _swap_compare(node: ast.AST) -> list[ast.AST]:
    assert isinstance(node, ast.Compare)
    out: list[ast.AST] = []
    for index, op in enumerate(node.ops):
        for new in _COMPARE_SWAPS.get(type(op), ()):
            mutated = copy.deepcopy(node)
            mutated.ops[index] = new()
            out.append(mutated)
    return out


def _swap_boolop(node: ast.AST) -> list[ast.AST]:
    assert isinstance(node, ast.BoolOp)
    mutated = copy.deepcopy(node)
    mutated.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    # and each operand alone: "a and b" -> "a", "b"
    return [mutated, *(copy.deepcopy(value) for value in node.values)]


def _swap_binop(node: ast.AST) -> list[ast.AST]:
    assert isinstance(node, ast.BinOp)
    out: list[ast.AST] = []
    for new in _BINOP_SWAPS[type(node.op)]:
        mutated = copy.deepcopy(node)
        mutated.op = new()
        out.append(mutated)
    return [*out, copy.deepcopy(node.left), copy.deepcopy(node.right)]


def _swap_constant(node: ast.AST) -> list[ast.AST]:
    assert isinstance(node, ast.Constant)
    return [ast.Constant(value) for value in _constant_variants(node.value)]


def _swap_name(node: ast.AST) -> list[ast.AST]:
    assert isinstance(node, ast.Name)
    return [ast.Name(_NAME_SWAPS[node.id], node.ctx)]


def _drop_or_swap_arguments(node: ast.AST) -> list[ast.AST]:
    """Swap the first two positional arguments of a call (``uniform(0, b)`` -> ``uniform(b, 0)``), and
    replace an argument that is a plain name by a constant or by twice itself (``timeout(timeout)`` ->
    ``timeout(1)``, ``timeout(timeout * 2)``): an argument ignored or scaled."""
    assert isinstance(node, ast.Call)
    out: list[ast.AST] = []
    if len(node.args) >= 2:
        mutated = copy.deepcopy(node)
        mutated.args[0], mutated.args[1] = mutated.args[1], mutated.args[0]
        out.append(mutated)
    for index, arg in enumerate(node.args):
        if not isinstance(arg, ast.Name):
            continue
        for new in (ast.Constant(1), ast.BinOp(copy.deepcopy(arg), ast.Mult(), ast.Constant(2))):
            mutated = copy.deepcopy(node)
            mutated.args[index] = new
            out.append(mutated)
    return out


def _drop_element(node: ast.AST) -> list[ast.AST]:
    """A tuple without one of its elements: ``except (A, B, C)`` -> ``except (A, C)``."""
    assert isinstance(node, ast.Tuple)
    out: list[ast.AST] = []
    for index in range(len(node.elts)):
        mutated = copy.deepcopy(node)
        del mutated.elts[index]
        out.append(mutated)
    return out


def _broaden_except(node: ast.AST) -> list[ast.AST]:
    """The handler catching too much: ``Exception``, and ``BaseException`` (which swallows cancellation)."""
    assert isinstance(node, ast.ExceptHandler)
    out: list[ast.AST] = []
    for broad in ("Exception", "BaseException"):
        mutated = copy.deepcopy(node)
        mutated.type = ast.Name(broad, ast.Load())
        out.append(mutated)
    return out


def _parents(tree: ast.AST) -> dict[int, tuple[ast.AST, str, int | None]]:
    """id(node) -> (parent, field, index in the field's list or None)."""
    found: dict[int, tuple[ast.AST, str, int | None]] = {}
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if isinstance(value, list):
                for index, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        found[id(item)] = (parent, field, index)
            elif isinstance(value, ast.AST):
                found[id(value)] = (parent, field, None)
    return found


def _put(parent: ast.AST, field: str, index: int | None, node: ast.AST) -> None:
    if index is None:
        setattr(parent, field, node)
    else:
        getattr(parent, field)[index] = node


def mutants(source: str) -> Iterator[Mutant]:
    """Every single-node mutant of ``source`` that still compiles, each once.

    The node is swapped in place, the tree unparsed, and the node put back, so each mutant differs from
    the solution in exactly one place.
    """
    tree = ast.parse(textwrap.dedent(source))
    seen = {ast.unparse(tree)}
    parents = _parents(tree)
    for node, kind, replace in list(_targets(tree)):
        parent, field, index = parents[id(node)]
        line = getattr(node, "lineno", 0)
        before = ast.unparse(node).splitlines()[0]
        for replacement in replace(node):
            ast.copy_location(replacement, node)
            ast.fix_missing_locations(replacement)
            _put(parent, field, index, replacement)
            try:
                text = ast.unparse(tree)
                compile(text, "<mutant>", "exec")
            except (SyntaxError, ValueError, TypeError):
                continue
            finally:
                _put(parent, field, index, node)
            if text in seen:
                continue
            seen.add(text)
            after = (
                ast.unparse(replacement).splitlines()[0] if not isinstance(replacement, ast.Pass) else "pass"
            )
            yield Mutant(f"{kind} at line {line}: {before} -> {after}", text)
