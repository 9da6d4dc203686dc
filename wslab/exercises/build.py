"""The build track's plumbing: turn the learner's notebook cells into a module that runs for real.

In chapters 02-07 the learner writes the chat itself (the room endpoint, auth, heartbeat, Redis fan-out)
in notebook cells. The checkers run that code the way it will run in production: as a module imported
by uvicorn in its own process, so a handler that never returns or a module that fails at import cannot
hang or crash the notebook, and chapter 06 can start two replicas of it.

How a chapter's module is made (:func:`learner_module`):

1. the previous chapter's module: the learner's own, saved in ``mychat/`` when its check passed, or the
   reference solution (:func:`carry` loads it into the notebook and says which);
2. what this chapter gives (:data:`GIVEN`: token helpers in 03, heartbeat settings in 04, ...);
3. the *whole cells* in which the learner defined the names the exercise reads (so their imports and
   helpers come along), minus the ``ex.qN.check()`` lines.

Later definitions replace earlier ones (:func:`prune` keeps the last of each name), exactly as
re-running cells does in the notebook, so the saved file reads like a file a person wrote.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import itertools
import linecache
import os
import re
import textwrap
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from wslab.exercises._core import CheckResult, Exercise, Incorrect, Status, _is_placeholder

__all__ = [
    "GIVEN",
    "SERVER_CHAPTERS",
    "BuildExercise",
    "build_dir",
    "carry",
    "cell_source",
    "learner_module",
    "prune",
    "reference_module",
    "register_source",
    "save",
]

SERVER_CHAPTERS = ("02", "03", "04", "06")
"""Chapters whose exercise adds to the chat server; 05 (client) and 07 (tests) write their own files."""

BASE_KEY = "__wslab_build_base__"
"""Where :func:`carry` records, in the notebook's globals, which module this chapter builds on."""

_CHECK_LINE = re.compile(r"^\s*(?:await\s+)?ex\.q\d+\.(?:check|hint|solution)\(.*\)\s*$")

GIVEN: dict[str, str] = {
    "02": '''\
"""My chat: a FastAPI WebSocket chat written through the wslab build track."""

import asyncio
import hashlib
import hmac
import json
import os
import time

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
''',
    "03": '''\
CHAT_SECRET = os.environ.get("CHAT_SECRET", "change-me")
AUTH_DEADLINE = float(os.environ.get("AUTH_DEADLINE", "10"))  # seconds to send the auth frame


def make_token(user: str, ttl: float) -> str:
    """A token for `user` that expires in `ttl` seconds: `user|expires_at|signature`."""
    expires_at = f"{time.time() + ttl:.3f}"
    signature = hmac.new(CHAT_SECRET.encode(), f"{user}|{expires_at}".encode(), hashlib.sha256).hexdigest()
    return f"{user}|{expires_at}|{signature}"


def verify_token(token: object) -> tuple[str, float] | None:
    """`(user, expires_at)` if we signed `token` (expired or not: check the time yourself), else None."""
    if not isinstance(token, str) or token.count("|") != 2:
        return None
    user, expires_at, signature = token.split("|")
    good = hmac.new(CHAT_SECRET.encode(), f"{user}|{expires_at}".encode(), hashlib.sha256).hexdigest()
    if not user or not hmac.compare_digest(signature, good):
        return None
    return user, float(expires_at)
''',
    "04": """\
PING_INTERVAL = float(os.environ.get("PING_INTERVAL", "20"))  # seconds between our pings
PONG_TIMEOUT = float(os.environ.get("PONG_TIMEOUT", "10"))  # how late a pong may be before we give up
""",
    "06": """\
from redis import asyncio as aioredis

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
""",
}
"""Code each chapter hands the learner, appended to the module before their cells."""


