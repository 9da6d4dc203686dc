"""LabClient: a WebSocket client that keeps a transcript, for lessons and tests.

A lesson needs to say *who received what, in which order*, and to assert it. So a LabClient reads in
the background from the moment it connects, records every message it sends and receives (direction,
type, payload, position in the lab's event log) and keeps the close code it saw. Reads always take a
timeout, so a lesson whose message never comes fails with a message instead of hanging.

Defaults differ from ``websockets.connect`` on purpose: no keepalive pings (``ping_interval=None``) so
the server's own heartbeat is what a lesson measures; no compression so frames seen through a tap are
readable; no HTTP proxy from the environment, because lab traffic never leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wslab.events import EventLog, Table
from wslab.wire import CloseCode

DEFAULT_TIMEOUT = 2.0
"""Seconds a read waits by default: long enough for any lab step, short enough to fail fast."""

_CLOSED = object()


def describe_close(code: int | None, reason: str = "") -> str:
    """``1000 (NORMAL_CLOSURE) 'bye'``: a close code with its name, as lessons show it."""
    if code is None:
        return "no close code"
    text = CloseCode.describe(code)
    return f"{text} {reason!r}" if reason else text


def _preview(payload: str | bytes, width: int = 60) -> str:
    text = payload if isinstance(payload, str) else payload.hex(" ")
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass(frozen=True)
class TranscriptEntry:
    """One line of a client's transcript. ``order`` is the event's position in the lab's log."""

    order: int
    direction: str  # "sent" | "received" | "closed"
    type: str  # "text" | "binary" | "close"
    payload: str | bytes | None


