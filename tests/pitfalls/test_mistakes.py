"""The tutorial mistakes of chapter 09 (``wslab.mistakes``) do what the chapter says, on real sockets.

Each test runs one mistake and its one-line fix and asserts what a client and the server see, so the
chapter's claims hold outside the notebook too (and a change to uvicorn or FastAPI that alters them fails
here with a name, not as a diff in a stored output).
"""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import pytest
import yaml
from websockets.exceptions import InvalidStatus

from wslab import Lab, mistakes
from wslab.apps import demo_app
from wslab.chat import ChatSettings, create_app, issue_token
from wslab.components import require_or_skip
from wslab.netem import Mode
from wslab.runtime.nginx import NginxSettings, render_config
from wslab.wire import CloseCode

pytestmark = pytest.mark.anyio

MANIFEST = Path(__file__).resolve().parents[2] / "notebooks" / "failures" / "k8s" / "service-affinity.yaml"


async def test_close_before_accept_is_a_403_and_accept_first_delivers_4001() -> None:
    async with Lab() as lab:
        bad_app, bad = mistakes.close_before_accept_app({"good"})
        server = await lab.serve(bad_app, name="bad")
        with pytest.raises(InvalidStatus) as refused:
            await lab.connect(server.ws_url("/ws/chat?token=nope"), name="c")
        assert refused.value.response.status_code == 403 and bad.closed_with == [CloseCode.UNAUTHORIZED]

        good_app, _ = mistakes.close_before_accept_app({"good"}, accept_first=True)
        server = await lab.serve(good_app, name="good")
        client = await lab.connect(server.ws_url("/ws/chat?token=nope"), name="c")
        await client.wait_closed()
        assert client.close_code == CloseCode.UNAUTHORIZED
        welcome = await lab.connect(server.ws_url("/ws/chat?token=good"), name="c")
        assert await welcome.recv_json() == {"type": "ready"}


async def test_a_missing_required_query_parameter_is_refused_before_the_handler_runs() -> None:
    async with Lab() as lab:
        app, stats = mistakes.required_query_app()
        server = await lab.serve(app, name="api")
        with pytest.raises(InvalidStatus) as refused:
            await lab.connect(server.ws_url("/ws/chat"), name="c")
        assert refused.value.response.status_code == 403 and stats.handled == 0
        client = await lab.connect(server.ws_url("/ws/chat?token=xy"), name="c")
        assert await client.recv_json() == {"type": "ready", "token_length": 2}
        assert stats.handled == 1


async def test_a_ping_only_heartbeat_never_notices_a_blackholed_peer_and_the_reference_does() -> None:
    async with Lab() as lab:
        interval = 0.02
        app, stats = mistakes.ping_only_heartbeat_app(interval)
        network = await lab.proxy(await lab.serve(app, name="naive"), name="net")
        await lab.connect(network.ws_url("/ws"), name="peer")
        network.mode = Mode.BLACKHOLE
        started = stats.pings
        deadline = time.monotonic() + 5
        while stats.pings - started < 10 and time.monotonic() < deadline:
            await lab.sleep(1)
        assert stats.pings - started >= 10  # every ping "sent"...
        assert stats.open == 1 and stats.closed_with == []  # ...and the dead peer is still "connected"

        events = lab.events
        settings = ChatSettings(heartbeat_interval=interval, heartbeat_timeout=interval)
        chat_app = create_app(settings, report=lambda kind, message: events.record("chat", kind, message))
        network = await lab.proxy(await lab.serve(chat_app, name="chat"), name="net")
        peer = await lab.connect(network.ws_url("/ws/chat/lobby"), name="peer")
        await peer.send_json({"type": "auth", "token": issue_token("alice", settings.secret, 60)})
        assert (await peer.recv_json())["type"] == "ready"
        network.mode = Mode.BLACKHOLE
        await events.wait_for(source="chat", kind="heartbeat_timeout", timeout=5)
        assert chat_app.state.chat.rooms.get("lobby", []) == []


def test_bounded_returns_in_time_and_fails_with_a_reason_otherwise() -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert mistakes.bounded(lambda: 42, 5, pool) == 42
        with pytest.raises(AssertionError, match=r"nothing within 0\.05 s"):
            mistakes.bounded(lambda: time.sleep(0.5), 0.05, pool)


def test_keepalive_timeout_is_rendered_only_when_set() -> None:
    where = Path("/nginx-dir")  # not tmp_path: its name would contain this test's name
    default = render_config(where, 1, [("app", 2)], NginxSettings())
    assert "keepalive_timeout" not in default  # the configs other chapters show are unchanged
    raised = render_config(where, 1, [("app", 2)], NginxSettings(keepalive_timeout=36.0))
    assert "        keepalive_timeout 36000ms;\n" in raised


async def test_real_nginx_keepalive_timeout_spares_an_idle_websocket_proxy_read_timeout_cuts_it() -> None:
    require_or_skip("nginx")
    async with Lab() as lab:
        echo = await lab.serve(demo_app(), name="echo")
        short_keepalive = await lab.nginx(echo, name="a", keepalive_timeout=0.05, proxy_read_timeout=30)
        long_keepalive = await lab.nginx(echo, name="b", keepalive_timeout=30, proxy_read_timeout=0.3)
        spared = await lab.connect(short_keepalive.ws_url("/ws/echo"), name="spared")
        cut = await lab.connect(long_keepalive.ws_url("/ws/echo"), name="cut")

        closed_after = await mistakes.http_idle_closed_after(short_keepalive.port, limit=2)
        assert closed_after is not None and closed_after < 1  # the directive is in force for HTTP...
        await cut.wait_closed(timeout=5)
        assert cut.close_code == CloseCode.ABNORMAL_CLOSURE and len(mistakes.idle_cuts(long_keepalive)) == 1
        await spared.send("still here?")  # ...idle far longer than keepalive_timeout, and still open
        assert await spared.recv() == "still here?"
        assert mistakes.idle_cuts(short_keepalive) == []
        assert await mistakes.http_idle_closed_after(long_keepalive.port, limit=0.5) is None


def test_the_affinity_manifest_names_the_field_that_gives_affinity() -> None:
    service, ingress = list(yaml.safe_load_all(MANIFEST.read_text()))
    assert service["kind"] == "Service" and service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    assert service["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] > 0
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["number"] == service["spec"]["ports"][0]["port"]
