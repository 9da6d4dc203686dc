"""Heartbeats: application pings that detect a half-open peer, and protocol pings that really flow.

Half-open means the peer vanished without a FIN or RST (a blackholed proxy here): every send still
succeeds, so only a ping that goes unanswered reveals it (catalogue F02). The protocol-ping test exists
because uvicorn once ignored ``ws_ping_interval`` silently for one implementation (catalogue F05).
"""

from __future__ import annotations

import time

import pytest
from support.chat import join, start, token

from wslab import Lab
from wslab.apps import demo_app
from wslab.clients import ClientState
from wslab.lessons import until
from wslab.netem import SERVER_TO_CLIENT, Mode
from wslab.wire import CloseCode, Opcode

pytestmark = pytest.mark.anyio

INTERVAL = 0.05
TIMEOUT = 0.05


async def test_a_client_that_answers_stays_connected() -> None:
    async with Lab() as lab:
        server, manager = await start(lab, heartbeat_interval=INTERVAL, heartbeat_timeout=TIMEOUT)
        alice = await join(lab, server, "alice")
        for _ in range(4):
            assert await alice.recv_json(timeout=1) == {"type": "ping"}  # no seq: not part of the room
            await alice.send_json({"type": "pong"})
        assert not alice.closed and manager.rooms == {"lobby": ["alice"]}


async def test_a_client_that_never_answers_is_closed_1011() -> None:
    async with Lab() as lab:
        server, manager = await start(lab, heartbeat_interval=INTERVAL, heartbeat_timeout=TIMEOUT)
        mute = await join(lab, server, "mute")
        assert await mute.recv_json(timeout=1) == {"type": "ping"}
        await mute.wait_closed(1)
        assert mute.close_code == CloseCode.INTERNAL_ERROR
        assert "heartbeat timeout" in mute.close_reason
        await until(lambda: manager.rooms == {})
        assert lab.events.count(source="chat", kind="heartbeat_timeout") == 1


async def test_half_open_peer_detected_with_heartbeats_and_never_without() -> None:
    async with Lab() as lab:
        with_hb, manager_hb = await start(lab, heartbeat_interval=INTERVAL, heartbeat_timeout=TIMEOUT)
        proxy = await lab.proxy(with_hb, name="net")
        # a reconnecting client answers pings; then the network between it and the server goes dark
        bob = await lab.connect_reconnecting(
            proxy.ws_url("/ws/chat/lobby"), name="bob", token=_token("bob"), max_attempts=0
        )
        await bob.wait_for_state(ClientState.OPEN)
        await until(lambda: manager_hb.rooms == {"lobby": ["bob"]})
        proxy.mode = Mode.BLACKHOLE
        went_dark = time.monotonic()
        await lab.events.wait_for(source="chat", kind="heartbeat_timeout", timeout=2)
        detected_after = time.monotonic() - went_dark
        await until(lambda: manager_hb.rooms == {})
        # it cannot be noticed before one interval plus the timeout has passed
        assert detected_after >= INTERVAL + TIMEOUT - 0.01
        await bob.close(timeout=0.1)  # its close frame cannot get through the blackhole either

        without_hb, manager_none = await start(lab)  # same app, heartbeats off
        quiet = await lab.proxy(without_hb, name="net")
        carol = await lab.connect(quiet.ws_url("/ws/chat/lobby"), name="carol")
        await carol.send_json({"type": "auth", "token": _token("carol")})
        await carol.recv_json()
        quiet.mode = Mode.BLACKHOLE
        await lab.sleep(10 * (INTERVAL + TIMEOUT) / lab.time.factor)  # ten detection windows
        assert manager_none.rooms == {"lobby": ["carol"]}  # still a member: nobody noticed


async def test_protocol_pings_flow_on_this_uvicorn() -> None:
    """uvicorn's ``ws_ping_interval`` must put PING frames on the wire (catalogue F05)."""
    async with Lab() as lab:
        server = await lab.serve(demo_app(), name="demo", ws_ping_interval=0.03, ws_ping_timeout=0.5)
        tap = await lab.tap(server)
        client = await lab.connect(tap.ws_url("/ws/echo"), name="c")
        await lab.sleep(0.2 / lab.time.factor)
        pings = [f for f in tap.frames if f.direction == SERVER_TO_CLIENT and f.opcode is Opcode.PING]
        pongs = [f for f in tap.frames if f.direction != SERVER_TO_CLIENT and f.opcode is Opcode.PONG]
        assert len(pings) >= 3, f"only {len(pings)} protocol pings in 0.2 s with a 0.03 s interval"
        assert len(pongs) >= len(pings) - 1  # the websockets client answers each one by itself
        assert not client.closed


def _token(user: str) -> str:
    return token(user)
