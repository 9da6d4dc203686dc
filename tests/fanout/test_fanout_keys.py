"""Redis key shapes: whatever a client names its room, it reaches only its own room's keys, and a room whose
keys Redis refuses is left out while every other room goes on (the ``streams`` backend; real Redis)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from wslab import Lab
from wslab.chat import ChatSettings, create_app, issue_token
from wslab.chat.fanout import FanOutManager
from wslab.chat.fanout.streams import keys, room_of
from wslab.chat.presence import key as presence_key
from wslab.clients import LabClient
from wslab.runtime.servers import ServerHandle

pytestmark = pytest.mark.anyio

SECRET = "wslab-fanout-keys-secret-0123456789abcdef"

ROOMS = [
    "x",
    "x:epoch",  # its epoch key used to be room "x"'s ... and presence:x's presence set was this one's key
    "presence:x",
    "x:stream",
    "seq:x",
    "stream:{x}",
    "{x}",
    "x%3Aepoch",  # what "x:epoch" is escaped to: must still be another room
    "stream-epoch:x",
]


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("still false")
        await asyncio.sleep(0.01)


async def start(lab: Lab, redis_url: str, **overrides: Any) -> tuple[ServerHandle, FanOutManager]:
    settings = ChatSettings(secret=SECRET, backend="streams", redis_url=redis_url, rate=1000.0, burst=1000)
    app = create_app(settings, report=lambda kind, msg: lab.events.record("app", kind, msg))
    server = await lab.serve(app, name="app")
    assert isinstance(app.state.chat, FanOutManager)
    return server, app.state.chat


async def join(lab: Lab, server: ServerHandle, user: str, room: str) -> LabClient:
    client = await lab.connect(server.ws_url("/ws/chat/" + quote(room, safe="")), name=user)
    await client.send_json({"type": "auth", "token": issue_token(user, SECRET, 60)})
    ready = await client.recv_json()
    assert (ready["type"], ready["room"]) == ("ready", room), ready
    return client


async def next_of(client: LabClient, *types: str) -> dict[str, Any]:
    while True:
        msg = await client.recv_json(timeout=3.0)
        if msg["type"] in types:
            return dict(msg)


def test_every_key_of_every_room_is_distinct_and_reversible() -> None:
    all_keys = [k for room in ROOMS for k in keys(room)]
    all_keys += [presence_key(room) for room in ROOMS] + [f"wslab:chat:seq:{room}" for room in ROOMS]
    assert len(set(all_keys)) == len(all_keys)
    for room in ROOMS:
        assert room_of(keys(room)[0]) == room
        stream, seq, epoch = keys(room)
        tags = {k[k.index("{") : k.rindex("}") + 1] for k in (stream, seq, epoch)}
        assert len(tags) == 1  # one Redis Cluster hash slot for the script's three keys


async def test_rooms_named_like_other_rooms_keys_each_get_their_own_messages() -> None:
    async with Lab() as lab:
        redis = await lab.redis()
        server, manager = await start(lab, redis.url)
        clients = {room: await join(lab, server, f"u{i}", room) for i, room in enumerate(ROOMS)}
        for room, client in clients.items():
            await client.send_json({"type": "say", "text": f"in {room}"})
        for room, client in clients.items():
            msg = await next_of(client, "message", "resync")
            assert (msg["type"], msg.get("text")) == ("message", f"in {room}"), (room, msg)
        assert manager.fanout.health.errors == 0 and manager.fanout.health.state == "connected"
        for client in clients.values():
            await client.close()


async def test_a_room_whose_keys_redis_refuses_does_not_silence_the_others() -> None:
    async with Lab() as lab:
        redis = await lab.redis()
        server, manager = await start(lab, redis.url)
        alice = await join(lab, server, "alice", "a")
        bob = await join(lab, server, "bob", "b")
        admin = redis.client()
        try:
            await admin.delete(keys("a")[0])
            await admin.set(keys("a")[0], "not a stream")  # an operator's mistake, another app's key...
        finally:
            await admin.aclose()
        resync = await next_of(alice, "resync")  # alice is told that her room stopped
        assert resync["reason"] == "room_unavailable"
        for n in range(3):  # bob's room goes on
            await bob.send_json({"type": "say", "text": f"still here {n}"})
            msg = await next_of(bob, "message")
            assert msg["text"] == f"still here {n}"
        assert manager.fanout.health.state == "connected"
        assert [e for e in lab.events if e.kind == "fanout_room_error"]
        await alice.close()
        await bob.close()
