"""A real nginx in front of lab servers: validated config, WebSocket upgrade, idle timeout, access log.

Skipped with the install hint where nginx is missing; a failure in CI (WSLAB_REQUIRE contains nginx).
"""

from __future__ import annotations

import asyncio

import pytest

from wslab import Lab
from wslab.apps import demo_app
from wslab.components import require_or_skip

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def nginx_present() -> None:
    require_or_skip("nginx")


async def test_websockets_pass_through_nginx_and_the_config_is_the_one_that_ran() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="app")
        nginx = await lab.nginx(server)
        assert nginx.config_path.read_text() == nginx.config
        assert "proxy_read_timeout 60000ms;" in nginx.config
        assert "syntax is ok" in lab.events.last(source="nginx:nginx", kind="validated").message
        client = await lab.connect(nginx.ws_url("/ws/echo"), name="c")
        await client.send("through nginx")
        assert await client.recv() == "through nginx"


async def test_proxy_read_timeout_cuts_an_idle_websocket() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="app")
        nginx = await lab.nginx(server, proxy_read_timeout=lab.seconds(30))
        quiet = await lab.connect(nginx.ws_url("/ws/echo"), name="quiet")
        assert await quiet.wait_closed(2) == "1006 ABNORMAL_CLOSURE"  # no close frame: TCP just ends
        assert any("timed out" in line for line in nginx.error_log())


async def test_the_access_log_records_query_strings() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="app")
        nginx = await lab.nginx(server)
        client = await lab.connect(nginx.ws_url("/ws/echo?token=s3cret"), name="c")
        await client.close()
        for _ in range(200):  # nginx writes the line when the proxied connection has ended
            if nginx.access_log():
                break
            await asyncio.sleep(0.01)
        (line,) = nginx.access_log()
        assert '"GET /ws/echo?token=s3cret HTTP/1.1" 101' in line


async def test_missing_upgrade_headers_break_the_handshake() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="app")
        nginx = await lab.nginx(server, upgrade_headers=False)
        with pytest.raises(Exception, match=r"HTTP (400|404|426)|did not receive a valid HTTP response"):
            await lab.connect(nginx.ws_url("/ws/echo"), name="c")


async def test_round_robin_upstream() -> None:
    async with Lab() as lab:
        a = await lab.serve(demo_app(), name="a")
        b = await lab.serve(demo_app(), name="b")
        nginx = await lab.nginx([a, b])
        clients = [await lab.connect(nginx.ws_url("/ws/echo"), name=f"c{i}") for i in range(4)]
        assert (a.open_connections, b.open_connections) == (2, 2)
        assert all(not c.closed for c in clients)
