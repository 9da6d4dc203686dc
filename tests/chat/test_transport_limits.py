"""Limits below the app (wslab.chat.transport) and the transport options every way of running the chat uses.

Each test drives a real uvicorn with raw sockets (``wslab.wire``): a ping flood from a client that never
reads, a peer that stops reading and is evicted, a connection that never finishes its request head, a
client offering compression; and the runner, ``Lab.serve`` and a cluster replica get the same options.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from wslab import Lab
from wslab.apps import demo_app
from wslab.chat import ChatSettings, ConnectionManager, create_app, issue_token
from wslab.components import require_or_skip
from wslab.runtime.process import free_port
from wslab.runtime.servers import TaskServer
from wslab.wire import CloseCode, Frame, FrameParser, HandshakeRequest, HandshakeResponse, Opcode, text_frame

pytestmark = pytest.mark.anyio

SECRET = "wslab-transport-test-secret-0123456789abcdef"


async def start(lab: Lab, **overrides: Any) -> tuple[TaskServer, ConnectionManager, ChatSettings]:
    settings = ChatSettings(secret=SECRET, **overrides)
    app = create_app(settings, report=lambda kind, msg: lab.events.record("chat", kind, msg))
    server = await lab.serve(app, name="chat")
    assert isinstance(server, TaskServer)
    return server, app.state.chat, settings


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("still false")
        await asyncio.sleep(0.01)


async def member(
    port: int, user: str, rcvbuf: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    request = HandshakeRequest(path="/ws/chat/lobby", host=f"127.0.0.1:{port}")
    writer.write(request.serialize())
    HandshakeResponse.parse(await reader.readuntil(b"\r\n\r\n")).check(request)
    writer.write(
        text_frame(
            json.dumps({"type": "auth", "token": issue_token(user, SECRET, 600)}), mask=True
        ).serialize()
    )
    return reader, writer


async def frames_until_close(reader: asyncio.StreamReader, timeout: float = 3.0) -> list[Frame]:
    parser = FrameParser(expect_masked=False)
    frames: list[Frame] = []
    async with asyncio.timeout(timeout):
        while not any(f.opcode is Opcode.CLOSE for f in frames):
            data = await reader.read(65536)
            if not data:
                break
            frames += parser.feed(data)
    return frames


# --- control frames ----------------------------------------------------------------------------------


async def test_a_ping_flood_is_rate_limited_like_messages() -> None:
    async with Lab() as lab:
        server, manager, settings = await start(lab, rate=10.0, burst=20)
        reader, writer = await member(server.port, "mallory")
        await eventually(lambda: manager.rooms == {"lobby": ["mallory"]})
        flood = b"".join(Frame(Opcode.PING, b"x" * 125, mask_key=b"abcd").serialize() for _ in range(500))
        writer.write(flood)
        frames = await frames_until_close(reader)
        pongs = [f for f in frames if f.opcode is Opcode.PONG]
        assert len(pongs) <= settings.burst + 2  # the burst, and whatever refilled meanwhile
        assert [f.close_code for f in frames if f.opcode is Opcode.CLOSE] == [CloseCode.POLICY_VIOLATION]
        writer.transport.abort()
        await eventually(lambda: manager.rooms == {} and server.open_connections == 0)


async def test_ordinary_keepalive_pings_are_answered() -> None:
    async with Lab() as lab:
        server, manager, _ = await start(lab, rate=10.0, burst=20)
        reader, writer = await member(server.port, "alice")
        parser = FrameParser(expect_masked=False)
        for n in range(30):  # 30 pings, 50 ms apart: within 10/s with a burst of 20
            writer.write(Frame(Opcode.PING, str(n).encode(), mask_key=b"abcd").serialize())
            await asyncio.sleep(0.05)
        got: list[Frame] = []
        async with asyncio.timeout(3):
            while len([f for f in got if f.opcode is Opcode.PONG]) < 30:
                got += parser.feed(await reader.read(65536))
        assert not [f for f in got if f.opcode is Opcode.CLOSE]
        writer.transport.abort()
        await eventually(lambda: manager.rooms == {})


# --- a bounded end -------------------------------------------------------------------------------------


async def test_an_evicted_peer_that_never_reads_is_cut_off_after_close_timeout() -> None:
    async with Lab() as lab:
        server, manager, _ = await start(
            lab,
            queue_size=4,
            backlog_timeout=0.2,
            close_timeout=0.5,
            rate=1e6,
            burst=10**6,
            max_message_bytes=16384,
        )
        alice_reader, alice = await member(server.port, "alice")
        _, stalled = await member(server.port, "stalled", rcvbuf=4096)
        await eventually(lambda: manager.rooms.get("lobby") == ["alice", "stalled"])
        say = text_frame(
            json.dumps({"type": "say", "text": os.urandom(6000).hex(), "exclude_self": True}), mask=True
        )
        for _ in range(400):
            if manager.evictions:
                break
            alice.write(say.serialize())
            await asyncio.sleep(0.005)
        assert [e.user for e in manager.evictions] == ["stalled"]
        await eventually(lambda: manager.rooms == {"lobby": ["alice"]})
        # the stalled peer reads nothing, so its close frame never goes out; after close_timeout it is cut
        await eventually(lambda: server.open_connections == 1, timeout=3.0)
        stalled.transport.abort()
        alice.transport.abort()
        del alice_reader


# --- the request head -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sent", [b"", b"GET /ws/chat/lobby HTTP/1.1\r\nHost: x\r\n"])
async def test_a_connection_that_never_completes_its_request_head_is_closed(sent: bytes) -> None:
    async with Lab() as lab:
        server, _, _ = await start(lab, handshake_timeout=0.3)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(sent)
        await eventually(lambda: server.open_connections == 1)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 3.0) == b""  # closed by the server
        assert 0.2 < time.monotonic() - started < 2.0
        await eventually(lambda: server.open_connections == 0)
        writer.close()


async def test_a_complete_handshake_is_not_cut_by_the_head_deadline() -> None:
    async with Lab() as lab:
        server, manager, _ = await start(lab, handshake_timeout=0.2, auth_timeout=5.0)
        reader, writer = await member(server.port, "alice")
        await asyncio.sleep(0.5)  # past the head deadline: the WebSocket is not an HTTP request any more
        writer.write(text_frame(json.dumps({"type": "say", "text": "still here"}), mask=True).serialize())
        parser = FrameParser(expect_masked=False)
        texts: list[dict[str, Any]] = []
        async with asyncio.timeout(3):
            while not any(m.get("text") == "still here" for m in texts):
                texts += [json.loads(f.text or "") for f in parser.feed(await reader.read(65536))]
        writer.transport.abort()
        await eventually(lambda: manager.rooms == {})


# --- transport options: Lab.serve, replicas, the runner --------------------------------------------------


def handshake_offering_deflate(port: int, path: str = "/ws/chat/lobby") -> bytes:
    """The response head to a handshake that offers permessage-deflate (blocking, for any server)."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    return head


