"""F08, blocking the loop: write the reply that runs a blocking lookup without freezing everyone else.

The learner writes ``answer(text, seconds)``, the reply of the notebook's handler to one message:
``"lookup"`` gets ``slow_lookup(seconds)``'s result (a synchronous call that holds its thread), anything
else is echoed. The checker serves a handler that awaits it, in a thread of its own (so a blocking answer
freezes that server, never the notebook), and runs the notebook's race: bob starts a lookup, alice sends
an unrelated echo while it runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer, article
from wslab.exercises._live import Guarded, scenario

LOOKUP = 0.6
"""Seconds one lookup takes (60 s in production, scaled)."""
SHOWN = "answer(text, seconds)"


def _app(guard: Guarded) -> Starlette:
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                reply = guard(text, LOOKUP)
                if asyncio.iscoroutine(reply):
                    reply = await reply
                if not isinstance(reply, str):
                    shown = "None" if reply is None else article(type(reply).__name__)
                    if asyncio.iscoroutine(reply):
                        reply.close()  # never run: it would only warn "never awaited"
                        shown += " (something inside `answer` was not awaited)"
                    guard.fail(f"`answer({text!r}, {LOOKUP:g})` returned {shown}; it should return a str.")
                    await websocket.close(1011)
                    return
                await websocket.send_text(reply)
        except WebSocketDisconnect:
            pass

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)])


class Answer(Exercise):
    """q1: the blocking call goes to a worker thread, awaited."""

    name = "Keep the loop free"
    reads = ("answer",)
    placeholder = """
import asyncio

from wslab.pitfalls.f08_blocking_handler import slow_lookup


async def answer(text: str, seconds: float) -> str:
    ...  # your code here
"""
    hints = (
        "`slow_lookup` is synchronous: while it runs, its thread runs nothing else. If that thread is the "
        "event loop's, no other client is served. Writing `async def` around it changes nothing.",
        "Run the call in a worker thread and await it: the handler still waits for the result, but the loop "
        "serves everyone else meanwhile. `asyncio.to_thread` does exactly that.",
        "Pass the function and its argument separately, `asyncio.to_thread(slow_lookup, seconds)`, and "
        "`await` it; `to_thread(slow_lookup(seconds))` would call it right here, on the loop.",
    )
    solution_code = """
import asyncio

from wslab.pitfalls.f08_blocking_handler import slow_lookup


async def answer(text: str, seconds: float) -> str:
    if text == "lookup":
        return await asyncio.to_thread(slow_lookup, seconds)
    return text
"""
    wrong_answers = (
        WrongAnswer(
            "calls the blocking function on the loop",
            """
from wslab.pitfalls.f08_blocking_handler import slow_lookup
async def answer(text, seconds):
    if text == "lookup":
        return slow_lookup(seconds)
    return text
""",
            "alice's echo waited",
        ),
        WrongAnswer(
            "an async wrapper around the blocking call",
            """
from wslab.pitfalls.f08_blocking_handler import slow_lookup
async def lookup(seconds):
    return slow_lookup(seconds)
async def answer(text, seconds):
    if text == "lookup":
        return await lookup(seconds)
    return text
""",
            "alice's echo waited",
        ),
        WrongAnswer(
            "calls the function before handing it to the thread",
            """
import asyncio
from wslab.pitfalls.f08_blocking_handler import slow_lookup
async def answer(text, seconds):
    if text == "lookup":
        return await asyncio.to_thread(slow_lookup(seconds))
    return text
""",
            "raised TypeError",
        ),
        WrongAnswer(
            "forgets to await the thread",
            """
import asyncio
from wslab.pitfalls.f08_blocking_handler import slow_lookup
async def answer(text, seconds):
    if text == "lookup":
        return asyncio.to_thread(slow_lookup, seconds)
    return text
""",
            "returned a coroutine",
        ),
    )
    secrets = ("await asyncio.to_thread(slow_lookup, seconds)",)
    correct_message = (
        f"`answer` echoes at once, and while bob's {LOOKUP:g} s lookup ran in a worker thread, alice's echo "
        "came back long before it; then bob got his result."
    )
    call_timeout = 15.0

    async def _check(self, answer: Callable[..., Any]) -> None:
        from wslab.lab import Lab

        guard = Guarded(self, answer, SHOWN)
        async with Lab() as lab:
            # in a thread: a blocking answer must freeze that server's loop, not the notebook's
            server = await lab.serve(_app(guard), name="f08-check", in_thread=True)
            alice = await lab.connect(server.ws_url("/ws"), name="alice")
            bob = await lab.connect(server.ws_url("/ws"), name="bob")
            async with scenario("alice sends an echo", 5, [guard]):
                await alice.send("ping")
                got = await alice.recv(2.0)
                if got != "ping":
                    raise Incorrect(f"alice sent 'ping' and got {got!r} back.")
            async with scenario("bob looks up while alice echoes", 10, [guard]):
                await bob.send("lookup")
                await asyncio.sleep(LOOKUP / 10)  # the server is inside bob's lookup now
                started = time.monotonic()
                await alice.send("ping")
                await alice.recv(LOOKUP + 5)
                waited = time.monotonic() - started
                result = await bob.recv(LOOKUP + 5)
                if waited > LOOKUP / 2:
                    raise Incorrect(
                        f"alice's echo waited {waited:.1f} s, until bob's {LOOKUP:g} s lookup had finished: "
                        "the lookup held the event loop, so no other client was served meanwhile."
                    )
                if result != "lookup result":
                    raise Incorrect(f"bob asked for a lookup and received {result!r}.")


CHAPTER = Chapter("F08", "F08_blocking_the_loop", (Answer,))
