"""F13, the silent listener: write the read loop that notices when Redis stops answering.

The learner writes ``receive(pubsub, handle, timeout)``, the loop at the heart of the pub/sub fan-out's
listener: hand every message to ``handle``; after ``timeout / 2`` of silence send a PING; if nothing at
all comes back within ``timeout`` after it, raise ``ConnectionError`` so the supervisor reconnects. The
checker swaps it into the reference fan-out of replica ``c`` (its path to a real Redis goes through a
relay that can go dark) next to a reference replica ``a``, and replays the notebook's Verify: a good day,
a quiet room, and ``c``'s link to Redis going dark and coming back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer
from wslab.exercises._live import Guarded, scenario, until
from wslab.pitfalls.f13_silent_listener import NoWatchdogPubSubFanOut

SECRET = "wslab-f13-exercise-secret-0123456789abcdef"
TIMEOUT = 0.3
"""``redis_timeout`` of both replicas (30 s in production, scaled)."""
SHOWN = "receive(pubsub, handle, timeout)"


class _LearnerFanOut(NoWatchdogPubSubFanOut):
    """The notebook's deaf fan-out with its read loop replaced by the learner's: the reference otherwise."""

    def __init__(self, url: str, guard: Guarded) -> None:
        super().__init__(url, timeout=TIMEOUT)
        self.guard = guard

    async def _receive(self, pubsub: Any) -> None:
        await self.guard(pubsub, self._handle, self.timeout)
        # returning is not a way to say "dead": the supervisor would only run it again, at once
        raise ConnectionError("the receive loop returned")


async def _hears(client: Any, text: str, within: float) -> bool:
    try:
        async with asyncio.timeout(within):
            while (await client.recv_json(timeout=within)).get("text") != text:
                pass
    except (TimeoutError, ConnectionError):
        return False
    return True


class Receive(Exercise):
    """q1: a listener that asks Redis whether it is still there."""

    name = "A listener with a watchdog"
    reads = ("receive",)
    placeholder = """
import asyncio


async def receive(pubsub, handle, timeout: float) -> None:
    ...  # your code here
"""
    hints = (
        "`await pubsub.get_message(timeout=...)` returns a message, or None when nothing came in that time. "
        "None cannot tell a quiet room from a dead link; a question to Redis can: `await pubsub.ping()`.",
        "Keep two times: when you last heard anything, and when you sent a PING (None when none is "
        "outstanding). Any message, the PING's answer included, goes to `handle` and resets both.",
        "On None: after `timeout / 2` of silence with no PING outstanding, send one; with one outstanding "
        "for `timeout`, `raise ConnectionError(...)`. Read with a short `get_message` timeout, such as "
        "`timeout / 4`.",
    )
    solution_code = """
import asyncio


