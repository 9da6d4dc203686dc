"""Replica processes behind a balancer: messages stay on their replica without a backing store (F11),
reach everyone with Redis pub/sub, and a killed replica's clients find a live one."""

from __future__ import annotations

import asyncio

import pytest

from wslab import Lab
from wslab.clients import LabClient
from wslab.lessons import join_chat

pytestmark = pytest.mark.anyio


async def join(lab: Lab, url: str, token: str, name: str) -> LabClient:
    return await join_chat(lab, url, name, token=token)


async def said(client: LabClient, text: str) -> bool:
    """True if ``client`` receives the message ``text`` within a short wait (notices are skipped)."""
    try:
        while True:
            message = await client.recv_json(timeout=1)
            if message.get("type") == "message" and message.get("text") == text:
                return True
    except TimeoutError:
        return False


async def test_without_a_backing_store_messages_stay_on_their_replica() -> None:
    async with Lab() as lab:
        cluster = await lab.cluster(2, backend="memory")
        url = cluster.ws_url("/ws/chat/lobby")
        alice = await join(lab, url, cluster.token("alice"), "alice")  # replica 1 (round robin)
        bob = await join(lab, url, cluster.token("bob"), "bob")  # replica 2
        carol = await join(lab, url, cluster.token("carol"), "carol")  # replica 1 again
        await alice.send_json({"type": "say", "text": "hello"})
        assert await said(carol, "hello")
        assert not await said(bob, "hello")  # F11: bob is on the other process


async def test_with_redis_pubsub_everyone_hears_everyone() -> None:
    async with Lab() as lab:
        cluster = await lab.cluster(2, backend="pubsub")
        url = cluster.ws_url("/ws/chat/lobby")
        alice = await join(lab, url, cluster.token("alice"), "alice")
        bob = await join(lab, url, cluster.token("bob"), "bob")
        await alice.send_json({"type": "say", "text": "across processes"})
        assert await said(bob, "across processes")


async def test_a_killed_replica_s_clients_reconnect_to_a_live_one() -> None:
    async with Lab() as lab:
        cluster = await lab.cluster(2, backend="pubsub")
        url = cluster.ws_url("/ws/chat/lobby")
        first = await join(lab, url, cluster.token("alice"), "alice")
        second = await join(lab, url, cluster.token("bob"), "bob")
        await cluster.kill(1)
        assert await second.wait_closed(3) == "1006 ABNORMAL_CLOSURE"
        again = await join(lab, url, cluster.token("bob"), "bob")  # the balancer skips the dead replica
        await first.send_json({"type": "say", "text": "still here"})
        assert await said(again, "still here")
        assert cluster.table().column("state") == ["running", "stopped"]


async def test_settings_env_cannot_change_what_the_cluster_owns() -> None:
    async with Lab() as lab:
        for key in ("WSLAB_CHAT_SECRET", "WSLAB_CHAT_BACKEND", "REDIS_URL"):
            with pytest.raises(ValueError, match=f"settings_env cannot set {key}"):
                await lab.cluster(1, settings_env={key: "x"})
        assert len(lab.inventory()) == 0


async def test_what_a_replica_s_chat_reports_arrives_in_the_lab_s_events() -> None:
    async with Lab() as lab:
        cluster = await lab.cluster(1, backend="memory")
        since = lab.events.mark()
        alice = await join(lab, cluster.ws_url("/ws/chat/lobby"), cluster.token("alice"), "alice")
        await alice.close()
        source = f"server:{cluster.name}-1"

        async def reported(kind: str) -> list[str]:
            for _ in range(200):  # the record crosses a pipe and a reader task: poll, up to 2 s
                found = [e.message for e in lab.events.select(source=source, kind=kind, since=since)]
                if found:
                    return found
                await asyncio.sleep(0.01)
            return []

        assert await reported("joined") == ["alice joined lobby"]
        assert await reported("left") == ["alice left lobby"]
