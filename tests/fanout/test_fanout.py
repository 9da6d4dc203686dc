"""Fan-out across processes (wslab.chat.fanout): two apps, one real Redis, every message exactly once.

Each test reads like the scaling lesson: alice and bob sit on different app instances sharing a Redis;
we assert on what each of them received, on what Redis itself says (``PUBSUB NUMSUB``), and on the
fan-out's own health counters. Redis is always the real server from ``lab.redis()``, never a fake.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError
from support.fanout import SECRET, join, manager, messages, numsub, start, until_equal
from support.leakcheck import Snapshot

from wslab import Lab
from wslab.chat.fanout import (
    FanOut,
    FanOutHealth,
    HasHealth,
    PubSubFanOut,
    StreamsFanOut,
    Supervised,
    redis_client,
)
from wslab.chat.fanout.base import Deliver, Start
from wslab.clients import LabClient
from wslab.netem import FaultProxy, Mode
from wslab.runtime.servers import ServerHandle

pytestmark = pytest.mark.anyio


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {check.__doc__ or check}")
        await asyncio.sleep(0.01)


# --- pub/sub -------------------------------------------------------------------------------------------


async def test_pubsub_subscribes_once_per_room_per_process_and_unsubscribes_when_empty() -> None:
    async with Lab() as lab:
        redis = await lab.redis()
        server = await start(lab, "app", "pubsub", redis.url)
        clients = [await join(lab, server, user) for user in ("alice", "bob", "carol")]
        await until_equal(lambda: numsub(redis), 1)  # three members, one subscription (F12)
        health = manager(server).fanout.health
        assert health.rooms == ["lobby"] and health.state == "connected"
        await clients[0].close()
        await clients[1].close()
        await eventually(lambda: manager(server).rooms == {"lobby": ["carol"]})
        assert await numsub(redis) == 1
        await clients[2].close()
        await until_equal(lambda: numsub(redis), 0)  # the last one out unsubscribes
        assert health.rooms == []


async def test_pubsub_listener_killed_by_redis_comes_back_and_resubscribes() -> None:
    before = Snapshot.take()
    async with Lab() as lab:
        redis = await lab.redis()
        one = await start(lab, "one", "pubsub", redis.url)
        two = await start(lab, "two", "pubsub", redis.url)
        alice, bob = await join(lab, one, "alice"), await join(lab, two, "bob")
        await until_equal(lambda: numsub(redis), 2)
        admin = redis.client()
        await admin.client_kill_filter(_type="pubsub")  # what client-output-buffer-limit does (F14)
        await admin.aclose()
        health = manager(two).fanout.health
        await eventually(lambda: health.reconnects == 1 and health.state == "connected")
        await until_equal(lambda: numsub(redis), 2)
        assert (await messages(bob, 1))[0]["reason"] == "fanout_reconnected"
        await alice.send_json({"type": "say", "text": "still here"})
        assert [m["text"] for m in await messages(bob, 1)] == ["still here"]
    await asyncio.sleep(0)
    assert Snapshot.take().leaks_since(before) == []  # listener and publisher tasks end with the app


async def across_a_link(lab: Lab, backend: str) -> tuple[FaultProxy, LabClient, LabClient, FanOutHealth]:
    """alice on app "one" (straight to Redis), bob on app "two", whose Redis connections go through a
    relay that a test can blackhole; returns the relay, both clients and two's fan-out health."""
    redis = await lab.redis()
    link = await lab.proxy(redis.port, name="redis-link")
    one = await start(lab, "one", backend, redis.url, redis_timeout=0.4)
    two = await start(lab, "two", backend, f"redis://127.0.0.1:{link.port}/0", redis_timeout=0.4)
    alice, bob = await join(lab, one, "alice"), await join(lab, two, "bob")
    health = manager(two).fanout.health
    await eventually(lambda: health.published == 1)  # "bob joined" went out before the link can die
    if backend == "pubsub":
        await until_equal(lambda: numsub(redis), 2)
    return link, alice, bob, health


