"""When to reconnect, and how long to wait first: backoff schedules and close-code decisions.

Pure functions and small values, no I/O, so the reconnect lessons can plot schedules and tests can pin
decisions without a socket. The Python :class:`wslab.clients.ReconnectingClient` and the browser client
(``wslab/static/reconnecting-websocket.ts``) implement the same rules.

Why jitter: after a server restart every client notices at the same instant. With a fixed or purely
exponential delay they all come back at the same instants too, and the server faces the whole crowd in
one burst, again and again (catalogue F17). "Full jitter" (a random delay between 0 and the exponential
bound) spreads them out; a random *first* delay matters most, because that is the biggest crowd.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from wslab.wire import CloseCode

__all__ = [
    "Action",
    "Backoff",
    "Decision",
    "ExponentialBackoff",
    "FixedBackoff",
    "FullJitterBackoff",
    "decide",
    "schedule",
]


class Backoff(Protocol):
    """A schedule: how long to wait before reconnect attempt ``attempt`` (0 for the first)."""

    def delay(self, attempt: int) -> float: ...


@dataclass(frozen=True)
class FixedBackoff:
    """The same delay every time: simple, and synchronised across clients (the storm's cause)."""

    seconds: float = 1.0

    def delay(self, attempt: int) -> float:
        return self.seconds


@dataclass(frozen=True)
class ExponentialBackoff:
    """``base × factor^attempt``, capped: fewer attempts against a dead server, still synchronised."""

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.base * self.factor**attempt)


@dataclass
class FullJitterBackoff:
    """A random delay in ``[0, min(cap, base × factor^attempt)]`` (the AWS architecture blog's "full
    jitter"): each client picks its own moment, so a crowd arrives spread out instead of at once."""

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.cap, self.base * self.factor**attempt))


def schedule(policy: Backoff, attempts: int) -> list[float]:
    """The first ``attempts`` delays of ``policy`` (for plots and tables)."""
    return [policy.delay(n) for n in range(attempts)]


class Action(StrEnum):
    """What a client does after a connection ends."""

    RECONNECT = "reconnect"  # after the backoff delay
    REFRESH_TOKEN = "refresh token"  # get a new token first, then reconnect
    STOP = "stop"  # reconnecting cannot help; tell the user


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    slow_down: bool = False  # the server asked for fewer attempts: skip ahead in the schedule


_STOP = {
    CloseCode.NORMAL_CLOSURE: "closed normally",
    CloseCode.UNAUTHORIZED: "not authorized: the same credentials will fail again",
    CloseCode.POLICY_VIOLATION: "policy violation: retrying would repeat it",
    CloseCode.FORBIDDEN_ORIGIN: "origin not allowed",
    CloseCode.PROTOCOL_ERROR: "protocol error: a client bug, retrying repeats it",
    CloseCode.UNSUPPORTED_DATA: "unsupported data: a client bug, retrying repeats it",
    CloseCode.MESSAGE_TOO_BIG: "message too big: a client bug, retrying repeats it",
}
_SLOW_DOWN = {
    CloseCode.TRY_AGAIN_LATER: "server overloaded: try again later",
    CloseCode.RATE_LIMITED: "rate limited",
}


def decide(code: int | None) -> Decision:
    """What to do after a close with ``code`` (None: the connection could not be opened at all).

    Auth and policy failures never reconnect with the same credentials (a reconnect loop against a 4001
    is a self-inflicted flood, catalogue F20); an expired token asks for a new one; "try again later"
    backs off harder; anything that looks like the server or the network going away reconnects.
    """
    if code == CloseCode.TOKEN_EXPIRED:
        return Decision(Action.REFRESH_TOKEN, "token expired: get a new one, then reconnect")
    if code in _STOP:
        return Decision(Action.STOP, _STOP[CloseCode(code)])
    if code in _SLOW_DOWN:
        return Decision(Action.RECONNECT, _SLOW_DOWN[CloseCode(code)], slow_down=True)
    if code is None:
        return Decision(Action.RECONNECT, "could not connect")
    return Decision(Action.RECONNECT, f"connection lost ({CloseCode.describe(code)})")
