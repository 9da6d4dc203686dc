"""Soak under faults: a few hundred resuming clients, three replicas, one Redis restart, one replica killed.

One sender says ``n=0``, ``n=1``, ... at a steady pace into one room. Every listener is a
``ReconnectingClient(resume=True)`` behind the cluster's balancer. While the sender talks, replica 2 is
SIGKILLed and revived, then Redis restarts (persistence off, as in the lab: the stream is gone).

What the **Streams** backend guarantees, and therefore what is asserted per client:

* *Within one epoch nothing is lost, doubled or reordered.* Killing a replica costs nothing: its
  clients come back on another replica with their last ``id`` and get exactly what they missed.
* *A Redis restart without persistence is a new epoch.* The old stream is gone, so every member is
  told ``resync`` with the new epoch (it cannot be replayed, and the backend says so instead of
  pretending). In the old epoch each client holds an unbroken prefix ``n=0..a`` that covers at least
  everything the stream held just before the restart; in the new epoch it holds exactly what the new
  stream holds, in order. The messages in between (said while Redis was down, or XADDed in the last
  instant before the shutdown and not yet read by that client's replica) are the honest loss.

The **pub/sub** run is the same choreography; pub/sub keeps nothing, so listeners lose what was said
while they reconnected or while Redis was down. The test asserts that loss is there (> 0) and still
in order without duplicates (what pub/sub does promise), and records the numbers in ``lab.events``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from wslab import Lab
from wslab.backoff import FullJitterBackoff
from wslab.clients import ClientState, LabClient, ReconnectingClient
from wslab.cluster import Cluster
from wslab.storm import ensure_fd_limit

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(150), pytest.mark.slow]

CLIENTS = 240
PATH = "/ws/chat/lobby"
STREAM = "wslab:chat:stream:{lobby}"
EPOCH_KEY = "wslab:chat:stream-epoch:{lobby}"
PACE = 0.125
"""Seconds between two says: 8/s, under the chat's default rate limit of 10/s per connection."""
KILLED = 1
"""The replica that is killed and revived (the sender sits on replica 0, which stays up)."""


@dataclass
class Run:
    """What one soak run saw: the numbers sent, and each listener's messages in arrival order."""

    sent: int = 0
    messages: dict[str, list[tuple[str | None, int]]] = field(default_factory=dict)
    resyncs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    connections: dict[str, int] = field(default_factory=dict)
    open_at_end: int = 0


def number(message: dict[str, Any]) -> int:
    return int(message["text"].removeprefix("n="))


async def until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def has_ready(client: ReconnectingClient) -> bool:
    return any(isinstance(m, dict) and m.get("type") == "ready" for m in client.received)


def last_number(client: ReconnectingClient) -> int | None:
    for message in reversed(client.received):
        if isinstance(message, dict) and message.get("type") == "message":
            return number(message)
    return None


async def join_crowd(lab: Lab, cluster: Cluster) -> list[ReconnectingClient]:
    """Listeners join in batches (a join is a ``joined`` notice to everyone: no 240-way storm)."""
    rng = random.Random(7)
    url = cluster.ws_url(PATH)
    clients: list[ReconnectingClient] = []
    for start in range(0, CLIENTS, 30):
        batch = [
            await lab.connect_reconnecting(
                url,
                name=f"c{i:03d}",
                token=cluster.token(f"u{i:03d}"),
                resume=True,
                policy=FullJitterBackoff(base=0.05, cap=0.4, rng=random.Random(rng.random())),
                open_timeout=5.0,
            )
            for i in range(start, min(start + 30, CLIENTS))
        ]
        assert await until(lambda b=batch: all(has_ready(c) for c in b), 15), "a batch did not join"
        clients.extend(batch)
    return clients


