"""One live feed, three ways: WebSocket, Server-Sent Events and polling, over the same history.

A :class:`FeedHub` numbers every event it publishes (``1, 2, 3, …``) and keeps a bounded history, so any
transport can answer "what came after N?". :func:`create_feed_app` serves that hub three ways:

- ``/feed/ws?after=N``: a WebSocket. The server pushes ``{"id": N, "data": …}`` text messages; the client
  may talk back on the same connection (``{"type": "say", "data": …}`` publishes, ``{"type": "ack",
  "id": N}`` acknowledges). Without ``after`` a connection gets only what is published from then on: a
  client that reconnects and wants what it missed has to say where it was.
- ``/feed/sse``: Server-Sent Events (``text/event-stream``). One long HTTP response of ``id:``/``data:``
  lines and a ``retry:`` hint; a reconnecting client sends ``Last-Event-ID`` and gets what it missed
  first, then the live stream. Only GET: nothing flows from client to server once the request is sent.
- ``/feed/poll?after=N[&wait=s]``: polling. A JSON list of the events after ``N``; with ``wait``, a long
  poll that holds the request until something arrives (or ``wait`` seconds pass).
- ``POST /feed/say``: what SSE and polling clients need to send anything: a separate request.

:class:`SSEClient` and :class:`PollingClient` are minimal clients over raw asyncio streams, so a lesson can
see every byte (and count them honestly through a :class:`wslab.netem.FaultProxy`); SSE's reconnect rules
are EventSource's: wait ``retry``, reconnect, send ``Last-Event-ID``. :class:`WebSocketFeedClient` is the
WebSocket counterpart with the same ``received`` record, for side-by-side measurements.

Everything is bounded: history, per-subscriber queues (a subscriber that falls behind is dropped, and
resumes from history), message sizes, long-poll waits, client records and reconnect attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from wslab.events import EventLog
from wslab.wire import CloseCode

__all__ = [
    "HISTORY",
    "MAX_MESSAGE",
    "MAX_RECORDED",
    "MAX_WAIT",
    "QUEUE_SIZE",
    "FeedEvent",
    "FeedHub",
    "PollingClient",
    "Received",
    "SSEClient",
    "SSEEvent",
    "SSEParser",
    "Subscription",
    "WebSocketFeedClient",
    "create_feed_app",
    "dumps",
    "format_sse",
    "http_request",
    "live_after",
]

HISTORY = 1000
"""Events a hub keeps for resuming clients."""
QUEUE_SIZE = 256
"""Events a subscriber may fall behind before it is dropped (it can resume from history)."""
MAX_MESSAGE = 4096
"""Largest client→server WebSocket message or ``say`` body, in bytes."""
MAX_WAIT = 30.0
"""Longest long-poll wait a request may ask for, in seconds."""
MAX_RECORDED = 10_000
"""Messages a client keeps in ``received``."""


def dumps(obj: Any) -> str:
    """Compact JSON, the same on every transport so their byte counts compare."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------------------------------
# The hub
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedEvent:
    """One published event. ``published_at`` is ``time.monotonic()`` (for latency, never sent)."""

    id: int
    data: Any
    published_at: float = 0.0

    def wire(self) -> dict[str, Any]:
        """What every transport sends for this event."""
        return {"id": self.id, "data": self.data}


