"""Presence across replicas: a joining user's member list names everyone in the room, on every replica.

Without it each replica lists only its own members (F11, chapter 06). The entries live in a real Redis
and expire when a replica stops refreshing them, which the crash test shows with a SIGKILLed process.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from support.fanout import SECRET, join, manager, start

from wslab import Lab
from wslab.chat import issue_token
from wslab.chat.fanout import FanOutHealth, redis_client
from wslab.chat.presence import RedisPresence

pytestmark = pytest.mark.anyio


async def ready_members(lab: Lab, url: str, user: str) -> list[str]:
    client = await lab.connect(url, name=user)
    await client.send_json({"type": "auth", "token": issue_token(user, SECRET, 60)})
    ready = await client.recv_json()
    assert ready["type"] == "ready", ready
    return list(ready["members"])


@pytest.mark.parametrize("backend", ["pubsub", "streams"])
async def test_a_joining_user_sees_the_members_on_every_replica(backend: str) -> None:
    async with Lab() as lab:
        redis = await lab.redis()
        one = await start(lab, "one", backend, redis.url)
        two = await start(lab, "two", backend, redis.url)
        alice = await join(lab, one, "alice")
        bob = await join(lab, two, "bob")
        carol_members = await ready_members(lab, two.ws_url("/ws/chat/lobby"), "carol")
        assert carol_members == ["bob", "carol", "alice"]  # this replica's in join order, then the others
        await alice.close()
        presence = manager(two).fanout.presence
        deadline = time.monotonic() + 3
        while "alice" in await presence.users("lobby"):
            assert time.monotonic() < deadline, "alice's entry was never removed"
            await asyncio.sleep(0.01)
        assert await ready_members(lab, one.ws_url("/ws/chat/lobby"), "dave") == ["dave", "bob", "carol"]
        await bob.close()


async def test_the_members_of_a_crashed_replica_expire_after_the_presence_ttl() -> None:
    async with Lab() as lab:
        redis = await lab.redis()
        env = {"WSLAB_CHAT_PRESENCE_TTL": "0.6", "WSLAB_CHAT_REDIS_TIMEOUT": "0.15"}
        cluster = await lab.cluster(2, backend="pubsub", settings_env=env)
        alice = await lab.connect(cluster.replica_url(0, "/ws/chat/lobby"), name="alice")
        await alice.send_json({"type": "auth", "token": cluster.token("alice")})
        assert (await alice.recv_json())["members"] == ["alice"]
        await cluster.kill(0)  # SIGKILL: nothing gets to remove alice's entry
        admin = redis.client()
        entries = await admin.zrange("wslab:chat:presence:lobby", 0, -1)
        await admin.aclose()
        assert [entry.decode().split("|")[1] for entry in entries] == ["alice"]  # her ghost, for now
        await asyncio.sleep(0.7)
        late = await lab.connect(cluster.replica_url(1, "/ws/chat/lobby"), name="carol")
        await late.send_json({"type": "auth", "token": cluster.token("carol")})
        assert (await late.recv_json())["members"] == ["carol"]  # alice expired with her replica


async def test_a_member_connected_longer_than_the_ttl_stays_listed() -> None:
    async with Lab() as lab:
        redis = await lab.redis()
        one = await start(lab, "one", "pubsub", redis.url, presence_ttl=0.6, redis_timeout=0.15)
        two = await start(lab, "two", "pubsub", redis.url, presence_ttl=0.6, redis_timeout=0.15)
        alice = await join(lab, one, "alice")
        await asyncio.sleep(1.5)  # two and a half ttls: only the refresher keeps her entry alive
        assert await ready_members(lab, two.ws_url("/ws/chat/lobby"), "bob") == ["bob", "alice"]
        await alice.close()


async def test_presence_without_redis_degrades_to_local_members_and_counts_it() -> None:
    health = FanOutHealth(backend="pubsub")
    client = redis_client("redis://127.0.0.1:1/0", timeout=0.3)  # nothing listens on port 1
    presence = RedisPresence(client, ttl=1.0, health=health)
    try:
        await presence.enter("lobby", "k1", "alice")
        assert await presence.users("lobby") == []
        presence.leave("lobby", "k1")
        await asyncio.sleep(0.05)
        assert health.presence_failures == 3
    finally:
        await presence.aclose()
        await client.aclose()
