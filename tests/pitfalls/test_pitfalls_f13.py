"""F13 pitfalls: a pub/sub listener nobody restarts, and one that takes a dead link for a quiet one.

Each test runs the reference app twice on one real Redis: replica "one" with the reference fan-out,
replica "two" with the broken variant from :mod:`wslab.pitfalls.f13_silent_listener`, and shows the
variant going deaf (while its health still says "connected") under a trigger the reference survives.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.fanout import SECRET, join, manager, messages, numsub, until_equal

from wslab import Lab
from wslab.chat import ChatSettings, create_app
from wslab.chat.fanout import FanOut
from wslab.clients import LabClient
from wslab.netem import Mode
from wslab.pitfalls.f13_silent_listener import NoWatchdogPubSubFanOut, UnsupervisedPubSubFanOut
from wslab.runtime.servers import ServerHandle

pytestmark = pytest.mark.anyio


async def serve(lab: Lab, name: str, redis_url: str, fanout: FanOut | None = None) -> ServerHandle:
    settings = ChatSettings(secret=SECRET, backend="pubsub", redis_url=redis_url, redis_timeout=0.3)
    app = create_app(settings, report=lambda kind, msg: lab.events.record(name, kind, msg), fanout=fanout)
    server = await lab.serve(app, name=name)
    server.app = app  # type: ignore[attr-defined]
    return server


async def hears(client: LabClient, text: str, within: float) -> bool:
    """True if ``client`` gets the chat message ``text`` within ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while (await client.recv_json(timeout=within)).get("text") != text:
                pass
    except TimeoutError:
        return False
    return True


async def test_an_unsupervised_listener_dies_with_its_connection_and_stays_dead() -> None:
    async with Lab() as lab:
        redis = await lab.redis()
        one = await serve(lab, "one", redis.url)
        two = await serve(lab, "two", redis.url, UnsupervisedPubSubFanOut(redis.url, timeout=0.3))
        alice, bob = await join(lab, one, "alice"), await join(lab, two, "bob")
        await until_equal(lambda: numsub(redis), 2)
        await alice.send_json({"type": "say", "text": "before"})
        assert await hears(bob, "before", 2)
        admin = redis.client()
        await admin.client_kill_filter(_type="pubsub")  # a Redis restart, a failover, F14's buffer cut
        await admin.aclose()
        reference: Any = manager(one).fanout.health
        broken: Any = manager(two).fanout.health
        await lab.events.wait_for(source="one", kind="fanout_reconnected", timeout=3)
        await until_equal(lambda: numsub(redis), 1)  # only the reference subscribed again
        await alice.send_json({"type": "say", "text": "after"})
        assert not await hears(bob, "after", 1.0)  # and it never will
        assert broken.state == "connected" and broken.reconnects == 0  # what its health endpoint says
        assert reference.reconnects == 1 and await numsub(redis) == 1
        await lab.events.wait_for(source="two", kind="fanout_error")  # logged once, nothing more


async def test_a_listener_without_a_watchdog_stays_deaf_on_a_half_open_link() -> None:
    async with Lab() as lab:
        redis = await lab.redis()
        link = await lab.proxy(redis.port, name="redis-link")
        via_link = f"redis://127.0.0.1:{link.port}/0"
        one = await serve(lab, "one", redis.url)
        two = await serve(lab, "two", via_link, NoWatchdogPubSubFanOut(via_link, timeout=0.3))
        alice, bob = await join(lab, one, "alice"), await join(lab, two, "bob")
        await until_equal(lambda: numsub(redis), 2)
        link.mode = Mode.BLACKHOLE  # the path to Redis dies; no FIN, no RST
        await alice.send_json({"type": "say", "text": "anyone there?"})
        assert not await hears(bob, "anyone there?", 1.5)  # five times redis_timeout: still nothing
        broken: Any = manager(two).fanout.health
        assert (broken.state, broken.errors, broken.reconnects) == ("connected", 0, 0)
        assert await numsub(redis) == 2  # Redis still counts it: the socket on its side is fine
        link.mode = Mode.PASS
        await alice.send_json({"type": "say", "text": "and now?"})
        assert [m["text"] for m in await messages(bob, 1)] == ["and now?"]  # "anyone there?" is gone
