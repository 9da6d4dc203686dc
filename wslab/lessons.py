"""Small helpers that lessons and tests share, so a notebook cell shows the lesson and not the harness.

Every chapter after 02 joins the chat as some user, waits until the server has noticed something, or
needs a client that stops reading. Written out in each notebook, that plumbing took more lines than the
lesson it served, and each copy drifted a little. Here each one is written once, named for what it
does, and tested (``tests/lab/test_lessons.py``).

Nothing here knows about a particular notebook: a helper takes the lab, the server and the values the
lesson chose (secret, room, user) as arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import socket
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from wslab.chat.auth import issue_token
from wslab.clients import LabClient
from wslab.events import EventLog
from wslab.runtime.servers import ServerHandle
from wslab.wire import (
    Frame,
    FrameParser,
    HandshakeRequest,
    HandshakeResponse,
    NeedMoreData,
    Opcode,
    close_frame,
    split_http_head,
    text_frame,
)

Check = Callable[[], bool | Awaitable[bool]]
Reporter = Callable[[str, str], None]

__all__ = [
    "RawPeer",
    "StalledClient",
    "capture_logs",
    "chat_texts",
    "hears",
    "join_chat",
    "post_json",
    "reporter",
    "small_send_buffer",
    "start_plain_uvicorn",
    "until",
]


def reporter(events: EventLog, source: str) -> Reporter:
    """The ``report=`` callback of the chat apps: each report becomes an event of ``source``.

    Apps never print (their output would land in whichever cell runs next); they report, and the lab's
    event log keeps the reports in order for a cell to show or assert on.
    """

    def report(kind: str, message: str) -> None:
        events.record(source, kind, message)

    return report


async def join_chat(
    lab: Any,
    server: ServerHandle | str,
    user: str,
    *,
    secret: str | None = None,
    token: str | None = None,
    room: str = "lobby",
    name: str | None = None,
    ttl: float = 600.0,
    timeout: float = 5.0,
    resume: dict[str, Any] | None = None,
    **connect_options: Any,
) -> LabClient:
    """Connect to the reference chat as ``user`` and authenticate in the first message.

    This is what every chat client does first (chapter 03): open ``/ws/chat/<room>``, send
    ``{"type": "auth", "token": ...}``, and wait for ``{"type": "ready"}``. Give either ``token`` or
    the ``secret`` to sign one with (valid ``ttl`` seconds). ``server`` is a server handle or a ws://
    URL (through a proxy, say). ``name`` is the client's name in the lab (default: ``user``).
    ``resume`` adds fields to the auth message (``{"last_seq": 41}``: chapter 06's resume cursor).

    Raises ``AssertionError`` with the server's answer if it is not ``ready``: a lesson that fails to
    join should say why at once, not time out later.
    """
    if token is None:
        if secret is None:
            raise ValueError("join_chat needs a token or the secret to sign one")
        token = issue_token(user, secret, ttl)
    url = server if isinstance(server, str) else server.ws_url(f"/ws/chat/{room}")
    client: LabClient = await lab.connect(url, name=name or user, **connect_options)
    await client.send_json({"type": "auth", "token": token, **(resume or {})})
    try:
        answer = await client.recv_json(timeout=timeout)
    except ConnectionError as closed:  # refused: the close code says why (4001, 4003, ...)
        raise AssertionError(f"{user} could not join: {closed}") from None
    assert answer.get("type") == "ready", f"{user} could not join: {answer}"
    return client


async def until(check: Check, timeout: float = 5.0, interval: float = 0.005) -> None:
    """Wait until ``check()`` is true (it may be a coroutine function); fail after ``timeout`` seconds.

    A server learns of a close, a join or a crash a moment after the client did; lessons wait for the
    state they assert on instead of sleeping a guessed time. The timeout is generous because other
    work may share the machine; it never makes a passing check slower.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout} s: {getattr(check, '__name__', check)}")
        await asyncio.sleep(interval)


