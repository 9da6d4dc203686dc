"""F26, floods: write the per-connection token bucket that turns a flood away and lets people talk.

The learner writes ``allow(bucket, now, rate, burst)``: ``bucket`` is a dict the server keeps for one
connection (empty at first); refill it at ``rate`` tokens per second up to ``burst``, and spend one token
per message, refusing when none is left. The checker's room closes a connection whose message is refused
with ``4008 RATE_LIMITED`` (the reference's code) and runs the notebook's flood with a sentinel watching,
then a polite member, then a burst after a pause.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer, article
from wslab.exercises._live import Guarded, scenario, until

RATE, BURST = 10.0, 5
"""Messages per second, and how many may come at once."""
FLOOD = 100
POLITE, POLITE_EVERY = 10, 0.15
"""The polite member's messages, and the seconds between them (under ``RATE``)."""
PAUSE = 1.0
RATE_LIMITED = 4008
SHOWN = "allow(bucket, now, rate, burst)"


def _room(guard: Guarded) -> Starlette:
    members: dict[str, WebSocket] = {}
    relayed: dict[str, int] = {}

    async def chat(websocket: WebSocket) -> None:
        name = websocket.path_params["name"]
        await websocket.accept()
        members[name], relayed[name] = websocket, 0
        bucket: dict[str, Any] = {}
        loop = asyncio.get_running_loop()
        try:
            while True:
                text = await websocket.receive_text()
                verdict = guard(bucket, loop.time(), RATE, BURST)
                if not isinstance(verdict, bool):
                    shown = "None" if verdict is None else article(type(verdict).__name__)
                    guard.fail(f"`{SHOWN}` returned {shown}; it should return True or False.")
                    return
                if not verdict:
                    await websocket.close(RATE_LIMITED, "too many messages")
                    return
                relayed[name] += 1
                for other, peer in list(members.items()):
                    if other != name:
                        await peer.send_text(json.dumps({"from": name, "text": text}))
        except WebSocketDisconnect:
            pass
        finally:
            members.pop(name, None)

    app = Starlette(routes=[WebSocketRoute("/ws/{name}", chat)])
    app.state.relayed = relayed
    return app


