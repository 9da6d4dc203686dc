"""``create_feed_app()``: one :class:`~wslab.feed.hub.FeedHub` served as WebSocket, SSE and polling.

One endpoint function per transport, each readable on its own: :func:`websocket_feed` (``/feed/ws``),
:func:`sse_feed` (``/feed/sse``), :func:`poll_feed` (``/feed/poll``) and :func:`say` (``POST
/feed/say``, how SSE and polling clients send anything). They are module-level functions, not closures:
each finds the hub in ``app.state.hub`` and the app's options in ``app.state.feed``
(:class:`FeedOptions`), so the difference between two transports is the difference between two
functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from wslab.feed.hub import MAX_MESSAGE, MAX_WAIT, FeedEvent, FeedHub, Subscription, dumps, live_after
from wslab.feed.sse import format_sse
from wslab.wire import CloseCode

__all__ = ["FeedOptions", "create_feed_app", "poll_feed", "say", "sse_feed", "websocket_feed"]


@dataclass(frozen=True)
class FeedOptions:
    """What :func:`create_feed_app` was asked for, kept in ``app.state.feed`` for the endpoints."""

    retry: float = 3.0
    keepalive: float | None = None
    max_wait: float = MAX_WAIT
    limit: int = 100


def create_feed_app(
    hub: FeedHub,
    *,
    retry: float = 3.0,
    keepalive: float | None = None,
    max_wait: float = MAX_WAIT,
    limit: int = 100,
) -> Starlette:
    """The hub served as WebSocket, SSE and polling endpoints (see :mod:`wslab.feed`).

    ``retry`` is the reconnect delay (seconds) the SSE stream asks EventSource clients to use (browsers
    default to about 3 s). ``keepalive`` sends an SSE comment line when the stream has been quiet that
    long, so an idle-timeout proxy does not cut it (off by default, to keep byte counts exact).
    ``limit`` caps the events one poll returns.
    """
    app = Starlette(
        routes=[
            WebSocketRoute("/feed/ws", websocket_feed),
            Route("/feed/sse", sse_feed, methods=["GET"]),
            Route("/feed/poll", poll_feed, methods=["GET"]),
            Route("/feed/say", say, methods=["POST"]),
        ]
    )
    app.state.hub = hub
    app.state.feed = FeedOptions(retry, keepalive, max_wait, limit)
    return app


def _hub(connection: HTTPConnection) -> FeedHub:
    hub: FeedHub = connection.app.state.hub
    return hub


def _options(connection: HTTPConnection) -> FeedOptions:
    options: FeedOptions = connection.app.state.feed
    return options


def _cursor(value: str | None) -> int | None:
    """A non-negative integer id from a query parameter or header, or None if absent or malformed."""
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


# -- WebSocket: one connection, both directions ------------------------------------------------------


async def websocket_feed(websocket: WebSocket) -> None:
    """``/feed/ws?after=N``: replay what came after ``N``, then push live events, while listening for
    ``say``/``ack`` on the same connection. Closes 1013 when the client fell behind, 1012 on shutdown,
    1009 for a message over :data:`~wslab.feed.hub.MAX_MESSAGE`."""
    hub = _hub(websocket)
    after = _cursor(websocket.query_params.get("after"))
    await websocket.accept()
    hub.requests["websocket"] += 1
    with hub.subscribe() as sub:
        replay, last = hub.resume(sub, after)
        pusher = asyncio.ensure_future(_push(websocket, sub, replay, last))
        listener = asyncio.ensure_future(_listen(websocket, hub))
        try:
            done, _ = await asyncio.wait({pusher, listener}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pusher, listener):
                task.cancel()
            await asyncio.gather(pusher, listener, return_exceptions=True)
        code: int | None = None
        if pusher in done and pusher.exception() is None:
            # dropped: a slow subscriber is told to come back later; a shutdown says "restart"
            code = CloseCode.TRY_AGAIN_LATER if sub.ended == "overflow" else CloseCode.SERVICE_RESTART
        elif listener in done and not isinstance(listener.exception(), WebSocketDisconnect):
            code = listener.result() if listener.exception() is None else CloseCode.INTERNAL_ERROR
        if code is not None:
            with contextlib.suppress(Exception):
                await websocket.close(int(code))


async def _push(websocket: WebSocket, sub: Subscription, replay: list[FeedEvent], last: int) -> None:
    """The server→client half: the replay, then every live event newer than it, until dropped."""
    for event in replay:
        await websocket.send_text(dumps(event.wire()))
    while (live := await live_after(sub, last)) is not None:
        last = live.id
        await websocket.send_text(dumps(live.wire()))


async def _listen(websocket: WebSocket, hub: FeedHub) -> int | None:
    """The client→server half; returns the close code for a message that is too big."""
    while True:
        raw = await websocket.receive_text()
        if len(raw.encode()) > MAX_MESSAGE:
            return int(CloseCode.MESSAGE_TOO_BIG)
        _upstream(hub, raw)


def _upstream(hub: FeedHub, raw: str) -> None:
    """A client→server WebSocket message: ``say`` publishes, ``ack`` is counted, the rest ignored."""
    try:
        message = json.loads(raw)
    except ValueError:
        message = None
    kind = message.get("type") if isinstance(message, dict) else None
    if kind == "say":
        hub.publish(message.get("data"))
    hub.upstream[kind if kind in ("say", "ack") else "ignored"] += 1


# -- Server-Sent Events: one long response, server to client only -------------------------------------


async def sse_feed(request: Request) -> Response:
    """``GET /feed/sse``: a ``text/event-stream`` that resumes after ``Last-Event-ID`` (or ``?after=``)."""
    hub, options = _hub(request), _options(request)
    after = _cursor(request.headers.get("last-event-id"))
    if after is None:
        after = _cursor(request.query_params.get("after"))
    hub.requests["sse"] += 1
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    stream = _sse_stream(hub, after, options.retry, options.keepalive)
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


async def _sse_stream(
    hub: FeedHub, after: int | None, retry: float, keepalive: float | None
) -> AsyncIterator[str]:
    """The stream's text: the ``retry:`` hint, the replay, then live events (and keepalive comments)."""
    with hub.subscribe() as sub:
        replay, last = hub.resume(sub, after)
        yield f"retry: {round(retry * 1000)}\n\n"
        for event in replay:
            yield format_sse(event)
        while True:
            try:
                live = await live_after(sub, last, keepalive)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            if live is None:
                return  # dropped or shutting down: the client reconnects with Last-Event-ID
            last = live.id
            yield format_sse(live)


