"""The exercise checkers: every solution passes, every known mistake is caught with its reason.

A checker that accepts a wrong answer, rejects the solution, or leaks the answer in a message fails
here rather than in front of a learner. The tiny async exercise below proves the awaitable path that
later chapters (which run the learner's handler on a live server) rely on.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import wslab.exercises as wx
from wslab.exercises import CheckResult, Exercise, Incorrect, Status, WrongAnswer, maybe_await
from wslab.exercises.build import BuildExercise
from wslab.exercises.ch01 import GUID, RFC_KEY, RFC_MASK, RFC_MASKED, AcceptFor, Unmask
from wslab.lab import _open_labs

# The build track's exercises serve the learner's module for real: tests/test_build_track.py runs them.
EXERCISES = [e for e in wx.all_exercises() if not issubclass(e, BuildExercise)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _raising(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A learner function with the placeholder's shape (def or async def) whose body blows up."""
    if inspect.iscoroutinefunction(fn):

        async def boom_async(*args: Any) -> Any:
            raise ValueError("boom from the learner")

        return boom_async

    def boom(*args: Any) -> Any:
        raise ValueError("boom from the learner")

    return boom


def _placeholder_namespace(exercise: type[Exercise]) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(exercise.placeholder, namespace)
    return namespace


def _raising_namespace(exercise: type[Exercise]) -> dict[str, Any]:
    placeholder = _placeholder_namespace(exercise)
    return {name: _raising(placeholder[name]) for name in exercise.reads}


async def _check(exercise: type[Exercise], namespace: dict[str, Any]) -> CheckResult:
    result = await maybe_await(exercise(namespace).check())
    assert isinstance(result, CheckResult)
    return result


# -- a tiny async exercise: the path later chapters use -------------------------------------------


class Double(Exercise):
    """Awaits the learner's function, whether it is ``def`` or ``async def``."""

    name = "Double it, asynchronously"
    reads = ("double",)
    placeholder = "async def double(x: int) -> int:\n    ...  # your code here\n"
    hints = ("Multiply.", "`return 2 * x`")
    solution_code = "async def double(x: int) -> int:\n    return 2 * x\n"
    wrong_answers = (WrongAnswer("adds one", "async def double(x):\n    return x + 1\n", "should be"),)
    secrets = ("42",)
    call_timeout = 0.05

    async def _check(self, double: Callable[[int], Any]) -> None:
        for x in (0, 1, 21):
            got = await self.call_async(double, x)
            if got != x * 2:
                raise Incorrect(f"`{self.describe(double, x)}` returned {got!r}, which should be larger.")


ALL = [*EXERCISES, Double]


# -- every exercise in the registry (and the async one) --------------------------------------------
#
# A live checker starts servers, clients and proxies: seconds per answer. Each answer (the solution,
# every known wrong answer, a function that raises) is checked once per exercise, the first time a test
# asks for it, and every test below asserts its own claim on that one run: the result, the message, and
# what the checks left behind.


@dataclass
class Verdicts:
    """One exercise's answers, each checked once, and what the checks left running."""

    solution: CheckResult
    wrong: list[tuple[WrongAnswer, CheckResult]]
    raising: CheckResult
    labs_left_open: int
    tasks_left: set[asyncio.Task[Any]] = field(default_factory=set)


_VERDICTS: dict[type[Exercise], Verdicts] = {}


def _leftovers() -> tuple[int, set[asyncio.Task[Any]]]:
    open_labs = sum(1 for lab in _open_labs if not lab.closed)
    tasks = {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}
    return open_labs, tasks


async def verdicts(exercise: type[Exercise]) -> Verdicts:
    """Check the exercise's solution, wrong answers and a raising answer, once per test session."""
    if exercise not in _VERDICTS:
        labs_before, tasks_before = _leftovers()
        solution = await maybe_await(exercise.check_source(exercise.solution_code))
        wrong = [(w, await maybe_await(exercise.check_source(w.source))) for w in exercise.wrong_answers]
        await asyncio.sleep(0.05)  # let closing transports finish their callbacks
        labs_after, tasks_after = _leftovers()
        raising = await _check(exercise, _raising_namespace(exercise))
        _VERDICTS[exercise] = Verdicts(
            solution, wrong, raising, labs_after - labs_before, tasks_after - tasks_before
        )
    return _VERDICTS[exercise]


@pytest.mark.anyio
@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.__name__)
async def test_solution_passes(exercise: type[Exercise]) -> None:
    result = (await verdicts(exercise)).solution
    assert isinstance(result, CheckResult) and result.status is Status.CORRECT, result


