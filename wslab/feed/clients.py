"""The feed's clients, each recording what arrived in the same ``received`` list, for side-by-side counts.

:class:`SSEClient` and :class:`PollingClient` speak HTTP/1.1 over raw asyncio streams, so a lesson can
see every byte (and count them honestly through a :class:`wslab.netem.FaultProxy`); SSE's reconnect rules
are EventSource's: wait ``retry``, reconnect, send ``Last-Event-ID``. :class:`WebSocketFeedClient` is the
WebSocket counterpart, over the websockets library. :func:`http_request` is one bare request, for what
none of the transports sends (a POST to the SSE endpoint, a ``/feed/say``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from wslab.events import EventLog
from wslab.feed.hub import MAX_RECORDED, dumps
from wslab.feed.sse import SSEParser

__all__ = ["PollingClient", "Received", "SSEClient", "WebSocketFeedClient", "http_request"]


@dataclass(frozen=True)
class Received:
    """One event as a client got it: ``received_at`` is ``time.monotonic()``, ``connection`` counts from 1."""

    id: int
    data: Any
    received_at: float
    connection: int


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
