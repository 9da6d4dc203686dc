"""Chapter 08, WebSocket, SSE or polling: pick the transport a feature needs, from its requirements.

The learner writes ``choose_transport(requirements)`` returning ``"websocket"``, ``"sse"`` or ``"polling"``.
The checker runs it over scenarios drawn from the chapter's measurements: a two-way channel only pays when
the client talks often; a server→client feed that must be fresh is what SSE does (one connection, resume
built in); and when a minute's delay is fine, one request a minute is cheaper than any open connection.
Each popular near miss ("WebSocket for everything", "latency decides", "poll it all") fails a scenario,
and the reason says what the measurement showed, not which answer was expected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer

CHOICES = ("websocket", "sse", "polling")


@dataclass(frozen=True)
class Scenario:
    name: str
    requirements: dict[str, Any]
    expected: str
    why: str  # what the chapter measured, said without naming the expected answer


SCENARIOS = (
    Scenario(
        "chat room",
        {"client_messages_per_minute": 10, "max_delay_s": 0.5, "updates_per_minute": 30},
        "websocket",
        "the client sends often: with a one-way transport every message is a separate HTTP request, "
        "a full request and response head each time",
    ),
    Scenario(
        "live stock ticker",
        {"client_messages_per_minute": 0, "max_delay_s": 1, "updates_per_minute": 120},
        "sse",
        "the client never sends: a two-way channel buys nothing here, while one of the HTTP options streams "
        "on a single connection and resumes from Last-Event-ID by itself after a restart",
    ),
    Scenario(
        "nightly report status",
        {"client_messages_per_minute": 0, "max_delay_s": 300, "updates_per_minute": 0.01},
        "polling",
        "a five-minute delay is fine and the data barely changes: an open connection per user costs the "
        "server memory all day for a handful of updates, while one plain request every few minutes costs "
        "almost nothing and needs no sticky sessions or resume logic",
    ),
    Scenario(
        "multiplayer game",
        {"client_messages_per_minute": 600, "max_delay_s": 0.05, "updates_per_minute": 1200},
        "websocket",
        "the client sends ten messages a second: WebSocket frames cost a few bytes each, HTTP requests "
        "hundreds",
    ),
    Scenario(
        "notification bell",
        {"client_messages_per_minute": 0, "max_delay_s": 5, "updates_per_minute": 0.5},
        "sse",
        "a 5 s freshness target means polling every 5 s: 12 requests a minute per user, almost all of them "
        "empty, where a stream costs nothing until there is news",
    ),
    Scenario(
        "build badge on a dashboard",
        {"client_messages_per_minute": 0, "max_delay_s": 120, "updates_per_minute": 0.1},
        "polling",
        "two minutes of delay is fine: half a request a minute beats holding a connection open",
    ),
    # Near the two thresholds, so that a threshold anywhere in a wide gap does not pass by luck.
    Scenario(
        "shared cursor in a document editor",
        {"client_messages_per_minute": 2, "max_delay_s": 1, "updates_per_minute": 20},
        "websocket",
        "the client sends twice a minute, every minute: more than once a minute is talking, and each of "
        "those messages would be a separate HTTP request beside the stream",
    ),
    Scenario(
        "sports scores with a daily vote",
        {"client_messages_per_minute": 0.5, "max_delay_s": 10, "updates_per_minute": 6},
        "sse",
        "the client sends less than once a minute: one plain request now and then, beside a one-way "
        "stream, costs less than a two-way channel",
    ),
    Scenario(
        "a status page read once a minute",
        {"client_messages_per_minute": 1, "max_delay_s": 30, "updates_per_minute": 1},
        "sse",
        "once a minute is not more than once a minute: the client is not talking, and a 30 s freshness "
        "target needs a stream or a request every 30 s",
    ),
    Scenario(
        "weather widget",
        {"client_messages_per_minute": 0, "max_delay_s": 60, "updates_per_minute": 0.2},
        "polling",
        "a minute of delay is fine here: one request a minute meets it, without a connection held open",
    ),
    Scenario(
        "delivery tracker",
        {"client_messages_per_minute": 0, "max_delay_s": 50, "updates_per_minute": 0.5},
        "sse",
        "50 s is less than a minute: polling often enough for it costs more requests than the stream "
        "costs to hold",
    ),
)


class ChooseTransport(Exercise):
    """q1: WebSocket, SSE or polling, from a feature's requirements."""

    name = "Choose the transport"
    reads = ("choose_transport",)
    placeholder = """
def choose_transport(requirements: dict) -> str:
    # requirements: client_messages_per_minute, max_delay_s, updates_per_minute
    # return "websocket", "sse" or "polling"
    ...  # your code here
"""
    hints = (
        "Ask two questions, in order: does the client *send* often (more than about one message a minute) "
        "on this feature? And if not, how stale may the data be?",
        "A client that sends often wants the two-way channel. Otherwise, if a delay of a minute or more is "
        "acceptable, one plain request per minute is cheaper than any open connection; if not, stream.",
        "Compare `requirements['client_messages_per_minute']` with 1 first, then "
        "`requirements['max_delay_s']` with 60.",
    )
    solution_code = """
def choose_transport(requirements: dict) -> str:
    if requirements["client_messages_per_minute"] > 1:
        return "websocket"  # two-way, on one connection
    if requirements["max_delay_s"] >= 60:
        return "polling"  # a request a minute or less: cheaper than a connection held open
    return "sse"  # one-way, fresh, resumes with Last-Event-ID
"""
    wrong_answers = (
        WrongAnswer(
            "WebSocket for everything",
            """
def choose_transport(requirements):
    return "websocket"
""",
            "the client never sends",
        ),
        WrongAnswer(
            "latency alone decides",
            """
def choose_transport(requirements):
    return "websocket" if requirements["max_delay_s"] < 60 else "polling"
""",
            "a two-way channel buys nothing here",
        ),
        WrongAnswer(
            "poll everything, with a short interval",
            """
def choose_transport(requirements):
    return "polling"
""",
            "every message is a separate HTTP request",
        ),
        WrongAnswer(
            "never poll",
            """
def choose_transport(requirements):
    return "websocket" if requirements["client_messages_per_minute"] > 1 else "sse"
""",
            "a five-minute delay is fine",
        ),
        WrongAnswer(
            "capitalised names",
            """
def choose_transport(requirements):
    return "SSE"
""",
            "should be one of",
        ),
        WrongAnswer(
            "any client message means WebSocket",
            """
def choose_transport(requirements):
    if requirements["client_messages_per_minute"] > 0:
        return "websocket"
    return "polling" if requirements["max_delay_s"] >= 60 else "sse"
""",
            "the client sends less than once a minute",
        ),
        WrongAnswer(
            "WebSocket only for chatty clients (10 a minute and up)",
            """
def choose_transport(requirements):
    if requirements["client_messages_per_minute"] >= 10:
        return "websocket"
    return "polling" if requirements["max_delay_s"] >= 60 else "sse"
""",
            "the client sends twice a minute",
        ),
        WrongAnswer(
            "polling only beyond a minute",
            """
def choose_transport(requirements):
    if requirements["client_messages_per_minute"] > 1:
        return "websocket"
    return "polling" if requirements["max_delay_s"] > 60 else "sse"
""",
            "a minute of delay is fine here",
        ),
        WrongAnswer(
            "polling from 30 s up",
            """
def choose_transport(requirements):
    if requirements["client_messages_per_minute"] > 1:
        return "websocket"
    return "polling" if requirements["max_delay_s"] >= 30 else "sse"
""",
            "30 s freshness target",
        ),
        WrongAnswer(
            "update rate decides instead of delay",
            """
def choose_transport(requirements):
    if requirements["client_messages_per_minute"] > 1:
        return "websocket"
    return "polling" if requirements["updates_per_minute"] < 1 else "sse"
""",
            "a 5 s freshness target",
        ),
    )
    secrets = ('["max_delay_s"] >= 60', '["client_messages_per_minute"] > 1')
    correct_message = (
        f"`choose_transport` picks the right transport for all {len(SCENARIOS)} features, including those "
        "right at the thresholds: the two-way channel when the client talks (more than once a minute), a "
        "stream when a one-way feed must be fresher than a minute, and plain requests when a minute's "
        "delay is fine: the chapter's table."
    )

    def _check(self, choose_transport: Callable[[dict[str, Any]], Any]) -> None:
        for scenario in SCENARIOS:
            got = self.call(choose_transport, dict(scenario.requirements))
            call = f"choose_transport({scenario.requirements})"
            if got not in CHOICES:
                raise Incorrect(
                    f"`{call}` returned {got!r}; it should be one of {', '.join(map(repr, CHOICES))} "
                    "(lower case)."
                )
            if got != scenario.expected:
                raise Incorrect(f"For the {scenario.name} (`{call}`) you chose {got!r}, but {scenario.why}.")


CHAPTER = Chapter("08", "08_websocket_sse_or_polling", (ChooseTransport,))