@pytest.mark.anyio
@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.__name__)
async def test_known_wrong_answers_are_rejected_with_their_reason(exercise: type[Exercise]) -> None:
    assert exercise.wrong_answers, "every exercise documents at least one typical mistake"
    for wrong, result in (await verdicts(exercise)).wrong:
        assert isinstance(result, CheckResult), result
        assert result.status is Status.INCORRECT and wrong.reason in result.message, (wrong.mistake, result)


@pytest.mark.anyio
@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.__name__)
async def test_a_check_leaves_nothing_running_pass_or_fail(exercise: type[Exercise]) -> None:
    """Servers, clients and proxies a checker starts are its own: none outlives the check."""
    found = await verdicts(exercise)
    assert found.labs_left_open == 0
    assert not found.tasks_left, found.tasks_left


@pytest.mark.anyio
async def test_the_assertion_helpers_instructors_use_pass_and_fail() -> None:
    """``assert_solution_passes``/``assert_wrong_answers_rejected``, on the tiny async exercise."""
    await maybe_await(Double({}).assert_solution_passes())
    await maybe_await(Double({}).assert_wrong_answers_rejected())

    class Lenient(Double):
        async def _check(self, double: Callable[[int], Any]) -> None:
            return None

    with pytest.raises(AssertionError, match="expected Incorrect mentioning"):
        await maybe_await(Lenient({}).assert_wrong_answers_rejected())


@pytest.mark.anyio
@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.__name__)
async def test_the_stored_placeholder_is_not_attempted(exercise: type[Exercise]) -> None:
    result = await _check(exercise, _placeholder_namespace(exercise))
    assert result.status is Status.NOT_ATTEMPTED, result
    assert f"`{exercise.reads[0]}` is still the placeholder" in result.message


@pytest.mark.anyio
@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.__name__)
async def test_a_missing_answer_is_not_attempted(exercise: type[Exercise]) -> None:
    result = await _check(exercise, {})
    assert result.status is Status.NOT_ATTEMPTED
    assert f"Define `{exercise.reads[0]}`" in result.message


@pytest.mark.anyio
@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.__name__)
async def test_a_learner_function_that_raises_is_incorrect_and_named(exercise: type[Exercise]) -> None:
    result = (await verdicts(exercise)).raising
    assert result.status is Status.INCORRECT
    assert "raised ValueError: boom from the learner" in result.message


@pytest.mark.anyio
@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.__name__)
async def test_no_message_or_hint_contains_the_expected_answer(exercise: type[Exercise]) -> None:
    assert exercise.secrets, "list the expected answers, so this test can keep them out of messages"
    found = await verdicts(exercise)
    results = [
        await _check(exercise, {}),
        await _check(exercise, _placeholder_namespace(exercise)),
        found.raising,
        *[result for _, result in found.wrong],
    ]
    texts = [text for r in results for text in (repr(r), r._repr_markdown_(), r._repr_html_())]
    texts += [repr(exercise({}).hint(level)) for level in range(1, len(exercise.hints) + 1)]
    for secret in exercise.secrets:
        leaks = [text for text in texts if secret in text]
        assert not leaks, f"{secret!r} leaked: {leaks}"


@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.__name__)
def test_hints_get_more_specific_then_stop(exercise: type[Exercise]) -> None:
    bound = exercise({})
    total = len(exercise.hints)
    for level in range(1, total):
        hint = bound.hint(level)
        assert repr(hint).startswith(f"Hint {level} of {total}: {exercise.hints[level - 1]}")
        assert f"call `hint({level + 1})`" in repr(hint)
    assert "This is the last hint" in repr(bound.hint(total))
    beyond = bound.hint(total + 3)
    assert beyond.level == total and exercise.hints[-1] in repr(beyond)
    assert "There are no more hints" in repr(beyond)
    assert bound.hint(0).level == 1


@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.__name__)
def test_solution_displays_as_a_python_code_block(exercise: type[Exercise]) -> None:
    solution = exercise({}).solution()
    assert repr(solution) == f"Solution:\n{solution.code}"
    assert f"```python\n{solution.code}\n```" in solution._repr_markdown_()
    assert '<pre><code class="language-python">' in solution._repr_html_()


# -- the async path, both kinds of learner function ------------------------------------------------


