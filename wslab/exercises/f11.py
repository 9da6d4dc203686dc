"""F11, replicas without a backing store: write the canary that tells which replicas a message reaches.

The learner writes ``canary(listeners, sender, probe, wait)``: one listener per replica, connected to it
directly, and a sender connected through the balancer; say ``probe`` and return the names of the replicas
whose listener received it within ``wait`` seconds. The checker runs it on the notebook's two
deployments, three in-process replicas of the reference chat each: ``memory`` (the probe reaches only the
sender's replica) and ``pubsub`` through a real Redis (it reaches all three). The room is live: dave,
connected to the third replica, says something just before the probe. The truth comes from each
listener's own transcript, so the checker can say *why* a canary was wrong: it returned before the probe
arrived, it stopped at another message, or it counted dave's message as the probe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer, article
from wslab.exercises._live import Guarded, scenario

SECRET = "wslab-f11-exercise-secret-0123456789abcdef"
ROOM = "/ws/chat/canary"
REPLICAS = ("replica-1", "replica-2", "replica-3")
WAIT = 0.5
"""The ``wait`` the checker passes: time enough for a message to cross Redis on a busy machine."""
SHOWN = "canary(listeners, sender, probe, wait)"


async def _join(lab: Any, url: str, user: str, name: str) -> Any:
    from wslab.chat import issue_token

    client = await lab.connect(url, name=name)
    await client.send_json({"type": "auth", "token": issue_token(user, SECRET, 600)})
    ready = await client.recv_json(timeout=5)
    if ready.get("type") != "ready":
        raise RuntimeError(f"{user} could not join: {ready}")
    return client


def _arrived(client: Any, probe: str) -> int | None:
    """The event seq at which ``client`` received the probe, from its own transcript (None: never)."""
    for entry in client.transcript:
        if entry.direction == "received" and isinstance(entry.payload, str) and f'"{probe}"' in entry.payload:
            return int(entry.order)
    return None


class Canary(Exercise):
    """q1: the end-to-end check that catches replicas sharing no backing store."""

    name = "A canary across replicas"
    reads = ("canary",)
    placeholder = """
import asyncio


async def canary(listeners: dict, sender, probe: str, wait: float) -> set:
    ...  # your code here
"""
    hints = (
        "Say the probe once, from `sender`, then watch every listener at the same time: each one either "
        "receives it within `wait` seconds or does not. Return the names (the keys of `listeners`).",
        "A listener receives other messages too: `joined` notices, and whatever people in the room say. "
        "Keep reading until a message of type `message` whose `text` is the probe arrives, or time is up.",
        "Put the whole read loop of one listener under `async with asyncio.timeout(wait):` and turn "
        "`TimeoutError` into False; run all listeners together with `asyncio.gather`.",
    )
    solution_code = """
import asyncio


async def canary(listeners: dict, sender, probe: str, wait: float) -> set:
    await sender.send_json({"type": "say", "text": probe})

    async def heard(listener) -> bool:
        try:
            async with asyncio.timeout(wait):
                while True:
                    message = await listener.recv_json()
                    if message.get("type") == "message" and message.get("text") == probe:
                        return True
        except TimeoutError:
            return False

    results = await asyncio.gather(*(heard(listener) for listener in listeners.values()))
    return {name for name, got in zip(listeners, results) if got}
"""
    wrong_answers = (
        WrongAnswer(
            "looks at what has arrived, without waiting",
            """
import json
async def canary(listeners, sender, probe, wait):
    await sender.send_json({"type": "say", "text": probe})
    return {name for name, l in listeners.items() if any(probe in m for m in l.drain())}
""",
            "returned before the probe arrived",
        ),
        WrongAnswer(
            "checks only the first message",
            """
import asyncio
async def canary(listeners, sender, probe, wait):
    await sender.send_json({"type": "say", "text": probe})
    async def heard(listener):
        try:
            return (await listener.recv_json(timeout=wait)).get("text") == probe
        except TimeoutError:
            return False
    results = await asyncio.gather(*(heard(l) for l in listeners.values()))
    return {name for name, got in zip(listeners, results) if got}
""",
            "stopped reading before it",
        ),
        WrongAnswer(
            "counts any chat message",
            """
