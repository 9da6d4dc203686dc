"""F06/F07, the slow consumer: write the broadcast that never waits, with a bound and an eviction.

The learner writes ``broadcast(room, message)``: ``room`` maps each member's name to its bounded outbox (an
``asyncio.Queue``), drained by that member's own sender task; the function queues ``message`` for every
member without waiting and returns the names of members whose outbox is full, whom the server then
evicts (closes with ``4009 SLOW_CONSUMER``). The checker runs the notebook's trigger on it: a raw peer
that stops reading (a small receive window, a small server send buffer), alice speaking, bob listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer, article
from wslab.exercises._live import Guarded, scenario, until
from wslab.wire import CloseCode, HandshakeRequest

QUEUE = 8
"""Messages each member's outbox holds."""
MESSAGES = 60
WAIT = 1.0
"""Seconds a message may take to reach bob before the room counts as frozen."""
BURST = 4
"""Messages alice sends back to back: fewer than ``QUEUE``, so a reader that keeps up never fills it."""
SHOWN = "broadcast(room, message)"
EVICTED_BOB = (
    "bob keeps reading, and a burst of a few messages is a backlog his sender clears in a moment. Evict only "
    "a member whose outbox is full."
)


class _SmallSendBuffer(WebSocketsSansIOProtocol):
    """uvicorn's protocol with a 64 KiB send buffer, a real path's size (loopback's is megabytes)."""

    def connection_made(self, transport: Any) -> None:
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        super().connection_made(transport)


