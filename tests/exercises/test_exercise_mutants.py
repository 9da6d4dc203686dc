"""Mutation testing of the exercise checkers: a solution changed in one small place must be rejected.

Each mutant (tests/support/mutants.py) is the solution with one comparison flipped, one constant changed, one
statement dropped, ``and`` swapped for ``or``, an ``except`` broadened, an argument ignored or doubled.
A mutant the checker accepts is either *equivalent* (it behaves like the solution on everything the
exercise asks for: listed below, each with why) or a gap in the checker, which fails this test. So a
checker that stops exercising one of its claims, or a new exercise whose checker tests less than its
success message says, is caught here. The kill rate per exercise is printed (``pytest -s``) and shown in
the failure message.
"""

from __future__ import annotations

import re

import pytest
from support.mutants import Mutant, mutants

import wslab.exercises as wx
from wslab.exercises import CheckResult, Exercise, Status, maybe_await

EQUIVALENT: dict[tuple[str, str], str] = {
    ("OriginAllowed", "drop at line 6: if origin is None: -> pass"): (
        "urlsplit(None) returns empty bytes parts, so the same-origin test refuses a missing Origin anyway"
    ),
    ("OriginAllowed", "drop at line 7: return False -> pass"): (
        "the same fall-through: urlsplit(None) has scheme b'', which is not http or https"
    ),
    ("HeartbeatSettings", "binop at line 3: 1.5 * worst_latency -> 1.5 + worst_latency"): (
        "a margin of 1.5 s instead of 50 %: still above the worst latency, so no alive client is closed; "
        "the exercise accepts any pair that keeps its three rules, and this one does"
    ),
    (
        "HeartbeatSettings",
        "argument at line 5: min(idle_timeout / 2, detect_within - timeout) -> "
        "min(detect_within - timeout, idle_timeout / 2)",
    ): "min() is symmetric",
    ("HeartbeatSettings", "binop at line 5: idle_timeout / 2 -> 2"): (
        "a ping every 2 s (or sooner when the deadline is tighter) keeps every rule: within every idle "
        "timeout, above the 1 s floor, and sooner than any deadline needs"
    ),
    ("HeartbeatSettings", "constant at line 5: 2 -> 3"): (
        "a third of the idle timeout is as valid a margin as half: more pings, all rules kept"
    ),
    ("HeartbeatSettings", "constant at line 5: 2 -> 4"): "a quarter of the idle timeout: the same",
    (
        "FullJitter",
        "argument at line 6: rng.uniform(0, min(cap, base * 2 ** attempt)) -> "
        "rng.uniform(min(cap, base * 2 ** attempt), 0)",
    ): (
        "uniform(b, 0) is b - b * random(): the same uniform distribution on [0, b], and reproducible from "
        "the seed; only the order of the values differs, which no property of full jitter depends on"
    ),
    ("FullJitter", "argument at line 6: min(cap, base * 2 ** attempt) -> min(base * 2 ** attempt, cap)"): (
        "min() is symmetric"
    ),
    ("ChooseTransport", "constant at line 5: 60 -> 59"): (
        "a threshold of 59 s differs from 60 s only for a freshness target between 59 and 60 s, which no "
        "feature states; the scenarios pin the threshold between 50 s (a stream) and 60 s (polling)"
    ),
}


async def _survivors(exercise: type[Exercise]) -> tuple[list[Mutant], list[Mutant]]:
    """(every mutant, those the checker accepted)."""
    every = list(mutants(exercise.solution_code))
    accepted = []
    for mutant in every:
        try:
            result = await maybe_await(exercise.check_source(mutant.source))
        except Exception:  # the mutant cannot even run: rejected
            continue
        assert isinstance(result, CheckResult)
        if result.status is Status.CORRECT:
            accepted.append(mutant)
    return every, accepted


def _in_process(exercise: type[Exercise]) -> bool:
    """The chapters' own exercises, whose checkers run the answer in this process in well under a second.

    The build track (``build_chNN``) and the failure lab (``fNN``) check an answer by starting real
    servers, relays and replicas: one mutant costs seconds, a solution has dozens, so mutating them would
    take longer than the rest of the suite. Their checkers are held instead by their known wrong answers,
    each rejected with its message (tests/exercises/test_build_track.py and
    tests/exercises/test_failure_exercises.py).
    """
    return re.fullmatch(r"wslab\.exercises\.ch\d\d", exercise.__module__) is not None


MUTATED = [exercise for exercise in wx.all_exercises() if _in_process(exercise)]


def test_every_chapter_module_exercise_is_mutated() -> None:
    assert len(MUTATED) >= 9 and {e.__module__ for e in MUTATED} >= {
        f"wslab.exercises.ch0{n}" for n in range(1, 9)
    }


@pytest.mark.anyio
@pytest.mark.parametrize("exercise", MUTATED, ids=lambda e: e.__name__)
async def test_every_mutant_of_the_solution_is_rejected_or_known_equivalent(exercise: type[Exercise]) -> None:
    every, accepted = await _survivors(exercise)
    assert len(every) >= 4, f"{exercise.__name__}: only {len(every)} mutants; the generator missed the code"
    killed = len(every) - len(accepted)
    print(f"{exercise.__name__}: {killed}/{len(every)} mutants killed ({killed / len(every):.0%})")
    gaps = [m.description for m in accepted if (exercise.__name__, m.description) not in EQUIVALENT]
    assert not gaps, (
        f"{exercise.__name__}: {killed}/{len(every)} mutants killed; the checker accepts these, which are "
        f"not known to be equivalent (a gap to fix, or an entry for EQUIVALENT with why): {gaps}"
    )
    listed = {d for (name, d) in EQUIVALENT if name == exercise.__name__}
    stale = listed - {m.description for m in accepted}
    assert not stale, f"{exercise.__name__}: listed as equivalent but no longer surviving: {stale}"


def test_the_generator_makes_each_kind_of_mutant() -> None:
    source = """
import asyncio
LIMIT = 3


def f(xs: list[int], timeout: float) -> list[int]:
    out = []
    for x in xs:
        try:
            if x > LIMIT and x != 7 or not x:
                out.append(min(x * 2, -x))
        except (ValueError, OSError):
            pass
    asyncio.timeout(timeout)
    return out
"""
    found = {m.description for m in mutants(source)}
    expected = {
        "compare at line 10: x > LIMIT -> x <= LIMIT",
        "compare at line 10: x > LIMIT -> x >= LIMIT",
        "boolop at line 10: x > LIMIT and x != 7 or not x -> (x > LIMIT and x != 7) and (not x)",
        "boolop at line 10: x > LIMIT and x != 7 -> x > LIMIT or x != 7",
        "constant at line 3: 3 -> 4",
        "constant at line 10: 7 -> 0",
        "drop at line 11: out.append(min(x * 2, -x)) -> pass",
        "name at line 11: min -> max",
        "binop at line 11: x * 2 -> x / 2",
        "unary at line 10: not x -> x",
        "argument at line 11: min(x * 2, -x) -> min(-x, x * 2)",
        "argument at line 14: asyncio.timeout(timeout) -> asyncio.timeout(1)",
        "argument at line 14: asyncio.timeout(timeout) -> asyncio.timeout(timeout * 2)",
        "tuple at line 12: (ValueError, OSError) -> (OSError,)",
        "except at line 12: except (ValueError, OSError): -> except BaseException:",
    }
    assert expected <= found, expected - found
    assert not any("list[int]" in d or "import" in d for d in found), "types and imports are not mutated"
