"""LabClient, a WebSocket client that keeps a transcript; ReconnectingClient, one that stays connected.

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
import inspect
import itertools
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from wslab.backoff import Action, Backoff, Decision, FullJitterBackoff, decide
from wslab.events import EventLog, Table
from wslab.wire import CloseCode

__all__ = [
    "DEFAULT_TIMEOUT",
    "ClientState",
    "LabClient",
    "ReconnectingClient",
    "TokenProvider",
    "TranscriptEntry",
    "describe_close",
]

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
        assert isinstance(message, str | bytes)
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


@dataclass
class _Pending:
    """A message given to ``deliver()``: its frame, the connection it last went out on, its ack."""

    frame: str
    sent_on: int | None = None
    acked: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class ClientState(StrEnum):
    """What a reconnecting client is doing; a UI shows this to the user."""

    CONNECTING = "connecting"
    OPEN = "open"
    BACKING_OFF = "backing off"
    OFFLINE = "offline"


TokenProvider = Callable[[], Awaitable[str | None] | str | None]


class ReconnectingClient:
    """A client that keeps a connection up: backoff with jitter, close-code decisions, app pings, watchdog.

    The rules (also those of the browser client, ``wslab/static/reconnecting-websocket.ts``):

    - after a drop, wait ``policy.delay(attempt)`` (full jitter by default) before trying again; the
      attempt counter resets only once a connection has *stayed up* ``stable_after`` seconds, so a
      server that accepts and then drops at once cannot make every client retry at full speed;
    - what to do is decided by the close code (:func:`wslab.backoff.decide`): 4001/1008 stop, 4002 asks
      ``token_provider`` for a new token, 1013/4008 back off harder, 1001/1006/1011/1012 reconnect;
    - the first message on every connection is the auth frame (``{"type": "auth", "token": ...}``),
      with the last ``seq`` (and the stream ``id`` and ``epoch`` of a Streams backend) when
      ``resume=True``, so the server can replay what was missed, or answer ``resync``;
    - an application ``{"type": "ping"}`` is answered with ``{"type": "pong"}``; with ``heartbeat`` set,
      a connection on which nothing arrived for 1.5 × ``heartbeat`` is treated as dead and replaced;
    - ``max_attempts`` failed attempts in a row end in ``OFFLINE`` ("gave up"), which a UI can show;
    - :meth:`send_json` is fire-and-forget and refuses while not open; :meth:`deliver` gives a message
      a ``msg_id`` and sends it again on every new connection (right after the auth frame) until the
      server answers ``{"type": "ack", "msg_id": ...}``. The server drops an id it has seen before and
      acks it again, so a message whose ack was lost in a cut arrives once, not twice.
    """

    def __init__(
        self,
        url: str,
        name: str,
        events: EventLog,
        *,
        policy: Backoff | None = None,
        token: str | None = None,
        token_provider: TokenProvider | None = None,
        resume: bool = False,
        heartbeat: float | None = None,
        stable_after: float = 1.0,
        max_attempts: int | None = None,
        open_timeout: float = DEFAULT_TIMEOUT,
        **options: Any,
    ) -> None:
        self.url = url
        self.name = name
        self.events = events
        self.policy: Backoff = policy if policy is not None else FullJitterBackoff()
        self.token = token
        self.token_provider = token_provider
        self.resume = resume
        self.heartbeat = heartbeat
        self.stable_after = stable_after
        self.max_attempts = max_attempts
        self.options: dict[str, Any] = {  # passed on to websockets' connect()
            "ping_interval": None,
            "compression": None,
            "proxy": None,
            "open_timeout": open_timeout,
            "close_timeout": open_timeout,
        }
        self.options.update(options)
        self.state = ClientState.CONNECTING
        self.offline_reason = ""
        self.last_seq: int | None = None
        self.last_id: str | None = None  # stream offset and epoch, from a server that sends them
        self.epoch: str | None = None
        self.resyncs: list[dict[str, Any]] = []  # "what you missed cannot be replayed" notices
        self.connections = 0  # connections that opened
        self.attempts = 0  # connection attempts, successful or not
        self.close_codes: list[int | None] = []
        self.received: list[Any] = []
        self.resent = 0  # deliver(): messages sent again on a new connection
        self.duplicate_acks = 0  # acks saying the server already had the message
        self._outbox: dict[str, _Pending] = {}  # insertion order is send order
        self._ids = itertools.count(1)
        self._id_prefix = f"{name}-{secrets.token_hex(3)}"  # two clients of one user never collide
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._ws: ClientConnection | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def source(self) -> str:
        return f"client:{self.name}"

    def start(self) -> ReconnectingClient:
        """Start the connect loop in the background (``lab.connect_reconnecting`` does this)."""
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"wslab-reconnecting-{self.name}"
        )
        return self

    def _set_state(self, state: ClientState, detail: str = "", **data: Any) -> None:
        self.state = state
        message = f"{state.value}: {detail}" if detail else state.value
        self.events.record(self.source, "state", message, state=state.value, **data)

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self._set_state(ClientState.CONNECTING)
            self.attempts += 1
            code: int | None = None
            try:
                ws = await connect(self.url, **self.options)
            except InvalidStatus as exc:
                status = exc.response.status_code
                decision = Decision(Action.STOP, f"handshake rejected: HTTP {status}")
                if status >= 500:
                    decision = decide(None)
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                decision = decide(None)
                self.events.record(self.source, "failed", f"could not connect: {type(exc).__name__}")
            else:
                opened = time.monotonic()
                code = await self._serve(ws)
                self.close_codes.append(code)
                if time.monotonic() - opened >= self.stable_after:
                    failures = 0  # only a connection that stayed up resets the schedule
                decision = decide(code)
            if self._stopping:
                break
            if decision.action is Action.STOP:
                self._go_offline(decision.reason)
                return
            if decision.action is Action.REFRESH_TOKEN and not await self._refresh_token():
                self._go_offline("token expired and no new token")
                return
            if self.max_attempts is not None and failures >= self.max_attempts:
                self._go_offline(f"gave up after {failures} failed attempts")
                return
            if decision.slow_down:
                failures += 2  # the server asked for less: jump ahead in the schedule
            delay = self.policy.delay(failures)
            failures += 1
            self._set_state(ClientState.BACKING_OFF, decision.reason, delay=delay, code=code)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
        self._go_offline("closed by the client")

    async def _serve(self, ws: ClientConnection) -> int:
        """One connection's life: auth, then read until it ends. Returns the close code (1006 if none)."""
        self._ws = ws
        self.connections += 1
        self._set_state(ClientState.OPEN, f"connection {self.connections}")
        watchdog = 1.5 * self.heartbeat if self.heartbeat else None
        try:
            if self.token is not None:
                auth: dict[str, Any] = {"type": "auth", "token": self.token}
                if self.resume:
                    if self.last_seq is not None:
                        auth["last_seq"] = self.last_seq
                    if self.last_id is not None:
                        auth["last_id"] = self.last_id
                        auth["epoch"] = self.epoch
                await ws.send(json.dumps(auth))
            for pending in list(self._outbox.values()):  # not acknowledged yet: again, in order
                await self._transmit(ws, pending)
            while True:
                try:
                    raw = await asyncio.wait_for(ws.recv(), watchdog)
                except TimeoutError:
                    self.events.record(
                        self.source, "watchdog", "nothing arrived for 1.5 heartbeats: reconnecting"
                    )
                    ws.transport.abort()
                    return int(CloseCode.ABNORMAL_CLOSURE)
                await self._handle(ws, raw)
        except ConnectionClosed:
            rcvd = ws.protocol.close_rcvd
            code = rcvd.code if rcvd is not None else int(CloseCode.ABNORMAL_CLOSURE)
            self.events.record(
                self.source, "closed", describe_close(code, rcvd.reason if rcvd else ""), code=code
            )
            return code
        finally:
            self._ws = None

    async def _handle(self, ws: ClientConnection, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except (ValueError, TypeError):
            message = raw
        if isinstance(message, dict):
            if message.get("type") == "ping":
                await ws.send(json.dumps({"type": "pong"}))
                return
            if message.get("type") == "ack" and isinstance(message.get("msg_id"), str):
                self._acknowledged(message["msg_id"], duplicate=message.get("duplicate") is True)
                return
            if isinstance(message.get("seq"), int):
                self.last_seq = message["seq"]
            if isinstance(message.get("id"), str):
                self.last_id, self.epoch = message["id"], message.get("epoch")
            if message.get("type") == "resync":
                # the server cannot replay the gap: start again from now (a real app reloads its state)
                self.resyncs.append(message)
                self.last_id, self.epoch = None, message.get("epoch")
        self.received.append(message)
        self._inbox.put_nowait(message)
        self.events.record(self.source, "received", _preview(raw))

    async def _refresh_token(self) -> bool:
        if self.token_provider is None:
            return False
        fresh = self.token_provider()
        if inspect.isawaitable(fresh):
            fresh = await fresh
        if not fresh:
            return False
        self.token = fresh
        return True

    def _go_offline(self, reason: str) -> None:
        self.offline_reason = reason
        for pending in self._outbox.values():
            if not pending.acked.done():
                pending.acked.set_exception(ConnectionError(f"{self.name}: not delivered: {reason}"))
                pending.acked.exception()  # retrieved here: nobody may be waiting on it
        self._outbox.clear()
        self._set_state(ClientState.OFFLINE, reason)

    # -- delivery that survives a reconnect ------------------------------------------------------------
    async def deliver(self, obj: dict[str, Any]) -> str:
        """Send ``obj`` with a fresh ``msg_id`` until acknowledged, across reconnects; return the id.

        Returns at once (the message waits in the outbox while not connected); ``await
        client.acked(msg_id)`` waits for the ack. Raises ``ConnectionError`` once the client is offline.
        """
        if self.state is ClientState.OFFLINE or self._stopping:
            raise ConnectionError(f"{self.name} is offline: not delivering")
        msg_id = f"{self._id_prefix}-{next(self._ids)}"
        pending = _Pending(json.dumps({**obj, "msg_id": msg_id}, separators=(",", ":")))
        self._outbox[msg_id] = pending
        ws = self._ws
        if ws is not None and self.state is ClientState.OPEN:
            with contextlib.suppress(ConnectionClosed):  # the cut is noticed by the reader; resent later
                await self._transmit(ws, pending)
        return msg_id

    async def _transmit(self, ws: ClientConnection, pending: _Pending) -> None:
        if pending.sent_on is not None:
            self.resent += 1
        pending.sent_on = self.connections
        await ws.send(pending.frame)

    def _acknowledged(self, msg_id: str, duplicate: bool) -> None:
        self.duplicate_acks += duplicate
        pending = self._outbox.pop(msg_id, None)
        if pending is not None and not pending.acked.done():
            pending.acked.set_result(msg_id)
        self.events.record(self.source, "ack", f"{msg_id}{' (duplicate)' if duplicate else ''}")

    @property
    def pending(self) -> int:
        """Messages given to :meth:`deliver` and not acknowledged yet."""
        return len(self._outbox)

    async def acked(self, msg_id: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until ``msg_id`` is acknowledged (at once if it already is)."""
        pending = self._outbox.get(msg_id)
        if pending is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(pending.acked), timeout)
        except TimeoutError:
            raise TimeoutError(f"{self.name}: {msg_id} not acknowledged within {timeout:g} s") from None

    # -- for lessons -----------------------------------------------------------------------------------
    async def send_json(self, obj: Any) -> None:
        """Send on the current connection; ``ConnectionError`` while not open (no silent queueing)."""
        if self._ws is None or self.state is not ClientState.OPEN:
            raise ConnectionError(f"{self.name} is {self.state.value}, not open")
        await self._ws.send(json.dumps(obj, separators=(",", ":")))

    async def recv_json(self, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """The next delivered message (pings are answered, not delivered)."""
        try:
            return await asyncio.wait_for(self._inbox.get(), timeout)
        except TimeoutError:
            raise TimeoutError(f"{self.name} received nothing within {timeout:g} s") from None

    async def wait_for_state(self, state: ClientState, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until the client is in ``state`` (``TimeoutError`` naming the state it is in instead)."""
        deadline = time.monotonic() + timeout
        while self.state is not state:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{self.name} is {self.state.value}, not {state.value}, after {timeout:g} s"
                )
            await asyncio.sleep(0.002)

    @property
    def closed(self) -> bool:
        return self._task is not None and self._task.done()

    async def close(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Stop reconnecting and close the current connection, if any. Safe to call twice.

        The close handshake is bounded by ``timeout``: a peer that cannot answer (a blackholed network)
        gets its TCP connection aborted instead of holding the client open.
        """
        self._stopping = True
        self._wake.set()
        ws = self._ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(), timeout)
            except (TimeoutError, OSError, ConnectionClosed):
                ws.transport.abort()
        if self._task is not None and not self._task.done():
            _, pending = await asyncio.wait([self._task], timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def __repr__(self) -> str:
        return f"<ReconnectingClient {self.name!r} ({self.state.value})>"
