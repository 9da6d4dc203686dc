"""F02, the half-open peer: write the push-only feed handler that still notices its peer is gone.

The learner writes ``feed(websocket)``, the handler of ``/feed/{user}``: it pushes ``{"tick": n}`` every
``push_interval`` seconds and keeps ``app.state.online`` right. The checker runs the notebook's Verify
scenario on it: uvicorn's protocol pings on, a quiet feed, and carol's network going dark behind a relay.
uvicorn closes the dead connection after the ping timeout; the handler must notice at once (only
``receive()`` tells an ASGI app), take carol out of ``online``, and leave no pusher task behind.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer
from wslab.exercises._live import Guarded, cancel_leftovers, scenario, tasks_running, until

BUSY, QUIET = 0.02, 30.0
"""Push intervals (seconds) of the busy feed and of the quiet one (a push every few minutes, scaled)."""
PING_INTERVAL = PING_TIMEOUT = 0.1
"""uvicorn's ``ws_ping_interval`` and ``ws_ping_timeout`` for the checker's server (20 s each, scaled)."""
SLACK = 1.0
"""Seconds allowed beyond ``interval + timeout`` on a busy machine."""
SHOWN = "feed(websocket)"


def _feed_app(guard: Guarded, push_interval: float) -> Starlette:
    async def endpoint(websocket: WebSocket) -> None:
        await guard(websocket)

    app = Starlette(routes=[WebSocketRoute("/feed/{user}", endpoint)])
    app.state.push_interval = push_interval
    app.state.online = set()
    app.state.report = lambda kind, message: None
    return app


class Feed(Exercise):
    """q1: a push-only handler with a reader."""

    name = "A feed that notices the dark"
    reads = ("feed",)
    placeholder = """
import asyncio

from wslab.pitfalls.f02_send_only_handler import push_ticks


async def feed(websocket):
    ...  # your code here
"""
    hints = (
        "In ASGI, the only place a handler learns that its peer is gone (a close, or uvicorn's ping "
        "timeout) is `await websocket.receive()`. A handler that only sends never calls it.",
        "Run `push_ticks(websocket, state.push_interval)` as a task with `asyncio.create_task`, and read "
        "in the handler itself until `receive()` returns a message of type `websocket.disconnect`.",
        "Whatever ends the reading, the `finally` block must cancel the pusher task and take the user out "
        "of `state.online`; a pusher nobody cancels keeps sending ticks for ever.",
    )
    solution_code = """
import asyncio

from wslab.pitfalls.f02_send_only_handler import push_ticks


async def feed(websocket):
    user, state = websocket.path_params["user"], websocket.app.state
    await websocket.accept()
    state.online.add(user)
    pusher = asyncio.create_task(push_ticks(websocket, state.push_interval))
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    finally:
        pusher.cancel()
        state.online.discard(user)
"""
    wrong_answers = (
        WrongAnswer(
            "send-only, as in the notebook's broken handler",
            """
from starlette.websockets import WebSocketDisconnect
from wslab.pitfalls.f02_send_only_handler import push_ticks
async def feed(websocket):
    user, state = websocket.path_params["user"], websocket.app.state
    await websocket.accept()
    state.online.add(user)
    try:
        await push_ticks(websocket, state.push_interval)
    except WebSocketDisconnect:
        pass
    finally:
        state.online.discard(user)
""",
            "still counts carol online",
        ),
        WrongAnswer(
            "a reader, but the pusher is never cancelled",
            """
import asyncio
from wslab.pitfalls.f02_send_only_handler import push_ticks
async def feed(websocket):
    user, state = websocket.path_params["user"], websocket.app.state
    await websocket.accept()
    state.online.add(user)
    asyncio.create_task(push_ticks(websocket, state.push_interval))
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    finally:
        state.online.discard(user)
""",
            "still running",
        ),
        WrongAnswer(
            "gather(pusher, reader): waits for the pusher that never ends",
            """
import asyncio
from wslab.pitfalls.f02_send_only_handler import push_ticks
async def feed(websocket):
    user, state = websocket.path_params["user"], websocket.app.state
    await websocket.accept()
    state.online.add(user)
    async def reader():
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    try:
        await asyncio.gather(push_ticks(websocket, state.push_interval), reader())
    finally:
        state.online.discard(user)
