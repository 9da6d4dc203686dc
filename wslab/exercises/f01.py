"""F01, dead sockets: write the room membership that no way out of a handler can leak.

The learner writes ``joined(room, websocket)``, a context manager the handler holds for the connection's
whole life. The checker serves a small room chat that uses it and ends bob's handler each way the
notebook showed: a clean close, a crash on a binary frame, and a cancellation (the server's idle
timeout). After each, the room must no longer list bob; while he is in, alice must hear him.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer, article
from wslab.exercises._live import Guarded, scenario, until

IDLE = 0.2
"""Seconds the checker's server lets a member of the ``quiet`` room stay silent before cancelling him."""
WAIT = 2.0
"""How long the room may take to reflect a change (generous: the machine may be busy)."""
SHOWN = "joined(room, websocket)"


def _room_app(guard: Guarded) -> Starlette:
    """``/ws/{room}/{name}``: text is relayed as ``"<name>: <text>"``; ``quiet`` has an idle timeout."""
    rooms: dict[str, list[WebSocket]] = {}

    async def chat(websocket: WebSocket) -> None:
        room_name, name = websocket.path_params["room"], websocket.path_params["name"]
        room = rooms.setdefault(room_name, [])
        await websocket.accept()
        manager = guard(room, websocket)
        if not (hasattr(manager, "__enter__") and hasattr(manager, "__exit__")):
            if asyncio.iscoroutine(manager):
                manager.close()
            returned = "None" if manager is None else article(type(manager).__name__)
            guard.fail(
                f"`{SHOWN}` returned {returned}, which `with` cannot enter: "
                "decorate a generator function with `@contextlib.contextmanager`, and `yield` once."
            )
            await websocket.close(1011)
            return
        idle = IDLE if room_name == "quiet" else 30.0
        async with asyncio.timeout(idle) as deadline:
            with manager:
                while True:
                    text = await websocket.receive_text()  # KeyError on a binary frame: the crash
                    deadline.reschedule(asyncio.get_running_loop().time() + idle)
                    for peer in list(room):
                        if peer is not websocket:
                            with contextlib.suppress(Exception):
                                await peer.send_text(f"{name}: {text}")

    app = Starlette(routes=[WebSocketRoute("/ws/{room}/{name}", chat)])
    app.state.rooms = rooms
    return app


def _names(app: Starlette, room: str) -> list[str]:
    return sorted(ws.path_params["name"] for ws in app.state.rooms.get(room, []))