async def hears(client: LabClient, text: str, quiet: float) -> bool:
    """True if ``client`` receives the chat message ``text`` before ``quiet`` seconds pass with nothing new.

    Other messages (joins, presence, other texts) are read and skipped. "Did not hear it" needs a
    deadline, and the deadline is a lesson's choice: pass it in production time through ``lab.seconds``.
    """
    with contextlib.suppress(TimeoutError):
        while True:
            message = await client.recv_json(timeout=quiet)
            if message.get("text") == text:
                return True
    return False


def chat_texts(client: LabClient, since: int = 0) -> list[str]:
    """The chat texts ``client`` received, from its ``since``-th received frame on (other types skipped)."""
    texts = []
    for frame in client.received[since:]:
        if isinstance(frame, bytes):
            continue
        message = json.loads(frame)
        if message.get("type") == "message":
            texts.append(message["text"])
    return texts


async def post_json(url: str, body: Any = None, *, token: str | None = None) -> dict[str, Any]:
    """POST ``body`` as JSON to ``url`` (with a bearer ``token`` if given) and return the JSON answer.

    The chat's login (``/token``) and logout (``/logout``) are plain HTTP. An error status does not
    raise: its JSON body comes back with ``"status"`` added, because a refused logout is something a
    lesson shows, not a crash. The request runs in a thread so the servers on this loop keep serving.
    """

    def send() -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method="POST", headers=headers)
        try:
            # no HTTP(S)_PROXY from the environment: lab traffic never leaves 127.0.0.1
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(request, timeout=5) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as exc:
            return {"status": exc.code, **json.loads(exc.read())}

    return await asyncio.to_thread(send)


