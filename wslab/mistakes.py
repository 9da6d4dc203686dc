"""Mistakes the usual WebSocket tutorial ships, re-created small enough to run (chapter 09).

Each app here is a few lines that look right and fail in one specific way; the chapter runs it, asserts
what happens, and links the lesson whose code does it right. They are written for this course, not
copied from any article, and each one keeps a :class:`SocketStats` so a cell can assert what the
*server* believed (how many sockets it thinks are open, how many pings it sent, which codes it closed with).

- :func:`close_before_accept_app`: rejecting a bad token with ``close(4001)`` before ``accept()``;
- :func:`required_query_app`: a FastAPI WebSocket route with a required query parameter;
- :func:`ping_only_heartbeat_app`: a heartbeat that pings and never checks for a reply;
- :func:`bounded`: run a blocking call with a deadline of our own (how a test avoids waiting forever);
- :func:`http_idle_closed_after` and :func:`idle_cuts`: what nginx's two idle timers apply to.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from fastapi import FastAPI
from fastapi import WebSocket as FastAPIWebSocket
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from wslab.wire import CloseCode

__all__ = [
    "HasErrorLog",
    "SocketStats",
    "bounded",
    "close_before_accept_app",
    "http_idle_closed_after",
    "idle_cuts",
    "ping_only_heartbeat_app",
    "required_query_app",
]

T = TypeVar("T")


class HasErrorLog(Protocol):
    """What :func:`idle_cuts` reads: the lab's nginx handle (``lab.nginx(...)``) has it."""

    def error_log(self) -> list[str]: ...


@dataclass
class SocketStats:
    """What a server saw: handler runs, sockets it holds open now, pings sent, codes it closed with."""

    handled: int = 0
    open: int = 0
    pings: int = 0
    closed_with: list[int] = field(default_factory=list)


async def _read_until_gone(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()


def close_before_accept_app(
    tokens: Collection[str], *, accept_first: bool = False
) -> tuple[Starlette, SocketStats]:
    """``/ws/chat?token=...`` that refuses unknown tokens with 4001 UNAUTHORIZED.

    With ``accept_first=False`` (the mistake) it closes *before* ``accept()``: there is no WebSocket yet
    to carry a close frame, so the server answers the handshake with HTTP 403 and 4001 never reaches the
    client. ``accept_first=True`` is the one-line fix: accept, then close with the code.
    (The token in the query string is a mistake of its own, chapter 03; it is kept here for brevity.)
    """
    stats = SocketStats()

    async def endpoint(websocket: WebSocket) -> None:
        stats.handled += 1
        if websocket.query_params.get("token") not in tokens:
            if accept_first:
                await websocket.accept()
            stats.closed_with.append(CloseCode.UNAUTHORIZED)
            await websocket.close(code=CloseCode.UNAUTHORIZED, reason="bad token")
            return
        await websocket.accept()
        await websocket.send_json({"type": "ready"})
        await _read_until_gone(websocket)

    return Starlette(routes=[WebSocketRoute("/ws/chat", endpoint)]), stats


def required_query_app() -> tuple[FastAPI, SocketStats]:
    """A FastAPI route ``/ws/chat`` whose handler takes ``token: str`` from the query string.

    FastAPI validates parameters before calling the handler; a missing one closes the socket with 1008
    before ``accept()``, which again becomes HTTP 403 on the wire, and the handler never runs.
    """
    stats = SocketStats()
    app = FastAPI()

    @app.websocket("/ws/chat")
    async def chat(websocket: FastAPIWebSocket, token: str) -> None:
        stats.handled += 1
        await websocket.accept()
        await websocket.send_json({"type": "ready", "token_length": len(token)})
        await _read_until_gone(websocket)

    return app, stats


def ping_only_heartbeat_app(interval: float) -> tuple[Starlette, SocketStats]:
    """``/ws`` with the heartbeat many tutorials show: ping every ``interval``, never look for a reply.

    The send is wrapped in a timeout and a timeout closes with 1001 GOING_AWAY. Neither fires for a dead
    peer: a send completes once the bytes are in the kernel's buffer, whoever is (not) at the other end.
    """
    stats = SocketStats()

    async def heartbeat(websocket: WebSocket) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.wait_for(websocket.send_json({"type": "ping"}), timeout=interval)
            except TimeoutError:
                stats.closed_with.append(CloseCode.GOING_AWAY)
                await websocket.close(code=CloseCode.GOING_AWAY)
                return
            stats.pings += 1

    async def endpoint(websocket: WebSocket) -> None:
        stats.handled += 1
        await websocket.accept()
        stats.open += 1
        task = asyncio.create_task(heartbeat(websocket))
        try:
            await _read_until_gone(websocket)  # a pong arrives here, and is thrown away
        finally:
            task.cancel()
            stats.open -= 1

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)]), stats


def bounded(call: Callable[[], T], seconds: float, pool: concurrent.futures.ThreadPoolExecutor) -> T:
    """``call()`` in a worker thread; ``AssertionError`` if it has not returned after ``seconds``.

    Why a thread: Starlette's ``TestClient`` reads block and take no timeout; a deadline must come from
    outside. The blocked worker stays blocked until the session closes, so a timeout must end the test.
    """
    try:
        return pool.submit(call).result(timeout=seconds)
    except concurrent.futures.TimeoutError:
        raise AssertionError(f"nothing within {seconds:g} s") from None


async def http_idle_closed_after(port: int, path: str = "/", limit: float = 5.0) -> float | None:
    """Seconds until the server at ``port`` closes an idle HTTP/1.1 keep-alive connection, or None.

    One ``GET`` is sent and its response read; then the connection sits idle. This is the connection
    nginx's ``keepalive_timeout`` is about, and the one the chapter compares an upgraded socket with.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: lab\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        idle_since = time.monotonic()
        try:
            extra = await asyncio.wait_for(reader.read(1), limit)
        except TimeoutError:
            return None
        return time.monotonic() - idle_since if extra == b"" else None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def idle_cuts(nginx: HasErrorLog) -> list[str]:
    """nginx's error-log lines for upgraded connections it closed on a timeout (``info`` level)."""
    return [line for line in nginx.error_log() if "while proxying upgraded connection" in line]