async def _stalled_peer(port: int, path: str) -> socket.socket:
    """A raw client with a 4 KiB receive window that completes the handshake and never reads again."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: it sets the window
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, HandshakeRequest(path, f"127.0.0.1:{port}").serialize())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)  # byte by byte: leave every frame unread
    return sock


def _room_app(guard: Guarded) -> Starlette:
    """``/ws/{name}``: one room; text from a member goes through the learner's ``broadcast``."""
    room: dict[str, asyncio.Queue[str]] = {}
    evicted: dict[str, asyncio.Event] = {}
    state: dict[str, Any] = {"evictions": []}

    async def send_loop(websocket: WebSocket, outbox: asyncio.Queue[str]) -> None:
        while True:
            await websocket.send_text(await outbox.get())

    async def read_loop(websocket: WebSocket, name: str) -> None:
        while True:
            text = await websocket.receive_text()
            names = guard(room, json.dumps({"from": name, "text": text}))
            if asyncio.iscoroutine(names) or isinstance(names, asyncio.Future):
                names = await names
            if not isinstance(names, list | tuple | set):
                shown = "None" if names is None else article(type(names).__name__)
                guard.fail(f"`{SHOWN}` returned {shown}; it should return a list of names to evict.")
                return
            for gone in names:
                state["evictions"].append(gone)
                if gone in evicted:
                    evicted[gone].set()

    async def chat(websocket: WebSocket) -> None:
        name = websocket.path_params["name"]
        await websocket.accept()
        outbox: asyncio.Queue[str] = asyncio.Queue(QUEUE)
        room[name], evicted[name] = outbox, asyncio.Event()
        tasks = [
            asyncio.create_task(send_loop(websocket, outbox)),
            asyncio.create_task(read_loop(websocket, name)),
            asyncio.create_task(evicted[name].wait()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            room.pop(name, None)
            if evicted[name].is_set():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(websocket.close(CloseCode.SLOW_CONSUMER), 0.5)

    app = Starlette(routes=[WebSocketRoute("/ws/{name}", chat)])
    app.state.room, app.state.evictions = room, state["evictions"]
    return app


class Broadcast(Exercise):
    """q1: queue for everyone, wait for no one, evict the member who cannot keep up."""

    name = "A broadcast that never waits"
    reads = ("broadcast",)
    placeholder = """
import asyncio


def broadcast(room: dict, message: str) -> list:
    ...  # your code here
"""
    hints = (
        "Each member's sender task writes to its own socket; the broadcast only puts the message in each "
        "outbox. Anything that waits here (a socket, a full queue) makes everyone wait for the slowest.",
        "`queue.put_nowait(message)` never waits: it raises `asyncio.QueueFull` when the bound is reached. "
        "`await queue.put(message)` waits for room in the queue, which is the freeze again.",
        "Catch `asyncio.QueueFull` per member, note that member's name, and carry on with the others; "
        "return the names at the end. A full outbox means the member is not reading: evict, do not drop.",
    )
    solution_code = """
import asyncio


def broadcast(room: dict, message: str) -> list:
    full = []
    for name, outbox in room.items():
        try:
            outbox.put_nowait(message)
        except asyncio.QueueFull:
            full.append(name)
    return full
"""
    wrong_answers = (
        WrongAnswer(
            "waits for room in every queue",
            """
async def broadcast(room, message):
    for outbox in list(room.values()):
        await outbox.put(message)
    return []
""",
            "the room froze",
        ),
        WrongAnswer(
            "drops the message for a full queue, silently",
            """
import asyncio
def broadcast(room, message):
    for outbox in room.values():
        try:
            outbox.put_nowait(message)
        except asyncio.QueueFull:
            pass
    return []
""",
            "was never evicted",
        ),
        WrongAnswer(
            "stops at the first full queue",
            """
import asyncio
def broadcast(room, message):
    for name, outbox in room.items():
        try:
            outbox.put_nowait(message)
        except asyncio.QueueFull:
            return [name]
    return []
""",
            "one full outbox must not stop the message",
        ),
        WrongAnswer(
            "evicts anyone with a backlog",
            """
def broadcast(room, message):
    behind = [name for name, outbox in room.items() if outbox.qsize() > 1]
    for name, outbox in room.items():
        if name not in behind:
            outbox.put_nowait(message)
    return behind
""",
            "the server evicted him",
        ),
    )
    secrets = ("        except asyncio.QueueFull:\n            full.append(name)",)
    correct_message = (
        f"`broadcast` never waits: bob received all {MESSAGES} messages, each within {WAIT:g} s, while "
        f"another member stopped reading; that member was evicted once its outbox ({QUEUE} messages) was "
        "full, and bob, who kept reading, never was."
    )
    call_timeout = 30.0

    async def _check(self, broadcast: Callable[..., Any]) -> None:
        from wslab.lab import Lab

        guard = Guarded(self, broadcast, SHOWN)
        app = _room_app(guard)
        async with Lab() as lab:
            server = await lab.serve(app, name="f06-check", ws=_SmallSendBuffer)
            alice = await lab.connect(server.ws_url("/ws/alice"), name="alice")
            stalled = await _stalled_peer(server.port, "/ws/stalled")
            try:
                bob = await lab.connect(server.ws_url("/ws/bob"), name="bob")
                await until(lambda: list(app.state.room) == ["alice", "stalled", "bob"], WAIT)
                async with scenario("a member stops reading while alice talks to bob", 25, [guard]):
                    for first in range(0, MESSAGES, BURST):
                        texts = [
                            f"{i:03d} " + os.urandom(16 * 1024).hex() for i in range(first, first + BURST)
                        ]
                        for text in texts:  # a burst, as a chat has: random, so nothing compresses it
                            await alice.send(text)
                        for i, text in enumerate(texts, start=first):
                            if not await self._bob_hears(bob, text):
                                raise Incorrect(self._missed(i, app.state.evictions))
                    if "bob" in app.state.evictions or "alice" in app.state.evictions:
                        raise Incorrect(f"the server evicted {app.state.evictions}: {EVICTED_BOB}")
                    if "stalled" not in app.state.evictions:
                        raise Incorrect(
                            f"bob received all {MESSAGES} messages, but the member who stopped reading was "
                            "never evicted: its outbox stayed full and it silently missed most messages. "
                            "Return its name, so the server closes it (4009) and it can reconnect."
                        )
            finally:
                stalled.close()

    @staticmethod
    def _missed(i: int, evictions: list[str]) -> str:
        if "bob" in evictions:
            return f"bob received {i} of {MESSAGES} messages, then the server evicted him: {EVICTED_BOB}"
        if evictions:
            return (
                f"bob received {i} of {MESSAGES} messages; message {i + 1} never reached him, although the "
                f"member who stopped reading was evicted ({evictions}): one full outbox must not stop the "
                "message for the members after it."
            )
        return (
            f"bob received {i} of {MESSAGES} messages, then message {i + 1} did not reach him within "
            f"{WAIT:g} s: the room froze behind the member who stopped reading."
        )

    @staticmethod
    async def _bob_hears(bob: Any, text: str) -> bool:
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(WAIT):
                while True:
                    if json.loads(await bob.recv(WAIT))["text"] == text:
                        return True
        return False


CHAPTER = Chapter("F06", "F06_slow_consumer", (Broadcast,))