class Joined(Exercise):
    """q1: membership that every way out of the handler ends."""

    name = "Membership that cannot leak"
    reads = ("joined",)
    placeholder = """
from contextlib import contextmanager


def joined(room: list, websocket):
    ...  # your code here
"""
    hints = (
        "The handler runs `with joined(room, websocket): ...` for the connection's whole life. Add the "
        "socket on the way in; take it out on *every* way out, not only on `WebSocketDisconnect`.",
        "Write a generator decorated with `@contextmanager`: the code before `yield` runs on entry, and "
        "`try: yield` followed by a `finally:` block runs on the way out, whatever ended the block.",
        "A cancelled handler sees `asyncio.CancelledError`, which is a `BaseException`, not an `Exception`: "
        "`except Exception` misses it, `finally` does not.",
    )
    solution_code = """
from contextlib import contextmanager


@contextmanager
def joined(room: list, websocket):
    room.append(websocket)
    try:
        yield
    finally:
        room.remove(websocket)
"""
    wrong_answers = (
        WrongAnswer(
            "leaves only on WebSocketDisconnect (the docs' endpoint)",
            """
from contextlib import contextmanager
from starlette.websockets import WebSocketDisconnect
@contextmanager
def joined(room, websocket):
    room.append(websocket)
    try:
        yield
    except WebSocketDisconnect:
        room.remove(websocket)
        raise
""",
            "“bob's handler crashes on a binary frame”",
        ),
        WrongAnswer(
            "cleanup after the yield, without try/finally",
            """
from contextlib import contextmanager
@contextmanager
def joined(room, websocket):
    room.append(websocket)
    yield
    room.remove(websocket)
""",
            "“bob closes cleanly”",
        ),
        WrongAnswer(
            "except Exception (misses the cancellation)",
            """
from contextlib import contextmanager
@contextmanager
def joined(room, websocket):
    room.append(websocket)
    try:
        yield
    except Exception:
        room.remove(websocket)
        raise
    room.remove(websocket)
""",
            "“an idle timeout cancels bob's handler”",
        ),
        WrongAnswer(
            "a plain function, not a context manager",
            """
def joined(room, websocket):
    room.append(websocket)
""",
            "which `with` cannot enter",
        ),
        WrongAnswer(
            "never joins the room",
            """
from contextlib import contextmanager
@contextmanager
def joined(room, websocket):
    yield
""",
            "“alice and bob join; bob says hi”",
        ),
    )
    secrets = ("    try:\n        yield\n    finally:\n        room.remove(websocket)",)
    correct_message = (
        "`joined` keeps a connection in its room exactly while its handler runs: alice heard bob while he "
        "was in, and bob left the room when he closed cleanly, when his handler crashed on a binary frame, "
        "and when an idle timeout cancelled it."
    )
    call_timeout = 10.0

    async def _check(self, joined: Callable[..., Any]) -> None:
        from wslab.lab import Lab

        guard = Guarded(self, joined, SHOWN)
        app = _room_app(guard)
        async with Lab() as lab:
            server = await lab.serve(app, name="f01-check")

            async def member(room: str, name: str) -> Any:
                return await lab.connect(server.ws_url(f"/ws/{room}/{name}"), name=f"{name}@{room}")

            async with scenario("alice and bob join; bob says hi", 5, [guard]):
                alice, bob = await member("lobby", "alice"), await member("lobby", "bob")
                if not await until(lambda: _names(app, "lobby") == ["alice", "bob"], WAIT):
                    raise Incorrect(
                        f"both are connected, but the room lists {_names(app, 'lobby')}: `joined` must add "
                        "the connection to `room` on the way in."
                    )
                await bob.send("hi")
                heard = await alice.recv(WAIT)
                if heard != "bob: hi":
                    raise Incorrect(f"alice received {heard!r} instead of 'bob: hi'.")
            async with scenario("bob closes cleanly", 5, [guard]):
                await bob.close()
                await self._left(app, "lobby", ["alice"], f"bob closed his connection ({bob.closed_as})")
            async with scenario("bob's handler crashes on a binary frame", 5, [guard]):
                await member("crash", "alice")
                bob = await member("crash", "bob")
                await until(lambda: len(_names(app, "crash")) == 2, WAIT)
                await bob.send(b"\x01\x02")
                closed = await bob.wait_closed(WAIT)
                await self._left(
                    app,
                    "crash",
                    ["alice"],
                    f"`receive_text()` raised on bob's binary frame and his handler ended (bob saw {closed})",
                )
            async with scenario("an idle timeout cancels bob's handler", 5, [guard]):
                bob = await member("quiet", "bob")
                closed = await bob.wait_closed(IDLE + WAIT)
                await self._left(
                    app,
                    "quiet",
                    [],
                    f"bob said nothing for {IDLE:g} s and the server's idle timeout cancelled his handler "
                    f"(bob saw {closed})",
                    " A cancellation arrives as `asyncio.CancelledError`, a `BaseException`.",
                )

    @staticmethod
    async def _left(app: Starlette, room: str, expected: list[str], what: str, coda: str = "") -> None:
        if not await until(lambda: _names(app, room) == expected, WAIT):
            raise Incorrect(f"{what}, but the room still lists {_names(app, room)}.{coda}")


CHAPTER = Chapter("F01", "F01_dead_sockets", (Joined,))
