"""The exercise machinery: check / hint / solution, the learntools pattern made async-aware.

A notebook binds a chapter's exercises to its own globals; each checker reads the learner's answer
from there *by name*, so the learner writes ordinary code (``def accept_for(key): ...``) and never
passes anything to the checker. ``check()`` has exactly three outcomes, because each one asks the
learner for something different: *not attempted* (write the code), *incorrect* (here is why, without
the answer), *correct* (move on).
"""

from __future__ import annotations

import asyncio
import dis
import enum
import html
import inspect
import re
import textwrap
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

__all__ = [
    "Chapter",
    "CheckResult",
    "Exercise",
    "Hint",
    "Incorrect",
    "NotAttempted",
    "Solution",
    "Status",
    "WrongAnswer",
    "article",
    "maybe_await",
]

T = TypeVar("T")

# learntools' palette, so the outcomes read the same way learners already know from Kaggle.
_GREEN = "#33cc33"
_RED = "#cc3333"
_BLUE = "#3366cc"
_TEAL = "#33cc99"

# Opcodes a compiled-but-empty body may contain besides "return None": the coroutine prologue of an
# ``async def`` and the interpreter's bookkeeping. A docstring, ``...`` and ``pass`` compile to nothing.
_PROLOGUE_OPS = frozenset({"RESUME", "NOP", "CACHE", "EXTENDED_ARG", "RETURN_GENERATOR", "POP_TOP"})


class Incorrect(Exception):
    """Raised by a checker: the answer is wrong, and ``str(exc)`` says why without giving it away."""


class NotAttempted(Exception):
    """Raised by a checker: the learner has not written an answer yet (still the placeholder)."""


async def maybe_await(value: T | Awaitable[T]) -> T:
    """Await ``value`` if it is awaitable, else return it: one call site for sync and async answers."""
    if inspect.isawaitable(value):
        return await value
    return value


# --------------------------------------------------------------------------------------------------
# What a cell displays: plain text for consoles and tests, Markdown and HTML for notebooks.
# --------------------------------------------------------------------------------------------------

_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_FENCE = re.compile(r"```(\w*)\n(.*?)\n```", re.DOTALL)


def _md_to_html(text: str) -> str:
    """Render the tiny Markdown subset our messages use (inline code, fenced blocks) as HTML.

    Front ends prefer ``text/html`` over ``text/markdown``; doing it here keeps the output identical
    everywhere (and deterministic for nbval) without depending on a Markdown library.
    """
    parts: list[str] = []
    pos = 0
    for fence in _FENCE.finditer(text):
        parts.append(_inline_to_html(text[pos : fence.start()]))
        lang = f' class="language-{fence.group(1)}"' if fence.group(1) else ""
        parts.append(f"<pre><code{lang}>{html.escape(fence.group(2))}</code></pre>")
        pos = fence.end()
    parts.append(_inline_to_html(text[pos:]))
    return "".join(parts)


def _inline_to_html(text: str) -> str:
    escaped = html.escape(text.strip("\n"))
    return _INLINE_CODE.sub(r"<code>\1</code>", escaped).replace("\n", "<br>\n")