async def test_pubsub_listener_on_a_half_open_redis_connection_notices_and_recovers() -> None:
    # Replica "two" reaches Redis through a relay that can blackhole: Redis is still there for "one", but
    # nothing passes for "two" and no FIN or RST says so (a failover, a dropped NAT entry). Without its
    # PING watchdog the listener would stay "connected" and deaf, and its publisher would hang forever.
    async with Lab() as lab:
        link, alice, bob, health = await across_a_link(lab, "pubsub")
        link.mode = Mode.BLACKHOLE
        await alice.send_json({"type": "say", "text": "while two is deaf"})
        await bob.send_json({"type": "say", "text": "from the deaf side"})
        await eventually(lambda: health.errors >= 1 and health.publish_failures >= 1, timeout=5)
        assert health.last_error is not None and "PING" in health.last_error, health.last_error
        assert health.state == "reconnecting"
        link.mode = Mode.PASS
        await eventually(lambda: health.reconnects >= 1 and health.state == "connected", timeout=5)
        resync = (await messages(bob, 1))[0]
        assert resync["type"] == "resync" and resync["reason"] == "fanout_reconnected"  # told, not silent
        await alice.send_json({"type": "say", "text": "after"})
        await bob.send_json({"type": "say", "text": "publishing again"})
        assert [m["text"] for m in await messages(bob, 2)] == ["after", "publishing again"]
        alice_heard = [m["text"] for m in await messages(alice, 3)]
        assert alice_heard == ["while two is deaf", "after", "publishing again"]  # the failed one is gone
        assert health.publish_failures == 1 and health.published == 2


async def test_pubsub_watchdog_does_not_mistake_a_blocked_loop_for_a_dead_redis() -> None:
    # A handler that blocks the loop (F08) for longer than redis_timeout: the listener must find Redis's
    # answer waiting in its buffer afterwards, not declare the connection dead and resync everyone.
    async with Lab() as lab:
        redis = await lab.redis()
        server = await start(lab, "app", "pubsub", redis.url, redis_timeout=0.4)
        alice = await join(lab, server, "alice")
        health = manager(server).fanout.health
        for pause in (0.05, 0.13, 0.21, 0.29, 0.37):  # block at different points of the PING cycle
            await asyncio.sleep(pause)
            time.sleep(0.6)
        await asyncio.sleep(0.5)
        assert (health.errors, health.reconnects, health.state) == (0, 0, "connected"), health
        await alice.send_json({"type": "say", "text": "still fine"})
        assert [m["text"] for m in await messages(alice, 1)] == ["still fine"]


async def test_a_command_that_timed_out_is_not_run_twice() -> None:
    # Redis busy for longer than the client's timeout (DEBUG SLEEP stands in for a slow script or a
    # fork): the INCR fails on the client, Redis runs it once later, and a retry would have run it twice.
    async with Lab() as lab:
        redis = await lab.redis()
        admin = redis.client()
        client = redis_client(redis.url, timeout=0.3)
        try:
            await client.set("counter", 0)
            sleeper = asyncio.ensure_future(admin.execute_command("DEBUG", "SLEEP", "0.8"))
            await asyncio.sleep(0.1)
            with pytest.raises(RedisTimeoutError):
                await client.incr("counter")
            await sleeper
            async with asyncio.timeout(2):  # Redis runs the buffered INCR once it wakes up
                while int(await admin.get("counter")) == 0:
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # room for a retry to land, if there were one
            assert int(await admin.get("counter")) == 1  # run once: not retried after the timeout
        finally:
            await client.aclose()
            await admin.aclose()


async def test_pubsub_two_instances_deliver_each_message_exactly_once_in_seq_order() -> None:
    async with Lab() as lab:
        redis = await lab.redis()
        one = await start(lab, "one", "pubsub", redis.url)
        two = await start(lab, "two", "pubsub", redis.url)
        alice, dave = await join(lab, one, "alice"), await join(lab, one, "dave")
        bob, carol = await join(lab, two, "bob"), await join(lab, two, "carol")
        await until_equal(lambda: numsub(redis), 2)  # one subscriber per process, not per member
        for i in range(5):
            await alice.send_json({"type": "say", "text": f"m{i}"})
        for client in (alice, dave, bob, carol):
            got = await messages(client, 5)
            assert [m["text"] for m in got] == [f"m{i}" for i in range(5)], client.name
            seqs = [m["seq"] for m in got]
            assert seqs == list(range(seqs[0], seqs[0] + 5)), seqs  # one Redis INCR per room message
            await client.expect_silence(0.1)  # no duplicates
        await alice.send_json({"type": "say", "text": "not to me", "exclude_self": True})
        assert [m["text"] for m in await messages(bob, 1)] == ["not to me"]
        await alice.expect_silence(0.1)


