"""F08: a handler that calls blocking code, so every other client of the process waits.

This is the handler a first draft writes when a message needs a synchronous library: ``requests.get``,
a ``psycopg2`` query, ``time.sleep`` for a retry, a CPU-heavy loop. It is an ``async def``, so it looks
concurrent, but while the blocking call runs the event loop runs nothing else: no other handler, no
ping or pong (F04), no accept. An unrelated client's echo waits as long as the blocking call.

The fix differs in one line: the same blocking call goes through ``await asyncio.to_thread(...)``, so it
runs in a worker thread and the loop keeps serving everyone else. (CPU-bound work needs a process pool
or a worker queue instead: a thread does not get around the GIL.)

Both endpoints answer ``"lookup"`` with the result of :func:`slow_lookup` and echo anything else. The
lookup's duration is ``app.state.lookup_seconds``. Serve the broken app with ``lab.serve(...,
in_thread=True)``: on the notebook kernel's own loop it would freeze the notebook too.
"""

from __future__ import annotations

import asyncio
import time

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

__all__ = ["blocking_endpoint", "create_app", "offloaded_endpoint", "slow_lookup"]


def slow_lookup(seconds: float) -> str:
    """Stand-in for a synchronous database or HTTP call: it holds its thread for ``seconds``."""
    time.sleep(seconds)
    return "lookup result"


async def blocking_endpoint(websocket: WebSocket) -> None:
    """The broken handler: the synchronous call runs on the event loop itself."""
    seconds = websocket.app.state.lookup_seconds
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            if text == "lookup":
                result = slow_lookup(seconds)
                await websocket.send_text(result)
            else:
                await websocket.send_text(text)
    except WebSocketDisconnect:
        pass


async def offloaded_endpoint(websocket: WebSocket) -> None:
    """The fix: the same call in a worker thread, awaited, so the loop stays free."""
    seconds = websocket.app.state.lookup_seconds
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            if text == "lookup":
                result = await asyncio.to_thread(slow_lookup, seconds)
                await websocket.send_text(result)
            else:
                await websocket.send_text(text)
    except WebSocketDisconnect:
        pass


def create_app(lookup_seconds: float, *, offload: bool = False) -> Starlette:
    """``/ws``: echo, and ``"lookup"`` answered after ``lookup_seconds`` (blocking, or offloaded)."""
    endpoint = offloaded_endpoint if offload else blocking_endpoint
    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    app.state.lookup_seconds = lookup_seconds
    return app