class Subscription:
    """A subscriber's bounded queue of live events; ``None`` in the queue means "you were dropped"."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[FeedEvent | None] = asyncio.Queue(size + 1)
        self.size = size
        self.ended = ""  # why the hub stopped feeding it: "overflow", "closed"

    def _offer(self, event: FeedEvent) -> bool:
        if self.ended:
            return False
        if self.queue.qsize() >= self.size:
            self._end("overflow")
            return False
        self.queue.put_nowait(event)
        return True

    def _end(self, reason: str) -> None:
        if not self.ended:
            self.ended = reason
            self.queue.put_nowait(None)  # the extra slot is reserved for this

    async def get(self, timeout: float | None = None) -> FeedEvent | None:
        """The next live event; ``None`` once dropped; ``TimeoutError`` after ``timeout`` seconds."""
        return await asyncio.wait_for(self.queue.get(), timeout)


class FeedHub:
    """Bounded history with increasing integer ids, and bounded live subscriptions.

    >>> hub = FeedHub()
    >>> hub.publish({"price": 101})
    1
    >>> [e.id for e in hub.since(0)]
    [1]
    """

    def __init__(self, history: int = HISTORY, queue_size: int = QUEUE_SIZE) -> None:
        self._history: deque[FeedEvent] = deque(maxlen=history)
        self._subscribers: set[Subscription] = set()
        self._changed: asyncio.Event | None = None
        self.queue_size = queue_size
        self.last_id = 0
        self.dropped = 0  # subscribers dropped for falling behind
        self.requests: Counter[str] = Counter()  # per transport: WebSocket/SSE connections, polls, says
        self.upstream: Counter[str] = Counter()  # client→server messages seen on WebSockets, by type

    # -- writing -----------------------------------------------------------------------------------
    def publish(self, data: Any) -> int:
        """Append ``data`` as the next event, hand it to every live subscriber, and return its id."""
        self.last_id += 1
        event = FeedEvent(self.last_id, data, time.monotonic())
        self._history.append(event)
        for sub in list(self._subscribers):
            if not sub._offer(event) and sub.ended == "overflow":
                self._subscribers.discard(sub)
                self.dropped += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        return event.id

    def close_subscribers(self) -> int:
        """End every live subscription (WebSockets close with 1012, SSE streams end): what a graceful
        shutdown does first, so that no stream holds the server open. Returns how many were ended."""
        subs = list(self._subscribers)
        for sub in subs:
            sub._end("closed")
        self._subscribers.clear()
        return len(subs)

    # -- reading -----------------------------------------------------------------------------------
    def since(self, after: int, limit: int | None = None) -> list[FeedEvent]:
        """Events with ``id > after`` still in the history, oldest first (at most ``limit``)."""
        found = [e for e in self._history if e.id > after]
        return found[:limit] if limit is not None else found

    def get(self, event_id: int) -> FeedEvent | None:
        """The event with this id, if it is still in the history."""
        for event in reversed(self._history):
            if event.id == event_id:
                return event
        return None

    def covers(self, after: int) -> bool:
        """True if everything after ``after`` is still in the history (a resume from it is complete)."""
        oldest = self._history[0].id if self._history else self.last_id + 1
        return after >= oldest - 1

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        """A live subscription for the duration of a ``with`` block (never leaks on cancellation)."""
        sub = Subscription(self.queue_size)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    def resume(self, sub: Subscription, after: int | None) -> tuple[list[FeedEvent], int]:
        """What a (re)connecting subscriber gets first, and the last id that covers.

        Call it *after* subscribing: an event published in between is then both in the replay and in
        the queue, and :func:`live_after` skips it, instead of falling between the two.
        """
        if after is None:
            return [], self.last_id
        replay = self.since(after)
        return replay, replay[-1].id if replay else max(after, 0)

    async def wait_after(self, after: int, timeout: float) -> bool:
        """Wait until an event with ``id > after`` exists, at most ``timeout`` seconds (long polling)."""
        deadline = time.monotonic() + timeout
        while self.last_id <= after:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._changed is None:
                self._changed = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return True


async def live_after(sub: Subscription, last: int, timeout: float | None = None) -> FeedEvent | None:
    """The next live event newer than ``last`` (skipping ones a replay already sent); None if dropped."""
    while True:
        event = await sub.get(timeout)
        if event is None or event.id > last:
            return event


# --------------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------------


def _cursor(value: str | None) -> int | None:
    """A non-negative integer id from a query parameter or header, or None if absent or malformed."""
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def format_sse(event: FeedEvent) -> str:
    """One event in the event-stream format: ``id:`` and ``data:`` lines, then a blank line."""
    return f"id: {event.id}\ndata: {dumps(event.data)}\n\n"


def create_feed_app(
    hub: FeedHub,
    *,
    retry: float = 3.0,
    keepalive: float | None = None,
    max_wait: float = MAX_WAIT,
    limit: int = 100,
) -> Starlette:
    """The hub served as WebSocket, SSE and polling endpoints (see the module docstring).

    ``retry`` is the reconnect delay (seconds) the SSE stream asks EventSource clients to use (browsers
    default to about 3 s). ``keepalive`` sends an SSE comment line when the stream has been quiet that
    long, so an idle-timeout proxy does not cut it (off by default, to keep byte counts exact).
    ``limit`` caps the events one poll returns.
    """

    async def websocket_feed(websocket: WebSocket) -> None:
        after = _cursor(websocket.query_params.get("after"))
        await websocket.accept()
        hub.requests["websocket"] += 1
        with hub.subscribe() as sub:
            replay, last = hub.resume(sub, after)

            async def push() -> None:
                nonlocal last
                for event in replay:
                    await websocket.send_text(dumps(event.wire()))
                while (live := await live_after(sub, last)) is not None:
                    last = live.id
                    await websocket.send_text(dumps(live.wire()))

            async def listen() -> int | None:
                while True:
                    raw = await websocket.receive_text()
                    if len(raw.encode()) > MAX_MESSAGE:
                        return int(CloseCode.MESSAGE_TOO_BIG)
                    _upstream(hub, raw)

            pusher = asyncio.ensure_future(push())
            listener = asyncio.ensure_future(listen())
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

    async def sse_feed(request: Request) -> Response:
        after = _cursor(request.headers.get("last-event-id"))
        if after is None:
            after = _cursor(request.query_params.get("after"))
        hub.requests["sse"] += 1

        async def stream() -> AsyncIterator[str]:
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

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    async def poll_feed(request: Request) -> Response:
        hub.requests["polling"] += 1
        after = _cursor(request.query_params.get("after", "0"))
        wait_text = request.query_params.get("wait", "0")
        try:
            wait = min(max(float(wait_text), 0.0), max_wait)
        except ValueError:
            wait = -1.0
        if after is None or wait < 0:
            return Response(
                '{"error":"after must be an integer id, wait seconds"}', 400, media_type="application/json"
            )
        if wait and hub.last_id <= after:
            await hub.wait_after(after, wait)
        return Response(dumps([e.wire() for e in hub.since(after, limit)]), media_type="application/json")

    async def say(request: Request) -> Response:
        hub.requests["say"] += 1
        body = await request.body()
        if len(body) > MAX_MESSAGE:
            return Response('{"error":"too large"}', 413, media_type="application/json")
        try:
            data = json.loads(body)
        except ValueError:
            return Response('{"error":"send JSON"}', 400, media_type="application/json")
        return Response(dumps({"id": hub.publish(data)}), media_type="application/json")

    app = Starlette(
        routes=[
            WebSocketRoute("/feed/ws", websocket_feed),
            Route("/feed/sse", sse_feed, methods=["GET"]),
            Route("/feed/poll", poll_feed, methods=["GET"]),
            Route("/feed/say", say, methods=["POST"]),
        ]
    )
    app.state.hub = hub
    return app


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


# --------------------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One event as a client got it: ``received_at`` is ``time.monotonic()``, ``connection`` counts from 1."""

    id: int
    data: Any
    received_at: float
    connection: int