async def test_pubsub_listener_recovers_after_redis_restart_and_counts_the_gap() -> None:
    async with Lab() as lab:
        redis = await lab.redis()
        one = await start(lab, "one", "pubsub", redis.url)
        two = await start(lab, "two", "pubsub", redis.url)
        alice, bob = await join(lab, one, "alice"), await join(lab, two, "bob")
        await until_equal(lambda: numsub(redis), 2)
        await alice.send_json({"type": "say", "text": "before"})
        assert [m["text"] for m in await messages(bob, 1)] == ["before"]

        restart = asyncio.create_task(redis.restart(downtime=0.5))
        await eventually(lambda: not redis.running)
        await alice.send_json({"type": "say", "text": "during"})  # published into the void
        fanout_one, fanout_two = manager(one).fanout.health, manager(two).fanout.health
        await eventually(lambda: fanout_one.publish_failures >= 1)
        await restart

        await eventually(lambda: fanout_one.reconnects >= 1 and fanout_two.reconnects >= 1)
        await eventually(lambda: fanout_one.state == fanout_two.state == "connected")
        await until_equal(lambda: numsub(redis), 2)  # every active room re-subscribed
        resync = (await messages(bob, 1))[0]
        assert resync["type"] == "resync" and resync["reason"] == "fanout_reconnected"
        await alice.send_json({"type": "say", "text": "after"})
        assert [m["text"] for m in await messages(bob, 1)] == ["after"]  # "during" is gone: at-most-once
        assert fanout_two.last_error is not None
        await lab.events.wait_for(source="two", kind="fanout_reconnected")


async def test_replica_processes_behind_a_balancer_share_the_room() -> None:
    async with Lab() as lab:
        redis = await lab.redis()
        env = {"WSLAB_CHAT_SECRET": SECRET, "WSLAB_CHAT_BACKEND": "pubsub", "REDIS_URL": redis.url}
        replicas = [
            await lab.serve_process("wslab.chat.app:create_app_from_env", name=f"r{i}", factory=True, env=env)
            for i in (1, 2)
        ]
        lb = await lab.proxy(replicas, name="lb")
        url = f"ws://127.0.0.1:{lb.port}/ws/chat/lobby"
        alice, bob = await join(lab, url, "alice"), await join(lab, url, "bob")  # round robin: r1, r2
        await until_equal(lambda: numsub(redis), 2)
        await alice.send_json({"type": "say", "text": "across processes"})
        assert [m["text"] for m in await messages(bob, 1)] == ["across processes"]
        await bob.expect_silence(0.1)

        def health(replica: ServerHandle) -> dict[str, Any]:
            with urllib.request.urlopen(f"http://127.0.0.1:{replica.port}/health/fanout", timeout=2) as r:
                return json.loads(r.read())  # type: ignore[no-any-return]

        states = await asyncio.gather(*(asyncio.to_thread(health, r) for r in replicas))
        assert [(s["backend"], s["state"], s["rooms"]) for s in states] == [
            ("pubsub", "connected", ["lobby"])
        ] * 2


# --- streams -------------------------------------------------------------------------------------------