async def receive(pubsub, handle, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    heard, pinged_at = loop.time(), None
    while True:
        message = await pubsub.get_message(timeout=timeout / 4)
        now = loop.time()
        if message is not None:
            heard, pinged_at = now, None
            handle(message)
        elif pinged_at is None and now - heard >= timeout / 2:
            await pubsub.ping()
            pinged_at = now
        elif pinged_at is not None and now - pinged_at >= timeout:
            raise ConnectionError(f"no answer from Redis to a PING within {timeout:g} s")
"""
    wrong_answers = (
        WrongAnswer(
            "silence is taken for calm (the notebook's broken listener)",
            """
async def receive(pubsub, handle, timeout):
    while True:
        message = await pubsub.get_message(timeout=1.0)
        if message is not None:
            handle(message)
""",
            "still says",
        ),
        WrongAnswer(
            "silence is taken for death",
            """
import asyncio
async def receive(pubsub, handle, timeout):
    while True:
        message = await pubsub.get_message(timeout=timeout)
        if message is None:
            raise ConnectionError("no message")
        handle(message)
""",
            "a quiet room",
        ),
        WrongAnswer(
            "pings, but never checks the answer",
            """
import asyncio
async def receive(pubsub, handle, timeout):
    loop = asyncio.get_running_loop()
    heard = loop.time()
    while True:
        message = await pubsub.get_message(timeout=timeout / 4)
        if message is not None:
            heard = loop.time()
            handle(message)
        elif loop.time() - heard >= timeout / 2:
            await pubsub.ping()
            heard = loop.time()
""",
            "still says",
        ),
        WrongAnswer(
            "reads the messages, but never hands them over",
            """
async def receive(pubsub, handle, timeout):
    while True:
        await pubsub.get_message(timeout=timeout / 4)
""",
            "never got `ready`",
        ),
    )
    secrets = ("elif pinged_at is not None and now - pinged_at >= timeout:",)
    correct_message = (
        "with your `receive`, replica c delivered alice's messages, stayed connected through a quiet room, "
        "and reported Redis gone within a few timeouts of its link going dark, so that once the link was "
        "back c reconnected, told carol `resync`, and carol heard alice again."
    )
    call_timeout = 30.0

    async def _check(self, receive: Callable[..., Any]) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        from wslab.chat import ChatSettings, create_app, issue_token
        from wslab.lab import Lab
        from wslab.netem import Mode

        # raising ConnectionError is the contract; a dead link also makes get_message raise redis's own
        guard = Guarded(
            self, receive, SHOWN, expected=(ConnectionError, RedisConnectionError, RedisTimeoutError)
        )
        async with Lab() as lab:
            redis = await lab.redis("f13-check-redis")
            link = await lab.proxy(redis.port, name="c-to-redis")
            via_link = f"redis://127.0.0.1:{link.port}/0"

            async def replica(name: str, url: str, fanout: Any = None) -> Any:
                settings = ChatSettings(secret=SECRET, backend="pubsub", redis_url=url, redis_timeout=TIMEOUT)

                def report(kind: str, message: str) -> None:
                    lab.events.record(name, kind, message)

                app = create_app(settings, report=report, fanout=fanout)
                return app, await lab.serve(app, name=f"f13-{name}")

            async def join(server: Any, user: str) -> Any:
                client = await lab.connect(server.ws_url("/ws/chat/lobby"), name=user)
                await client.send_json({"type": "auth", "token": issue_token(user, SECRET, 600)})
                try:
                    ready = await client.recv_json(timeout=3)
                except TimeoutError:
                    raise Incorrect(
                        f"{user} never got `ready`: a member is ready once Redis confirms the room's "
                        "SUBSCRIBE, and that confirmation is a message too: every message goes to `handle`."
                    ) from None
                if ready.get("type") != "ready":
                    raise Incorrect(f"{user} could not join: {ready}")
                return client

            _, a = await replica("a", redis.url)
            fanout = _LearnerFanOut(via_link, guard)
            _, c = await replica("c", via_link, fanout)
            async with scenario("a good day", 5, [guard]):
                alice, carol = await join(a, "alice"), await join(c, "carol")
                await alice.send_json({"type": "say", "text": "good morning"})
                if not await _hears(carol, "good morning", 2.0):
                    raise Incorrect("alice (on a) said 'good morning' and carol (on c) never received it.")
            async with scenario("a quiet room", 5, [guard]):
                await asyncio.sleep(5 * TIMEOUT)
                health = fanout.health
                if health.errors or health.state != "connected":
                    raise Incorrect(
                        f"nobody spoke for {5 * TIMEOUT:g} s and Redis was answering, yet c reported "
                        f"{health.errors} error(s) ({health.last_error}): a quiet room is not a dead link. "
                        "Ask Redis (PING) before you give up."
                    )
            async with scenario("c's link to Redis goes dark", 10, [guard]):
                mark = lab.events.mark()
                link.mode = Mode.BLACKHOLE
                bound = 6 * TIMEOUT
                reported = await until(
                    lambda: lab.events.count(source="c", kind="fanout_error", since=mark) > 0, bound
                )
                if not reported:
                    raise Incorrect(
                        f"c's link to Redis went dark, and {bound:g} s later c still says "
                        f"{fanout.health.state!r} with no error: it is deaf, and nobody is told."
                    )
                link.mode = Mode.PASS
                if not await until(
                    lambda: lab.events.count(source="c", kind="fanout_reconnected", since=mark) > 0, 5
                ):
                    raise Incorrect("the link came back, and c did not reconnect to Redis within 5 s.")
                while (await carol.recv_json(timeout=5)).get("type") != "resync":
                    pass
                await alice.send_json({"type": "say", "text": "welcome back, c"})
                if not await _hears(carol, "welcome back, c", 2.0):
                    raise Incorrect("c is back, but carol did not receive alice's next message.")


CHAPTER = Chapter("F13", "F13_silent_listener", (Receive,))
