"""The frame tap: a real client and a real uvicorn server, every frame seen and parsed in between."""

from __future__ import annotations

import asyncio

import pytest

from wslab import Lab
from wslab.apps import demo_app
from wslab.netem import CLIENT_TO_SERVER, SERVER_TO_CLIENT
from wslab.wire import CloseCode, HandshakeRequest, HandshakeResponse, Opcode

pytestmark = pytest.mark.anyio


async def test_tap_sees_handshake_and_every_frame_both_ways() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        tap = await lab.tap(server)
        client = await lab.connect(tap.ws_url("/ws/echo"), name="alice")
        await client.send("hello")
        assert await client.recv() == "hello"
        await client.send(b"\x01\x02\x03")
        assert await client.recv() == b"\x01\x02\x03"
        await (await client.ws.ping(b"are you there"))  # wait for the pong
        await client.close(CloseCode.GOING_AWAY, "lunch")
        await lab.events.wait_for(source="proxy:tap", kind="connection", contains="closed")

        request = HandshakeRequest.parse(tap.handshakes[0].head)
        response = HandshakeResponse.parse(tap.handshakes[1].head)
        response.check(request)  # the 101 carries the right Sec-WebSocket-Accept
        assert request.path == "/ws/echo"

        seen = [(f.direction, f.opcode, f.frame.masked) for f in tap.frames]
        assert seen == [
            (CLIENT_TO_SERVER, Opcode.TEXT, True),
            (SERVER_TO_CLIENT, Opcode.TEXT, False),
            (CLIENT_TO_SERVER, Opcode.BINARY, True),
            (SERVER_TO_CLIENT, Opcode.BINARY, False),
            (CLIENT_TO_SERVER, Opcode.PING, True),
            (SERVER_TO_CLIENT, Opcode.PONG, False),
            (CLIENT_TO_SERVER, Opcode.CLOSE, True),
            (SERVER_TO_CLIENT, Opcode.CLOSE, False),
        ]
        assert tap.frames[0].frame.payload == b"hello"  # unmasked by the parser
        assert tap.frames[5].frame.payload == b"are you there"  # a pong echoes its ping
        assert tap.frames[6].frame.close_code == 1001
        assert tap.frames[6].frame.close_reason == "lunch"

        table = tap.table()
        assert table.column("opcode")[:2] == ["TEXT", "TEXT"]
        assert table.column("masked")[:2] == ["yes", "no"]
        assert table.column("close code")[6] == "1001 GOING_AWAY"


async def test_tap_forwards_bytes_it_cannot_parse() -> None:
    """The tap observes and never interferes: plain HTTP through it still works."""
    import urllib.request

    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        tap = await lab.tap(server)

        def get() -> str:
            with urllib.request.urlopen(tap.url + "/", timeout=2) as r:
                return r.read().decode()

        import asyncio

        assert await asyncio.to_thread(get) == "hello over HTTP\n"
        assert tap.handshakes[0].text.startswith("GET / HTTP/1.1")
        assert tap.bytes_relayed[SERVER_TO_CLIENT] > 0


async def test_proxy_stop_drops_relayed_connections() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        tap = await lab.tap(server)
        client = await lab.connect(tap.ws_url("/ws/echo"), name="c")
        await tap.stop()
        assert await client.wait_closed(2) == "1006 ABNORMAL_CLOSURE"
        assert server.open_connections == 0 or await _eventually_zero(server)


async def _eventually_zero(server) -> bool:  # type: ignore[no-untyped-def]
    import asyncio

    for _ in range(100):
        if server.open_connections == 0:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_tap_reports_a_broken_stream_and_still_forwards_it() -> None:
    """An unmasked client frame: the tap logs the violation, relays it anyway, and sees the server's 1002."""
    import asyncio

    from wslab import wire

    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        tap = await lab.tap(server)
        reader, writer = await asyncio.open_connection("127.0.0.1", tap.port)
        writer.write(wire.HandshakeRequest(path="/ws/echo", host="demo").serialize())
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        writer.write(wire.text_frame("unmasked").serialize())
        frames = wire.FrameParser(expect_masked=False).feed(await asyncio.wait_for(reader.read(100), 2))
        writer.close()
        assert frames[0].close_code == CloseCode.PROTOCOL_ERROR
        error = await lab.events.wait_for(source="proxy:tap", kind="tap-error")
        assert CLIENT_TO_SERVER in error.message and "mask" in error.message
        assert [(f.direction, f.frame.close_code) for f in tap.frames] == [(SERVER_TO_CLIENT, 1002)]