def build_dir() -> Path:
    """Where the learner's modules are saved: ``$WSLAB_BUILD_DIR``, else ``mychat/`` next to the notebook.

    Next to the notebook (the kernel's working directory) so the learner finds the files, keeps them,
    and runs the capstone with ``uvicorn`` from there.
    """
    return Path(os.environ.get("WSLAB_BUILD_DIR") or Path.cwd() / "mychat")


def register_source(source: str, filename: str) -> None:
    """Put ``source`` in :mod:`linecache` under ``filename``, as IPython does for every cell.

    Then :func:`cell_source` finds code exec'd by CI (``check_source``) the same way it finds a cell.
    """
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)


def _code_filename(value: object) -> str | None:
    target = getattr(value, "__wrapped__", value)
    code = getattr(target, "__code__", None)
    if code is not None:
        return str(code.co_filename)
    if inspect.isclass(value):
        for member in vars(value).values():
            found = _code_filename(member)
            if found is not None:
                return found
    return None


def cell_source(value: object) -> str | None:
    """The whole source of the cell (or exec'd text) that defined ``value``, check lines removed.

    The whole cell, not just the definition, so the learner's imports and helpers come along.
    """
    filename = _code_filename(value)
    if filename is None:
        return None
    lines = linecache.getlines(filename)
    if not lines:
        return None
    return "".join(line for line in lines if not _CHECK_LINE.match(line)).strip("\n") + "\n"


def prune(source: str) -> str:
    """Keep only the last top-level definition of each name (and each import once), in order.

    The module is the previous chapter's plus this one's; a name defined again (``chat``, ``app``)
    replaces the old definition, as re-running a cell does. Raises ``SyntaxError`` for invalid code.
    """
    tree = ast.parse(source)
    last: dict[str, int] = {}
    seen_imports: set[str] = set()
    keep: list[bool] = []
    for index, node in enumerate(tree.body):
        name = _defined_name(node)
        if name is not None:
            last[name] = index
    for index, node in enumerate(tree.body):
        name = _defined_name(node)
        if isinstance(node, ast.Import | ast.ImportFrom):
            text = ast.unparse(node)
            keep.append(text not in seen_imports)
            seen_imports.add(text)
        elif name is not None:
            keep.append(last[name] == index)
        else:
            keep.append(True)
    lines = source.splitlines()
    docstring: list[str] = []
    imports: list[str] = []
    chunks: list[str] = []
    for index, (node, kept) in enumerate(zip(tree.body, keep, strict=True)):
        if not kept:
            continue
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))]) - 1
        text = "\n".join(lines[start : node.end_lineno or node.lineno])
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            if index == 0:
                docstring.append(text)  # the module's docstring; later ones were cells' headers
        elif isinstance(node, ast.Import | ast.ImportFrom):
            imports.append(text)  # hoisted: a file reads better with its imports on top
        else:
            chunks.append(text)
    head = "\n\n".join(part for part in ("\n".join(docstring), "\n".join(imports)) if part)
    return _join([head, *chunks] if head else chunks)


def _join(chunks: list[str]) -> str:
    out: list[str] = []
    for chunk in chunks:
        is_def = chunk.lstrip().startswith(("def ", "async def ", "class ", "@"))
        if out:
            out.append("\n\n\n" if is_def or out[-1] == "def" else "\n")
        out.append(chunk)
        out.append("def" if is_def else "stmt")
    return "".join(part for part in out if part not in ("def", "stmt")) + "\n"


def _defined_name(node: ast.stmt) -> str | None:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    return None


def _saved_path(chapter: str) -> Path:
    return build_dir() / f"ch{chapter}.py"


def _previous(chapter: str) -> str | None:
    earlier = [c for c in SERVER_CHAPTERS if c < chapter]
    return earlier[-1] if earlier else None


def reference_module(chapter: str) -> str:
    """The reference chat as it stands after ``chapter`` (every solution up to it, with what was given)."""
    from wslab.exercises.build_solutions import SERVER_SOLUTIONS

    parts: list[str] = []
    for step in SERVER_CHAPTERS:
        if step > chapter:
            break
        parts += [GIVEN[step], SERVER_SOLUTIONS[step]]
    return prune("\n\n".join(parts))