@dataclass
class SSEEvent:
    """One dispatched event of an event stream (``id`` is the last event id seen, as EventSource keeps)."""

    data: str
    id: str | None = None
    event: str = "message"


@dataclass
class SSEParser:
    """The event-stream format (WHATWG HTML §9.2), sans I/O: feed bytes, get events and ``retry`` values.

    Lines end in LF, CRLF or CR; ``field: value`` (one optional space dropped); a line starting with ``:``
    is a comment; a blank line dispatches the event. ``retry`` (milliseconds, digits only) is kept in
    :attr:`retry_ms`; ``id`` persists across events like EventSource's "last event ID".
    """

    last_event_id: str | None = None
    retry_ms: int | None = None
    max_line: int = 1 << 16
    _buffer: str = ""
    _data: list[str] = field(default_factory=list)
    _event: str = ""

    def feed(self, text: str) -> list[SSEEvent]:
        self._buffer += text
        out: list[SSEEvent] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                if len(self._buffer) > self.max_line:
                    raise ValueError("event-stream line too long")
                return out
            line, end = cut
            self._buffer = self._buffer[end:]
            event = self._line(line)
            if event is not None:
                out.append(event)

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent("\n".join(self._data), self.last_event_id, self._event or "message")
            self._data, self._event = [], ""
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "event":
            self._event = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None