async def test_blackhole_keeps_both_sockets_open_and_passes_nothing() -> None:
    from wslab.netem import Mode

    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        proxy = await lab.proxy(server)
        client = await lab.connect(proxy.ws_url("/ws/echo"), name="c")
        proxy.mode = Mode.BLACKHOLE
        await client.send("lost")
        await client.expect_silence(0.1)
        assert not client.closed and server.open_connections == 1  # nobody noticed: a half-open peer
        assert proxy.bytes_dropped[CLIENT_TO_SERVER] > 0
        proxy.mode = Mode.PASS
        await client.send("found")
        assert await client.recv() == "found"


async def test_idle_timeout_cuts_a_quiet_connection_without_a_close_frame() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        proxy = await lab.proxy(server)
        proxy.idle_timeout = 0.15
        quiet = await lab.connect(proxy.ws_url("/ws/echo"), name="quiet")
        chatty = await lab.connect(proxy.ws_url("/ws/echo"), name="chatty")
        for _ in range(6):  # traffic every 0.05 s keeps chatty's connection alive
            await chatty.send("x")
            await chatty.recv()
            await asyncio.sleep(0.05)
        assert await quiet.wait_closed(1) == "1006 ABNORMAL_CLOSURE"
        assert not chatty.closed
        assert lab.events.count(source="proxy:proxy", kind="idle-timeout") == 1


async def test_delay_holds_every_chunk_and_keeps_order() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        proxy = await lab.proxy(server)
        client = await lab.connect(proxy.ws_url("/ws/echo"), name="c")
        proxy.delay = 0.05
        started = asyncio.get_running_loop().time()
        for i in range(5):
            await client.send(str(i))
        assert [await client.recv() for _ in range(5)] == ["0", "1", "2", "3", "4"]
        assert asyncio.get_running_loop().time() - started >= 0.1  # one delay each way


async def test_throttle_slows_a_transfer_to_the_set_rate() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        proxy = await lab.proxy(server)
        client = await lab.connect(proxy.ws_url("/ws/echo"), name="c")
        proxy.throttle = 200_000  # bytes per second
        started = asyncio.get_running_loop().time()
        await client.send(b"\x00" * 40_000)
        assert len(await client.recv(timeout=5)) == 40_000
        assert asyncio.get_running_loop().time() - started >= 0.2  # 40 kB each way at 200 kB/s


async def test_reset_aborts_connections() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        proxy = await lab.proxy(server)
        client = await lab.connect(proxy.ws_url("/ws/echo"), name="c")
        await proxy.reset()
        assert await client.wait_closed(1) == "1006 ABNORMAL_CLOSURE"


async def test_round_robin_across_replicas_skips_a_dead_one() -> None:
    async with Lab() as lab:
        a = await lab.serve(demo_app(), name="a")
        b = await lab.serve(demo_app(), name="b")
        balancer = await lab.proxy([a, b], name="lb")
        first = await lab.connect(balancer.ws_url("/ws/echo"), name="c1")
        second = await lab.connect(balancer.ws_url("/ws/echo"), name="c2")
        assert (a.open_connections, b.open_connections) == (1, 1)
        await b.stop()
        await second.wait_closed(1)
        third = await lab.connect(balancer.ws_url("/ws/echo"), name="c3")
        fourth = await lab.connect(balancer.ws_url("/ws/echo"), name="c4")
        for client in (first, third, fourth):
            await client.send("ok")
            assert await client.recv() == "ok"
        assert a.open_connections == 3


async def test_access_log_shows_request_lines_like_a_proxy_would() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        proxy = await lab.proxy(server)
        client = await lab.connect(proxy.ws_url("/ws/echo?token=s3cret"), name="c")
        await client.close()
        assert proxy.access_log == ['127.0.0.1 - - "GET /ws/echo?token=s3cret HTTP/1.1" #1']


async def test_blackhole_hides_a_peer_that_goes_away() -> None:
    """A client that disconnects behind a blackhole stays connected as far as the server can tell."""
    from wslab.netem import Mode

    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        proxy = await lab.proxy(server)
        client = await lab.connect(proxy.ws_url("/ws/echo"), name="c")
        proxy.mode = Mode.BLACKHOLE
        await client.abort()
        await asyncio.sleep(0.1)
        assert server.open_connections == 1  # no FIN got through: half-open
        await proxy.reset()
        for _ in range(100):
            if server.open_connections == 0:
                break
            await asyncio.sleep(0.01)
        assert server.open_connections == 0
