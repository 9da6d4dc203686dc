"""F06, one stalled peer: the sequential broadcast stalls the room; the reference evicts the peer.

The same trigger runs against both apps. Alice talks, bob listens, and between them in the room sits
a raw TCP client with a tiny receive buffer that stops reading after its ``ready``. Alice sends
random (incompressible) text in small batches until something gives. Under
:mod:`wslab.pitfalls.f06_sequential_broadcast` bob stops receiving, even alice's own handler is
stuck, and everything arrives as soon as the stalled peer goes away. Under :mod:`wslab.chat` bob
receives every message, in order, and the stalled peer is closed with 4009.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from fastapi import FastAPI

from wslab import Lab
from wslab.chat import ChatSettings, ConnectionManager, create_app
from wslab.clients import LabClient
from wslab.lessons import StalledClient, join_chat
from wslab.pitfalls import f06_sequential_broadcast
from wslab.runtime.servers import ServerHandle
from wslab.wire import (
    CloseCode,
)

pytestmark = pytest.mark.anyio

SECRET = "wslab-f06-test-secret-0123456789abcdef"
LOBBY = "/ws/chat/lobby"
AppFactory = Callable[..., FastAPI]


async def start(lab: Lab, factory: AppFactory) -> tuple[ServerHandle, ConnectionManager]:
    settings = ChatSettings(secret=SECRET, rate=1000.0, burst=1000, queue_size=16, max_message_bytes=8192)
    app = factory(settings, report=lambda kind, msg: lab.events.record("chat", kind, msg))
    server = await lab.serve(app, name="chat")
    return server, app.state.chat


async def join(lab: Lab, server: ServerHandle, user: str) -> LabClient:
    return await join_chat(lab, server, user, secret=SECRET)


async def texts(client: LabClient, wanted: int, within: float) -> list[str]:
    """The ``message`` texts ``client`` receives until it has ``wanted`` or ``within`` s pass quietly."""
    got: list[str] = []
    while len(got) < wanted:
        try:
            msg = await client.recv_json(timeout=within)
        except TimeoutError:
            break
        if msg["type"] == "message":
            got.append(msg["text"])
    return got


async def flood_until_stuck(
    alice: LabClient, bob: LabClient, manager: ConnectionManager
) -> tuple[list[str], list[str]]:
    """Alice sends 3 kB of random text in batches of 5 until the stalled peer is evicted or bob stops
    receiving; returns (sent, what bob got). Small batches keep alice's own buffers from filling up."""
    sent: list[str] = []
    got: list[str] = []
    while len(sent) < 1000:
        for _ in range(5):
            sent.append(os.urandom(1500).hex())
            await alice.send_json({"type": "say", "text": sent[-1], "exclude_self": True})
        got += await texts(bob, len(sent) - len(got), within=0.2)
        if manager.evictions or len(got) < len(sent):
            break
    return sent, got


async def test_sequential_broadcast_one_stalled_peer_stalls_everyone() -> None:
    async with Lab() as lab:
        server, manager = await start(lab, f06_sequential_broadcast.create_app)
        alice = await join(lab, server, "alice")
        stalled = await StalledClient.join(server.port, "stalled", secret=SECRET)
        bob = await join(lab, server, "bob")
        try:
            sent, got = await flood_until_stuck(alice, bob, manager)
            assert 0 < len(got) < len(sent), (len(got), len(sent))
            assert got == sent[: len(got)]
            # Not a slow moment: nothing more arrives for bob, and alice is not even heard any more.
            assert await texts(bob, 1, within=0.5) == []
            await alice.send_json({"type": "say", "text": "is anyone there?"})
            assert await texts(alice, 1, within=0.3) == []
            assert manager.evictions == [] and manager.rooms == {"lobby": ["alice", "stalled", "bob"]}
        finally:
            stalled.close()
        # The stalled peer is gone: the loop moves on, and bob gets the rest, in order.
        rest = await texts(bob, len(sent) + 1 - len(got), within=2.0)
        assert got + rest == [*sent, "is anyone there?"]
        for client in (alice, bob):
            await client.close()


async def test_reference_evicts_the_stalled_peer_4009_and_everyone_keeps_receiving() -> None:
    async with Lab() as lab:
        server, manager = await start(lab, create_app)
        alice = await join(lab, server, "alice")
        stalled = await StalledClient.join(server.port, "stalled", secret=SECRET)
        bob = await join(lab, server, "bob")
        try:
            sent, got = await flood_until_stuck(alice, bob, manager)
            assert [(e.user, e.room) for e in manager.evictions] == [("stalled", "lobby")]
            got += await texts(bob, len(sent) - len(got), within=2.0)
            assert got == sent  # nothing lost, in order
            await alice.send_json({"type": "say", "text": "is anyone there?"})
            assert (await texts(alice, 1, within=2.0)) == ["is anyone there?"]
            assert (await texts(bob, 1, within=2.0)) == ["is anyone there?"]
            assert (await stalled.read_until_close())[1] == CloseCode.SLOW_CONSUMER
        finally:
            stalled.close()
        for client in (alice, bob):
            await client.close()