class _Display:
    """A coloured label and a Markdown body: the shape of every output here, like learntools' RichText.

    Plain ``repr`` for consoles and test failures; Markdown and HTML for notebooks. All three are
    deterministic (no addresses, no timings), so nbval can compare stored outputs.
    """

    def _parts(self) -> tuple[str, str, str]:
        """(label, CSS colour, Markdown body)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        label, _, body = self._parts()
        return f"{label}: {body}" if body else label

    def __str__(self) -> str:
        return repr(self)

    def _repr_markdown_(self) -> str:
        label, colour, body = self._parts()
        styled = f'<span style="color:{colour}"><strong>{label}:</strong></span>'
        return f"{styled} {body}" if body else styled

    def _repr_html_(self) -> str:
        label, colour, body = self._parts()
        styled = f'<span style="color:{colour}"><strong>{html.escape(label)}:</strong></span>'
        return f"<div>{styled} {_md_to_html(body)}</div>" if body else f"<div>{styled}</div>"


class Status(enum.Enum):
    """The three outcomes of ``check()``; each asks the learner to do something different."""

    NOT_ATTEMPTED = "Not attempted"
    INCORRECT = "Incorrect"
    CORRECT = "Correct"


_STATUS_COLOUR = {Status.NOT_ATTEMPTED: _BLUE, Status.INCORRECT: _RED, Status.CORRECT: _GREEN}


@dataclass(frozen=True, repr=False)
class CheckResult(_Display):
    """What ``check()`` returns. Truthy only when correct, so a test can simply ``assert`` it."""

    status: Status
    message: str

    def _parts(self) -> tuple[str, str, str]:
        return self.status.value, _STATUS_COLOUR[self.status], self.message

    def __bool__(self) -> bool:
        return self.status is Status.CORRECT


@dataclass(frozen=True, repr=False)
class Hint(_Display):
    """One level of hint; it ends by saying whether a more specific one exists."""

    text: str
    level: int
    total: int
    asked: int

    def _parts(self) -> tuple[str, str, str]:
        if self.level < self.total:
            coda = f"(For a more specific hint, call `hint({self.level + 1})`.)"
        elif self.asked > self.total:
            coda = f"(There are no more hints; this is hint {self.total} again. `solution()` shows the code.)"
        else:
            coda = "(This is the last hint. `solution()` shows the code.)"
        return f"Hint {self.level} of {self.total}", _BLUE, f"{self.text}\n{coda}"


@dataclass(frozen=True, repr=False)
class Solution(_Display):
    """The solution's source; shown as a Python code block in notebooks, as bare code in a console."""

    code: str

    def _parts(self) -> tuple[str, str, str]:
        return "Solution", _TEAL, f"\n```python\n{self.code}\n```"

    def __repr__(self) -> str:
        return f"Solution:\n{self.code}"


# --------------------------------------------------------------------------------------------------
# Exercises
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrongAnswer:
    """A known mistake: its source and the fragment the checker's reason must contain.

    CI runs every one through the checker, so a reason that stops teaching (or a checker that starts
    accepting the mistake) fails the build instead of confusing a learner.
    """

    mistake: str
    source: str
    reason: str


def _is_placeholder(value: object) -> bool:
    """``None``, ``...``, or a function whose body compiles to nothing (``...``, ``pass``, ``return``)."""
    if value is None or value is Ellipsis:
        return True
    if not inspect.isfunction(value):
        return False
    body: list[tuple[str, object]] = []
    for instruction in dis.get_instructions(value):
        if instruction.opname in _PROLOGUE_OPS:
            continue
        body.append((instruction.opname, instruction.argval))
        # Stop at the first return: what follows it in an empty body is the exception-handling tail that
        # Python 3.12+ adds to coroutines, not the learner's code.
        if instruction.opname in ("RETURN_VALUE", "RETURN_CONST"):
            break
    return body in ([("LOAD_CONST", None), ("RETURN_VALUE", None)], [("RETURN_CONST", None)])