class LabClient:
    """A connected WebSocket client with a transcript; create it with ``await lab.connect(url, name=...)``."""

    def __init__(self, name: str, url: str, events: EventLog, ws: ClientConnection) -> None:
        self.name = name
        self.url = url
        self.events = events
        self.ws = ws
        self.transcript: list[TranscriptEntry] = []
        self.close_code: int | None = None
        self.close_reason: str = ""
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._reader = asyncio.get_running_loop().create_task(self._read(), name=f"wslab-client-{name}")
        local = ws.local_address
        if local:
            events.alias(f"{local[0]}:{local[1]}", name)

    @property
    def source(self) -> str:
        return f"client:{self.name}"

    @classmethod
    async def connect(
        cls, url: str, name: str, events: EventLog, timeout: float = DEFAULT_TIMEOUT, **options: Any
    ) -> LabClient:
        """Open the connection (handshake included) or raise; a rejected handshake is logged first."""
        settings: dict[str, Any] = {
            "ping_interval": None,
            "compression": None,
            "proxy": None,
            "open_timeout": timeout,
            "close_timeout": timeout,
        }
        settings.update(options)
        try:
            ws = await connect(url, **settings)
        except InvalidStatus as exc:
            status = exc.response.status_code
            events.record(f"client:{name}", "rejected", f"handshake rejected: HTTP {status}", status=status)
            raise
        except OSError as exc:
            events.record(f"client:{name}", "failed", f"could not connect: {exc.strerror or exc}")
            raise
        client = cls(name, url, events, ws)
        events.record(client.source, "connected", url)
        return client

    # -- background reader ---------------------------------------------------------------------------
    async def _read(self) -> None:
        try:
            async for message in self.ws:
                kind = "text" if isinstance(message, str) else "binary"
                event = self.events.record(self.source, "received", _preview(message), type=kind)
                self.transcript.append(TranscriptEntry(event.seq, "received", kind, message))
                self._inbox.put_nowait(message)
        except ConnectionClosed:
            pass
        finally:
            self._note_closed()
            self._inbox.put_nowait(_CLOSED)

    def _note_closed(self) -> None:
        if self.transcript and self.transcript[-1].direction == "closed":
            return
        rcvd = self.ws.protocol.close_rcvd
        self.close_code = rcvd.code if rcvd is not None else int(CloseCode.ABNORMAL_CLOSURE)
        self.close_reason = rcvd.reason if rcvd is not None else ""
        text = describe_close(self.close_code, self.close_reason)
        event = self.events.record(
            self.source, "closed", text, code=self.close_code, reason=self.close_reason
        )
        self.transcript.append(TranscriptEntry(event.seq, "closed", "close", text))

    # -- sending ---------------------------------------------------------------------------------------
    async def send(self, message: str | bytes) -> None:
        """Send one text (str) or binary (bytes) message and record it."""
        await self.ws.send(message)
        kind = "text" if isinstance(message, str) else "binary"
        event = self.events.record(self.source, "sent", _preview(message), type=kind)
        self.transcript.append(TranscriptEntry(event.seq, "sent", kind, message))

    async def send_json(self, obj: Any) -> None:
        """Send ``obj`` as a JSON text message (compact, keys in the order given)."""
        await self.send(json.dumps(obj, separators=(",", ":")))

    # -- receiving -------------------------------------------------------------------------------------
    async def recv(self, timeout: float = DEFAULT_TIMEOUT) -> str | bytes:
        """The next message, or ``TimeoutError`` / ``ConnectionError`` (with the close code); never hangs."""
        try:
            message = await asyncio.wait_for(self._inbox.get(), timeout)
        except TimeoutError:
            raise TimeoutError(f"{self.name} received nothing within {timeout:g} s") from None
        if message is _CLOSED:
            self._inbox.put_nowait(_CLOSED)  # every later read fails the same way
            raise ConnectionError(f"{self.name}'s connection is closed: {self.closed_as}")
        return message

    async def recv_json(self, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """The next message, decoded from JSON."""
        message = await self.recv(timeout)
        return json.loads(message)

    async def expect_silence(self, duration: float) -> None:
        """Assert that nothing arrives for ``duration`` seconds ("bob did not receive it")."""
        try:
            message = await self.recv(duration)
        except TimeoutError:
            return
        except ConnectionError:
            return
        raise AssertionError(f"{self.name} unexpectedly received {_preview(message)!r}")

    def drain(self) -> list[str | bytes]:
        """Everything received but not yet read, without waiting."""
        out: list[str | bytes] = []
        while not self._inbox.empty():
            item = self._inbox.get_nowait()
            if item is _CLOSED:
                self._inbox.put_nowait(_CLOSED)
                break
            out.append(item)
        return out

    @property
    def received(self) -> list[str | bytes]:
        """Every message received so far, read or not."""
        return [e.payload for e in self.transcript if e.direction == "received"]  # type: ignore[misc]

    # -- closing ---------------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._reader.done()

    @property
    def closed_as(self) -> str:
        return describe_close(self.close_code, self.close_reason) if self.closed else "open"

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close with ``code`` and ``reason`` and wait for the server's answer (bounded by close_timeout)."""
        if not self.closed:
            self.events.record(self.source, "sent", describe_close(int(code), reason), type="close")
            await self.ws.close(int(code), reason)
        await self.wait_closed()

    async def wait_closed(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Wait until the connection is closed; returns how it closed (``"1012 (SERVICE_RESTART)"``)."""
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        except TimeoutError:
            raise TimeoutError(f"{self.name} is still open after {timeout:g} s") from None
        return self.closed_as

    async def abort(self) -> None:
        """Drop the TCP connection without a close frame, like a crashed peer (the server sees 1006)."""
        self.ws.transport.abort()
        with contextlib.suppress(TimeoutError):
            await self.wait_closed()

    def table(self) -> Table:
        """The transcript as a table: order, direction, type, payload."""
        rows = [
            (i, e.direction, e.type, _preview(e.payload) if e.payload is not None else "")
            for i, e in enumerate(self.transcript, 1)
        ]
        return Table(["#", "direction", "type", "payload"], rows)

    def __repr__(self) -> str:
        return f"<LabClient {self.name!r} ({self.closed_as})>"
