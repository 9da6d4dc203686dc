"""Chapter 02, chat rooms: a broadcast that one dead peer cannot break.

The learner writes the broadcast the FastAPI docs should have shown: send to every connection, let no
failure stop the others, and hand the dead connections back instead of removing them (removal is the
owning handler's job, in ``finally``). The checker runs it against fake sockets that fail the way
Starlette 1.10 on uvicorn's ``websockets-sansio`` really fails (``tests/test_pitfalls_f01_f03.py``
pins those facts): ``WebSocketDisconnect(1006)`` for a peer whose TCP connection is gone,
``WebSocketDisconnected`` (a ``RuntimeError``) once the app has closed it, ``OSError`` from lower down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer, article


class FakeSocket:
    """Stands in for a server-side WebSocket: ``send_text`` records, or raises ``failure``."""

    def __init__(self, name: str, failure: Callable[[], BaseException] | None = None) -> None:
        self.name = name
        self.failure = failure
        self.received: list[str] = []

    async def send_text(self, text: str) -> None:
        await asyncio.sleep(0)  # a real send may yield to the loop, too
        if self.failure is not None:
            raise self.failure()
        self.received.append(text)

    def __repr__(self) -> str:
        return self.name


def _gone() -> BaseException:
    return WebSocketDisconnect(1006)


def _closed_by_app() -> BaseException:
    return WebSocketDisconnected('Cannot call "send" once a close message has been sent.')


def _reset() -> BaseException:
    return ConnectionResetError(104, "Connection reset by peer")


_CASES: tuple[tuple[str, dict[str, Callable[[], BaseException]]], ...] = (
    ("everyone is healthy", {}),
    ("the app already closed bob's socket", {"bob": _closed_by_app}),
    ("bob's TCP connection is gone", {"bob": _gone}),
    ("alice's TCP connection is gone", {"alice": _gone}),
    ("bob is gone and carol's connection was reset", {"bob": _gone, "carol": _reset}),
)
"""(what happened, who fails and how); alice, bob, carol and dave are in the room, in that order."""

_WHY = {
    WebSocketDisconnect: (
        "`WebSocketDisconnect` (code 1006) escaped: that is what Starlette raises when you send to a peer "
        "whose connection is gone. It is not a `RuntimeError`."
    ),
    WebSocketDisconnected: (
        "`WebSocketDisconnected` escaped: Starlette raises it (a `RuntimeError`) when you send on a socket "
        "the app already closed."
    ),
    ConnectionResetError: "`ConnectionResetError` (an `OSError`) escaped: the transport can fail, too.",
}


class SafeBroadcast(Exercise):
    """q1: the broadcast that survives dead peers."""

    name = "Broadcast past dead peers"
    reads = ("safe_broadcast",)
    placeholder = """
async def safe_broadcast(connections: list, message: str) -> list:
    ...  # your code here
"""
    hints = (
        "Send to each connection in turn, but put each send in its own `try`, so that one failure cannot "
        "stop the loop. Collect the connections that failed and return them.",
        "Three exception types mean 'this peer is gone', depending on who noticed first: "
        "`WebSocketDisconnect` (Starlette, peer gone), `RuntimeError` (Starlette's `WebSocketDisconnected`, "
        "the app had closed it) and `OSError` (the transport). Catch all three, and only those.",
        "Do not remove anything from `connections`: you are iterating over it, and removal belongs to the "
        "handler that owns the connection (in its `finally`). Start with `failed = []`, and in the "
        "`except` clause remember the connection; `return failed` after the loop.",
    )
    solution_code = """
from starlette.websockets import WebSocketDisconnect


async def safe_broadcast(connections: list, message: str) -> list:
    failed = []
    for connection in connections:
        try:
            await connection.send_text(message)
        except (WebSocketDisconnect, RuntimeError, OSError):
            failed.append(connection)
    return failed
"""
    wrong_answers = (
        WrongAnswer(
            "no error handling at all",
            """
async def safe_broadcast(connections, message):
    for connection in connections:
        await connection.send_text(message)
    return []
""",
            "`WebSocketDisconnected` escaped",
        ),
        WrongAnswer(
            "the usual fix: catch RuntimeError only",
            """
async def safe_broadcast(connections, message):
    failed = []
    for connection in connections:
        try:
            await connection.send_text(message)
        except RuntimeError:
            failed.append(connection)
    return failed
""",
            "`WebSocketDisconnect` (code 1006) escaped",
        ),
        WrongAnswer(
            "one try around the whole loop",
            """
from starlette.websockets import WebSocketDisconnect
async def safe_broadcast(connections, message):
    try:
        for connection in connections:
            await connection.send_text(message)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return [connection]
    return []
""",
            "never received the message",
        ),
        WrongAnswer(
            "removes the dead peer while iterating",
            """
from starlette.websockets import WebSocketDisconnect
async def safe_broadcast(connections, message):
    failed = []
    for connection in connections:
        try:
            await connection.send_text(message)
        except (WebSocketDisconnect, RuntimeError, OSError):
            connections.remove(connection)
            failed.append(connection)
    return failed
""",
            "changed the list",
        ),
        WrongAnswer(
            "returns the healthy connections",
            """
from starlette.websockets import WebSocketDisconnect
async def safe_broadcast(connections, message):
    ok = []
    for connection in connections:
        try:
            await connection.send_text(message)
            ok.append(connection)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
    return ok
""",
            "should return the connections whose send failed",
        ),
    )
    secrets = ("failed.append(connection)",)
    correct_message = (
        "Every healthy peer got the message, and the dead ones came back to the caller, in order. "
        "Removing them stays the owning handler's job."
    )

    async def _check(self, safe_broadcast: Callable[..., Any]) -> None:
        for what, failures in _CASES:
            sockets = [FakeSocket(name, failures.get(name)) for name in ("alice", "bob", "carol", "dave")]
            given = list(sockets)
            message = f"hello ({what})"
            try:
                got = await self.call_async(safe_broadcast, given, message)
            except Incorrect as exc:
                why = _WHY.get(type(exc.__cause__))
                if why is None:
                    raise
                raise Incorrect(f"When {what}: {why}") from None
            self._judge(what, sockets, given, message, got)

    @staticmethod
    def _judge(what: str, sockets: list[FakeSocket], given: list[Any], message: str, got: Any) -> None:
        if given != sockets:
            raise Incorrect(
                f"When {what}: `safe_broadcast` changed the list it was given (now {given}). Removing "
                "while iterating skips the next peer, and removal is the owning handler's job."
            )
        missed = [s.name for s in sockets if s.failure is None and s.received != [message]]
        if missed:
            raise Incorrect(
                f"When {what}: {', '.join(missed)} never received the message, although healthy. "
                "One dead peer must not stop the others."
            )
        if got is None:
            raise Incorrect(f"When {what}: `safe_broadcast` returned None: did you forget `return`?")
        if not isinstance(got, list):
            raise Incorrect(
                f"When {what}: `safe_broadcast` returned {article(type(got).__name__)}; return a list."
            )
        dead = [s for s in sockets if s.failure is not None]
        if got != dead:
            raise Incorrect(
                f"When {what}: `safe_broadcast` returned {got}; it should return the connections whose send "
                f"failed, in the order they appear ({len(dead)} here)."
            )


CHAPTER = Chapter("02", "02_chat_rooms", (SafeBroadcast,))
