"""The Lab harness: serving, connecting, transcripts, replacing by name, and cleaning up everything."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from support.leakcheck import Snapshot

from wslab import Lab
from wslab.apps import demo_app
from wslab.wire import CloseCode

pytestmark = pytest.mark.anyio


def refuses(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port any more."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


async def test_serve_connect_echo_and_transcript() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.ws_url("/ws/echo") == f"ws://127.0.0.1:{server.port}/ws/echo"
        alice = await lab.connect(server.ws_url("/ws/echo"), name="alice")
        await alice.send_json({"hello": "world"})
        assert await alice.recv_json(timeout=1) == {"hello": "world"}
        await alice.send(b"\x00\x01")
        assert await alice.recv(timeout=1) == b"\x00\x01"
        await alice.close(CloseCode.NORMAL_CLOSURE, "bye")
        assert alice.close_code == 1000
        assert [(e.direction, e.type) for e in alice.transcript] == [
            ("sent", "text"),
            ("received", "text"),
            ("sent", "binary"),
            ("received", "binary"),
            ("closed", "close"),
        ]
        orders = [e.order for e in alice.transcript]
        assert orders == sorted(orders)
        # uvicorn's access log reached the event log, with the client's port shown as its name
        access = await lab.events.wait_for(source="server:demo", kind="access")
        table = repr(lab.events.table(source="server:demo", kind="access"))
        assert "alice" in table and str(server.port) not in table, table
        assert "WebSocket /ws/echo" in access.message


async def test_tables_never_show_ports_or_pids() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        client = await lab.connect(server.ws_url("/ws/echo"), name="bob")
        await client.send("hi")
        await client.recv()
        text = repr(lab.events.table()) + lab.events.table()._repr_html_()
        assert not re.search(r":\d{4,5}\b", text), text
        assert str(server.port) not in text


async def test_starting_a_name_again_replaces_the_old_server() -> None:
    async with Lab() as lab:
        first = await lab.serve(demo_app(), name="demo")
        client = await lab.connect(first.ws_url("/ws/echo"), name="c")
        second = await lab.serve(demo_app(), name="demo")
        assert not first.running and second.running
        assert refuses(first.port)
        # the old server closed its WebSocket with 1012 (service restart), not a dangling socket
        assert await client.wait_closed(1) == "1012 SERVICE_RESTART"
        again = await lab.connect(second.ws_url("/ws/echo"), name="c")
        await again.send("still here")
        assert await again.recv() == "still here"


async def test_restart_on_the_same_port() -> None:
    async with Lab() as lab:
        first = await lab.serve(demo_app(), name="a")
        port = first.port
        await first.stop()
        second = await lab.serve(demo_app(), name="a", port=port)
        assert second.port == port


async def test_stop_closes_open_websockets_and_leaves_no_connection() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        clients = [await lab.connect(server.ws_url("/ws/echo"), name=f"c{i}") for i in range(5)]
        assert server.open_connections == 5
        await server.stop()
        for client in clients:
            await client.wait_closed(1)
            assert client.close_code == CloseCode.SERVICE_RESTART
        assert server.open_connections == 0
        assert refuses(server.port)


async def test_stop_aborts_a_handler_that_ignores_the_close() -> None:
    async def stubborn(websocket: WebSocket) -> None:
        await websocket.accept()
        await asyncio.sleep(3600)  # never reads, never returns

    async with Lab() as lab:
        server = await lab.serve(Starlette(routes=[WebSocketRoute("/ws", stubborn)]), name="stubborn")
        client = await lab.connect(server.ws_url("/ws"), name="c")
        started = time.monotonic()
        await server.stop(grace=0.2)
        assert time.monotonic() - started < 2  # bounded by the grace period, not by the handler
        await client.wait_closed(1)
        assert server.open_connections == 0


async def test_recv_never_hangs() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        client = await lab.connect(server.ws_url("/ws/echo"), name="c")
        with pytest.raises(TimeoutError, match=r"c received nothing within 0\.05 s"):
            await client.recv(timeout=0.05)
        await client.expect_silence(0.02)
        await server.stop()
        with pytest.raises(ConnectionError, match="1012"):
            await client.recv(timeout=1)


async def test_full_duplex_ticker() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        client = await lab.connect(server.ws_url("/ws/ticker?interval=0.01&count=3"), name="c")
        await client.send("ping-from-client")
        seen = [await client.recv_json() for _ in range(4)]
        assert {"ack": "ping-from-client"} in seen
        assert [m["tick"] for m in seen if "tick" in m] == [1, 2, 3]


async def test_thread_server_keeps_blocking_code_off_the_kernel_loop() -> None:
    async def blocking(websocket: WebSocket) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        time.sleep(0.3)  # blocks the server's loop only
        await websocket.send_text(text)

    async with Lab() as lab:
        server = await lab.serve(
            Starlette(routes=[WebSocketRoute("/ws", blocking)]), name="t", in_thread=True
        )
        assert server.kind == "thread"
        client = await lab.connect(server.ws_url("/ws"), name="c")
        await client.send("x")
        ticks = 0
        reply = asyncio.ensure_future(client.recv(timeout=2))
        while not reply.done():
            ticks += 1
            await asyncio.sleep(0.01)
        assert await reply == "x"
        assert ticks >= 10, "the kernel's loop kept running while the handler blocked its own thread"
        await server.stop()
        assert not server._thread.is_alive()


async def test_process_replica_serves_logs_and_stops() -> None:
    async with Lab() as lab:
        replica = await lab.serve_process("wslab.apps:demo_app", name="r1", factory=True)
        assert replica.kind == "process"
        client = await lab.connect(replica.ws_url("/ws/echo"), name="c")
        await client.send("across processes")
        assert await client.recv() == "across processes"
        await lab.events.wait_for(source="server:r1", kind="access", timeout=3)
        await replica.stop()
        assert replica.process.returncode == 0
        assert await client.wait_closed(2) == "1012 SERVICE_RESTART"


async def test_killed_replica_drops_connections_without_a_close_frame() -> None:
    async with Lab() as lab:
        replica = await lab.serve_process("wslab.apps:demo_app", name="r1", factory=True)
        client = await lab.connect(replica.ws_url("/ws/echo"), name="c")
        await replica.kill()
        assert replica.process.returncode == -9
        assert await client.wait_closed(2) == "1006 ABNORMAL_CLOSURE"


async def test_replica_that_cannot_start_says_why() -> None:
    async with Lab() as lab:
        with pytest.raises(RuntimeError, match="did not start"):
            await lab.serve_process("wslab.no_such_module:app", name="broken")


async def test_lab_close_leaves_nothing_behind() -> None:
    before = Snapshot.take()
    lab = Lab()
    task_server = await lab.serve(demo_app(), name="task")
    thread_server = await lab.serve(demo_app(), name="thread", in_thread=True)
    replica = await lab.serve_process("wslab.apps:demo_app", name="proc", factory=True)
    tap = await lab.tap(task_server)
    clients = [
        await lab.connect(task_server.ws_url("/ws/echo"), name="a"),
        await lab.connect(thread_server.ws_url("/ws/echo"), name="b"),
        await lab.connect(replica.ws_url("/ws/echo"), name="c"),
        await lab.connect(tap.ws_url("/ws/ticker?count=1000&interval=0.01"), name="d"),
    ]
    tmp = lab.temp_dir("logs")
    for c in clients[:3]:
        await c.send("x")
        assert await c.recv() == "x"
    during = Snapshot.take()
    assert during.leaks_since(before), "the snapshot should see what the lab started"
    await lab.close()
    await asyncio.sleep(0)  # let cancelled callbacks finish
    assert Snapshot.take().leaks_since(before) == []
    assert not tmp.exists()
    for port in (task_server.port, thread_server.port, replica.port):
        assert refuses(port)
    assert repr(lab).endswith("closed)>")
    with pytest.raises(RuntimeError, match="closed"):
        await lab.serve(demo_app())


async def test_open_closes_the_previous_lab() -> None:
    first = await Lab.open()
    server = await first.serve(demo_app(), name="demo")
    second = await Lab.open()
    assert first.closed and not second.closed
    assert refuses(server.port)
    await second.close()


async def test_time_scale() -> None:
    lab = Lab(time_scale=0.01)
    assert lab.seconds(30) == pytest.approx(0.3)
    assert lab.explain(30) == "30 s in production → 0.3 s here"
    assert lab.explain(60 * 60) == "60 min in production → 36 s here"
    assert "100x faster" in str(lab.time)
    with pytest.raises(ValueError):
        Lab(time_scale=0)
    await lab.close()


async def test_rejected_handshake_is_logged() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        with pytest.raises(Exception, match=r"403|404"):
            await lab.connect(server.ws_url("/nope"), name="lost")
        event = await lab.events.wait_for(source="client:lost", kind="rejected")
        assert event.data["status"] in (403, 404)


async def test_inventory_lists_what_the_lab_holds() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        await lab.connect(server.ws_url("/ws/echo"), name="alice")
        rows = lab.inventory().rows
        assert ("server", "demo", "task, running") in rows
        assert ("client", "alice", "open") in rows
        assert json.dumps(rows)  # plain values only


async def test_uvicorn_default_log_config_cannot_make_lab_servers_print(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Creating a uvicorn.Config with its default log_config (a learner trying uvicorn by hand in the kernel)
    # runs logging.config.dictConfig: it replaces the handlers on uvicorn's loggers with stream handlers.
    # The next lab server must put the routing back, or background work would print into other cells.
    import uvicorn

    uvicorn.Config(app=demo_app())
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="after-config")
        client = await lab.connect(server.ws_url("/ws/echo"), name="alice")
        await client.send_json({"n": 1})
        assert await client.recv_json(timeout=1) == {"n": 1}
        access = await lab.events.wait_for(source="server:after-config", kind="access")
        assert "WebSocket /ws/echo" in access.message
    out, err = capfd.readouterr()
    assert "/ws/echo" not in out + err and "Uvicorn running" not in out + err, (out, err)
