"""Chapter 06, scaling with Redis: the reference-counted subscribe that keeps one subscription per room.

The fix for catalogue F12 fits in two small functions. A process counts its local members per room;
the first one in makes the process SUBSCRIBE, the last one out makes it UNSUBSCRIBE, and nobody in
between touches Redis. The checker replays a script of joins and leaves across two rooms, keeps the
set of channels a Redis would have this process subscribed to, and names the first step that goes
wrong: a second SUBSCRIBE (every message delivered twice), an UNSUBSCRIBE while members remain (they
go deaf), or a subscription left behind by the last member (messages for an empty room, forever).
"""

from __future__ import annotations

from collections.abc import Callable

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer, article

SCRIPT: tuple[tuple[str, str], ...] = (
    ("join", "lobby"),
    ("join", "lobby"),
    ("join", "garden"),
    ("join", "lobby"),
    ("leave", "lobby"),
    ("leave", "garden"),
    ("leave", "lobby"),
    ("join", "garden"),
    ("leave", "lobby"),
    ("join", "lobby"),
    ("leave", "garden"),
    ("leave", "lobby"),
)
"""Joins and leaves of local members in one process: two rooms, each emptied and refilled."""


def _expected() -> list[bool]:
    """What the reference (``wslab.chat.fanout.RefCounts``) answers at each step of :data:`SCRIPT`."""
    counts: dict[str, int] = {}
    answers = []
    for action, room in SCRIPT:
        counts[room] = counts.get(room, 0) + (1 if action == "join" else -1)
        answers.append(counts[room] == (1 if action == "join" else 0))
    return answers


EXPECTED = _expected()


