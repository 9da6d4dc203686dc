"""Draining before a deploy: tell every client when to come back, each at its own time (F19, F17).

When a server stops, uvicorn closes every WebSocket with 1012 (service restart) in the same instant, and
every client starts its backoff in that instant too. Even with full jitter the crowd comes back within
the first backoff step, which is short on purpose (a user should not wait long after a blip). The
server, though, knows more than the clients: that a deploy is under way, how long a restart takes, how
many clients it has and how fast a new process can take them. So before stopping it *drains*: it closes
each socket itself, with 1012 and a close reason ``"drain:retry_in=3.2"`` that is different for each
client (``after`` plus a random share of ``spread``), and then stops with nothing left to wait for.

Two halves, both small:

* :class:`DrainMiddleware` wraps any ASGI app, keeps the ``send`` of every accepted WebSocket, and
  :meth:`~DrainMiddleware.drain` closes them all with a hint each. After the drain it refuses the app's
  further sends with ``OSError`` (what a closed socket raises; Starlette turns it into
  ``WebSocketDisconnect``), so a handler that was mid-send ends as if the peer had gone.
* The client side: :func:`parse_retry_hint` reads the reason; :class:`HintedBackoff` wraps a backoff
  policy and returns the hint once instead of the policy's next delay; :class:`DrainAwareClient` is a
  :class:`~wslab.clients.ReconnectingClient` that feeds the close reason of each connection to it. (The
  client hooks into ``_serve`` because ``ReconnectingClient`` has no public way yet to see close reasons;
  a ``retry_hint`` parameter there would make this subclass unnecessary.)

The hint is a close *reason*, so it reaches every client that can read one, browsers included
(``CloseEvent.reason``); clients that ignore it fall back to their own backoff, which is what they did
anyway. Times are real seconds: the server does not know about the lab's time scale.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from websockets.asyncio.client import ClientConnection

from wslab.backoff import Backoff, FullJitterBackoff
from wslab.clients import ReconnectingClient
from wslab.wire import CloseCode

__all__ = [
    "HINT_PREFIX",
    "DrainAwareClient",
    "DrainMiddleware",
    "HintedBackoff",
    "format_retry_hint",
    "parse_retry_hint",
]

HINT_PREFIX = "drain:retry_in="
"""Close reasons that start with this carry the seconds a client should wait before reconnecting."""

_HINT = re.compile(re.escape(HINT_PREFIX) + r"(\d+(?:\.\d+)?)$")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def format_retry_hint(seconds: float) -> str:
    """The close reason asking a client to come back in ``seconds`` (``"drain:retry_in=3.200"``)."""
    if seconds < 0:
        raise ValueError("a retry hint cannot be negative")
    return f"{HINT_PREFIX}{seconds:.3f}"


def parse_retry_hint(reason: str | None) -> float | None:
    """The seconds in a drain close reason, or None for any other reason (never raises)."""
    match = _HINT.match(reason or "")
    return float(match.group(1)) if match else None


class DrainMiddleware:
    """ASGI middleware: remembers open WebSockets; :meth:`drain` closes them with a retry hint each.

    ``rng`` makes the hints reproducible (one seeded ``random.Random``); ``report(kind, message)``
    receives one ``drained`` report per drain, never a print.
    """

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        *,
        rng: random.Random | None = None,
        report: Callable[[str, str], None] | None = None,
    ) -> None:
        self.app = app
        self.rng = rng if rng is not None else random.Random()
        self.report = report
        self._open: dict[int, Send] = {}  # connection number -> the server's send for it
        self._drained: set[int] = set()
        self._numbers = iter(range(1, 1 << 62))

    @property
    def open_sockets(self) -> int:
        """Accepted WebSockets not closed yet (by either side)."""
        return len(self._open)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        number = next(self._numbers)

        async def tracked_send(message: Message) -> None:
            if number in self._drained:
                raise OSError("the server drained this connection")  # as a closed socket would
            await send(message)
            if message["type"] == "websocket.accept":
                self._open[number] = send
            elif message["type"] == "websocket.close":
                self._open.pop(number, None)

        async def tracked_receive() -> Message:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self._open.pop(number, None)
            return message

        try:
            await self.app(scope, tracked_receive, tracked_send)
        finally:
            self._open.pop(number, None)
            self._drained.discard(number)

    async def drain(self, after: float, spread: float, code: int = CloseCode.SERVICE_RESTART) -> list[float]:
        """Close every open WebSocket with ``code`` and the hint ``after + uniform(0, spread)`` seconds.

        ``after`` is at least the time the restart takes (nobody should come back to a closed port),
        ``spread`` how long the new server may take to see everyone back (clients ÷ accepts it can take
        per second). Returns the hints given, in the order the sockets were accepted.
        """
        hints = []
        for number, send in list(self._open.items()):
            hint = round(after + self.rng.uniform(0, spread), 3)  # what the reason can carry
            self._drained.add(number)
            del self._open[number]
            try:
                await send({"type": "websocket.close", "code": int(code), "reason": format_retry_hint(hint)})
            except (OSError, RuntimeError):  # closed meanwhile: nothing to tell it
                continue
            hints.append(hint)
        if self.report is not None:
            self.report(
                "drained", f"{len(hints)} sockets told to come back in {after:g}–{after + spread:g} s"
            )
        return hints


class HintedBackoff:
    """A backoff policy that returns a server's hint, once, instead of ``fallback``'s next delay."""

    def __init__(self, fallback: Backoff | None = None) -> None:
        self.fallback: Backoff = fallback if fallback is not None else FullJitterBackoff()
        self.hint: float | None = None
        self.used: list[float] = []  # hints honoured so far

    def delay(self, attempt: int) -> float:
        if self.hint is not None:
            hint, self.hint = self.hint, None
            self.used.append(hint)
            return hint
        return self.fallback.delay(attempt)


class DrainAwareClient(ReconnectingClient):
    """A :class:`~wslab.clients.ReconnectingClient` that honours ``drain:retry_in=`` close reasons.

    Its ``policy`` is wrapped in a :class:`HintedBackoff` (``client.policy.used`` lists the hints it
    followed); everything else (close-code decisions, auth, heartbeat) is the parent's.
    """

    def __init__(self, url: str, name: str, events: Any, *, policy: Backoff | None = None, **options: Any):
        super().__init__(url, name, events, policy=HintedBackoff(policy), **options)

    async def _serve(self, ws: ClientConnection) -> int:
        code = await super()._serve(ws)
        received = ws.protocol.close_rcvd
        hint = parse_retry_hint(received.reason if received is not None else None)
        if hint is not None and isinstance(self.policy, HintedBackoff):
            self.policy.hint = hint
            self.events.record(self.source, "hint", f"server asked to come back in {hint:g} s", hint=hint)
        return code