async def test_streams_reconnect_with_last_id_gets_exactly_what_was_missed_then_live() -> None:
    async with Lab() as lab:
        redis = await lab.redis()
        one = await start(lab, "one", "streams", redis.url)
        two = await start(lab, "two", "streams", redis.url)
        alice, bob = await join(lab, one, "alice"), await join(lab, two, "bob")
        await alice.send_json({"type": "say", "text": "m1"})
        [m1] = await messages(bob, 1)
        assert m1["text"] == "m1" and m1["id"] and m1["epoch"]
        await bob.close()
        for text in ("m2", "m3", "m4"):
            await alice.send_json({"type": "say", "text": text})
        await messages(alice, 4)  # m1..m4 are in the stream

        # bob comes back, on the other instance this time, with where he left off
        bob = await join(lab, one, "bob", last_id=m1["id"], epoch=m1["epoch"], last_seq=m1["seq"])
        missed = [await bob.recv_json() for _ in range(4)]
        assert [(m["type"], m.get("user") or m["text"]) for m in missed] == [
            ("left", "bob"),  # his own departure, which he never saw
            ("message", "m2"),
            ("message", "m3"),
            ("message", "m4"),
        ]
        await alice.send_json({"type": "say", "text": "m5"})
        live = await bob.recv_json()
        assert live["text"] == "m5"
        # no gap, no duplicate: only seq+5, the "joined bob" that went to everyone but bob, is skipped
        seq = m1["seq"]
        assert [m["seq"] for m in [*missed, live]] == [seq + 1, seq + 2, seq + 3, seq + 4, seq + 6]
        await bob.expect_silence(0.15)


async def test_streams_reader_on_a_half_open_redis_connection_times_out_and_catches_up() -> None:
    # The same dead link as for pub/sub: XREAD BLOCK answers within its block time even when nothing is
    # new, so a read that takes longer than that plus redis_timeout means the connection is dead.
    async with Lab() as lab:
        link, alice, bob, health = await across_a_link(lab, "streams")
        link.mode = Mode.BLACKHOLE
        await alice.send_json({"type": "say", "text": "while two is deaf"})
        await eventually(lambda: health.errors >= 1 and health.state == "reconnecting", timeout=5)
        assert "Timeout" in (health.last_error or ""), health.last_error
        link.mode = Mode.PASS
        await eventually(lambda: health.reconnects >= 1 and health.state == "connected", timeout=5)
        # unlike pub/sub, nothing is lost: the reader goes on from its last ID
        assert [m["text"] for m in await messages(bob, 1)] == ["while two is deaf"]
        await alice.send_json({"type": "say", "text": "after"})
        assert [m["text"] for m in await messages(bob, 1)] == ["after"]


async def test_streams_offset_older_than_maxlen_gets_resync() -> None:
    async with Lab() as lab:
        redis = await lab.redis()
        admin = redis.client()
        await admin.config_set("stream-node-max-entries", 5)  # so that MAXLEN ~ trims in small steps
        await admin.aclose()
        one = await start(lab, "one", "streams", redis.url, stream_maxlen=5)
        alice, bob = await join(lab, one, "alice"), await join(lab, one, "bob")
        await alice.send_json({"type": "say", "text": "first"})
        [first] = await messages(bob, 1)
        await bob.close()
        for i in range(30):
            await alice.send_json({"type": "say", "text": f"m{i}"})
        await messages(alice, 31)
        bob = await join(lab, one, "bob", last_id=first["id"], epoch=first["epoch"])
        [resync] = await messages(bob, 1)
        assert resync == {**resync, "type": "resync", "reason": "history_lost", "epoch": first["epoch"]}
        await alice.send_json({"type": "say", "text": "live again"})
        assert [m["text"] for m in await messages(bob, 1)] == ["live again"]


async def test_streams_epoch_changes_when_redis_loses_its_data() -> None:
    async with Lab() as lab:
        redis = await lab.redis()
        one = await start(lab, "one", "streams", redis.url)
        alice, bob = await join(lab, one, "alice"), await join(lab, one, "bob")
        await alice.send_json({"type": "say", "text": "before"})
        [before] = await messages(bob, 1)
        await redis.restart(downtime=0.1)
        [resync] = await messages(bob, 1)  # the reader noticed: the stream bob knew is gone
        assert resync["type"] == "resync" and resync["reason"] == "epoch_changed"
        assert resync["epoch"] and resync["epoch"] != before["epoch"]
        await alice.send_json({"type": "say", "text": "after"})
        [after] = await messages(bob, 1)
        assert after["text"] == "after" and after["epoch"] == resync["epoch"]
        await bob.close()
        carol = await join(lab, one, "carol", last_id=before["id"], epoch=before["epoch"])
        [told] = await messages(carol, 1)
        assert (
            told["type"] == "resync"
            and told["reason"] == "epoch_changed"
            and told["epoch"] == resync["epoch"]
        )
        assert manager(one).fanout.health.reconnects == 1


