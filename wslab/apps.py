"""Small demo apps for the first chapters: an HTTP page, an echo socket, and a server that pushes.

They are deliberately tiny Starlette apps so a lesson can show the whole source next to what it does on
the wire. The reference chat application lives in :mod:`wslab.chat`; nothing here is meant for reuse.
"""

from __future__ import annotations

import asyncio
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

__all__ = ["demo_app", "echo", "hello", "ticker"]


async def hello(request: Request) -> PlainTextResponse:
    """A plain HTTP endpoint: one request, one response, and the exchange is over."""
    return PlainTextResponse("hello over HTTP\n")


async def echo(websocket: WebSocket) -> None:
    """Echo every message back with the same frame type (text stays text, binary stays binary)."""
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            elif message.get("bytes") is not None:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        return


async def ticker(websocket: WebSocket) -> None:
    """Push ``{"tick": n}`` every ``interval`` seconds while answering each message with an ack.

    Both happen on one connection at the same time: full duplex. Query parameters: ``interval``
    (seconds, default 0.01) and ``count`` (ticks to send, default 5).
    """
    interval = float(websocket.query_params.get("interval", "0.01"))
    count = int(websocket.query_params.get("count", "5"))
    await websocket.accept()

    async def push() -> None:
        for n in range(1, count + 1):
            await asyncio.sleep(interval)
            await websocket.send_text(json.dumps({"tick": n}))

    pusher = asyncio.create_task(push())
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text(json.dumps({"ack": text}))
    except WebSocketDisconnect:
        pass
    finally:
        pusher.cancel()
        await asyncio.gather(pusher, return_exceptions=True)


def demo_app() -> Starlette:
    """``GET /`` (plain HTTP), ``/ws/echo`` and ``/ws/ticker``: the servers of chapters 00 and 01."""
    return Starlette(
        routes=[
            Route("/", hello),
            WebSocketRoute("/ws/echo", echo),
            WebSocketRoute("/ws/ticker", ticker),
        ]
    )