@contextlib.contextmanager
def capture_logs(
    events: EventLog,
    logger: str,
    source: str,
    keep: Callable[[logging.LogRecord], bool] | None = None,
    kind: str | None = None,
) -> Iterator[None]:
    """Route the records of the standard-library ``logger`` into the event log as ``source`` events.

    uvicorn and asyncio log through ``logging``; a handler that prints would write into whatever cell
    runs next. Inside this block their records become events, which a cell shows or counts: of kind
    ``kind`` (default: the level, lower case), with the record's ``args`` in the event's data. ``keep``
    filters records. The handler is removed on the way out, so running a cell twice never adds a second
    one. Records may come from any thread (a server in a thread logs there); the event log is thread-safe.
    """

    class _ToEvents(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if keep is None or keep(record):
                label = kind or record.levelname.lower()
                events.record(source, label, record.getMessage(), args=record.args)

    handler = _ToEvents()
    target = logging.getLogger(logger)
    target.addHandler(handler)
    try:
        yield
    finally:
        target.removeHandler(handler)


def small_send_buffer(size: int = 64 * 1024) -> type[WebSocketsSansIOProtocol]:
    """uvicorn's default WebSocket protocol with ``SO_SNDBUF`` fixed at ``size`` bytes; pass it as ``ws=``.

    On loopback Linux lets a send buffer grow to 4 MB, so a server absorbs megabytes for a peer that
    stopped reading before anything shows. Real paths buffer far less; this makes the lab's path look
    like one.
    """

    class SmallSendBuffer(WebSocketsSansIOProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
            super().connection_made(transport)

    return SmallSendBuffer


async def start_plain_uvicorn(app: Any, **options: Any) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    """Run ``app`` with a bare ``uvicorn.Server`` on this loop: (server, its task, its port).

    ``lab.serve`` stops servers quickly and politely, which is what most lessons want. A lesson about
    uvicorn's *own* shutdown (``should_exit``, ``timeout_graceful_shutdown``, what it logs while it
    waits) needs the server object itself; this starts one as ``uvicorn.run`` would, minus the signal
    handlers (the kernel keeps its own) and the log configuration (use :func:`capture_logs`). The
    caller stops it: set ``server.should_exit`` and await the task.
    """
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off", **options)
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise RuntimeError("uvicorn exited before it started")
        await asyncio.sleep(0.005)
    port: int = server.servers[0].sockets[0].getsockname()[1]
    return server, task, port


class RawPeer:
    """A WebSocket client made of bare bytes (``wslab.wire``): it does only what the lesson tells it to.

    A ``LabClient`` reads in the background and answers every close, as a good client should. A lesson
    about bad clients needs one that does not: one that vanishes, floods, or never reads. ``open``
    does the opening handshake and optionally sends one text frame (the auth message, say).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, path: str, first_message: str | None = None) -> RawPeer:
        """Connect to 127.0.0.1:``port``, upgrade ``path``, and send ``first_message`` if given."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HandshakeRequest(path, f"127.0.0.1:{port}").serialize())
        await reader.readuntil(b"\r\n\r\n")  # the 101 response
        if first_message is not None:
            writer.write(text_frame(first_message, mask=True).serialize())
        return cls(reader, writer)

    def send_text(self, *texts: str) -> None:
        """Write each text as one masked frame, all in one write (a flood arrives as one burst)."""
        self.writer.write(b"".join(text_frame(t, mask=True).serialize() for t in texts))

    async def close_frame(self, timeout: float) -> tuple[int | None, str | None] | None:
        """The (code, reason) of the server's close frame; None if none comes within ``timeout``."""
        data = b""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        frame, used = Frame.parse(data, expect_masked=False)
                    except NeedMoreData:
                        chunk = await self.reader.read(2**20)
                        if not chunk:
                            return None
                        data += chunk
                        continue
                    data = data[used:]
                    if frame.opcode is Opcode.CLOSE:
                        return frame.close_code, frame.close_reason
        except (TimeoutError, ConnectionError):
            return None

    def reset(self) -> None:
        """Drop the connection with a TCP RST, as a crashed peer's kernel would: the server hears it."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # linger 0: RST
        self.writer.transport.abort()

    def abort(self) -> None:
        """Close our end at once (no close frame)."""
        self.writer.transport.abort()


class StalledClient:
    """A chat member that authenticates and then stops reading, with a tiny receive buffer.

    This is the slow consumer of F06: the server's writes to it fill its 4 KiB window and the server's
    send buffer, and then every ``await send`` to it waits. It reads again only when told to.
    """

    def __init__(self, sock: socket.socket, parser: FrameParser) -> None:
        self.sock = sock
        self.parser = parser

    @classmethod
    async def join(
        cls, port: int, user: str, *, secret: str, room: str = "lobby", receive_buffer: int = 4096
    ) -> StalledClient:
        """Handshake and auth on a raw socket to 127.0.0.1:``port``; wait for ``ready``; then stop reading."""
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer
        )  # before connect: sets the window
        sock.setblocking(False)
        try:
            async with asyncio.timeout(5):
                await loop.sock_connect(sock, ("127.0.0.1", port))
                request = HandshakeRequest(path=f"/ws/chat/{room}", host=f"127.0.0.1:{port}")
                await loop.sock_sendall(sock, request.serialize())
                data = b""
                while (split := split_http_head(data)) is None:
                    data += await loop.sock_recv(sock, 4096)
                head, rest = split
                HandshakeResponse.parse(head).check(request)
                auth = json.dumps({"type": "auth", "token": issue_token(user, secret, 600)})
                await loop.sock_sendall(sock, text_frame(auth, mask=True).serialize())
                parser = FrameParser(expect_masked=False)
                frames = parser.feed(rest)
                while not frames:
                    frames += parser.feed(await loop.sock_recv(sock, 4096))
        except BaseException:
            sock.close()
            raise
        answer = json.loads(frames[0].text or "{}")
        if answer.get("type") != "ready":
            sock.close()
            raise AssertionError(f"{user} could not join: {answer}")
        return cls(sock, parser)

    async def read_until_close(self, timeout: float = 5.0) -> tuple[list[dict[str, Any]], int | None]:
        """Read again: every message that was waiting, then answer the close frame and return its code.

        The code is None if the server dropped the TCP connection without a close frame.
        """
        loop = asyncio.get_running_loop()
        messages: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while data := await loop.sock_recv(self.sock, 65536):
                for frame in self.parser.feed(data):
                    if frame.opcode is Opcode.CLOSE:
                        answer = close_frame(frame.close_code, mask=True).serialize()
                        await loop.sock_sendall(self.sock, answer)
                        return messages, frame.close_code
                    if frame.opcode is Opcode.TEXT:
                        messages.append(json.loads(frame.text or "{}"))
        return messages, None

    def close(self) -> None:
        """Close the socket (no close frame: the member just goes)."""
        self.sock.close()