class RefCountedSubscribe(Exercise):
    """q1: the first local member of a room subscribes the process, the last one unsubscribes it."""

    name = "Ref-counted subscribe"
    reads = ("on_join", "on_leave")
    placeholder = """
def on_join(counts: dict[str, int], room: str) -> bool:
    ...  # one more local member in `room`: True if this process must SUBSCRIBE now


def on_leave(counts: dict[str, int], room: str) -> bool:
    ...  # one local member fewer in `room`: True if this process must UNSUBSCRIBE now
"""
    hints = (
        "Keep, per room, how many local members this process has (`counts` is yours to update). Redis "
        "only needs to hear about the changes from nobody to somebody and from somebody to nobody.",
        "`on_join` adds one to the room's count and answers True only when that count just became 1; "
        "`on_leave` takes one away and answers True only when it just reached 0. A room that is not in "
        "`counts` yet has nobody: `counts.get(room, 0)`.",
        "Each room has its own count: do not share one counter between rooms. When the count reaches 0, "
        "remove the room from `counts` (`counts.pop(room)`), so an empty room costs nothing.",
    )
    solution_code = """
def on_join(counts: dict[str, int], room: str) -> bool:
    counts[room] = counts.get(room, 0) + 1
    return counts[room] == 1


def on_leave(counts: dict[str, int], room: str) -> bool:
    counts[room] -= 1
    if counts[room] == 0:
        del counts[room]
        return True
    return False
"""
    wrong_answers = (
        WrongAnswer(
            "subscribes on every join (the F12 tutorial)",
            """
def on_join(counts, room):
    counts[room] = counts.get(room, 0) + 1
    return True

def on_leave(counts, room):
    counts[room] -= 1
    return counts[room] == 0
""",
            "already subscribed",
        ),
        WrongAnswer(
            "never unsubscribes",
            """
def on_join(counts, room):
    counts[room] = counts.get(room, 0) + 1
    return counts[room] == 1

def on_leave(counts, room):
    counts[room] -= 1
    return False
""",
            "still subscribed",
        ),
        WrongAnswer(
            "unsubscribes on every leave",
            """
def on_join(counts, room):
    counts[room] = counts.get(room, 0) + 1
    return counts[room] == 1

def on_leave(counts, room):
    counts[room] -= 1
    return True
""",
            "go deaf",
        ),
        WrongAnswer(
            "one counter shared by every room",
            """
def on_join(counts, room):
    counts["members"] = counts.get("members", 0) + 1
    return counts["members"] == 1

def on_leave(counts, room):
    counts["members"] -= 1
    return counts["members"] == 0
""",
            "its own count",
        ),
        WrongAnswer(
            "forgot to return",
            """
def on_join(counts, room):
    counts[room] = counts.get(room, 0) + 1

def on_leave(counts, room):
    counts[room] -= 1
""",
            "returned None",
        ),
        WrongAnswer(
            "keeps empty rooms in counts",
            """
def on_join(counts, room):
    counts[room] = counts.get(room, 0) + 1
    return counts[room] == 1

def on_leave(counts, room):
    counts[room] -= 1
    return counts[room] == 0
""",
            "still holds",
        ),
        WrongAnswer(
            "a set of subscribed rooms instead of counts",
            """
def on_join(counts, room):
    if room in counts:
        return False
    counts[room] = 1
    return True

def on_leave(counts, room):
    return counts.pop(room, None) is not None
""",
            "go deaf",
        ),
        WrongAnswer(
            "subscribes on odd counts",
            """
def on_join(counts, room):
    counts[room] = counts.get(room, 0) + 1
    return counts[room] % 2 == 1

def on_leave(counts, room):
    counts[room] -= 1
    if counts[room] == 0:
        del counts[room]
        return True
    return False
""",
            "already subscribed",
        ),
    )
    secrets = ("counts.get(room, 0) + 1\n    return counts[room] == 1", "del counts[room]")
    correct_message = (
        f"over {len(SCRIPT)} joins and leaves in two rooms, this process subscribed each room exactly "
        "when its first local member arrived and unsubscribed exactly when its last one left, "
        "and `counts` kept no empty room."
    )

    def _check(
        self, on_join: Callable[[dict[str, int], str], object], on_leave: Callable[..., object]
    ) -> None:
        counts: dict[str, int] = {}
        members: dict[str, int] = {}
        done: list[str] = []
        for (action, room), expected in zip(SCRIPT, EXPECTED, strict=True):
            fn = on_join if action == "join" else on_leave
            call = self.describe(fn, counts, room)
            got = self.call(fn, counts, room)
            members[room] = members.get(room, 0) + (1 if action == "join" else -1)
            done.append(f"{action} {room}")
            story = ", ".join(done)
            if not isinstance(got, bool):
                if got is None:
                    raise Incorrect(f"`{call}` returned None: did you forget `return`? (steps: {story})")
                raise Incorrect(f"`{call}` returned {article(type(got).__name__)}; answer True or False.")
            if got != expected:
                raise Incorrect(self._diagnose(call, action, room, got, members, story))
            if members[room] == 0 and room in counts:
                raise Incorrect(
                    f"After the steps {story}, nobody is left in `{room}`, yet `counts` still holds "
                    f"`{room!r}: {counts[room]!r}`: a process that has seen thousands of rooms keeps every "
                    "one of them. Remove a room from `counts` when its last member leaves."
                )

    @staticmethod
    def _diagnose(
        call: str,
        action: str,
        room: str,
        got: bool,
        members: dict[str, int],
        story: str,
    ) -> str:
        """Say what a Redis would now do wrong, in terms of the room's subscription and its members."""
        after = f"After the steps {story}"
        if action == "join" and got:
            return (
                f"{after}, `{call}` asked to SUBSCRIBE to `{room}`, but this process is already subscribed "
                "to it: with one more subscription each of its members would receive every message twice."
            )
        if action == "join":
            return (
                f"{after}, `{call}` did not ask to SUBSCRIBE, yet the process is not subscribed to "
                f"`{room}`, its first local member just arrived: its members would hear nothing. Each room "
                "needs its own count."
            )
        if got:
            return (
                f"{after}, `{call}` asked to UNSUBSCRIBE from `{room}` while {members[room]} local "
                f"member(s) are still in it: they would go deaf."
            )
        return (
            f"{after}, `{call}` did not ask to UNSUBSCRIBE, but nobody is left in `{room}`: the process "
            "is still subscribed, and Redis keeps sending it messages for an empty room."
        )


from wslab.exercises.build_ch06 import BuildBus  # noqa: E402  (the build track: two real replicas)

CHAPTER = Chapter("06", "06_scaling_with_redis", (RefCountedSubscribe, BuildBus))
