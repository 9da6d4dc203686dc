"""F18, messages missed during the reconnect gap: write the client's half of resume-by-offset.

The learner writes ``resume_fields(received)``: given every message a client received before its
connection dropped, in order, return the fields its next ``auth`` message adds so the server can replay
what it missed: the ``last_id`` and ``epoch`` of the last room message. The checker runs the notebook's
Verify on two in-process replicas of the reference chat with the Streams backend and a real Redis: bob
hears ``m1`` (and a ``joined`` notice), his connection drops, alice says ``m2``..``m4``, bob reconnects
through the balancer (to the other replica) with the learner's fields, and alice says ``m5``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer, article
from wslab.exercises._live import scenario

SECRET = "wslab-f18-exercise-secret-0123456789abcdef"
ROOM = "/ws/chat/standup"
MISSED = ["m2", "m3", "m4"]
SHOWN = "resume_fields(received)"


async def _join(lab: Any, url: str, user: str, name: str, **resume: Any) -> Any:
    from wslab.chat import issue_token

    client = await lab.connect(url, name=name)
    await client.send_json({"type": "auth", "token": issue_token(user, SECRET, 600), **resume})
    ready = await client.recv_json(timeout=5)
    if ready.get("type") != "ready":
        raise Incorrect(f"{user} sent {json.dumps(resume)} with the auth message and got {ready}.")
    return client


async def _chat(client: Any, count: int, within: float = 2.0) -> list[dict[str, Any]]:
    """The next ``count`` room messages or resync notices (others skipped); fewer if time runs out."""
    got: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(within):
            while len(got) < count:
                message = await client.recv_json(timeout=within)
                if message.get("type") in ("message", "resync"):
                    got.append(message)
    except (TimeoutError, ConnectionError):
        pass
    return got


async def _say(client: Any, text: str) -> None:
    await client.send_json({"type": "say", "text": text})
    while (await _chat(client, 1))[0].get("text") != text:
        pass


class ResumeFields(Exercise):
    """q1: where the client was, so the server can replay the gap."""

    name = "Resume where you were"
    reads = ("resume_fields",)
    placeholder = """
def resume_fields(received: list) -> dict:
    ...  # your code here
"""
    hints = (
        "The server can replay a room's history from an offset: the `id` a message got in the room's stream, "
        "together with the `epoch` of that stream. Which message's offset says where the client was?",
        "Everything the room's stream delivers carries its `id` and the stream's `epoch`, notices and "
        "replies included. The last message received is where the client was.",
        'Return `{"last_id": m["id"], "epoch": m["epoch"]}` for the last message that has both, and `{}` '
        "when there is none (nothing to resume from: a fresh start).",
    )
    solution_code = """
def resume_fields(received: list) -> dict:
    for message in reversed(received):
        if "id" in message and "epoch" in message:
            return {"last_id": message["id"], "epoch": message["epoch"]}
    return {}
"""
    wrong_answers = (
        WrongAnswer(
            "no resume at all",
            """
def resume_fields(received):
    return {}
""",
            "never received m2",
        ),
        WrongAnswer(
            "the Pub/Sub backend's `seq` instead of the stream's `id`",
            """
def resume_fields(received):
    return {"last_seq": received[-1]["seq"]} if received else {}
""",
            "never received m2",
        ),
        WrongAnswer(
            "the first message, not the last",
            """
def resume_fields(received):
    for message in received:
        if "id" in message:
            return {"last_id": message["id"], "epoch": message["epoch"]}
    return {}
""",
            "received m1 again",
        ),
        WrongAnswer(
            "the offset without its epoch",
            """
def resume_fields(received):
    for message in reversed(received):
        if "id" in message:
            return {"last_id": message["id"]}
    return {}
""",
            "resync",
        ),
    )
    secrets = ('return {"last_id": message["id"], "epoch": message["epoch"]}',)
    correct_message = (
        "with your `resume_fields`, bob came back (on the other replica) and received exactly what he "
        f"missed, {', '.join(MISSED)}, in order and once each, then m5 live, and no `resync`."
    )
    call_timeout = 30.0

    async def _check(self, resume_fields: Callable[..., Any]) -> None:
        from wslab.chat import ChatSettings, create_app
        from wslab.lab import Lab

        self.describe(resume_fields)
        async with Lab() as lab:
            redis = await lab.redis("f18-check-redis")
            settings = ChatSettings(secret=SECRET, backend="streams", redis_url=redis.url)
            replicas = [await lab.serve(create_app(settings), name=f"f18-{i}") for i in (1, 2)]
            balancer = await lab.proxy(replicas, name="f18-lb")
            url = balancer.ws_url(ROOM)
            alice = await _join(lab, url, "alice", "alice")
            bob = await _join(lab, url, "bob", "bob")
            async with scenario("bob's connection drops after m1, and he comes back", 15):
                for text in ("m0", "m1"):
                    await _say(alice, text)
                await _chat(bob, 2)
                await _join(lab, replicas[1].ws_url(ROOM), "carol", "carol")  # bob hears `joined`
                await bob.send_json({"type": "typing"})  # what this server does not know: an `error` reply
                await asyncio.sleep(0.1)
                received = [json.loads(m) for m in bob.received if isinstance(m, str)]
                await bob.abort()
                for text in MISSED:
                    await _say(alice, text)
                fields = self.call(resume_fields, received)
                if not isinstance(fields, dict):
                    shown = "None" if fields is None else article(type(fields).__name__)
                    raise Incorrect(f"`{SHOWN}` returned {shown}; it should return a dict of fields.")
                bob = await _join(lab, url, "bob", "bob-again", **fields)
                caught_up = await _chat(bob, len(MISSED), within=1.0)
                await _say(alice, "m5")
                live = await _chat(bob, 1)
                self._judge(fields, [*caught_up, *live])

    @staticmethod
    def _judge(fields: dict[str, Any], got: list[dict[str, Any]]) -> None:
        sent = json.dumps(fields) if fields else "no resume fields"
        texts = [m.get("text") for m in got if m.get("type") == "message"]
        resync = [m for m in got if m.get("type") == "resync"]
        if resync:
            raise Incorrect(
                f"bob came back with {sent} and was told `resync` ({resync[0].get('reason')}): the server "
                "could not resume from that: an offset means something only with its stream's `epoch`."
            )
        if "m1" in texts:
            raise Incorrect(
                f"bob came back with {sent} and received m1 again (he got {texts}): resume from the last "
                "message he saw, not from an earlier one."
            )
        if texts != [*MISSED, "m5"]:
            missing = [t for t in MISSED if t not in texts]
            raise Incorrect(
                f"bob came back with {sent} and never received {', '.join(missing) or 'them in order'} "
                f"(he got {texts}): the server replays the gap only from an offset it can use."
            )


CHAPTER = Chapter("F18", "F18_missed_messages", (ResumeFields,))