import asyncio
async def canary(listeners, sender, probe, wait):
    await sender.send_json({"type": "say", "text": probe})
    async def heard(listener):
        try:
            async with asyncio.timeout(wait):
                while (await listener.recv_json())["type"] != "message":
                    pass
                return True
        except TimeoutError:
            return False
    results = await asyncio.gather(*(heard(l) for l in listeners.values()))
    return {name for name, got in zip(listeners, results) if got}
""",
            "never received the probe",
        ),
        WrongAnswer(
            "reads `text` from every message",
            """
import asyncio
async def canary(listeners, sender, probe, wait):
    await sender.send_json({"type": "say", "text": probe})
    async def heard(listener):
        try:
            async with asyncio.timeout(wait):
                while (await listener.recv_json())["text"] != probe:
                    pass
                return True
        except TimeoutError:
            return False
    results = await asyncio.gather(*(heard(l) for l in listeners.values()))
    return {name for name, got in zip(listeners, results) if got}
""",
            "raised KeyError: 'text'",
        ),
    )
    secrets = ('message.get("type") == "message" and message.get("text") == probe',)
    correct_message = (
        "`canary` names exactly the replicas the probe reached, in a room where someone else was talking: "
        "only the sender's replica without a backing store (the alert), all three through Redis pub/sub."
    )
    call_timeout = 30.0

    async def _check(self, canary: Callable[..., Any]) -> None:
        from wslab.lab import Lab

        guard = Guarded(self, canary, SHOWN)
        async with Lab() as lab:
            redis = await lab.redis("f11-check-redis")
            for backend in ("memory", "pubsub"):
                async with scenario(f"three replicas, backend {backend}", 15, [guard]):
                    await self._deployment(lab, guard, backend, redis.url)

    async def _deployment(self, lab: Any, guard: Guarded, backend: str, redis_url: str) -> None:
        from wslab.chat import ChatSettings, create_app

        settings = ChatSettings(
            secret=SECRET, backend=backend, redis_url=redis_url if backend != "memory" else None
        )
        apps = [create_app(settings) for _ in REPLICAS]
        servers = [await lab.serve(app, name=f"f11-{backend}-{i}") for i, app in enumerate(apps, 1)]
        balancer = await lab.proxy(servers, name=f"f11-{backend}-lb")
        listeners = {
            name: await _join(lab, server.ws_url(ROOM), f"canary-{i}", f"canary-{i}@{backend}")
            for i, (name, server) in enumerate(zip(REPLICAS, servers, strict=True), 1)
        }
        sender = await _join(lab, balancer.ws_url(ROOM), "canary-sender", f"canary-sender@{backend}")
        dave = await _join(lab, servers[-1].ws_url(ROOM), "dave", f"dave@{backend}")
        await asyncio.sleep(0.1)  # every `joined` notice has landed
        await dave.send_json({"type": "say", "text": "anyone up for lunch?"})
        await asyncio.sleep(0.1)
        probe = f"canary probe ({backend})"
        got = await guard(listeners, sender, probe, WAIT)
        returned = lab.events.mark()
        await asyncio.sleep(WAIT)  # what arrives after the canary gave up still counts as the truth
        if not isinstance(got, set | frozenset | list | tuple):
            shown = "None" if got is None else article(type(got).__name__)
            raise Incorrect(f"`{SHOWN}` returned {shown}; it should return a set of replica names.")
        reported = set(got)
        arrivals = {name: _arrived(client, probe) for name, client in listeners.items()}
        reached = {name for name, seq in arrivals.items() if seq is not None and seq <= returned}
        late = {name for name, seq in arrivals.items() if seq is not None and seq > returned}
        for name in sorted(reported - reached):
            other = "dave's message" if name == REPLICAS[-1] else "other messages"
            raise Incorrect(
                f"your canary reported {name} as reached, but that listener never received the probe (only "
                f"{other}): a canary that counts something else misses the very failure it is for."
            )
        for name in sorted(reached - reported):
            raise Incorrect(
                f"the probe reached {name}'s listener in time, but your canary did not count it: it stopped "
                "reading before it. Read past `joined` notices and other people's messages."
            )
        if late - reported:
            raise Incorrect(
                f"your canary reported {sorted(reported)}, and returned before the probe arrived at "
                f"{sorted(late - reported)}: wait up to `wait` seconds for each listener."
            )


CHAPTER = Chapter("F11", "F11_no_pubsub", (Canary,))