# -- Polling: one request per question ---------------------------------------------------------------


async def poll_feed(request: Request) -> Response:
    """``GET /feed/poll?after=N[&wait=s]``: the events after ``N`` as JSON; ``wait`` makes it a long poll."""
    hub, options = _hub(request), _options(request)
    hub.requests["polling"] += 1
    after = _cursor(request.query_params.get("after", "0"))
    wait_text = request.query_params.get("wait", "0")
    try:
        wait = min(max(float(wait_text), 0.0), options.max_wait)
    except ValueError:
        wait = -1.0
    if after is None or wait < 0:
        return Response(
            '{"error":"after must be an integer id, wait seconds"}', 400, media_type="application/json"
        )
    if wait and hub.last_id <= after:
        await hub.wait_after(after, wait)
    return Response(dumps([e.wire() for e in hub.since(after, options.limit)]), media_type="application/json")


# -- say: how SSE and polling clients talk back -------------------------------------------------------


async def say(request: Request) -> Response:
    """``POST /feed/say``: publish the JSON body; answers ``{"id": N}``, 413 if too large, 400 if not JSON."""
    hub = _hub(request)
    hub.requests["say"] += 1
    body = await request.body()
    if len(body) > MAX_MESSAGE:
        return Response('{"error":"too large"}', 413, media_type="application/json")
    try:
        data = json.loads(body)
    except ValueError:
        return Response('{"error":"send JSON"}', 400, media_type="application/json")
    return Response(dumps({"id": hub.publish(data)}), media_type="application/json")