@pytest.mark.anyio
async def test_an_async_exercise_returns_an_awaitable() -> None:
    namespace: dict[str, Any] = {}
    bound = Double(namespace)
    assert Double.is_async and not AcceptFor.is_async
    pending = bound.check()
    assert inspect.isawaitable(pending)
    assert (await pending).status is Status.NOT_ATTEMPTED


@pytest.mark.anyio
@pytest.mark.parametrize(
    "source",
    [
        "def double(x):\n    return 2 * x\n",
        "async def double(x):\n    await asyncio.sleep(0)\n    return x * 2\n",
    ],
    ids=["def", "async def"],
)
async def test_an_async_checker_accepts_sync_and_async_answers(source: str) -> None:
    namespace: dict[str, Any] = {"asyncio": asyncio}
    exec(source, namespace)
    result = await Double(namespace).check()
    assert result and result.status is Status.CORRECT


@pytest.mark.anyio
async def test_an_async_answer_that_hangs_fails_the_check_not_the_notebook() -> None:
    namespace: dict[str, Any] = {"asyncio": asyncio}
    exec("async def double(x):\n    await asyncio.sleep(60)\n", namespace)
    result = await Double(namespace).check()
    assert result.status is Status.INCORRECT
    assert result.message == "`double(0)` did not finish within 0.05 s."


@pytest.mark.anyio
async def test_a_learner_timeout_error_is_reported_as_raised() -> None:
    namespace: dict[str, Any] = {}
    exec("async def double(x):\n    raise TimeoutError('mine')\n", namespace)
    result = await Double(namespace).check()
    assert result.message == "`double(0)` raised TimeoutError: mine"


def test_a_sync_exercise_refuses_an_async_answer_without_a_warning() -> None:
    result = AcceptFor.check_source("async def accept_for(key):\n    return key\n")
    assert isinstance(result, CheckResult) and result.status is Status.INCORRECT
    assert "`accept_for` is an `async def` function" in result.message


# -- chapter 01 specifics ---------------------------------------------------------------------------


def test_accept_for_teaches_with_the_rfc_example() -> None:
    result = AcceptFor.check_source("def accept_for(key):\n    return 'not base64!'\n")
    assert result == CheckResult(
        Status.INCORRECT,
        f"`accept_for({RFC_KEY!r})` returned a str that is not valid base64 (11 characters).",
    )
    result = AcceptFor.check_source("def accept_for(key):\n    x = key\n")
    assert "returned None: did you forget `return`?" in repr(result)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("return bytes(b ^ k[i % 4] for i, b in enumerate(p[:-1]))", "returned only 4 bytes"),
        ("return p", "returned the payload unchanged"),
        ("return list(p)", "returned a list; it should return bytes"),
        ("return bytes(b ^ k[0] for b in p)", "cycles through only 1 of the 4 key bytes"),
        ("return bytes(b ^ k[i % 4] ^ (i == 6) for i, b in enumerate(p))", "gets byte 6 of a 7-byte payload"),
    ],
)
def test_unmask_names_the_mistake(body: str, reason: str) -> None:
    result = Unmask.check_source(f"def unmask(p, k):\n    {body}\n")
    assert result.status is Status.INCORRECT and reason in result.message, result


def test_unmask_accepts_a_bytearray() -> None:
    source = """
def unmask(p, k):
    out = bytearray(p)
    for i in range(len(out)):
        out[i] ^= k[i % 4]
    return out
"""
    assert Unmask.check_source(source)


def test_checkers_agree_with_wslab_wire() -> None:
    """Two independent references (the checker's and the codec the notebooks display) must agree."""
    from wslab import wire  # part of wslab: nothing to skip to, in CI or anywhere

    namespace = {"accept_for": wire.accept_key, "unmask": wire.apply_mask}
    assert AcceptFor(namespace).check()
    assert Unmask(namespace).check()
    assert wire.apply_mask(RFC_MASKED, RFC_MASK) == b"Hello"
    assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# -- the display objects ----------------------------------------------------------------------------


def test_check_results_display_like_learntools() -> None:
    correct = CheckResult(Status.CORRECT, "")
    wrong = CheckResult(Status.INCORRECT, "`f(1)` raised <ValueError>")
    todo = CheckResult(Status.NOT_ATTEMPTED, "Define `f`.")
    assert correct and not wrong and not todo
    assert (repr(correct), repr(wrong), str(todo)) == (
        "Correct",
        "Incorrect: `f(1)` raised <ValueError>",
        "Not attempted: Define `f`.",
    )
    assert 'color:#33cc33"><strong>Correct:' in correct._repr_html_()
    assert wrong._repr_html_() == (
        '<div><span style="color:#cc3333"><strong>Incorrect:</strong></span> '
        "<code>f(1)</code> raised &lt;ValueError&gt;</div>"
    )
    assert todo._repr_markdown_() == (
        '<span style="color:#3366cc"><strong>Not attempted:</strong></span> Define `f`.'
    )


