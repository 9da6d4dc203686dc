"""F19: what a stop does to open sockets, and when uvicorn's shutdown waits forever.

uvicorn's own ``Server.shutdown`` (not wslab's bounded ``server.stop``) is driven here, as ``uvicorn
app:app`` would on SIGTERM, always under a deadline of the test's own so that nothing can hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest
import uvicorn

from wslab import Lab
from wslab.chat import ChatSettings, create_app, issue_token
from wslab.netem import Mode
from wslab.pitfalls import f19_no_drain
from wslab.wire import CloseCode

pytestmark = pytest.mark.anyio

SECRET = "wslab-f19-test-secret-0123456789abcdef"


async def plain_uvicorn(app: Any, **options: Any) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off", **options)
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # keep the runner's signals
    task = asyncio.get_running_loop().create_task(server.serve())
    deadline = time.monotonic() + 5
    while not server.started:
        assert time.monotonic() < deadline and not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.005)
    return server, task, server.servers[0].sockets[0].getsockname()[1]


async def shutdown_within(server: uvicorn.Server, task: asyncio.Task[None], deadline: float) -> bool:
    """Ask uvicorn to exit (as SIGTERM does); True if it finished within ``deadline``. Always cleans up."""
    server.should_exit = True
    done, _ = await asyncio.wait([task], timeout=deadline)
    if done:
        return True
    server.force_exit = True  # what a second Ctrl-C does; then cancel the tasks it would leave behind
    for running in list(server.server_state.tasks):
        running.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert done, "uvicorn did not exit even after force_exit"
    return False


async def test_a_push_only_handler_keeps_shutdown_waiting_without_a_timeout() -> None:
    async with Lab() as lab:
        app = f19_no_drain.create_app()
        server, task, port = await plain_uvicorn(app, timeout_graceful_shutdown=None)
        proxy = await lab.proxy(port)
        client = await lab.connect(proxy.ws_url("/ws/feed"), name="c")
        app.state.feed.publish("hello")
        assert await client.recv() == "hello"
        proxy.mode = Mode.BLACKHOLE
        assert not await shutdown_within(server, task, deadline=0.5)
        await proxy.reset()  # the half-open client would otherwise take its close timeout to give up
        assert not app.state.feed.subscribers  # the cleanup ran once the task was cancelled


async def test_timeout_graceful_shutdown_bounds_it() -> None:
    async with Lab() as lab:
        app = f19_no_drain.create_app()
        server, task, port = await plain_uvicorn(app, timeout_graceful_shutdown=0.2)
        proxy = await lab.proxy(port)
        await lab.connect(proxy.ws_url("/ws/feed"), name="c")
        proxy.mode = Mode.BLACKHOLE
        started = time.monotonic()
        assert await shutdown_within(server, task, deadline=3.0)
        assert time.monotonic() - started < 3.0
        await proxy.reset()


async def test_a_half_open_peer_alone_does_not_hang_uvicorn_0_54() -> None:
    """Version fact (catalogue F05/F19): uvicorn's sansio shutdown writes 1012 and closes the transport."""
    async with Lab() as lab:
        app = create_app(ChatSettings(secret=SECRET))
        server, task, port = await plain_uvicorn(app, timeout_graceful_shutdown=None)
        proxy = await lab.proxy(port)
        alice = await lab.connect(proxy.ws_url("/ws/chat/lobby"), name="alice")
        await alice.send_json({"type": "auth", "token": issue_token("alice", SECRET, 60)})
        assert (await alice.recv_json())["type"] == "ready"
        proxy.mode = Mode.BLACKHOLE
        assert await shutdown_within(server, task, deadline=2.0)
        assert app.state.chat.rooms == {}
        await proxy.reset()


async def test_a_stop_sends_1012_to_every_client() -> None:
    async with Lab() as lab:
        server = await lab.serve(create_app(ChatSettings(secret=SECRET)), name="chat")
        clients = []
        for i in range(4):
            client = await lab.connect(server.ws_url("/ws/chat/lobby"), name=f"u{i}")
            await client.send_json({"type": "auth", "token": issue_token(f"u{i}", SECRET, 60)})
            await client.recv_json()
            clients.append(client)
        await server.stop()
        for client in clients:
            await client.wait_closed()
        assert [c.close_code for c in clients] == [CloseCode.SERVICE_RESTART] * 4