def _line_end(buffer: str) -> tuple[str, int] | None:
    for i, ch in enumerate(buffer):
        if ch == "\n":
            return buffer[:i], i + 1
        if ch == "\r":
            if i + 1 == len(buffer):
                return None  # a CR at the end may be the first half of a CRLF
            return buffer[:i], i + 2 if buffer[i + 1] == "\n" else i + 1
    return None


class _Counted:
    """A stream pair that counts what it reads and writes."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, owner: _FeedClient
    ) -> None:
        self.reader, self.writer, self.owner = reader, writer, owner

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        self.owner.bytes_written += len(data)
        await self.writer.drain()

    async def readuntil(self, sep: bytes) -> bytes:
        data = await self.reader.readuntil(sep)
        self.owner.bytes_read += len(data)
        return data

    async def readexactly(self, n: int) -> bytes:
        data = await self.reader.readexactly(n)
        self.owner.bytes_read += len(data)
        return data

    async def read_head(self) -> tuple[int, dict[str, str]]:
        head = (await self.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *lines = head.split("\r\n")
        headers = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


class _FeedClient:
    """What the three feed clients share: a record of what arrived, bounded, and a background task."""

    kind = "feed"

    def __init__(self, url: str, name: str, events: EventLog | None, max_recorded: int) -> None:
        parts = urlsplit(url)
        self.url, self.name, self.events = url, name, events
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.query = parts.query
        self.received: deque[Received] = deque(maxlen=max_recorded)
        self.connections = 0
        self.bytes_read = 0
        self.bytes_written = 0
        self.last_id = 0
        self.error = ""
        self._task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    @property
    def source(self) -> str:
        return f"client:{self.name}"

    def _record(self, kind: str, message: str, **data: Any) -> None:
        if self.events is not None:
            self.events.record(self.source, kind, message, **data)

    def _got(self, event_id: int, data: Any) -> None:
        self.received.append(Received(event_id, data, time.monotonic(), self.connections))
        self.last_id = max(self.last_id, event_id)
        self._arrived.set()

    @property
    def ids(self) -> list[int]:
        """The ids received, in arrival order."""
        return [r.id for r in self.received]

    def start(self) -> Any:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"wslab-{self.kind}-{self.name}"
        )
        return self

    async def _run(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def wait_for_id(self, event_id: int, timeout: float = 2.0) -> None:
        """Wait until an event with id ≥ ``event_id`` arrived (``TimeoutError`` naming the client if not)."""
        deadline = time.monotonic() + timeout
        while self.last_id < event_id:
            if self._task is not None and self._task.done():
                raise ConnectionError(f"{self.name} stopped: {self.error or 'closed'}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"{self.name} has event {self.last_id}, not {event_id}, after {timeout:g} s"
                )
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(remaining, 0.05))

    async def wait_connected(self, connections: int = 1, timeout: float = 2.0) -> None:
        """Wait until the client has opened ``connections`` connections in all."""
        deadline = time.monotonic() + timeout
        while self.connections < connections:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.name} opened {self.connections} connections, not {connections}")
            await asyncio.sleep(0.002)

    @property
    def closed(self) -> bool:
        return self._task is not None and self._task.done()

    async def close(self) -> None:
        """Stop the client (its connection ends with it). Safe to call twice."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "running"
        return f"<{type(self).__name__} {self.name!r} ({state}, {len(self.received)} received)>"


