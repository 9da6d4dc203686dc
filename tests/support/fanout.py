"""App replicas sharing one real Redis (wslab.chat.fanout), and probes of what Redis says.

What the fan-out tests, the presence tests and the F13 pitfall tests share; kept out of the test
modules so a test file never imports another one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from wslab import Lab
from wslab.chat import ChatSettings, create_app, issue_token
from wslab.chat.fanout import FanOutManager
from wslab.clients import LabClient
from wslab.runtime.servers import ServerHandle

SECRET = "wslab-fanout-test-secret-0123456789abcdef"
LOBBY_CHANNEL = "wslab:chat:room:lobby"


async def start(lab: Lab, name: str, backend: str, redis_url: str, **overrides: Any) -> ServerHandle:
    """One app instance (its own rooms, its own fan-out) reporting into the lab's events as ``name``."""
    settings = ChatSettings(
        secret=SECRET,
        backend=backend,
        redis_url=redis_url,
        rate=1000.0,
        burst=1000,
        queue_size=256,
        **overrides,
    )
    app = create_app(settings, report=lambda kind, msg: lab.events.record(name, kind, msg))
    server = await lab.serve(app, name=name)
    server.app = app  # type: ignore[attr-defined]
    return server


def manager(server: ServerHandle) -> FanOutManager:
    """The replica's room manager, checked to be the fan-out one (its ``fanout`` has the health)."""
    chat = server.app.state.chat  # type: ignore[attr-defined]
    assert isinstance(chat, FanOutManager)
    return chat


async def join(
    lab: Lab, server: ServerHandle | str, user: str, room: str = "lobby", **auth: Any
) -> LabClient:
    """Connect to a replica (or a URL, e.g. a balancer's) as ``user`` and check the ``ready`` answer."""
    url = server if isinstance(server, str) else server.ws_url(f"/ws/chat/{room}")
    client = await lab.connect(url, name=user)
    await client.send_json({"type": "auth", "token": issue_token(user, SECRET, 60), **auth})
    ready = await client.recv_json()
    assert ready["type"] == "ready" and ready["user"] == user, ready
    return client


async def messages(client: LabClient, count: int) -> list[dict[str, Any]]:
    """The next ``count`` chat messages (skipping joined/left notices)."""
    got: list[dict[str, Any]] = []
    while len(got) < count:
        msg = await client.recv_json(timeout=3.0)
        if msg["type"] in ("message", "resync"):
            got.append(msg)
    return got


async def numsub(redis: Any, channel: str = LOBBY_CHANNEL) -> int:
    """How many subscribers Redis itself counts on ``channel`` (``PUBSUB NUMSUB``)."""
    client = redis.client()
    try:
        [(_, count)] = await client.pubsub_numsub(channel)
        return int(count)
    finally:
        await client.aclose()


async def until_equal(probe: Callable[[], Any], expected: Any, timeout: float = 3.0) -> None:
    """Poll an async probe (a Redis query) until it returns ``expected``; the failure names the value.

    Unlike ``wslab.lessons.until`` (a true/false check), the error says what the probe last returned.
    """
    deadline = time.monotonic() + timeout
    while (value := await probe()) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{probe} is {value!r}, expected {expected!r}")
        await asyncio.sleep(0.02)
