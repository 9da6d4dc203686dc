"""Chapter 05, reconnect and backoff: write the full-jitter delay that keeps a crowd from coming back at once.

The function is one line, and each popular near miss fails in a way the chapter's storm makes visible: no
jitter (everyone synchronised), no cap (a client that waits for hours), no growth (a dead server hammered
at full speed), "equal jitter" (a crowd still arriving together at half the bound), or the global
``random`` module (a schedule nobody can reproduce). The checker draws from seeded RNGs itself and never
calls :mod:`wslab.backoff`, so the reference and the learner's code cannot share a bug.
"""

from __future__ import annotations

import numbers
import random
from collections.abc import Callable

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer, article

# (attempt, base, cap): a first attempt, one where the bound has grown, one where the cap applies.
CASES = ((0, 0.5, 30.0), (3, 0.5, 30.0), (10, 0.5, 30.0), (2, 1.0, 3.0))
DRAWS = 200


class _Shown:
    """An argument as messages show it: ``full_jitter(3, 0.5, 30.0, rng)``, not a Random's address."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


RNG = _Shown("rng")


def _bound(attempt: int, base: float, cap: float) -> float:
    return min(cap, base * 2.0**attempt)


class FullJitter(Exercise):
    """q1: the delay before reconnect attempt ``attempt``, with full jitter."""

    name = "Full-jitter backoff"
    reads = ("full_jitter",)
    placeholder = """
import random


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    ...  # your code here
"""
    hints = (
        "Full jitter picks the delay uniformly at random between 0 and the exponential bound, so that "
        "every client picks its own moment to come back.",
        "The bound is `base` doubled once per attempt (attempt 0 waits up to `base`), and never more "
        "than `cap`: compute it first, with `min()`.",
        "Draw from the `rng` you are given, not from the `random` module, so a seeded test can reproduce "
        "the schedule: `rng.uniform(low, high)` returns a float between `low` and `high`.",
    )
    solution_code = """
import random


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    return rng.uniform(0, min(cap, base * 2**attempt))
"""
    wrong_answers = (
        WrongAnswer(
            "exponential without jitter",
            """
def full_jitter(attempt, base, cap, rng):
    return min(cap, base * 2**attempt)
""",
            "no jitter",
        ),
        WrongAnswer(
            "no cap",
            """
def full_jitter(attempt, base, cap, rng):
    return rng.uniform(0, base * 2**attempt)
""",
            "exceeds the cap",
        ),
        WrongAnswer(
            "the range never grows",
            """
def full_jitter(attempt, base, cap, rng):
    return rng.uniform(0, base)
""",
            "never grows",
        ),
        WrongAnswer(
            "equal jitter (half the bound, plus a random half)",
            """
def full_jitter(attempt, base, cap, rng):
    bound = min(cap, base * 2**attempt)
    return bound / 2 + rng.uniform(0, bound / 2)
""",
            "equal jitter",
        ),
        WrongAnswer(
            "the global random module instead of rng",
            """
import random
def full_jitter(attempt, base, cap, rng):
    return random.uniform(0, min(cap, base * 2**attempt))
""",
            "does not draw from `rng`",
        ),
        WrongAnswer(
            "the cap applied before the doubling",
            """
def full_jitter(attempt, base, cap, rng):
    return rng.uniform(0, min(cap, base) * 2**attempt)
""",
            "exceeds the cap",
        ),
    )
    secrets = ("uniform(0, min(cap, base * 2**attempt))", "uniform(0, min(cap, base * 2 ** attempt))")
    correct_message = (
        f"`full_jitter` stays within [0, min(cap, base × 2^attempt)], spreads its delays over the whole "
        f"range and reproduces them from a seeded `rng` ({len(CASES)} cases, {DRAWS} draws each)."
    )

    def _check(self, full_jitter: Callable[[int, float, float, random.Random], object]) -> None:
        for seed, (attempt, base, cap) in enumerate(CASES):
            call = self.describe(full_jitter, attempt, base, cap, RNG)
            delays = self._draw(full_jitter, attempt, base, cap, seed)
            self._diagnose(call, attempt, base, cap, delays)
            if self._draw(full_jitter, attempt, base, cap, seed) != delays:
                raise Incorrect(
                    f"`{call}` does not draw from `rng`: two RNGs seeded alike gave different delays, so "
                    "no test (and no plot) can reproduce the schedule."
                )

    def _draw(
        self, fn: Callable[..., object], attempt: int, base: float, cap: float, seed: int
    ) -> list[float]:
        rng = random.Random(seed)
        delays = []
        for _ in range(DRAWS):
            got = self.call(fn, attempt, base, cap, rng)
            if got is None:
                raise Incorrect(
                    f"`{self.describe(fn, attempt, base, cap, RNG)}` returned None: did you forget `return`?"
                )
            if isinstance(got, bool) or not isinstance(got, numbers.Real):
                raise Incorrect(
                    f"`{self.describe(fn, attempt, base, cap, RNG)}` returned "
                    f"{article(type(got).__name__)}; a delay is a number of seconds."
                )
            delays.append(float(got))
        return delays

    @staticmethod
    def _diagnose(call: str, attempt: int, base: float, cap: float, delays: list[float]) -> None:
        bound = _bound(attempt, base, cap)
        low, high = min(delays), max(delays)
        if low < 0:
            raise Incorrect(f"`{call}` returned a negative delay.")
        if high > bound + 1e-9:
            if high > cap:
                raise Incorrect(
                    f"`{call}` returned a delay that exceeds the cap ({cap:g} s): after a long outage "
                    "a client would wait far longer than anyone intended."
                )
            raise Incorrect(
                f"`{call}` returned a delay above `base × 2**attempt`: attempt {attempt} may wait at most "
                "that long."
            )
        if high - low < 1e-9:
            raise Incorrect(
                f"`{call}` returned the same delay {len(delays)} times: no jitter, so every client that "
                "lost its connection at the same instant comes back at the same instant."
            )
        if low > 0.4 * bound:
            raise Incorrect(
                f"`{call}` never waits less than {low / bound:.0%} of the bound: that is equal jitter, "
                "which still sends the crowd back in one block. Full jitter ranges from 0."
            )
        if high < 0.6 * bound:
            raise Incorrect(
                f"`{call}` never waits longer than {high:.3g} s, although attempt {attempt} may wait "
                f"up to {bound:g} s: the range never grows with `attempt`."
            )


CHAPTER = Chapter("05", "05_reconnect_and_backoff", (FullJitter,))
