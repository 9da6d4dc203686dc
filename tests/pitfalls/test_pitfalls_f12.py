"""F12, a Redis listener per connection: k members in a process get every message k times, Redis holds a
connection per WebSocket, and leaving never unsubscribes; the reference fan-out is exactly once, with one
subscriber connection per process.

The same users and the same ``say`` run against both apps, on one real Redis (``lab.redis()``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from wslab import Lab
from wslab.chat import ChatSettings, create_app
from wslab.clients import LabClient
from wslab.lessons import join_chat
from wslab.pitfalls import f12_listener_per_connection as f12
from wslab.runtime.servers import ServerHandle

pytestmark = pytest.mark.anyio

SECRET = "wslab-f12-test-secret-0123456789abcdef"
REFERENCE_CHANNEL = "wslab:chat:room:lobby"


def settings(redis_url: str, backend: str = "memory") -> ChatSettings:
    return ChatSettings(secret=SECRET, backend=backend, redis_url=redis_url, rate=1000.0, burst=1000)


async def join(lab: Lab, server: ServerHandle, user: str) -> LabClient:
    return await join_chat(lab, server, user, secret=SECRET)


async def texts(client: LabClient, quiet: float = 0.3) -> list[str]:
    """Every chat message text ``client`` receives until nothing more arrives for ``quiet`` seconds."""
    got: list[str] = []
    while True:
        try:
            message = await client.recv_json(timeout=quiet)
        except TimeoutError:
            return got
        if message["type"] == "message":
            got.append(message["text"])


async def until(probe: Callable[[], Awaitable[Any]], expected: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while (value := await probe()) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{probe} is {value!r}, expected {expected!r}")
        await asyncio.sleep(0.02)


async def test_a_listener_per_connection_multiplies_deliveries_and_connections() -> None:
    async with Lab() as lab:
        redis = await lab.redis()
        app = f12.create_app(settings(redis.url), name="f12-app")
        server = await lab.serve(app, name="f12")
        admin = redis.client()
        try:

            async def numsub() -> int:
                [(_, count)] = await admin.pubsub_numsub(f12.channel("lobby"))
                return int(count)

            async def connections() -> int:
                return sum(c.get("name") == "f12-app" for c in await admin.client_list())

            alice, bob, carol = [await join(lab, server, user) for user in ("alice", "bob", "carol")]
            await until(numsub, 3)  # one subscription per WebSocket
            await alice.send_json({"type": "say", "text": "hello"})
            for client in (alice, bob, carol):
                assert Counter(await texts(client)) == {"hello": 3}, client.name  # three copies each
            assert await connections() == 4  # three subscribers and the publisher, for one process

            await carol.close()  # the reader is cancelled, the subscription is not
            await until(lambda: asyncio.sleep(0, app.state.chat.rooms), {"lobby": ["alice", "bob"]})
            assert await numsub() == 3 and await connections() == 4
            await bob.send_json({"type": "say", "text": "again"})
            assert Counter(await texts(alice)) == {"again": 2}
        finally:
            await admin.aclose()


async def test_the_reference_pubsub_delivers_once_with_one_subscriber_per_process() -> None:
    async with Lab() as lab:
        redis = await lab.redis()
        one = await lab.serve(create_app(settings(redis.url, "pubsub")), name="one")
        two = await lab.serve(create_app(settings(redis.url, "pubsub")), name="two")
        admin = redis.client()
        try:

            async def numsub() -> int:
                [(_, count)] = await admin.pubsub_numsub(REFERENCE_CHANNEL)
                return int(count)

            clients = [await join(lab, one, user) for user in ("alice", "bob", "carol")]
            clients.append(await join(lab, two, "dave"))
            await until(numsub, 2)  # one per process, however many members it has
            assert len(await admin.client_list(_type="pubsub")) == 2
            await clients[0].send_json({"type": "say", "text": "hello"})
            for client in clients:
                assert await texts(client) == ["hello"], client.name
        finally:
            await admin.aclose()