def article(noun: str) -> str:
    """``"an int"``, ``"a str"``: messages name the learner's types, and should read as English."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _short_repr(value: object, limit: int = 32) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Exercise:
    """One exercise: a checker that reads the learner's answer from the notebook's globals.

    Subclasses set the class attributes below and implement ``_check(self, *answers)``, which receives
    the globals named in ``reads`` (in that order), returns normally when the answer is right and raises
    :class:`Incorrect` with a reason that teaches but never contains the expected value. Call learner
    code through :meth:`call` (or :meth:`call_async`): a learner's exception then becomes an
    ``Incorrect`` naming the call and the exception, and ``NotImplementedError`` means "not attempted".

    **Async exercises.** If ``_check`` is ``async def`` (it starts a server with the learner's handler,
    say), the exercise is async (``is_async``): ``check()``, ``check_source()``,
    ``assert_solution_passes()`` and ``assert_wrong_answers_rejected()`` return awaitables, and the
    notebook writes ``await ex.q3.check()``: top-level await on the kernel's own loop, never
    ``asyncio.run``. Inside an async checker, ``await self.call_async(fn, ...)`` accepts both ``def``
    and ``async def`` answers (see :func:`maybe_await`).
    """

    name: ClassVar[str]
    """Title shown in the chapter listing."""
    reads: ClassVar[tuple[str, ...]]
    """Globals the checker reads, passed to ``_check`` in this order."""
    placeholder: ClassVar[str]
    """Starter code stored in the notebook; CI asserts it checks as NOT_ATTEMPTED."""
    hints: ClassVar[tuple[str, ...]]
    """From vague to nearly the answer."""
    solution_code: ClassVar[str]
    wrong_answers: ClassVar[tuple[WrongAnswer, ...]] = ()
    secrets: ClassVar[tuple[str, ...]] = ()
    """Strings no message may contain: the expected answers. CI enforces it."""
    correct_message: ClassVar[str] = ""
    call_timeout: ClassVar[float] = 5.0
    """Seconds an awaited learner call may take: a hung handler fails the check, not the workshop."""
    is_async: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.is_async = inspect.iscoroutinefunction(cls._check)

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        # The live mapping (a notebook's globals()), so answers defined after binding are seen.
        self._namespace = namespace

    def __repr__(self) -> str:
        reads = ", ".join(f"`{name}`" for name in self.reads)
        check = "await check()" if self.is_async else "check()"
        return f"{self.name}: define {reads}, then {check}; hint(), solution()"

    # -- the learner-facing API ---------------------------------------------------------------------

    def check(self) -> CheckResult | Awaitable[CheckResult]:
        """Check the answer in the bound globals; for an async exercise, ``await`` the result."""
        if self.is_async:
            return self._check_async()
        answers = self._answers()
        if isinstance(answers, CheckResult):
            return answers
        try:
            self._check(*answers)
        except Exception as exc:
            return self._failed(exc)
        return CheckResult(Status.CORRECT, self.correct_message)

    async def _check_async(self) -> CheckResult:
        answers = self._answers()
        if isinstance(answers, CheckResult):
            return answers
        try:
            await maybe_await(self._check(*answers))
        except Exception as exc:
            return self._failed(exc)
        return CheckResult(Status.CORRECT, self.correct_message)

    def hint(self, level: int = 1) -> Hint:
        """Hint ``level`` (1 = vaguest); past the last level, the last hint again, saying so."""
        total = len(self.hints)
        shown = min(max(level, 1), total)
        return Hint(self.hints[shown - 1], shown, total, asked=level)

    def solution(self) -> Solution:
        return Solution(textwrap.dedent(self.solution_code).strip("\n"))

    # -- for checkers -------------------------------------------------------------------------------

    def _check(self, *answers: Any) -> Awaitable[None] | None:
        raise NotImplementedError

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Call a learner's function; turn whatever it does wrong into an ``Incorrect`` reason."""
        name, call = self._name_of(fn), self.describe(fn, *args)
        try:
            result = fn(*args)
        except NotImplementedError as exc:
            raise NotAttempted(self._not_attempted_message(name)) from exc
        except Exception as exc:
            raise Incorrect(f"`{call}` raised {type(exc).__name__}: {exc}") from exc
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()  # not awaited on purpose; closing it avoids a "never awaited" warning
            raise Incorrect(f"`{name}` is an `async def` function; this exercise expects a plain `def`.")
        return result

    async def call_async(self, fn: Callable[..., T | Awaitable[T]], *args: Any) -> T:
        """Like :meth:`call`, awaiting the result if the learner wrote ``async def``."""
        name, call = self._name_of(fn), self.describe(fn, *args)
        deadline = asyncio.timeout(self.call_timeout)
        try:
            async with deadline:
                return await maybe_await(fn(*args))
        except NotImplementedError as exc:
            raise NotAttempted(self._not_attempted_message(name)) from exc
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline.expired():
                raise Incorrect(f"`{call}` did not finish within {self.call_timeout:g} s.") from exc
            raise Incorrect(f"`{call}` raised {type(exc).__name__}: {exc}") from exc

    def describe(self, fn: object, *args: object) -> str:
        """A call as messages show it: the learner's global name and short argument reprs.

        Raises ``Incorrect`` if ``fn`` is not callable, since every later message would be nonsense.
        """
        name = self._name_of(fn)
        if not callable(fn):
            raise Incorrect(f"`{name}` should be a function, but it is {article(type(fn).__name__)}.")
        return f"{name}({', '.join(_short_repr(arg) for arg in args)})"

    # -- for CI -------------------------------------------------------------------------------------

    @classmethod
    def check_source(cls, source: str) -> CheckResult | Awaitable[CheckResult]:
        """Exec ``source`` in a fresh namespace, as a learner's cell would run, and check it."""
        namespace: dict[str, Any] = {"__name__": "__main__"}
        exec(compile(textwrap.dedent(source), f"<{cls.__name__} answer>", "exec"), namespace)
        return cls(namespace).check()

    def assert_solution_passes(self) -> Awaitable[None] | None:
        """Assert the stored solution checks CORRECT (``await`` it for an async exercise)."""
        if self.is_async:
            return self._solution_passes_async()
        self._expect_correct(self.check_source(self.solution_code))
        return None

    def assert_wrong_answers_rejected(self) -> Awaitable[None] | None:
        """Assert each known wrong answer checks INCORRECT with its reason (``await`` it if async)."""
        if self.is_async:
            return self._wrong_answers_rejected_async()
        for wrong in self.wrong_answers:
            self._expect_rejected(wrong, self.check_source(wrong.source))
        return None

    async def _solution_passes_async(self) -> None:
        self._expect_correct(await maybe_await(self.check_source(self.solution_code)))

    async def _wrong_answers_rejected_async(self) -> None:
        for wrong in self.wrong_answers:
            self._expect_rejected(wrong, await maybe_await(self.check_source(wrong.source)))

    def _expect_correct(self, result: object) -> None:
        assert isinstance(result, CheckResult) and result.status is Status.CORRECT, (
            f"{type(self).__name__}: the solution gave {result!r}"
        )

    def _expect_rejected(self, wrong: WrongAnswer, result: object) -> None:
        assert isinstance(result, CheckResult), f"{type(self).__name__}: check() gave {result!r}"
        assert result.status is Status.INCORRECT and wrong.reason in result.message, (
            f"{type(self).__name__}, wrong answer {wrong.mistake!r}: expected Incorrect mentioning "
            f"{wrong.reason!r}, got {result!r}"
        )

    # -- internals ----------------------------------------------------------------------------------

    def _answers(self) -> tuple[Any, ...] | CheckResult:
        missing = [name for name in self.reads if name not in self._namespace]
        if len(missing) == len(self.reads):
            names = " and ".join(f"`{name}`" for name in missing)
            return CheckResult(
                Status.NOT_ATTEMPTED, f"Define {names} in a cell above, run it, then check again."
            )
        if missing:
            names = ", ".join(f"`{name}`" for name in missing)
            return CheckResult(Status.INCORRECT, f"You still need to define {names}.")
        answers = tuple(self._namespace[name] for name in self.reads)
        for name, value in zip(self.reads, answers, strict=True):
            if _is_placeholder(value):
                return CheckResult(Status.NOT_ATTEMPTED, self._not_attempted_message(name))
        return answers

    @staticmethod
    def _not_attempted_message(name: str) -> str:
        return (
            f"`{name}` is still the placeholder: replace the `...` with your code, run the cell, "
            "then check again."
        )

    @staticmethod
    def _failed(exc: Exception) -> CheckResult:
        if isinstance(exc, NotAttempted):
            return CheckResult(Status.NOT_ATTEMPTED, str(exc))
        if isinstance(exc, Incorrect):
            return CheckResult(Status.INCORRECT, str(exc))
        # Learner code reached without call(): still the learner's mistake, so a reason, not a traceback.
        return CheckResult(Status.INCORRECT, f"Your code raised {type(exc).__name__}: {exc}")

    def _name_of(self, value: object) -> str:
        """The global name the learner used, even for a lambda or an alias."""
        for name in self.reads:
            if self._namespace.get(name) is value:
                return name
        return getattr(value, "__name__", "your function")


@dataclass(frozen=True)
class Chapter:
    """A notebook's exercises, in the order ``q1``, ``q2``, … that ``bind()`` exposes."""

    id: str
    notebook: str
    exercises: tuple[type[Exercise], ...] = ()