async def test_lab_serve_takes_the_chat_apps_transport_limits_and_warns_when_loosened() -> None:
    async with Lab() as lab:
        server, _, settings = await start(lab, max_message_bytes=2000)
        config = server._server.config
        assert (config.ws_max_size, config.ws_per_message_deflate) == (3024, False)
        head = await asyncio.to_thread(handshake_offering_deflate, server.port)
        assert b" 101 " in head and b"permessage-deflate" not in head.lower()
        assert not [e for e in lab.events if e.kind == "warning"]
        loose = await lab.serve(create_app(settings), name="loose", ws_max_size=2**24)
        warnings = [e.message for e in lab.events if e.kind == "warning"]
        assert warnings == ["ws_max_size=16777216 is looser than the app's limits ask (ws_max_size=3024)"]
        await loose.stop()


async def test_a_cluster_replica_refuses_compression_and_big_frames() -> None:
    async with Lab() as lab:
        cluster = await lab.cluster(1, backend="memory")
        port = cluster.replicas[0].port
        head = await asyncio.to_thread(handshake_offering_deflate, port)
        assert b" 101 " in head and b"permessage-deflate" not in head.lower()


def test_the_runner_refuses_compression_and_frames_over_the_limit() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wslab", "chat", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the runner did not start"
                time.sleep(0.05)
        head = handshake_offering_deflate(port)
        assert b" 101 " in head and b"permessage-deflate" not in head.lower()
        limit = ChatSettings().uvicorn_options()["ws_max_size"]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            request = HandshakeRequest(path="/ws/chat/lobby", host=f"127.0.0.1:{port}")
            sock.sendall(request.serialize())
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(4096)
            # a frame header announcing one byte over the transport limit: refused from the header alone
            sock.sendall(bytes([0x81, 0xFE]) + (limit + 1).to_bytes(2, "big") + b"abcd")
            parser = FrameParser(expect_masked=False)
            frames = parser.feed(data.split(b"\r\n\r\n", 1)[1])
            while not frames:
                frames += parser.feed(sock.recv(4096))
            assert (frames[0].opcode, frames[0].close_code) == (Opcode.CLOSE, CloseCode.MESSAGE_TOO_BIG)
    finally:
        proc.terminate()
        proc.wait(10)


# --- nginx in front ------------------------------------------------------------------------------------


async def test_nginx_never_negotiates_compression_even_for_a_server_that_would() -> None:
    require_or_skip("nginx")
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="app", ws_per_message_deflate=True)
        direct = await asyncio.to_thread(handshake_offering_deflate, server.port, "/ws/echo")
        assert b"permessage-deflate" in direct.lower()  # the server alone would compress
        nginx = await lab.nginx(server)
        assert 'proxy_set_header Sec-WebSocket-Extensions "";' in nginx.config
        proxied = await asyncio.to_thread(handshake_offering_deflate, nginx.port, "/ws/echo")
        assert b" 101 " in proxied and b"permessage-deflate" not in proxied.lower()


async def test_nginx_closes_a_connection_that_never_completes_its_request_head() -> None:
    require_or_skip("nginx")
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="app")
        nginx = await lab.nginx(server, client_header_timeout=0.3)
        assert "client_header_timeout 300ms;" in nginx.config
        reader, writer = await asyncio.open_connection("127.0.0.1", nginx.port)
        writer.write(b"GET /ws/echo HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        await asyncio.wait_for(reader.read(), 5.0)  # nginx gives up (a 408, or just the close)
        assert 0.2 < time.monotonic() - started < 3.0
        writer.close()
