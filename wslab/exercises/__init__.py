"""Exercises for the notebooks: ``check()`` / ``hint()`` / ``solution()``, the Kaggle learntools way.

A notebook's setup cell binds its chapter to its own globals::

    ex = wslab.exercises.bind("01", globals())
    ex.q1.check()          # Not attempted / Incorrect: <why> / Correct
    ex.q1.hint()           # ex.q1.hint(2) is more specific
    ex.q1.solution()
    await ex.q3.check()    # an async exercise (one that runs the learner's handler)

Chapters are the ``chNN`` modules of this package, found by name, so ``chapters()`` and
``all_exercises()`` (what CI iterates) cannot miss one that exists.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator, Mapping
from typing import Any

from wslab.exercises._core import (
    Chapter,
    CheckResult,
    Exercise,
    Hint,
    Incorrect,
    NotAttempted,
    Solution,
    Status,
    WrongAnswer,
    maybe_await,
)

__all__ = [
    "BoundChapter",
    "Chapter",
    "CheckResult",
    "Exercise",
    "Hint",
    "Incorrect",
    "NotAttempted",
    "Solution",
    "Status",
    "WrongAnswer",
    "all_exercises",
    "bind",
    "chapters",
    "maybe_await",
]


def _discover() -> dict[str, Chapter]:
    """Every ``chNN`` module in this package, each with a ``CHAPTER``.

    Discovered rather than listed so that a chapter added as a file cannot be missed by CI's
    ``all_exercises()``; a ``chNN`` module without a ``CHAPTER`` is an error, not a silent skip.
    """
    found = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if re.fullmatch(r"ch\d\d", module.name):
            chapter = importlib.import_module(f"{__name__}.{module.name}").CHAPTER
            found[chapter.id] = chapter
    return found


_CHAPTERS: dict[str, Chapter] = _discover()


class BoundChapter:
    """A chapter's exercises bound to a notebook's globals, as attributes ``q1``, ``q2``, …"""

    def __init__(self, chapter: Chapter, namespace: Mapping[str, Any]) -> None:
        self.chapter = chapter
        self.questions: dict[str, Exercise] = {
            f"q{number}": exercise(namespace) for number, exercise in enumerate(chapter.exercises, start=1)
        }

    def __getattr__(self, name: str) -> Exercise:
        questions: dict[str, Exercise] = self.__dict__.get("questions", {})
        if name in questions:
            return questions[name]
        known = ", ".join(questions) or "none"
        raise AttributeError(f"chapter {self.chapter.id} has no exercise {name!r} (it has: {known})")

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self.questions]

    def __iter__(self) -> Iterator[Exercise]:
        return iter(self.questions.values())

    def __repr__(self) -> str:
        count = len(self.questions)
        lines = [f"Chapter {self.chapter.notebook}: {count} exercise{'' if count == 1 else 's'}"]
        lines += [f"  {label}  {exercise!r}" for label, exercise in self.questions.items()]
        return "\n".join(lines)


def chapters() -> list[str]:
    """Chapter ids that have exercises, in course order."""
    return sorted(_CHAPTERS)


def all_exercises() -> Iterator[type[Exercise]]:
    """Every exercise class of every chapter: what CI runs solutions and wrong answers through."""
    for chapter_id in chapters():
        yield from _CHAPTERS[chapter_id].exercises


def bind(chapter: str, namespace: Mapping[str, Any]) -> BoundChapter:
    """Bind a chapter's exercises to a notebook's live ``globals()``, so later answers are seen.

    ``chapter`` is the id (``"01"``) or the notebook name (``"01_handshake_and_frames"``).
    """
    for known in _CHAPTERS.values():
        if chapter in (known.id, known.notebook):
            return BoundChapter(known, namespace)
    listing = ", ".join(f"{c.id!r} ({c.notebook})" for c in _CHAPTERS.values())
    raise LookupError(f"no exercises for chapter {chapter!r}; known chapters: {listing}")
