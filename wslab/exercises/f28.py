"""F28, logged out but still connected: write the watchdog that ends a session when its token does.

The learner writes ``watchdog(websocket, expires_at, revoked)``, the task that runs next to a connection's
reader for its whole life: close with ``4002`` when the token expires (``expires_at``, a ``time.time()``
value), or with ``4001`` as soon as ``revoked`` is set (a logout), whichever comes first. The checker's
chat runs it for every connection and replays the notebook's probe: a session that must stay up while
its token is valid, a logout from another device, and a token that expires on an open socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer, article
from wslab.exercises._live import Guarded, scenario, until

LONG, SHORT = 5.0, 0.5
"""Token lifetimes (seconds): one that outlives the check, one that expires during it."""
PROMPT = 0.3
"""How soon after a logout or an expiry the socket must be closed."""
SHOWN = "watchdog(websocket, expires_at, revoked)"


def _chat(guard: Guarded) -> Starlette:
    expiry: dict[str, float] = {}
    revoked: dict[str, asyncio.Event] = {}

    async def echo(websocket: WebSocket) -> None:
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect:
            pass

    async def chat(websocket: WebSocket) -> None:
        user = websocket.path_params["user"]
        await websocket.accept()
        revoked[user] = asyncio.Event()
        watching = guard(websocket, expiry[user], revoked[user])
        if not asyncio.iscoroutine(watching):
            shown = "None" if watching is None else article(type(watching).__name__)
            guard.fail(f"`{SHOWN}` returned {shown}: write it as an `async def` that runs until it closes.")
            await websocket.close(1011)
            return
        tasks = {asyncio.create_task(watching), asyncio.create_task(echo(websocket))}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)

    app = Starlette(routes=[WebSocketRoute("/ws/{user}", chat)])
    app.state.expiry, app.state.revoked = expiry, revoked
    return app


class Watchdog(Exercise):
    """q1: a session ends when its token does: at expiry, or at logout."""

    name = "A session watchdog"
    reads = ("watchdog",)
    placeholder = """
import asyncio
import time


async def watchdog(websocket, expires_at: float, revoked: asyncio.Event) -> None:
    ...  # your code here
"""
    hints = (
        "Two things can end the session: the clock reaching `expires_at`, and `revoked` being set. Wait for "
        "whichever comes first, without polling, then close with the code that says which one it was.",
        "`await revoked.wait()` waits for the logout; put it under `asyncio.timeout(seconds_left)` with "
        "`seconds_left = expires_at - time.time()`: the timeout fires at expiry.",
        "`TimeoutError` means the token expired: `await websocket.close(4002, ...)` (refresh it and come "
        "back). Otherwise the user logged out: `await websocket.close(4001, ...)` (do not retry).",
    )
    solution_code = """
import asyncio
import time


async def watchdog(websocket, expires_at: float, revoked: asyncio.Event) -> None:
    try:
        async with asyncio.timeout(max(0.0, expires_at - time.time())):
            await revoked.wait()
    except TimeoutError:
        await websocket.close(4002, "token expired")
        return
    await websocket.close(4001, "logged out")
"""
    wrong_answers = (
        WrongAnswer(
            "checks the token only at expiry (a logout reaches no socket)",
            """
import asyncio, time
async def watchdog(websocket, expires_at, revoked):
    await asyncio.sleep(max(0.0, expires_at - time.time()))
    await websocket.close(4002, "token expired")
""",
            "logged out on another device",
        ),
        WrongAnswer(
            "waits for the logout only",
            """
async def watchdog(websocket, expires_at, revoked):
    await revoked.wait()
    await websocket.close(4001, "logged out")
""",
            "bob's token expires",
        ),
        WrongAnswer(
            "closes an expired session with 4001",
            """
import asyncio, time
async def watchdog(websocket, expires_at, revoked):
    try:
        async with asyncio.timeout(max(0.0, expires_at - time.time())):
            await revoked.wait()
    except TimeoutError:
        pass
    await websocket.close(4001, "unauthorized")
""",
            "bob saw 4001",
        ),
        WrongAnswer(
            "polls once a second",
            """
import asyncio, time
async def watchdog(websocket, expires_at, revoked):
    while True:
        await asyncio.sleep(1)
        if revoked.is_set():
            await websocket.close(4001, "logged out")
            return
        if time.time() >= expires_at:
            await websocket.close(4002, "token expired")
            return
""",
            "still open",
        ),
        WrongAnswer(
            "milliseconds for seconds",
            """
import asyncio, time
async def watchdog(websocket, expires_at, revoked):
    try:
        async with asyncio.timeout(max(0.0, expires_at - time.time() * 1000)):
            await revoked.wait()
    except TimeoutError:
        await websocket.close(4002, "token expired")
        return
    await websocket.close(4001, "logged out")
""",
            "alice's token is valid",
        ),
    )
    secrets = ("async with asyncio.timeout(max(0.0, expires_at - time.time())):",)
    correct_message = (
        f"`watchdog` kept alice's session up while her token was valid, closed it with 4001 within "
        f"{PROMPT:g} s of her logout on another device, and closed bob's with 4002 within {PROMPT:g} s of "
        "his token's expiry."
    )
    call_timeout = 20.0

    async def _check(self, watchdog: Callable[..., Any]) -> None:
        from wslab.lab import Lab

        guard = Guarded(self, watchdog, SHOWN)
        app = _chat(guard)
        async with Lab() as lab:
            server = await lab.serve(app, name="f28-check")
            app.state.expiry["alice"] = time.time() + LONG
            async with scenario("alice's token is valid", 5, [guard]):
                alice = await lab.connect(server.ws_url("/ws/alice"), name="alice")
                await alice.send("hello")
                got: object = None
                with contextlib.suppress(TimeoutError, ConnectionError):
                    got = await alice.recv(2.0)
                await asyncio.sleep(PROMPT)
                if alice.closed or got != "hello":
                    raise Incorrect(
                        f"alice's token is valid for {LONG:g} s more, and her session ended at once "
                        f"({alice.closed_as}): close only at the token's expiry or at a logout."
                    )
            async with scenario("alice logged out on another device", 5, [guard]):
                app.state.revoked["alice"].set()
                if not await until(lambda: alice.closed, PROMPT):
                    raise Incorrect(
                        f"alice logged out, and {PROMPT:g} s later her socket is still open: it would go "
                        "on receiving her private messages until the token expires."
                    )
                if alice.close_code != 4001:
                    raise Incorrect(
                        f"alice logged out and her socket closed with {alice.closed_as}, not 4001."
                    )
            app.state.expiry["bob"] = time.time() + SHORT
            async with scenario("bob's token expires on an open socket", 5, [guard]):
                bob = await lab.connect(server.ws_url("/ws/bob"), name="bob")
                await asyncio.sleep(max(0.0, app.state.expiry["bob"] - time.time()))
                if not await until(lambda: bob.closed, PROMPT):
                    raise Incorrect(
                        f"bob's token expired, and {PROMPT:g} s later his socket is still open: an expired "
                        "token must end the session, or a stolen one works for ever."
                    )
                if bob.close_code != 4002:
                    raise Incorrect(
                        f"bob saw {bob.closed_as} when his token expired: 4002 tells the client to refresh "
                        "the token and come back; 4001 (logged out, unauthorized) tells it not to retry."
                    )


CHAPTER = Chapter("F28", "F28_logged_out_still_connected", (Watchdog,))