class SSEClient(_FeedClient):
    """An EventSource-like client over raw asyncio streams: one long GET, parsed as an event stream.

    Like EventSource: when the stream ends or the connection fails, wait ``retry`` (the server's
    ``retry:`` hint once seen) and reconnect, sending ``Last-Event-ID``; a non-200 answer or another
    content type fails for good. ``max_attempts`` failed connection attempts in a row end it too.
    """

    kind = "sse"

    def __init__(
        self,
        url: str,
        name: str = "sse",
        events: EventLog | None = None,
        *,
        retry: float = 3.0,
        last_event_id: int | None = None,
        max_attempts: int = 50,
        max_recorded: int = MAX_RECORDED,
    ) -> None:
        super().__init__(url, name, events, max_recorded)
        self.retry = retry
        self.parser = SSEParser(last_event_id=str(last_event_id) if last_event_id is not None else None)
        self.max_attempts = max_attempts
        self.reconnects = 0

    def _request(self) -> bytes:
        target = self.path + (f"?{self.query}" if self.query else "")
        lines = [
            f"GET {target} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Accept: text/event-stream",
            "Cache-Control: no-cache",
        ]
        if self.parser.last_event_id is not None:
            lines.append(f"Last-Event-ID: {self.parser.last_event_id}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError as exc:
                failures += 1
                self._record("failed", f"could not connect: {exc.strerror or exc}")
                if failures >= self.max_attempts:
                    self.error = f"gave up after {failures} failed attempts"
                    self._record("offline", self.error)
                    return
                await asyncio.sleep(self.retry)
                continue
            failures = 0
            stream = _Counted(reader, writer, self)
            try:
                if not await self._stream(stream):
                    return
            except (OSError, asyncio.IncompleteReadError, ValueError):
                pass
            finally:
                await stream.close()
            self.reconnects += 1
            self._record("reconnecting", f"stream ended; retrying in {self.retry:g} s")
            await asyncio.sleep(self.retry)

    async def _stream(self, stream: _Counted) -> bool:
        """Read one connection's stream; False if the client must not reconnect."""
        await stream.write(self._request())
        status, headers = await stream.read_head()
        if status != 200 or not headers.get("content-type", "").startswith("text/event-stream"):
            self.error = f"HTTP {status} {headers.get('content-type', '')}".strip()
            self._record("failed", f"not an event stream: {self.error}")
            return False
        self.connections += 1
        resumed = f" (Last-Event-ID {self.parser.last_event_id})" if self.parser.last_event_id else ""
        self._record("connected", f"connection {self.connections}{resumed}")
        async for chunk in _body(stream, headers):
            for event in self.parser.feed(chunk.decode("utf-8")):
                if self.parser.retry_ms is not None:
                    self.retry = self.parser.retry_ms / 1000
                self._got(int(event.id) if event.id and event.id.isdigit() else 0, json.loads(event.data))
            if self.parser.retry_ms is not None:
                self.retry = self.parser.retry_ms / 1000
        return True


async def _body(stream: _Counted, headers: dict[str, str]) -> AsyncIterator[bytes]:
    """An HTTP/1.1 response body, chunk by chunk (chunked transfer coding or Content-Length)."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await stream.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await stream.readuntil(b"\r\n")
                return
            yield (await stream.readexactly(size + 2))[:-2]
    else:
        length = int(headers.get("content-length", "0"))
        if length:
            yield await stream.readexactly(length)


class PollingClient(_FeedClient):
    """Asks ``GET /feed/poll?after=N`` every ``interval`` seconds on one keep-alive connection.

    With ``wait`` set it long-polls (``&wait=``): the server holds each request until there is news, and
    the client asks again right away (after ``interval``, which can be 0). The cursor travels in every
    request, so a restarted server needs no memory of the client: nothing is missed. ``polls`` counts the
    requests, ``empty_polls`` those that brought nothing.
    """

    kind = "poll"

    def __init__(
        self,
        url: str,
        name: str = "poll",
        events: EventLog | None = None,
        *,
        interval: float = 1.0,
        after: int = 0,
        wait: float | None = None,
        max_attempts: int = 50,
        max_recorded: int = MAX_RECORDED,
    ) -> None:
        super().__init__(url, name, events, max_recorded)
        self.interval = interval
        self.wait = wait
        self.last_id = after
        self.max_attempts = max_attempts
        self.polls = 0
        self.empty_polls = 0

    def _request(self) -> bytes:
        query = f"after={self.last_id}" + (f"&wait={self.wait:g}" if self.wait else "")
        lines = [
            f"GET {self.path}?{query} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Accept: application/json",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _run(self) -> None:
        failures = 0
        stream: _Counted | None = None
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        try:
            while True:
                try:
                    if stream is None:
                        reader, writer = await asyncio.open_connection(self.host, self.port)
                        stream = _Counted(reader, writer, self)
                        self.connections += 1
                    await self._poll(stream)
                    failures = 0
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    failures += 1
                    self._record("failed", f"poll failed: {type(exc).__name__}")
                    if stream is not None:
                        await stream.close()
                        stream = None
                    if failures >= self.max_attempts:
                        self.error = f"gave up after {failures} failed polls"
                        self._record("offline", self.error)
                        return
                next_at = max(next_at + self.interval, loop.time()) if self.interval else loop.time()
                await asyncio.sleep(max(next_at - loop.time(), 0))
        finally:
            if stream is not None:
                await stream.close()

    async def _poll(self, stream: _Counted) -> None:
        await stream.write(self._request())
        status, headers = await stream.read_head()
        body = b"".join([chunk async for chunk in _body(stream, headers)])
        self.polls += 1
        if status != 200:
            raise ValueError(f"HTTP {status}")
        batch = json.loads(body)
        if not batch:
            self.empty_polls += 1
        for item in batch:
            self._got(item["id"], item["data"])
        if headers.get("connection", "").lower() == "close":
            raise ConnectionResetError("server closed the connection")


class WebSocketFeedClient(_FeedClient):
    """The WebSocket side, with the same ``received`` record: connects once (``after`` if given) and
    records every event; :meth:`say` and :meth:`ack` talk back on the same connection. No reconnect:
    for that, see :class:`wslab.clients.ReconnectingClient`. Its ``bytes_read``/``bytes_written`` stay 0
    (the websockets library owns the socket): count WebSocket bytes with a FaultProxy in front."""

    kind = "ws"

    def __init__(
        self,
        url: str,
        name: str = "ws",
        events: EventLog | None = None,
        *,
        max_recorded: int = MAX_RECORDED,
    ) -> None:
        super().__init__(url, name, events, max_recorded)
        self._ws: ClientConnection | None = None
        self._ready = asyncio.Event()
        self.close_code: int | None = None

    async def _run(self) -> None:
        try:
            async with connect(self.url, ping_interval=None, compression=None, proxy=None) as ws:
                self._ws = ws
                self.connections += 1
                self._ready.set()
                self._record("connected", "connection 1")
                async for raw in ws:
                    message = json.loads(raw)
                    self._got(message["id"], message["data"])
        except ConnectionClosed:
            pass
        except OSError as exc:
            self.error = f"could not connect: {exc.strerror or exc}"
            self._record("failed", self.error)
        finally:
            if self._ws is not None and self._ws.protocol.close_rcvd is not None:
                self.close_code = self._ws.protocol.close_rcvd.code
            self._ws = None
            self._ready.set()

    async def _send(self, message: dict[str, Any]) -> None:
        await asyncio.wait_for(self._ready.wait(), 2.0)
        if self._ws is None:
            raise ConnectionError(f"{self.name} is not connected")
        await self._ws.send(dumps(message))

    async def say(self, data: Any) -> None:
        """Publish ``data`` to everyone, on this same connection."""
        await self._send({"type": "say", "data": data})

    async def ack(self, event_id: int) -> None:
        """Tell the server an event arrived (it counts acks in ``hub.upstream``)."""
        await self._send({"type": "ack", "id": event_id})

    async def close(self) -> None:
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1.0)
        await super().close()


async def http_request(
    url: str, method: str = "GET", body: Any = None, timeout: float = 2.0
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request over raw streams (``body`` sent as JSON): status, headers, body.

    For lessons that want to show a request the transports do not make (a POST to the SSE endpoint,
    the separate ``/feed/say`` an SSE client needs to talk back), without an HTTP library's defaults.
    """
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    payload = dumps(body).encode() if body is not None else b""
    head = [f"{method} {target} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}", "Connection: close"]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        client = _FeedClient(url, "http", None, 1)
        stream = _Counted(reader, writer, client)
        try:
            await stream.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
            status, headers = await stream.read_head()
            data = b"".join([chunk async for chunk in _body(stream, headers)])
        finally:
            await stream.close()
    return status, headers, data