def base_module(chapter: str, namespace: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """(module this chapter builds on, where it came from): what :func:`carry` loaded, else the default."""
    if namespace is not None and BASE_KEY in namespace:
        recorded = namespace[BASE_KEY]
        if isinstance(recorded, tuple) and recorded[0] == chapter:
            return str(recorded[1]), str(recorded[2])
    previous = _previous(chapter)
    if previous is None:
        return "", "nothing"
    saved = _saved_path(previous)
    if saved.exists():
        return saved.read_text(encoding="utf-8"), f"your chapter {previous} code ({saved.name})"
    return reference_module(previous), f"the reference solution of chapter {previous}"


def learner_module(chapter: str, cells: list[str], namespace: Mapping[str, Any] | None = None) -> str:
    """Base module + what ``chapter`` gives + the learner's cells, pruned: the module a checker serves."""
    base, _ = base_module(chapter, namespace)
    given = GIVEN.get(chapter, "")
    return prune("\n\n".join(part for part in (base, given, *cells) if part))


def save(chapter: str, module: str) -> Path:
    """Keep the learner's passing module as ``mychat/chNN.py``: the next chapter builds on it."""
    path = _saved_path(chapter)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(module, encoding="utf-8")
    return path


class Carried:
    """What :func:`carry` loaded: shown in the notebook, so the learner knows whose code runs."""

    def __init__(self, chapter: str, origin: str, names: list[str]) -> None:
        self.chapter = chapter
        self.origin = origin
        self.names = names

    def __repr__(self) -> str:
        names = ", ".join(self.names) or "nothing new"
        if self.origin == "nothing":
            return f"Chapter {self.chapter} starts the chat. Imported here: {names}."
        return f"Chapter {self.chapter} builds on {self.origin}. Defined here: {names}."


def carry(chapter: str, namespace: dict[str, Any], *, solution: bool = False) -> Carried:
    """Load what chapter ``chapter`` builds on into the notebook: your earlier code, or the solution.

    Your own module from the previous chapter if its check passed (saved in ``mychat/``), else the
    reference solution; ``solution=True`` takes the reference even if yours exists (to catch up after
    skipping a chapter). Then this chapter's given code. Everything is executed in ``namespace`` (the
    notebook's globals), so later cells can use ``Rooms``, ``make_token``... directly.
    """
    if chapter == "07":
        path = ensure_chat_app(solution=solution)
        whose = (
            "your chapter 04 code"
            if _saved_path("04").exists() and not solution
            else "the reference solution of chapter 04"
        )
        return Carried(
            chapter, f"{whose}, written to {path.parent.name}/{path.name} for your tests", ["chat_app"]
        )
    previous = _previous(chapter)
    if solution and previous is not None:
        base, origin = reference_module(previous), f"the reference solution of chapter {previous}"
    else:
        base, origin = base_module(chapter)
    namespace[BASE_KEY] = (chapter, base, origin)
    given = GIVEN.get(chapter, "")
    module = prune("\n\n".join(p for p in (base, given) if p))
    exec(compile(module, f"<chapter {chapter} base>", "exec"), namespace)
    body = ast.parse(module).body
    defined = [_defined_name(node) for node in body]
    if origin == "nothing":  # chapter 02: only imports so far; say which
        defined = [a.asname or a.name for n in body if isinstance(n, ast.ImportFrom) for a in n.names]
    return Carried(chapter, origin, [n for n in defined if n is not None and not n.isupper()])


class BuildExercise(Exercise):
    """An exercise whose answer is part of the chat, checked by serving it (see :mod:`.live`).

    ``chapter`` says which module it extends. The checker gets the learner's module from the cells that
    define ``reads`` (:func:`learner_module`), runs ``_run(module)`` and, when it passes, saves the module
    for the next chapter (server chapters only).
    """

    chapter: ClassVar[str]
    saves: ClassVar[bool] = True

    @classmethod
    def check_source(cls, source: str) -> CheckResult | Awaitable[CheckResult]:
        """As the base class, but the source is findable by :func:`cell_source`, like a notebook cell."""
        filename = f"<{cls.__name__} answer {next(_answer_ids)}>"
        text = textwrap.dedent(source)
        register_source(text, filename)
        namespace: dict[str, Any] = {"__name__": "__main__"}
        base, _ = base_module(cls.chapter)
        exec(prune("\n\n".join(p for p in (base, GIVEN.get(cls.chapter, "")) if p)), namespace)
        # As in a notebook: if the cell fails, its definitions so far stand, and the check says the rest.
        with contextlib.suppress(Exception):
            exec(compile(text, filename, "exec"), namespace)
        return cls(namespace).check()

    def _answers(self) -> tuple[Any, ...] | CheckResult:
        """As the base class, but a class whose methods are all ``...`` or a fixture wrapping ``...``
        is a placeholder too (the build track's answers are classes and pytest fixtures as well)."""
        answers = super()._answers()
        if isinstance(answers, CheckResult):
            return answers
        for name, value in zip(self.reads, answers, strict=True):
            if _is_unwritten(value):
                return CheckResult(Status.NOT_ATTEMPTED, self._not_attempted_message(name))
        return answers

    def module(self, answers: tuple[Any, ...]) -> str:
        """The learner's module for this chapter; a cell that cannot be found is Incorrect."""
        cells: list[str] = []
        for name, value in zip(self.reads, answers, strict=True):
            source = cell_source(value)
            if source is None:
                raise Incorrect(
                    f"The checker cannot find the cell that defines `{name}`: define it with `def` or "
                    "`class` in a notebook cell, and run that cell."
                )
            if source not in cells:
                cells.append(source)
        try:
            return learner_module(self.chapter, cells, self._namespace)
        except SyntaxError as exc:
            raise Incorrect(f"Your code does not parse: {exc.msg} (line {exc.lineno}).") from None

    async def _check(self, *answers: Any) -> None:
        module = self.module(answers)
        await self._run(module)
        if self.saves and self.chapter in SERVER_CHAPTERS:
            save(self.chapter, module)

    async def _run(self, module: str) -> None:
        raise NotImplementedError


def _is_unwritten(value: object) -> bool:
    """A placeholder class (every method but ``__init__`` is ``...``) or a wrapped placeholder function."""
    wrapped = getattr(value, "__wrapped__", None)
    if wrapped is not None and _is_placeholder(wrapped):
        return True
    if inspect.isclass(value):
        methods = [m for k, m in vars(value).items() if inspect.isfunction(m) and k != "__init__"]
        return bool(methods) and all(_is_placeholder(m) for m in methods)
    return False


def runnable_placeholder(chapter: str, *cells: str) -> str:
    """What the notebook runs before the learner writes anything: the carry cell, then the empty cells.

    Stored as an exercise's ``placeholder`` so CI can execute it exactly as the notebook does.
    """
    carry_line = f'from wslab.exercises import build\n\nbuild.carry("{chapter}", globals())\n'
    return carry_line + "".join(cells)


_answer_ids = itertools.count(1)


def ensure_chat_app(solution: bool = False) -> Path:
    """Write the chat that chapter 07's tests import (``chat_app.py``) and make it importable.

    It is the chapter 04 chat (no Redis needed): the learner's own if its check passed, else the
    reference. Chapter 07's checker runs the learner's tests against this and against broken copies.
    """
    import sys

    saved = _saved_path("04")
    mine = saved.exists() and not solution
    module = saved.read_text(encoding="utf-8") if mine else reference_module("04")
    path = build_dir() / "chat_app.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != module:
        path.write_text(module, encoding="utf-8")
    sys.modules.pop("chat_app", None)
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    return path