# -- binding a notebook ------------------------------------------------------------------------------


def test_bind_reads_answers_defined_after_the_setup_line() -> None:
    namespace: dict[str, Any] = {}
    ex = wx.bind("01", namespace)
    assert ex.q1.check().status is Status.NOT_ATTEMPTED
    exec(AcceptFor.placeholder, namespace)
    assert ex.q1.check().status is Status.NOT_ATTEMPTED
    exec(AcceptFor.solution_code, namespace)
    assert ex.q1.check()
    assert [type(q) for q in ex] == [AcceptFor, Unmask]


def test_bind_accepts_the_notebook_name_and_lists_its_exercises() -> None:
    ex = wx.bind("01_handshake_and_frames", {})
    assert repr(ex) == (
        "Chapter 01_handshake_and_frames: 2 exercises\n"
        "  q1  Compute Sec-WebSocket-Accept: define `accept_for`, then check(); hint(), solution()\n"
        "  q2  Unmask a client frame: define `unmask`, then check(); hint(), solution()"
    )
    with pytest.raises(AttributeError, match=r"no exercise 'q9' \(it has: q1, q2\)"):
        _ = ex.q9


def test_bind_an_unknown_chapter_lists_the_known_ones() -> None:
    assert wx.chapters()[0] == "01" and wx.chapters() == sorted(wx.chapters())
    with pytest.raises(LookupError, match=r"no exercises for chapter '99'; known chapters: ") as raised:
        wx.bind("99", {})
    assert "'01' (01_handshake_and_frames)" in str(raised.value)


# -- other right answers stay right: a stricter checker must not reject them ------------------------

ALTERNATIVES = [
    (
        "SafeBroadcast",
        """
from starlette.websockets import WebSocketDisconnect
async def safe_broadcast(connections, message):
    failed = []
    for connection in list(connections):
        try:
            await connection.send_text(message)
        except WebSocketDisconnect:
            failed.append(connection)
        except (RuntimeError, ConnectionError, OSError):
            failed.append(connection)
    return failed
""",
    ),
    (
        "OriginAllowed",
        """
def origin_allowed(origin, host, allowlist):
    return origin is not None and (origin in allowlist or origin in (f"http://{host}", f"https://{host}"))
""",
    ),
    (
        "HeartbeatSettings",
        """
def heartbeat_settings(idle_timeout, worst_latency, detect_within):
    timeout = 2 * worst_latency
    return min(idle_timeout / 3, detect_within - timeout), timeout
""",
    ),
    (
        "FullJitter",
        "def full_jitter(attempt, base, cap, rng):\n    return rng.random() * min(cap, base * 2**attempt)\n",
    ),
    (
        "FullJitter",
        """
def full_jitter(attempt, base, cap, rng):
    bound = min(cap, base * 2**attempt)
    return bound - rng.uniform(0, bound)
""",
    ),
    (
        "FullJitter",  # millisecond steps
        """
def full_jitter(attempt, base, cap, rng):
    return rng.randint(0, int(1000 * min(cap, base * 2**attempt))) / 1000
""",
    ),
    (
        "RefCountedSubscribe",
        """
def on_join(counts, room):
    first = room not in counts
    counts[room] = counts.get(room, 0) + 1
    return first

def on_leave(counts, room):
    if counts[room] == 1:
        counts.pop(room)
        return True
    counts[room] -= 1
    return False
""",
    ),
    (
        "RecvWithTimeout",
        """
import asyncio
async def recv_with_timeout(ws, timeout):
    return await asyncio.wait_for(ws.recv(), timeout=timeout)
""",
    ),
    (
        "ChooseTransport",
        """
def choose_transport(r):
    if r["client_messages_per_minute"] <= 1:
        return "sse" if r["max_delay_s"] < 60 else "polling"
    return "websocket"
""",
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "source"), ALTERNATIVES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ALTERNATIVES)]
)
async def test_other_right_answers_are_accepted(name: str, source: str) -> None:
    exercise = next(e for e in EXERCISES if e.__name__ == name)
    result = await maybe_await(exercise.check_source(source))
    assert result.status is Status.CORRECT, result
