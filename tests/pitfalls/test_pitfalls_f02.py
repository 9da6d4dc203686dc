"""F02: a send-only handler never notices a half-open peer; a handler with a reader does.

The peer vanishes behind a blackholing relay. Without pings, the send-only feed keeps "succeeding" and
counts the peer as online; with uvicorn's protocol pings the connection is closed (1011), but a quiet
send-only feed still counts the ghost until its next push; the same feed with a reader task reports the
peer gone within interval + timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from wslab import Lab
from wslab.netem import SERVER_TO_CLIENT, Mode
from wslab.pitfalls import f02_send_only_handler as f02

pytestmark = pytest.mark.anyio

PING = 0.1


async def until(check: Callable[[], bool], timeout: float) -> None:
    """Wait for ``check()`` to hold; fail the test, saying so, if it does not within ``timeout`` s."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def feed(lab: Lab, push: float, reader: bool, **options: Any) -> tuple[Any, Any]:
    app = f02.create_app(push, reader=reader, report=lambda k, m: lab.events.record("feed", k, m))
    server = await lab.serve(app, name="feed", **options)
    net = await lab.proxy(server, name="net")
    carol = await lab.connect(net.ws_url("/feed/carol"), name="carol")
    assert (await carol.recv_json())["tick"] == 1
    return app, net


async def test_send_only_feed_without_pings_keeps_the_ghost() -> None:
    async with Lab() as lab:
        app, net = await feed(lab, 0.01, reader=False, ws_ping_interval=None)
        net.mode = Mode.BLACKHOLE
        await asyncio.sleep(0.5)
        assert app.state.online == {"carol"}
        assert net.bytes_dropped[SERVER_TO_CLIENT] > 0
        await lab.get("client", "carol").abort()


async def test_quiet_send_only_feed_misses_the_ping_timeout() -> None:
    async with Lab() as lab:
        app, net = await feed(lab, 60.0, reader=False, ws_ping_interval=PING, ws_ping_timeout=PING)
        server = lab.get("server", "feed")
        assert server.open_connections == 1
        net.mode = Mode.BLACKHOLE
        # uvicorn pings into the void (the feed itself is silent for 60 s), then closes the connection
        await until(lambda: server.open_connections == 0, timeout=2 * PING + 5)
        assert net.bytes_dropped[SERVER_TO_CLIENT] > 0
        # ... and the quiet handler, which never reads, has not noticed: the ghost is still "online"
        assert app.state.online == {"carol"}
        assert lab.events.count(source="feed", kind="left") == 0
        await lab.get("client", "carol").abort()
        await lab.get("server", "feed").stop(grace=0.05)


async def test_feed_with_reader_notices_within_interval_plus_timeout() -> None:
    async with Lab() as lab:
        app, net = await feed(lab, 60.0, reader=True, ws_ping_interval=PING, ws_ping_timeout=PING)
        net.mode = Mode.BLACKHOLE
        await lab.events.wait_for(source="feed", kind="left", timeout=2 * PING + 5)
        assert app.state.online == set()
        await lab.get("client", "carol").abort()