class Allow(Exercise):
    """q1: a token bucket per connection."""

    name = "A token bucket"
    reads = ("allow",)
    placeholder = """
def allow(bucket: dict, now: float, rate: float, burst: int) -> bool:
    ...  # your code here
"""
    hints = (
        "A token bucket holds up to `burst` tokens and gains `rate` tokens per second; each message spends "
        "one, and a message that finds less than one token is refused. `bucket` is where you keep the "
        "count and the time you last looked (it starts empty: a new connection has a full bucket).",
        "On every call: add `(now - last) * rate` tokens, but never more than `burst`; remember `now` as the "
        "last time; then spend a token if there is one.",
        "`tokens = min(burst, bucket.get('tokens', burst) + (now - bucket.get('at', now)) * rate)`, then "
        "store `bucket['at'] = now` and the new count (minus one when you allow the message).",
    )
    solution_code = """
def allow(bucket: dict, now: float, rate: float, burst: int) -> bool:
    tokens = min(burst, bucket.get("tokens", burst) + (now - bucket.get("at", now)) * rate)
    bucket["at"] = now
    if tokens < 1:
        bucket["tokens"] = tokens
        return False
    bucket["tokens"] = tokens - 1
    return True
"""
    wrong_answers = (
        WrongAnswer(
            "never refills",
            """
def allow(bucket, now, rate, burst):
    bucket.setdefault("tokens", burst)
    if bucket["tokens"] < 1:
        return False
    bucket["tokens"] -= 1
    return True
""",
            "a polite member",
        ),
        WrongAnswer(
            "refills without a cap",
            """
def allow(bucket, now, rate, burst):
    tokens = bucket.get("tokens", burst) + (now - bucket.get("at", now)) * rate
    bucket["at"] = now
    if tokens < 1:
        bucket["tokens"] = tokens
        return False
    bucket["tokens"] = tokens - 1
    return True
""",
            "a burst after a pause",
        ),
        WrongAnswer(
            "one bucket for everybody",
            """
SHARED = {}
def allow(bucket, now, rate, burst):
    tokens = min(burst, SHARED.get("tokens", burst) + (now - SHARED.get("at", now)) * rate)
    SHARED["at"] = now
    if tokens < 1:
        SHARED["tokens"] = tokens
        return False
    SHARED["tokens"] = tokens - 1
    return True
""",
            "the sentinel",
        ),
        WrongAnswer(
            "counts messages, never refuses",
            """
def allow(bucket, now, rate, burst):
    bucket["count"] = bucket.get("count", 0) + 1
    return True
""",
            "mallory floods the room",
        ),
    )
    secrets = ('min(burst, bucket.get("tokens", burst) + (now - bucket.get("at", now)) * rate)',)
    correct_message = (
        f"`allow` closed mallory's flood of {FLOOD} messages with 4008 after about {BURST} got through, "
        f"while the sentinel, speaking during the flood, stayed connected; a polite member ({POLITE} "
        f"messages, one every {POLITE_EVERY:g} s) was never refused, and a {PAUSE:g} s pause did not buy a "
        f"bigger burst than {BURST}."
    )
    call_timeout = 30.0

    async def _check(self, allow: Callable[..., Any]) -> None:
        from wslab.lab import Lab

        guard = Guarded(self, allow, SHOWN)
        app = _room(guard)
        relayed = app.state.relayed
        async with Lab() as lab:
            server = await lab.serve(app, name="f26-check")
            sentinel = await lab.connect(server.ws_url("/ws/sentinel"), name="sentinel")
            async with scenario("mallory floods the room", 10, [guard]):
                mallory = await lab.connect(server.ws_url("/ws/mallory"), name="mallory")
                for i in range(FLOOD):
                    if mallory.closed:
                        break
                    await mallory.send(f"spam {i}")
                await sentinel.send("still here?")
                if not await until(lambda: mallory.closed, 2.0):
                    raise Incorrect(
                        f"mallory sent {FLOOD} messages at once and is still connected; {relayed['mallory']} "
                        f"of them went to the room (at most {BURST} at once, then {RATE:g} per second)."
                    )
                if mallory.close_code != RATE_LIMITED or relayed["mallory"] > BURST + 2:
                    raise Incorrect(
                        f"{relayed['mallory']} of mallory's {FLOOD} messages went to the room before she was "
                        f"closed ({mallory.closed_as}); at most {BURST} may come at once."
                    )
                await asyncio.sleep(0.1)
                if sentinel.closed:
                    raise Incorrect(
                        f"the sentinel said one message during mallory's flood and was closed "
                        f"({sentinel.closed_as}): each connection needs a bucket of its own."
                    )
            async with scenario("a polite member", 10, [guard]):
                bob = await lab.connect(server.ws_url("/ws/bob"), name="bob")
                for i in range(POLITE):
                    await bob.send(f"polite {i}")
                    await asyncio.sleep(POLITE_EVERY)
                    if bob.closed:
                        raise Incorrect(
                            f"bob sent one message every {POLITE_EVERY:g} s, under {RATE:g} per second, and "
                            f"was closed ({bob.closed_as}) after {i + 1}: tokens must come back with time."
                        )
            async with scenario("a burst after a pause", 10, [guard]):
                carol = await lab.connect(server.ws_url("/ws/carol"), name="carol")
                await carol.send("hello")
                await asyncio.sleep(PAUSE)
                for i in range(3 * BURST):
                    if carol.closed:
                        break
                    await carol.send(f"burst {i}")
                await until(lambda: carol.closed, 2.0)
                burst = relayed["carol"] - 1
                if burst > BURST + 1:
                    raise Incorrect(
                        f"carol was quiet for {PAUSE:g} s, then {burst} of her messages went through at "
                        f"once: a bucket holds at most {BURST} tokens, however long she waited."
                    )


CHAPTER = Chapter("F26", "F26_limits_and_floods", (Allow,))
