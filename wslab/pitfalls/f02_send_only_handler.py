"""F02: a push-only handler that never calls ``receive``, so it never learns that its peer is gone.

Dashboards, tickers and notification feeds are often written as "accept, then send forever": the client
has nothing to say, so the handler never reads. In ASGI the application learns of a disconnect only as a
``websocket.disconnect`` event from ``receive()`` (fastapi#3008). So:

* when the peer vanishes without a FIN or RST (a laptop lid, a dead NAT entry: a half-open connection),
  every ``send`` still *succeeds*: the bytes go into kernel buffers and on into the void;
* the handler keeps the user in its ``online`` set, and the operator's "connected users" gauge stays up;
* even when the server's protocol pings (uvicorn ``ws_ping_interval`` / ``ws_ping_timeout``) do close the
  dead connection with ``1011``, the handler only finds out on its next send, which for a quiet feed may
  be minutes later.

The fix, :func:`feed_with_reader`, differs in a few lines: a reader task runs next to the pushes, so a
disconnect (clean, or the server's ping timeout) ends the handler at once. Both handlers push
``{"tick": n}`` every ``app.state.push_interval`` seconds and keep ``app.state.online`` (user names).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

Report = Callable[[str, str], None]
"""``report(kind, message)``, as in :mod:`wslab.chat`: where the app says what happened. Never prints."""

__all__ = ["create_app", "feed_with_reader", "no_report", "push_ticks", "send_only_feed"]


def no_report(kind: str, message: str) -> None:
    """The default report hook: do nothing."""


async def push_ticks(websocket: WebSocket, interval: float) -> None:
    """Send ``{"tick": n}`` every ``interval`` seconds, forever."""
    n = 0
    while True:
        n += 1
        await websocket.send_text(json.dumps({"tick": n}))
        await asyncio.sleep(interval)


async def send_only_feed(websocket: WebSocket) -> None:
    """The broken handler: it only pushes, so nothing ever tells it the peer is gone."""
    user, state = websocket.path_params["user"], websocket.app.state
    await websocket.accept()
    state.online.add(user)
    try:
        await push_ticks(websocket, state.push_interval)
    except WebSocketDisconnect:
        pass
    finally:
        state.online.discard(user)
        state.report("left", f"{user} left")


async def feed_with_reader(websocket: WebSocket) -> None:
    """The fix: a reader runs next to the pushes, so a disconnect ends the handler at once."""
    user, state = websocket.path_params["user"], websocket.app.state
    await websocket.accept()
    state.online.add(user)
    pusher = asyncio.create_task(push_ticks(websocket, state.push_interval))
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    except WebSocketDisconnect:
        pass
    finally:
        pusher.cancel()
        state.online.discard(user)
        state.report("left", f"{user} left")


def create_app(push_interval: float, *, reader: bool = False, report: Report = no_report) -> Starlette:
    """``/feed/{user}``: a push-only feed; ``app.state.online`` is who the server thinks is connected."""
    endpoint = feed_with_reader if reader else send_only_feed
    app = Starlette(routes=[WebSocketRoute("/feed/{user}", endpoint)])
    app.state.push_interval = push_interval
    app.state.online = set()
    app.state.report = report
    return app
