"""Backoff schedules, close-code decisions, and the ReconnectingClient against real restarting servers."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from wslab import Lab
from wslab.apps import demo_app
from wslab.backoff import (
    Action,
    ExponentialBackoff,
    FixedBackoff,
    FullJitterBackoff,
    decide,
    schedule,
)
from wslab.clients import ClientState
from wslab.wire import CloseCode

# -- pure parts ---------------------------------------------------------------------------------------


def test_schedules() -> None:
    assert schedule(FixedBackoff(1.0), 3) == [1.0, 1.0, 1.0]
    assert schedule(ExponentialBackoff(base=0.5, factor=2, cap=3), 5) == [0.5, 1.0, 2.0, 3.0, 3.0]
    jitter = schedule(FullJitterBackoff(base=0.5, cap=3, rng=random.Random(7)), 200)
    bounds = [min(3, 0.5 * 2**n) for n in range(200)]
    assert all(0 <= d <= b for d, b in zip(jitter, bounds, strict=True))
    assert len({round(d, 6) for d in jitter}) > 190  # spread, not synchronised
    # the same seed gives the same schedule: plots in lessons are reproducible
    assert jitter == schedule(FullJitterBackoff(base=0.5, cap=3, rng=random.Random(7)), 200)


@pytest.mark.parametrize(
    ("code", "action"),
    [
        (CloseCode.UNAUTHORIZED, Action.STOP),
        (CloseCode.POLICY_VIOLATION, Action.STOP),
        (CloseCode.NORMAL_CLOSURE, Action.STOP),
        (CloseCode.TOKEN_EXPIRED, Action.REFRESH_TOKEN),
        (CloseCode.GOING_AWAY, Action.RECONNECT),
        (CloseCode.ABNORMAL_CLOSURE, Action.RECONNECT),
        (CloseCode.INTERNAL_ERROR, Action.RECONNECT),
        (CloseCode.SERVICE_RESTART, Action.RECONNECT),
        (CloseCode.TRY_AGAIN_LATER, Action.RECONNECT),
        (None, Action.RECONNECT),
    ],
)
def test_close_code_decisions(code: int | None, action: Action) -> None:
    assert decide(code).action is action


def test_try_again_later_slows_down() -> None:
    assert decide(CloseCode.TRY_AGAIN_LATER).slow_down and not decide(CloseCode.SERVICE_RESTART).slow_down


# -- against real servers -------------------------------------------------------------------------------


def closing_app(code: int) -> Starlette:
    """Accepts, reads the auth frame, then closes with ``code``."""

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()
        await websocket.close(code)

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)])


@pytest.mark.anyio
async def test_reconnects_after_a_server_restart_and_resets_only_when_stable() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo")
        client = await lab.connect_reconnecting(
            server.ws_url("/ws/echo"), name="c", policy=FixedBackoff(0.02), stable_after=0.05
        )
        await client.wait_for_state(ClientState.OPEN)
        await client.send_json({"n": 1})
        assert await client.recv_json() == {"n": 1}
        port = server.port
        await server.stop()
        await client.wait_for_state(ClientState.BACKING_OFF)
        with pytest.raises(ConnectionError, match="backing off"):
            await client.send_json({"n": 2})
        await lab.serve(demo_app(), name="demo", port=port)
        await client.wait_for_state(ClientState.OPEN, timeout=3)
        await client.send_json({"n": 3})
        assert await client.recv_json() == {"n": 3}
        assert client.connections == 2
        assert client.close_codes == [CloseCode.SERVICE_RESTART]


@pytest.mark.anyio
async def test_never_reconnects_on_unauthorized() -> None:
    async with Lab() as lab:
        server = await lab.serve(closing_app(CloseCode.UNAUTHORIZED), name="strict")
        client = await lab.connect_reconnecting(
            server.ws_url("/ws"), name="c", token="bad", policy=FixedBackoff(0.01)
        )
        await client.wait_for_state(ClientState.OFFLINE)
        assert client.connections == 1 and client.attempts == 1
        assert "not authorized" in client.offline_reason


@pytest.mark.anyio
async def test_expired_token_is_refreshed_then_reconnects() -> None:
    tokens = iter(["fresh-1"])
    # What the handler saw, checked by the test after the lab closed: an assert inside the handler
    # would fail in uvicorn's task, which logs it and moves on, and the test would pass anyway.
    ended: list[str] = []
    async with Lab() as lab:
        seen: list[str] = []

        async def endpoint(websocket: WebSocket) -> None:
            await websocket.accept()
            auth = json.loads(await websocket.receive_text())
            seen.append(auth["token"])
            if auth["token"] == "old":
                await websocket.close(CloseCode.TOKEN_EXPIRED)
                return
            try:
                text = await websocket.receive_text()
            except WebSocketDisconnect:
                ended.append("disconnected")
            except Exception as exc:
                ended.append(f"raised {exc!r}")
            else:
                ended.append(f"received {text!r}")

        server = await lab.serve(Starlette(routes=[WebSocketRoute("/ws", endpoint)]), name="s")
        client = await lab.connect_reconnecting(
            server.ws_url("/ws"),
            name="c",
            token="old",
            token_provider=lambda: next(tokens, None),
            policy=FixedBackoff(0.01),
        )
        while len(seen) < 2:
            await asyncio.sleep(0.005)
        await client.wait_for_state(ClientState.OPEN)
        assert seen == ["old", "fresh-1"]
    # the refreshed connection stayed open, sending nothing, until the lab closed the client
    assert ended == ["disconnected"]


@pytest.mark.anyio
async def test_gives_up_after_max_attempts() -> None:
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="gone")
        url = server.ws_url("/ws/echo")
        await server.stop()
        client = await lab.connect_reconnecting(url, name="c", policy=FixedBackoff(0.005), max_attempts=3)
        await client.wait_for_state(ClientState.OFFLINE)
        assert client.attempts == 4  # the first try and 3 retries
        assert client.offline_reason == "gave up after 3 failed attempts"


@pytest.mark.anyio
async def test_answers_app_pings_and_watchdog_replaces_a_silent_connection() -> None:
    pongs: list[str] = []

    async def pinger(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(json.dumps({"type": "ping"}))
        pongs.append(await websocket.receive_text())
        await asyncio.sleep(3600)  # then silence: the client's watchdog must notice

    async with Lab() as lab:
        server = await lab.serve(Starlette(routes=[WebSocketRoute("/ws", pinger)]), name="p")
        client = await lab.connect_reconnecting(
            server.ws_url("/ws"), name="c", heartbeat=0.05, policy=FixedBackoff(0.01)
        )
        await lab.events.wait_for(source="client:c", kind="watchdog", timeout=2)
        while client.connections < 2:
            await asyncio.sleep(0.005)
        assert pongs[0] == '{"type": "pong"}'
        assert client.received == []  # pings are answered, not delivered
        await server.stop(grace=0.05)


@pytest.mark.anyio
async def test_resume_sends_the_last_seen_seq() -> None:
    auths: list[dict[str, object]] = []

    async def sequenced(websocket: WebSocket) -> None:
        await websocket.accept()
        auths.append(json.loads(await websocket.receive_text()))
        for seq in range(1, 4):
            await websocket.send_text(json.dumps({"type": "message", "seq": seq}))
        await websocket.close(CloseCode.SERVICE_RESTART)

    async with Lab() as lab:
        server = await lab.serve(Starlette(routes=[WebSocketRoute("/ws", sequenced)]), name="s")
        client = await lab.connect_reconnecting(
            server.ws_url("/ws"), name="c", token="t", resume=True, policy=FixedBackoff(0.01)
        )
        while len(auths) < 2:
            await asyncio.sleep(0.005)
        await client.close()
        assert auths[0] == {"type": "auth", "token": "t"}
        assert auths[1] == {"type": "auth", "token": "t", "last_seq": 3}
        assert client.state is ClientState.OFFLINE and client.offline_reason == "closed by the client"
