"""A loopback TCP relay that sits between a real client and a real server: to watch and to break traffic.

:class:`FaultProxy` accepts on 127.0.0.1, opens one upstream connection per client connection and pumps
bytes both ways. With ``tap=True`` it also feeds each direction into :mod:`wslab.wire` (the HTTP upgrade
head first, then frames), which is how a lesson shows the real bytes a browser-like client and uvicorn
exchange, without Wireshark and without trusting either side's own account. The tap only observes: bytes
are forwarded unchanged even when they do not parse.

The same relay injects the network faults later lessons need (blackhole, idle timeout, delay, throttle,
reset) and balances connections across replicas: see :class:`FaultProxy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from wslab.events import EventLog, Table
from wslab.wire import CloseCode, Frame, FrameParser, HandshakeError, Opcode, WireError, split_http_head

__all__ = [
    "CLIENT_TO_SERVER",
    "HOST",
    "SERVER_TO_CLIENT",
    "FaultProxy",
    "Mode",
    "TappedFrame",
    "TappedHandshake",
    "Upstream",
]

HOST = "127.0.0.1"
CLIENT_TO_SERVER = "client → server"
SERVER_TO_CLIENT = "server → client"


@dataclass(frozen=True)
class TappedFrame:
    """One frame seen on the wire, with the connection and direction it travelled."""

    order: int
    connection: int
    direction: str
    frame: Frame

    @property
    def opcode(self) -> Opcode:
        return self.frame.opcode


@dataclass(frozen=True)
class TappedHandshake:
    """The HTTP head (request or 101 response) that opened a WebSocket connection."""

    order: int
    connection: int
    direction: str
    head: bytes

    @property
    def text(self) -> str:
        return self.head.decode("latin-1")


class _DirectionTap:
    """Parses one direction of one connection: HTTP head, then frames. Never raises into the relay."""

    def __init__(self, proxy: FaultProxy, connection: int, direction: str) -> None:
        self.proxy, self.connection, self.direction = proxy, connection, direction
        self.buffer = b""
        self.head_done = False
        self.failed = False
        # RFC 6455 §5.1: client frames are masked, server frames are not; the parser checks it.
        self.parser = FrameParser(expect_masked=direction == CLIENT_TO_SERVER, max_size=None)

    def feed(self, data: bytes) -> None:
        if self.failed:
            return
        try:
            if not self.head_done:
                self.buffer += data
                split = split_http_head(self.buffer)
                if split is None:
                    return
                head, rest = split
                self.head_done = True
                self.buffer = b""
                self.proxy._record_head(self.connection, self.direction, head)
                data = rest
                if not data:
                    return
            for frame in self.parser.feed(data):
                self.proxy._record_frame(self.connection, self.direction, frame)
        except WireError as exc:
            for frame in exc.frames:  # frames that completed before the bad one were real
                self.proxy._record_frame(self.connection, self.direction, frame)
            self._fail(exc)
        except HandshakeError as exc:  # an HTTP head that never ends
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self.failed = True
        self.proxy.events.record(
            self.proxy.source, "tap-error", f"#{self.connection} {self.direction}: {exc}", error=exc
        )


Upstream = tuple[str, int]  # (name, port)


class Mode(StrEnum):
    """What the relay does with the bytes it reads."""

    PASS = "pass"  # forward unchanged
    BLACKHOLE = "blackhole"  # read and drop, both directions; both sockets stay open (a half-open peer)


class FaultProxy:
    """A TCP relay on 127.0.0.1 in front of one or more upstream servers; see the module docstring.

    Create it with ``await lab.tap(server)`` or ``await lab.proxy(server)``; connect clients to
    ``proxy.ws_url(path)`` instead of the server's. With several upstreams, each new connection goes to
    the next one (round robin), skipping any that refuse the connection.

    Faults, each switchable at any time and effective at once on open connections:

    - ``proxy.mode = Mode.BLACKHOLE``: nothing passes, nobody is told (a laptop lid closing, a NAT entry
      expiring). ``Mode.PASS`` restores it; the bytes dropped meanwhile are gone, as on a real network.
    - ``proxy.idle_timeout = s``: close both sides when no byte crossed in either direction for ``s``
      seconds, as nginx's ``proxy_read_timeout`` or a cloud load balancer does. The peers see the TCP
      connection end without a close frame (1006).
    - ``proxy.delay = s``: hold every chunk ``s`` seconds before forwarding it (order kept).
    - ``proxy.throttle = bytes_per_second``: a slow link; backpressure reaches the sender's buffers.
    - ``await proxy.reset()``: abort every relayed connection with a TCP RST.

    ``access_log`` holds one line per connection with its HTTP request line, like a proxy's access log,
    which is where tokens in query strings end up (F24).
    """

    def __init__(
        self, name: str, upstreams: Sequence[Upstream], events: EventLog, *, tap: bool = False
    ) -> None:
        if not upstreams:
            raise ValueError("a proxy needs at least one upstream")
        self.name = name
        self.upstreams = list(upstreams)
        self.events = events
        self.tap = tap
        self.mode = Mode.PASS
        self.idle_timeout: float | None = None
        self.delay: float = 0.0
        self.throttle: float | None = None
        self.frames: list[TappedFrame] = []
        self.handshakes: list[TappedHandshake] = []
        self.access_log: list[str] = []
        self.bytes_relayed = {CLIENT_TO_SERVER: 0, SERVER_TO_CLIENT: 0}
        self.bytes_dropped = {CLIENT_TO_SERVER: 0, SERVER_TO_CLIENT: 0}
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ids = itertools.count(1)
        self._order = itertools.count(1)
        self._next_upstream = 0

    @property
    def source(self) -> str:
        return f"proxy:{self.name}"

    @property
    def upstream(self) -> tuple[str, int]:
        """The first upstream's address (the only one, for a plain relay)."""
        return (HOST, self.upstreams[0][1])

    @property
    def port(self) -> int:
        assert self._server is not None, "the proxy is not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def ws_url(self, path: str = "/") -> str:
        """The ``ws://`` URL that reaches the upstream ``path`` through this proxy."""
        return f"ws://{HOST}:{self.port}/{path.lstrip('/')}"

    @property
    def open_connections(self) -> int:
        """Client connections relayed right now."""
        return len(self._tasks)

    async def start(self, port: int = 0) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, HOST, port)
        self.events.alias(f"{HOST}:{self.port}", self.name)
        targets = ", ".join(name for name, _ in self.upstreams)
        self.events.record(self.source, "started", f"relaying {HOST}:{self.port} → {targets}")
        return self

    async def _connect_upstream(self) -> tuple[str, asyncio.StreamReader, asyncio.StreamWriter]:
        errors = []
        for _ in range(len(self.upstreams)):
            name, port = self.upstreams[self._next_upstream % len(self.upstreams)]
            self._next_upstream += 1
            try:
                reader, writer = await asyncio.open_connection(HOST, port)
            except OSError as exc:
                errors.append(f"{name}: {exc.strerror or exc}")
                continue
            return name, reader, writer
        raise ConnectionRefusedError("; ".join(errors))

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        number = next(self._ids)
        self.connections += 1
        self._writers.add(client_writer)
        try:
            try:
                upstream, up_reader, up_writer = await self._connect_upstream()
            except OSError as exc:
                self.events.record(self.source, "upstream-failed", f"#{number}: {exc}")
                return
            self._writers.add(up_writer)
            self.events.record(self.source, "connection", f"#{number} opened → {upstream}", upstream=upstream)
            activity = _Activity()
            pumps = [
                asyncio.ensure_future(
                    self._pump(client_reader, up_writer, number, CLIENT_TO_SERVER, activity)
                ),
                asyncio.ensure_future(
                    self._pump(up_reader, client_writer, number, SERVER_TO_CLIENT, activity)
                ),
            ]
            watchdog = asyncio.ensure_future(self._watch_idle(number, activity, [client_writer, up_writer]))
            try:
                await asyncio.gather(*pumps)
            finally:
                watchdog.cancel()
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(watchdog, *pumps, return_exceptions=True)
                self._writers.discard(up_writer)
                await _close(up_writer)
            self.events.record(self.source, "connection", f"#{number} closed")
        finally:
            self._writers.discard(client_writer)
            await _close(client_writer)
            self._tasks.discard(task)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        number: int,
        direction: str,
        activity: _Activity,
    ) -> None:
        tap = _DirectionTap(self, number, direction) if self.tap else None
        outbox: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()
        sender = asyncio.ensure_future(self._send_later(outbox, writer))
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(self._chunk_size()):
                if self.throttle:
                    await asyncio.sleep(len(data) / self.throttle)  # the link is busy this long
                if self.mode is Mode.BLACKHOLE:
                    self.bytes_dropped[direction] += len(data)
                    continue
                activity.touch()
                if direction == CLIENT_TO_SERVER and self.connections and not activity.logged:
                    activity.logged = self._log_request(number, data)
                if tap is not None:
                    tap.feed(data)
                self.bytes_relayed[direction] += len(data)
                outbox.put_nowait((loop.time() + self.delay, data))
        except (ConnectionError, OSError):
            pass
        finally:
            if self.mode is Mode.BLACKHOLE:
                # Nothing passes, not even the end of the stream: the other side must not learn that
                # this side went away (that is what makes a peer half-open).
                sender.cancel()
            else:
                outbox.put_nowait((0.0, None))  # EOF marker, after everything queued
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    def _chunk_size(self) -> int:
        """Small reads when throttled (10 ms of bandwidth), so a slow link is slow evenly."""
        return max(256, int(self.throttle / 100)) if self.throttle else 65536

    async def _send_later(
        self, outbox: asyncio.Queue[tuple[float, bytes | None]], writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                due, data = await outbox.get()
                if data is None:
                    # Half-close: pass the EOF on so the other side sees what this side did.
                    if writer.can_write_eof() and not writer.is_closing():
                        writer.write_eof()
                    return
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                if self.mode is Mode.BLACKHOLE:
                    continue  # switched while the chunk was delayed
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, RuntimeError):
            pass

    async def _watch_idle(
        self, number: int, activity: _Activity, writers: list[asyncio.StreamWriter]
    ) -> None:
        while True:
            timeout = self.idle_timeout
            if timeout is None:
                await asyncio.sleep(0.01)
                continue
            idle = activity.idle_for()
            if idle >= timeout:
                self.events.record(self.source, "idle-timeout", f"#{number} idle for {timeout:g} s: closed")
                for writer in writers:
                    writer.close()  # FIN to both sides, as nginx does on proxy_read_timeout
                return
            await asyncio.sleep(min(timeout - idle, 0.05))

    def _log_request(self, number: int, data: bytes) -> bool:
        line = data.split(b"\r\n", 1)[0].decode("latin-1")
        if not line.startswith(("GET ", "POST ", "PUT ", "DELETE ", "HEAD ", "OPTIONS ", "PATCH ")):
            return True  # not HTTP: nothing to log, and never look again
        entry = f'{HOST} - - "{line}" #{number}'
        self.access_log.append(entry)
        self.events.record(self.source, "access", entry)
        return True

    async def reset(self) -> None:
        """Abort every relayed connection with a TCP RST (SO_LINGER 0), like a crashed middlebox."""
        for writer in list(self._writers):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self.events.record(self.source, "reset", f"aborted {len(self._tasks)} connection(s)")
        await asyncio.sleep(0)

    # -- tap records ------------------------------------------------------------------------------------
    def _record_head(self, connection: int, direction: str, head: bytes) -> None:
        self.handshakes.append(TappedHandshake(next(self._order), connection, direction, head))
        first_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        self.events.record(self.source, "http", f"#{connection} {direction}: {first_line}")

    def _record_frame(self, connection: int, direction: str, frame: Frame) -> None:
        self.frames.append(TappedFrame(next(self._order), connection, direction, frame))
        self.events.record(
            self.source, "frame", f"#{connection} {direction}: {frame.opcode.name} {frame.preview()}"
        )

    def clear(self) -> None:
        """Forget what the tap saw so far (the next table starts empty)."""
        self.frames.clear()
        self.handshakes.clear()

    def table(self, connection: int | None = None, width: int = 40) -> Table:
        """Every tapped frame: direction, opcode, FIN, masked, payload length, preview, close code."""
        rows = []
        frames = [f for f in self.frames if connection is None or f.connection == connection]
        for i, tapped in enumerate(frames, 1):
            frame = tapped.frame
            close, payload = "", frame.preview(width)
            if frame.opcode == Opcode.CLOSE and frame.close_code is not None:
                close = CloseCode.describe(frame.close_code)
                payload = repr(frame.close_reason) if frame.close_reason else ""
            rows.append(
                (
                    i,
                    tapped.direction,
                    frame.opcode.name,
                    "1" if frame.fin else "0",
                    "yes" if frame.masked else "no",
                    len(frame.payload),
                    payload,
                    close,
                )
            )
        return Table(["#", "direction", "opcode", "fin", "masked", "length", "payload", "close code"], rows)

    async def stop(self) -> None:
        """Stop accepting and drop every relayed connection (both sides see the TCP connection end)."""
        if self._server is None:
            return
        server, self._server = self._server, None
        port = server.sockets[0].getsockname()[1] if server.sockets else None
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        # The relays end by themselves once their sockets are gone; cancelling them instead would make
        # asyncio's stream callback log a CancelledError from a background task.
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=2)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await server.wait_closed()
        self.events.record(self.source, "stopped", f"was {HOST}:{port}")

    @property
    def running(self) -> bool:
        return self._server is not None


class _Activity:
    """When a byte last crossed a connection, in either direction (for the idle timeout)."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.logged = False

    def touch(self) -> None:
        self.last = time.monotonic()

    def idle_for(self) -> float:
        return time.monotonic() - self.last


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ConnectionError, asyncio.CancelledError):
        await writer.wait_closed()