@pytest.mark.anyio
async def test_a_reconnecting_client_resumes_a_streams_room_without_loss() -> None:
    """ReconnectingClient(resume=True) sends last_id/epoch: after a drop it gets exactly what it missed."""
    from wslab.backoff import FixedBackoff
    from wslab.clients import ClientState

    async with Lab() as lab:
        cluster = await lab.cluster(2, backend="streams")
        url = cluster.ws_url("/ws/chat/lobby")
        speaker = await lab.connect(url, name="speaker")
        await speaker.send_json({"type": "auth", "token": cluster.token("speaker")})
        await speaker.recv_json(timeout=5)
        listener = await lab.connect_reconnecting(
            url, name="listener", token=cluster.token("listener"), resume=True, policy=FixedBackoff(0.05)
        )
        await listener.wait_for_state(ClientState.OPEN, timeout=5)
        assert (await listener.recv_json(timeout=5))["type"] == "ready"  # in the room from here on
        for n in range(5):
            await speaker.send_json({"type": "say", "text": f"m{n}"})
        await cluster.kill(1)  # the listener was on replica 2 (round robin): it drops and comes back
        for n in range(5, 10):
            await speaker.send_json({"type": "say", "text": f"m{n}"})
        await listener.wait_for_state(ClientState.OPEN, timeout=5)
        texts: list[str] = []
        while len(texts) < 10:
            message = await listener.recv_json(timeout=5)
            if message.get("type") == "message":
                texts.append(message["text"])
        assert texts == [f"m{n}" for n in range(10)]  # no gap, no duplicate
        assert listener.connections == 2 and not listener.resyncs


# -- every backend fits the interface the manager calls ------------------------------------------------


def protocol_mismatches(backend: object) -> list[str]:
    """How ``backend`` fails to fit :class:`FanOut`: missing members, sync/async or parameters that differ.

    The run-time half of the check; mypy (``make lint``) is the static half: ``create_fanout`` returns
    each backend as a ``FanOut``, so a signature that drifts is a type error there too.
    """
    problems = []
    members = {**vars(HasHealth), **vars(FanOut)}
    attributes = {**HasHealth.__annotations__, **FanOut.__annotations__}
    for name in attributes:
        if not hasattr(backend, name):
            problems.append(f"no attribute {name}")
    for name, wanted in members.items():
        if name.startswith("_") or not callable(wanted):
            continue
        got = getattr(backend, name, None)
        if got is None:
            problems.append(f"no method {name}")
            continue
        if inspect.iscoroutinefunction(wanted) != inspect.iscoroutinefunction(got):
            problems.append(f"{name}: async differs")
        expected = list(inspect.signature(wanted).parameters)[1:]  # without self
        if list(inspect.signature(got).parameters) != expected:
            problems.append(f"{name}: parameters {list(inspect.signature(got).parameters)} != {expected}")
    return problems


@pytest.mark.parametrize("backend", [PubSubFanOut, StreamsFanOut])
async def test_every_redis_backend_fits_the_fanout_interface(backend: type[Supervised]) -> None:
    instance = backend("redis://127.0.0.1:9")  # nothing connects until a member joins
    try:
        assert protocol_mismatches(instance) == []
    finally:
        await instance.aclose()


async def test_the_interface_check_notices_a_backend_that_drifted() -> None:
    class Drifted(PubSubFanOut):
        async def prepare(self, room: str) -> Start:  # type: ignore[override]  # lost its resume
            return Start()

        def catch_up(self, room: str, start: Start, deliver: Deliver) -> None:  # type: ignore[override]
            return None

    instance = Drifted("redis://127.0.0.1:9")
    try:
        problems = protocol_mismatches(instance)
    finally:
        await instance.aclose()
    assert problems == ["prepare: parameters ['room'] != ['room', 'resume']", "catch_up: async differs"]
