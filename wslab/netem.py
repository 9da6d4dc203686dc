"""A loopback TCP relay that sits between a real client and a real server: to watch and to break traffic.

:class:`FaultProxy` accepts on 127.0.0.1, opens one upstream connection per client connection and pumps
bytes both ways. With ``tap=True`` it also feeds each direction into :mod:`wslab.wire` (the HTTP upgrade
head first, then frames), which is how a lesson shows the real bytes a browser-like client and uvicorn
exchange, without Wireshark and without trusting either side's own account. The tap only observes: bytes
are forwarded unchanged even when they do not parse.

Later lessons switch the same relay into fault modes (blackhole, idle timeout, delay, reset); they belong
here because they are the same relay with a different ``forward`` step.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass

from wslab.events import EventLog, Table
from wslab.wire import CloseCode, Frame, FrameParser, HandshakeError, Opcode, WireError, split_http_head

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


class FaultProxy:
    """A TCP relay on 127.0.0.1 in front of ``upstream``; see the module docstring.

    Create it with ``await lab.tap(server)``; connect clients to ``proxy.ws_url(path)`` instead of the
    server's. ``frames`` and ``handshakes`` hold what the tap saw, ``table()`` shows it.
    """

    def __init__(self, name: str, upstream_port: int, events: EventLog, *, tap: bool = False) -> None:
        self.name = name
        self.upstream = (HOST, upstream_port)
        self.events = events
        self.tap = tap
        self.frames: list[TappedFrame] = []
        self.handshakes: list[TappedHandshake] = []
        self.bytes_relayed = {CLIENT_TO_SERVER: 0, SERVER_TO_CLIENT: 0}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ids = itertools.count(1)
        self._order = itertools.count(1)
        self.connections = 0

    @property
    def source(self) -> str:
        return f"proxy:{self.name}"

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

    async def start(self, port: int = 0) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, HOST, port)
        self.events.alias(f"{HOST}:{self.port}", self.name)
        self.events.record(self.source, "started", f"relaying {HOST}:{self.port} → {HOST}:{self.upstream[1]}")
        return self

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        number = next(self._ids)
        self.connections += 1
        self._writers.add(client_writer)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError as exc:
                self.events.record(self.source, "upstream-failed", f"#{number}: {exc.strerror or exc}")
                return
            self._writers.add(up_writer)
            self.events.record(self.source, "connection", f"#{number} opened")
            try:
                await asyncio.gather(
                    self._pump(client_reader, up_writer, number, CLIENT_TO_SERVER),
                    self._pump(up_reader, client_writer, number, SERVER_TO_CLIENT),
                )
            finally:
                self._writers.discard(up_writer)
                await _close(up_writer)
            self.events.record(self.source, "connection", f"#{number} closed")
        finally:
            self._writers.discard(client_writer)
            await _close(client_writer)
            self._tasks.discard(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int, direction: str
    ) -> None:
        tap = _DirectionTap(self, number, direction) if self.tap else None
        try:
            while data := await reader.read(65536):
                if tap is not None:
                    tap.feed(data)
                self.bytes_relayed[direction] += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # Half-close: pass the EOF on so the other side sees what this side did.
            with contextlib.suppress(OSError, RuntimeError):
                if writer.can_write_eof() and not writer.is_closing():
                    writer.write_eof()

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
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
        self.events.record(self.source, "stopped", f"was {HOST}:{port}")

    @property
    def running(self) -> bool:
        return self._server is not None


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ConnectionError, asyncio.CancelledError):
        await writer.wait_closed()
