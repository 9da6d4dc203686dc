"""Build track, chapter 06: one Redis listener per process, reference-counted SUBSCRIBE, two real replicas.

The learner writes ``Bus`` (subscribe, unsubscribe, publish, listen), a ``handle`` that publishes, and a
``chat`` that subscribes on join and unsubscribes on leave. The checker starts a real Redis and two
replica processes of the learner's module, puts alice on one and bob on the other, and asks Redis itself
how many subscriber connections and channels there are.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Protocol

from redis import asyncio as aioredis

from wslab.exercises._core import WrongAnswer
from wslab.exercises.build import BuildExercise, runnable_placeholder
from wslab.exercises.build_ch02 import play_rooms
from wslab.exercises.build_ch03 import _authenticated
from wslab.exercises.build_ch04 import ENV as HEARTBEAT_ENV
from wslab.exercises.build_solutions import BUS_06, CHAT_06, HANDLE_06
from wslab.exercises.live import Run, Scenario, token_for

__all__ = ["BuildBus", "RedisLike", "play_replicas"]


class RedisLike(Protocol):
    """What the checker needs from the lab's Redis: a client, to ask Redis itself what is subscribed."""

    url: str

    def client(self, **options: Any) -> aioredis.Redis: ...


PLACEHOLDER_BUS = '''
class Bus:
    """One pub/sub listener per process, shared by every room."""

    def __init__(self, url: str) -> None:
        self.redis = aioredis.from_url(url)
        self.pubsub = self.redis.pubsub()
        self.counts: dict[str, int] = {}  # room -> members on this process
        self.listener: asyncio.Task | None = None

    async def subscribe(self, room: str) -> None: ...  # SUBSCRIBE on the first member; start the listener

    async def unsubscribe(self, room: str) -> None: ...  # UNSUBSCRIBE when the last member here leaves

    async def publish(self, room: str, message: dict) -> None: ...

    async def listen(self) -> None: ...  # every message from Redis -> rooms.broadcast, on this process


bus = Bus(REDIS_URL)
'''

PLACEHOLDER_CHAT = """
async def handle(room: str, user: str, websocket: WebSocket, text: str) -> None:
    ...  # chapter 02's handle, but `say` goes to bus.publish


app = FastAPI()
rooms = Rooms()


@app.websocket("/ws/chat/{room}")
async def chat(websocket: WebSocket, room: str) -> None:
    ...  # chapter 04's chat: joined/left through bus.publish; bus.subscribe on join, bus.unsubscribe on leave
"""


async def _subscribers(redis: RedisLike) -> tuple[int, list[str]]:
    """(connections in pub/sub mode, channels with subscribers), as Redis itself reports them."""
    client = redis.client(decode_responses=True)
    try:
        listing = await client.client_list()
        channels = await client.pubsub_channels()
    finally:
        await client.aclose()
    count = sum(1 for c in listing if int(c.get("sub", 0) or 0) + int(c.get("psub", 0) or 0) > 0)
    return count, sorted(str(c) for c in channels)


async def _join(s: Scenario, name: str, url: str) -> None:
    client = await s.connect(name, url)
    await client.send_json({"type": "auth", "token": token_for(name, 60)})
    await s.expect(name, "`ready`", type="ready")


async def play_replicas(run: Run, redis: RedisLike, urls: tuple[str, str]) -> None:
    """The chapter 06 scenarios against two replicas (``ws://`` bases); shared with the capstone."""
    a, b = urls
    tag = secrets.token_hex(3)  # room names of this run only, in case the Redis is shared
    lobby, kitchen, attic = f"lobby-{tag}", f"kitchen-{tag}", f"attic-{tag}"
    baseline, _ = await _subscribers(redis)
    async with Scenario(
        run,
        "alice on replica A, bob on replica B, both in lobby",
        "`say` must go to Redis (`bus.publish`), and each process's listener delivers to its own members.",
    ) as s:
        await _join(s, "alice", f"{a}/ws/chat/{lobby}")
        await _join(s, "bob", f"{b}/ws/chat/{lobby}")
        await asyncio.sleep(0.2)
        await s.clients["alice"].send_json({"type": "say", "text": "hello from A"})
        await s.expect("bob", "alice's message, from the other replica", type="message", text="hello from A")
        await s.expect("alice", "her own message", type="message", text="hello from A")
        await s.clients["bob"].send_json({"type": "say", "text": "hello from B"})
        await s.expect("alice", "bob's message, from the other replica", type="message", text="hello from B")

        async with Scenario(
            run,
            "carol and dave on replica A in kitchen; carol leaves; erin on B speaks",
            "Count the members per room on this process: UNSUBSCRIBE only when the count drops to zero.",
        ) as k:
            await _join(k, "carol", f"{a}/ws/chat/{kitchen}")
            await _join(k, "dave", f"{a}/ws/chat/{kitchen}")
            await _join(k, "erin", f"{b}/ws/chat/{kitchen}")
            await asyncio.sleep(0.2)
            count, _ = await _subscribers(redis)
            if count - baseline > 2:
                k.fail(
                    f"with 5 users on 2 replicas, Redis holds {count - baseline} subscriber connections: "
                    "that is a "
                    "listener per connection, so Redis holds one connection per user and each message is "
                    "parsed once per user. One `Bus`, one `pubsub`, per process",
                    "Create `self.pubsub` once, in `__init__`, and start one listener task for all rooms.",
                )
            await k.clients["carol"].close()
            await asyncio.sleep(0.2)
            await k.clients["erin"].send_json({"type": "say", "text": "anyone in the kitchen?"})
            await k.expect(
                "dave",
                "erin's message, though only carol left kitchen",
                type="message",
                text="anyone in the kitchen?",
            )

    async with Scenario(
        run,
        "frank joins attic on replica A, then leaves",
        "When the last member on a process leaves, UNSUBSCRIBE.",
    ) as s:
        await _join(s, "frank", f"{a}/ws/chat/{attic}")
        await asyncio.sleep(0.1)
        _, channels = await _subscribers(redis)
        if not any(attic in c for c in channels):
            s.fail(
                f"frank is in {attic}, yet no Redis channel for it has a subscriber (channels: {channels})"
            )
        await s.clients["frank"].close()
        await asyncio.sleep(0.3)
        _, channels = await _subscribers(redis)
        if any(attic in c for c in channels):
            s.fail(
                f"frank left and nobody is in {attic}, yet Redis still has a subscriber for it: every room "
                "ever visited stays subscribed, and the process receives its traffic forever"
            )