async def soak(lab: Lab, backend: str) -> tuple[Run, Cluster, list[Any]]:
    """Run the choreography; returns what was seen and, for Streams, the stream just before the restart."""
    ensure_fd_limit(4 * CLIENTS + 512)  # each client: its socket and both ends of the balancer's relay
    cluster = await lab.cluster(3, backend=backend, settings_env={"WSLAB_CHAT_STREAM_MAXLEN": "100000"})
    redis = cluster.redis
    assert redis is not None
    sender = await lab.connect(cluster.replica_url(0, PATH), name="sender", timeout=5)
    await sender.send_json({"type": "auth", "token": cluster.token("sender")})
    assert (await sender.recv_json(timeout=5))["type"] == "ready"
    clients = await join_crowd(lab, cluster)
    await asyncio.sleep(0.5)  # the last joined notices settle

    run = Run()
    stop = asyncio.Event()

    async def talk(speaker: LabClient) -> None:
        while not stop.is_set():
            await speaker.send_json({"type": "say", "text": f"n={run.sent}", "exclude_self": True})
            run.sent += 1
            await asyncio.sleep(PACE)  # never catch up in a burst after a stall: that trips the limit

    talking = asyncio.create_task(talk(sender))
    admin = redis.client()
    before: list[Any] = []
    try:
        await asyncio.sleep(1.5)
        await cluster.kill(KILLED)
        await asyncio.sleep(1.0)
        await cluster.revive(KILLED)
        await asyncio.sleep(2.0)
        if backend == "streams":
            before = await admin.xrange(STREAM)
        await redis.restart(downtime=0.5)
        await asyncio.sleep(3.5)  # every listener is back, and more is said in the new epoch
    finally:
        stop.set()
        await talking
        await admin.aclose()
    last = run.sent - 1
    # Streams: everyone ends with the last message. Pub/sub: that is likely, not promised.
    await until(lambda: all(last_number(c) == last for c in clients), 20 if backend == "streams" else 5)
    for c in clients:
        run.messages[c.name] = [
            (m.get("epoch"), number(m))
            for m in c.received
            if isinstance(m, dict) and m.get("type") == "message"
        ]
        run.resyncs[c.name] = list(c.resyncs)
        run.connections[c.name] = c.connections
    run.open_at_end = sum(c.state is ClientState.OPEN for c in clients)
    await asyncio.gather(*(c.close() for c in clients))  # all at once: the lab would close them in turn
    return run, cluster, before


def texts_of(entries: list[Any]) -> list[int]:
    """The ``n`` of every ``message`` in a stream (joined and left notices are in it too)."""
    out = []
    for _, fields in entries:
        message = json.loads(fields[b"m"])
        if message.get("type") == "message":
            out.append(number(message))
    return out


async def test_streams_resume_through_a_replica_kill_and_a_redis_restart() -> None:
    async with Lab() as lab:
        run, cluster, before = await soak(lab, "streams")
        assert cluster.redis is not None
        admin = cluster.redis.client()
        after = texts_of(await admin.xrange(STREAM))
        new_epoch = (await admin.get(EPOCH_KEY)).decode()
        await admin.aclose()
        held = texts_of(before)

        assert held == list(range(len(held))) and len(held) > 20, held  # the old stream, whole, in order
        assert after == list(range(after[0], run.sent)), after  # the new one, up to the last say
        assert run.open_at_end == CLIENTS
        moved = [name for name, n in run.connections.items() if n > 1]
        assert len(moved) >= CLIENTS // 3 - 5, f"only {len(moved)} clients reconnected"

        losses = []
        for name, got in run.messages.items():
            old = [n for epoch, n in got if epoch != new_epoch]
            new = [n for epoch, n in got if epoch == new_epoch]
            # old epoch: an unbroken prefix 0..a covering at least the stream as it was before the restart
            assert old == list(range(len(old))), f"{name}: gap or duplicate before the restart: {old}"
            assert len(old) >= len(held), f"{name}: {len(old)} < {len(held)} messages the stream held"
            # new epoch: exactly the new stream, in order
            assert new == after, f"{name}: {new} != {after}"
            # told once per lost history, with the new epoch (a client may also hear it on its rejoin)
            reasons = {(r["reason"], r["epoch"]) for r in run.resyncs[name]}
            assert reasons == {("epoch_changed", new_epoch)}, f"{name}: {run.resyncs[name]}"
            losses.append(after[0] - len(old))
        lab.events.record(
            "soak",
            "streams",
            f"{run.sent} sent; replica {KILLED + 1} killed and revived: {len(moved)} clients resumed, "
            f"none lost anything; Redis restart: {len(held)} messages in the stream before it, new epoch "
            f"from n={after[0]}; lost across the restart per client: min {min(losses)}, max {max(losses)}",
            lost_min=min(losses),
            lost_max=max(losses),
        )


async def test_pubsub_loses_what_was_said_during_the_outages() -> None:
    async with Lab() as lab:
        run, _, _ = await soak(lab, "pubsub")
        losses: dict[str, int] = {}
        for name, got in run.messages.items():
            numbers = [n for _, n in got]
            assert numbers == sorted(set(numbers)), f"{name}: out of order or doubled: {numbers}"
            losses[name] = run.sent - len(numbers)
        total = sum(losses.values())
        report = (
            f"{run.sent} sent to {CLIENTS} listeners; lost {total} deliveries "
            f"({total / (run.sent * CLIENTS):.1%}), per client min {min(losses.values())}, "
            f"max {max(losses.values())}"
        )
        lab.events.record("soak", "pubsub", report, lost=total)
        assert total > 0, report  # at-most-once: what was said during the gaps is gone
        assert min(losses.values()) > 0, report  # the Redis restart hits every listener