""",
            "still counts carol online",
        ),
        WrongAnswer(
            "one push, then only reading",
            """
import json
async def feed(websocket):
    user, state = websocket.path_params["user"], websocket.app.state
    await websocket.accept()
    state.online.add(user)
    await websocket.send_text(json.dumps({"tick": 1}))
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    finally:
        state.online.discard(user)
""",
            "“carol subscribes to a busy feed”",
        ),
    )
    secrets = ('while (await websocket.receive())["type"] != "websocket.disconnect"',)
    correct_message = (
        "`feed` pushes ticks while carol listens; when her network went dark, it took her out of `online` "
        "as soon as uvicorn's ping timed out, and it left no pusher task running."
    )
    call_timeout = 15.0

    async def _check(self, feed: Callable[..., Any]) -> None:
        from wslab.lab import Lab
        from wslab.netem import Mode

        guard = Guarded(self, feed, SHOWN)
        before = set(tasks_running("push_ticks"))  # the notebook's own feeds are not ours to judge

        def ours() -> list[asyncio.Task[Any]]:
            return [task for task in tasks_running("push_ticks") if task not in before]

        leftovers: list[asyncio.Task[Any]] = []
        try:
            async with Lab() as lab:
                busy_app = _feed_app(guard, BUSY)
                busy = await lab.serve(busy_app, name="f02-busy")
                async with scenario("carol subscribes to a busy feed", 5, [guard]):
                    carol = await lab.connect(busy.ws_url("/feed/carol"), name="carol@busy")
                    ticks: list[object] = []
                    try:
                        while len(ticks) < 3:
                            ticks.append(json.loads(await carol.recv(2.0)).get("tick"))
                    except TimeoutError:
                        raise Incorrect(
                            f"carol received ticks {ticks}, then nothing for 2 s: a feed pushes every "
                            f"`push_interval` ({BUSY:g} s here) for as long as she is connected."
                        ) from None
                    if ticks != [1, 2, 3]:
                        raise Incorrect(f"carol received ticks {ticks}; a feed pushes 1, 2, 3, ...")
                    if busy_app.state.online != {"carol"}:
                        raise Incorrect(
                            f"carol is connected, but `online` is {busy_app.state.online}: add her on accept."
                        )
                    await carol.close()
                    leftovers = ours()  # a forgotten pusher there fails on its own; collect it quietly
                quiet_app = _feed_app(guard, QUIET)
                quiet = await lab.serve(
                    quiet_app, name="f02-quiet", ws_ping_interval=PING_INTERVAL, ws_ping_timeout=PING_TIMEOUT
                )
                network = await lab.proxy(quiet, name="carol-network")
                async with scenario("carol's network goes dark", 10, [guard]):
                    carol = await lab.connect(network.ws_url("/feed/carol"), name="carol@quiet")
                    first = json.loads(await carol.recv(2.0))
                    await asyncio.sleep(PING_INTERVAL)
                    network.mode = Mode.BLACKHOLE
                    dark = time.monotonic()
                    bound = PING_INTERVAL + PING_TIMEOUT + SLACK
                    if not await until(lambda: not quiet_app.state.online, bound):
                        raise Incorrect(
                            f"carol read {first} and then her network went dark. uvicorn's pings "
                            f"({PING_INTERVAL:g} s, timeout {PING_TIMEOUT:g} s) closed her connection, but "
                            f"{time.monotonic() - dark:.1f} s later the server still counts carol online: "
                            "the handler has not returned. Only `receive()` says the connection is closed "
                            f"(the next push is {QUIET:g} s away), and then nothing may keep it waiting."
                        )
                async with scenario("after carol is gone", 5, [guard]):
                    await asyncio.sleep(0.05)
                    stuck = ours()
                    leftovers += stuck
                    if stuck:
                        raise Incorrect(
                            "carol is gone and the handler has returned, but a `push_ticks` task is still "
                            "running: it would keep pushing into a closed connection (and raise there)."
                        )
        finally:
            await cancel_leftovers(leftovers or ours())


CHAPTER = Chapter("F02", "F02_half_open_peer", (Feed,))
