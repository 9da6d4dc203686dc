"""F26/F27: the chat with its size and rate limits off (``wslab.pitfalls.f26_no_limits``) next to the
reference, under the same triggers: one huge message, and a flood. The naive app must really accept
both (that is the lesson), the reference must close with 1009 and 4008, and nobody else may suffer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from wslab import Lab
from wslab.chat import ChatSettings, create_app
from wslab.clients import LabClient
from wslab.lessons import join_chat
from wslab.pitfalls import f26_no_limits
from wslab.runtime.servers import ServerHandle
from wslab.wire import CloseCode

pytestmark = pytest.mark.anyio

SECRET = "wslab-f26-test-secret-0123456789abcdef"
FLOOD = 300


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {check.__doc__ or check}")
        await asyncio.sleep(0.01)


async def join(lab: Lab, server: ServerHandle, name: str, room: str = "lobby") -> LabClient:
    return await join_chat(lab, server, name, secret=SECRET, room=room, max_size=None)


async def serve(lab: Lab, naive: bool) -> tuple[Any, ServerHandle]:
    settings = ChatSettings(secret=SECRET)
    if naive:
        app = f26_no_limits.create_app(settings)
        return app, await lab.serve(app, name="naive", **f26_no_limits.UVICORN_OPTIONS)
    app = create_app(settings)
    return app, await lab.serve(app, name="reference", ws_max_size=64 * 1024)


def say(text: str) -> str:
    return json.dumps({"type": "say", "text": text})


async def texts(client: LabClient, count: int) -> list[str]:
    """The next ``count`` chat messages ``client`` receives (other message types skipped)."""
    found: list[str] = []
    while len(found) < count:
        message = await client.recv_json()
        if message["type"] == "message":
            found.append(message["text"])
    return found


def test_the_pitfall_is_the_reference_with_the_limits_off() -> None:
    settings = f26_no_limits.without_limits(ChatSettings(secret=SECRET))
    assert settings.max_message_bytes >= 2**60 and settings.rate >= 2**60 and settings.burst >= 2**60
    assert settings.queue_size == ChatSettings().queue_size  # the rest is the reference
    assert f26_no_limits.UVICORN_OPTIONS["ws_max_size"] >= 2**30


@pytest.mark.parametrize("size", [5000, 200_000])
async def test_naive_accepts_and_fans_out_any_size(size: int) -> None:
    async with Lab() as lab:
        _, server = await serve(lab, naive=True)
        mallory, bob = await join(lab, server, "mallory"), await join(lab, server, "bob")
        await mallory.send(say("x" * size))
        assert [len(t) for t in await texts(bob, 1)] == [size]
        assert not mallory.closed


@pytest.mark.parametrize(
    ("size", "reason"),
    [
        (5000, "messages are limited to 4096 bytes"),  # the app's max_message_bytes
        (200_000, "exceeds limit of 65536 bytes"),  # uvicorn's ws_max_size, from the frame header
    ],
)
async def test_reference_closes_1009_and_the_others_stay(size: int, reason: str) -> None:
    async with Lab() as lab:
        app, server = await serve(lab, naive=False)
        mallory, bob = await join(lab, server, "mallory"), await join(lab, server, "bob")
        await mallory.send(say("x" * size))
        await mallory.wait_closed()
        assert mallory.close_code == CloseCode.MESSAGE_TOO_BIG
        assert reason in (mallory.ws.close_reason or "")
        await eventually(lambda: app.state.chat.rooms == {"lobby": ["bob"]})
        await bob.send(say("still here"))
        assert await texts(bob, 1) == ["still here"]


async def test_naive_serves_a_whole_flood_and_every_member_receives_it() -> None:
    async with Lab() as lab:
        _, server = await serve(lab, naive=True)
        mallory, bob = await join(lab, server, "mallory"), await join(lab, server, "bob")
        for i in range(FLOOD):
            await mallory.ws.send(say(f"spam {i}"))
        assert await texts(bob, FLOOD) == [f"spam {i}" for i in range(FLOOD)]
        assert not mallory.closed


async def test_reference_closes_a_flood_4008_after_the_burst() -> None:
    async with Lab() as lab:
        app, server = await serve(lab, naive=False)
        mallory, bob = await join(lab, server, "mallory"), await join(lab, server, "bob")
        for i in range(FLOOD):
            try:
                await mallory.ws.send(say(f"spam {i}"))
            except Exception:  # closed under our feet: that is the point
                break
        await mallory.wait_closed()
        assert mallory.close_code == CloseCode.RATE_LIMITED
        await eventually(lambda: app.state.chat.rooms == {"lobby": ["bob"]})
        spam = [json.loads(m) for m in bob.drain()]
        got = [m["text"] for m in spam if m["type"] == "message"]
        burst = ChatSettings().burst
        assert burst <= len(got) <= burst + 5, len(got)  # the burst, and about nothing more
        await bob.send(say("still here"))
        assert await texts(bob, 1) == ["still here"]
