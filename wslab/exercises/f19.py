"""F19, deploys and draining: write the drain that tells each client when to come back, each at its own time.

The learner writes ``drain(sockets, after, spread, rng)``: close every open WebSocket with ``1012
SERVICE_RESTART`` and a close reason carrying a retry hint (``format_retry_hint(seconds)``), where each
client's seconds are ``after`` (the restart's duration: nobody should come back to a closed port) plus its
own random share of ``spread``. The checker connects twenty real clients to a server that keeps their
sockets, runs the learner's drain on them, and reads what each client received, as the notebook's
``DrainAwareClient`` would (``parse_retry_hint``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from wslab.drain import parse_retry_hint
from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer
from wslab.exercises._live import scenario, until
from wslab.wire import CloseCode

CLIENTS = 20
AFTER, SPREAD = 2.0, 6.0
"""Seconds the restart takes, and over how long the new server may see everyone back."""
SHOWN = "drain(sockets, after, spread, rng)"


def _held(sockets: list[WebSocket]) -> Starlette:
    async def hold(websocket: WebSocket) -> None:
        await websocket.accept()
        sockets.append(websocket)
        try:
            while True:
                await websocket.receive_text()
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            if websocket in sockets:
                sockets.remove(websocket)

    return Starlette(routes=[WebSocketRoute("/ws", hold)])


class Drain(Exercise):
    """q1: close everyone with 1012 and a hint of their own."""

    name = "Drain with a hint each"
    reads = ("drain",)
    placeholder = """
import random

from wslab.drain import format_retry_hint


async def drain(sockets: list, after: float, spread: float, rng: random.Random) -> None:
    ...  # your code here
"""
    hints = (
        "The server knows what the clients do not: how long the restart takes (`after`) and how long the "
        "new process needs to take everyone back (`spread`). Tell each client its own moment in that window.",
        "For each socket, draw its own `seconds` between `after` and `after + spread` with `rng.uniform`, "
        "then `await websocket.close(code, reason)` with the reason `format_retry_hint(seconds)`.",
        "The code is 1012 (`CloseCode.SERVICE_RESTART`: come back, the service is restarting). Draw a new "
        "`seconds` for every socket, and never less than `after`.",
    )
    solution_code = """
import random

from wslab.drain import format_retry_hint


async def drain(sockets: list, after: float, spread: float, rng: random.Random) -> None:
    for websocket in list(sockets):
        seconds = after + rng.uniform(0, spread)
        await websocket.close(1012, format_retry_hint(seconds))
"""
    wrong_answers = (
        WrongAnswer(
            "one moment for everybody",
            """
from wslab.drain import format_retry_hint
async def drain(sockets, after, spread, rng):
    seconds = after + rng.uniform(0, spread)
    for websocket in list(sockets):
        await websocket.close(1012, format_retry_hint(seconds))
""",
            "the same moment",
        ),
        WrongAnswer(
            "jitter without the restart's duration",
            """
from wslab.drain import format_retry_hint
async def drain(sockets, after, spread, rng):
    for websocket in list(sockets):
        await websocket.close(1012, format_retry_hint(rng.uniform(0, spread)))
""",
            "before the restart is over",
        ),
        WrongAnswer(
            "1012 without a hint",
            """
async def drain(sockets, after, spread, rng):
    for websocket in list(sockets):
        await websocket.close(1012)
""",
            "no hint a client can read",
        ),
        WrongAnswer(
            "a hint in its own format",
            """
async def drain(sockets, after, spread, rng):
    for websocket in list(sockets):
        await websocket.close(1012, f"retry in {after + rng.uniform(0, spread):.1f}s")
""",
            "no hint a client can read",
        ),
        WrongAnswer(
            "the whole spread added twice",
            """
from wslab.drain import format_retry_hint
async def drain(sockets, after, spread, rng):
    for websocket in list(sockets):
        await websocket.close(1012, format_retry_hint(after + spread + rng.uniform(0, spread)))
""",
            "later than",
        ),
    )
    secrets = ("after + rng.uniform(0, spread)",)
    correct_message = (
        f"`drain` closed all {CLIENTS} sockets with 1012 and a hint each client can read, none earlier "
        f"than the restart's {AFTER:g} s nor later than {AFTER + SPREAD:g} s, spread over that window "
        "instead of one moment for everybody."
    )
    call_timeout = 20.0

    async def _check(self, drain: Callable[..., Any]) -> None:
        from wslab.lab import Lab

        self.describe(drain)
        sockets: list[WebSocket] = []
        async with Lab() as lab:
            server = await lab.serve(_held(sockets), name="f19-check")
            clients = await asyncio.gather(
                *(lab.connect(server.ws_url("/ws"), name=f"client-{i:02d}") for i in range(CLIENTS))
            )
            await until(lambda: len(sockets) == CLIENTS, 2.0)
            async with scenario(f"a deploy drains {CLIENTS} clients", 10):
                await self.call_async(drain, list(sockets), AFTER, SPREAD, random.Random(19))
                await asyncio.gather(*(client.wait_closed(2.0) for client in clients))
                hints = [self._hint(client) for client in clients]
                early = [h for h in hints if h < AFTER]
                if early:
                    raise Incorrect(
                        f"{len(early)} clients were told to come back as early as {min(early):.1f} s, "
                        f"before the restart is over ({AFTER:g} s): they find a closed port, and count it "
                        "as a failure."
                    )
                late = [h for h in hints if h > AFTER + SPREAD]
                if late:
                    raise Incorrect(
                        f"{len(late)} clients were told to come back later than {AFTER + SPREAD:g} s (up to "
                        f"{max(late):.1f} s): the window is `after` plus at most `spread`."
                    )
                if max(hints) - min(hints) < SPREAD / 3:
                    raise Incorrect(
                        f"all {CLIENTS} clients were told to come back at the same moment, or nearly "
                        f"({min(hints):.2f} to {max(hints):.2f} s): they reconnect as one crowd. Draw a time "
                        "for each client."
                    )

    @staticmethod
    def _hint(client: Any) -> float:
        if client.close_code != CloseCode.SERVICE_RESTART:
            raise Incorrect(
                f"{client.name}'s socket closed with {client.closed_as}, not 1012 SERVICE_RESTART."
            )
        hint = parse_retry_hint(client.close_reason)
        if hint is None:
            raise Incorrect(
                f"{client.name} got 1012 with the reason {client.close_reason!r}: no hint a client can read, "
                "so it falls back to its own backoff, from the same instant as everyone else. Use "
                "`format_retry_hint`."
            )
        return hint


CHAPTER = Chapter("F19", "F19_deploys_and_draining", (Drain,))