class BuildBus(BuildExercise):
    """q: one listener per process, reference-counted subscriptions, checked across two replicas."""

    chapter = "06"
    name = "Build it: one Redis listener per process, reference-counted SUBSCRIBE, two replicas"
    reads = ("Bus", "handle", "chat")
    placeholder = runnable_placeholder("06", PLACEHOLDER_BUS, PLACEHOLDER_CHAT)
    hints = (
        "`publish` is one `await self.redis.publish(channel, json.dumps(message))`. `listen` is `async for "
        "item in self.pubsub.listen():` and, for `item['type'] == 'message'`, `rooms.broadcast(...)` "
        "locally.",
        "`subscribe` counts: `self.counts[room] += 1` (starting at 0), and only the first member SUBSCRIBEs. "
        "Start the listener task once (`if self.listener is None or self.listener.done()`).",
        "In `chat`: `await bus.subscribe(room)` after `rooms.join`, and in `finally` "
        "`await bus.unsubscribe(room)` "
        "after `rooms.leave`. `joined`, `left` and `say` go through `bus.publish`; DMs stay local.",
    )
    solution_code = BUS_06 + "\n\n" + HANDLE_06 + "\n\n" + CHAT_06
    wrong_answers = (
        WrongAnswer(
            "a listener per connection",
            BUS_06.replace("if self.counts[room] == 1:", "if True:").replace(
                "        if self.listener is None or self.listener.done():\n"
                "            self.listener = asyncio.create_task(self.listen())\n",
                "        self.pubsub = self.redis.pubsub()\n"
                '        await self.pubsub.subscribe(f"room:{room}")\n'
                "        asyncio.create_task(self.listen())\n",
            )
            + "\n\n"
            + HANDLE_06
            + "\n\n"
            + CHAT_06,
            "a listener per connection",
        ),
        WrongAnswer(
            "unsubscribes on every leave",
            BUS_06.replace("if self.counts[room] == 0:", "if True:")
            .replace("            del self.counts[room]\n", "            self.counts.pop(room, None)\n")
            .replace("self.counts[room] -= 1", "self.counts[room] = self.counts.get(room, 1) - 1")
            + "\n\n"
            + HANDLE_06
            + "\n\n"
            + CHAT_06,
            "though only carol left kitchen",
        ),
        WrongAnswer(
            "never unsubscribes",
            BUS_06.replace('await self.pubsub.unsubscribe(f"room:{room}")', "pass")
            + "\n\n"
            + HANDLE_06
            + "\n\n"
            + CHAT_06,
            "stays subscribed",
        ),
        WrongAnswer(
            "say stays on this process",
            BUS_06
            + "\n\n"
            + HANDLE_06.replace("await bus.publish(room, {", "await rooms.broadcast(room, {")
            + "\n\n"
            + CHAT_06,
            "alice's message, from the other replica",
        ),
    )
    secrets = ("if self.counts[room] == 0",)
    correct_message = (
        "alice on replica A and bob on replica B heard each other through Redis, with one subscriber "
        "connection per process. When carol left, dave on the same replica still heard erin: the room stayed "
        "subscribed while it had members there, and when frank, the last one in attic, left, Redis dropped "
        "the channel. The chapter 02 scenarios still pass on a replica. Saved in `mychat/ch06.py`."
    )

    async def _run(self, module: str) -> None:
        async with Run(module, HEARTBEAT_ENV) as run:
            redis = await run.lab.redis()
            env = {"REDIS_URL": redis.url}
            replica_a = await run.serve("replica-a", env)
            replica_b = await run.serve("replica-b", env)
            urls = (f"ws://127.0.0.1:{replica_a.port}", f"ws://127.0.0.1:{replica_b.port}")
            await play_replicas(run, redis, urls)
            await play_rooms(run, _authenticated(urls[0]))
