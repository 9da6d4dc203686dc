"""Build track, chapter 05: a reconnecting client loop, checked against a flapping server and a 4001.

The learner writes ``run_client(url, token, on_message, *, base, cap, stable)`` with ``websockets``. The
checker runs it on the notebook's loop (a task it cancels at the end) against its own scripted server,
which records when each connection arrived and ended, so every delay the client chose is measured on the
server's side, as an operator would see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from wslab.exercises._core import Incorrect, NotAttempted, WrongAnswer
from wslab.exercises.build import BuildExercise, build_dir, cell_source
from wslab.exercises.live import Run, free_port

__all__ = ["BuildReconnect"]

TOKEN = "token-for-alice"

SOLUTION = '''\
import asyncio
import json
import random
import time

import websockets


async def run_client(url, token, on_message, *, base=0.5, cap=30.0, stable=10.0) -> None:
    """Stay connected to `url`: auth first, answer pings, reconnect with full jitter; stop on 4001."""
    failures = 0
    while True:
        ws = opened = None
        try:
            ws = await websockets.connect(url)
            opened = time.monotonic()
            await ws.send(json.dumps({"type": "auth", "token": token}))
            async for raw in ws:
                message = json.loads(raw)
                if message.get("type") == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                else:
                    await on_message(message)
        except (OSError, websockets.InvalidHandshake, websockets.ConnectionClosed):
            pass  # the server is down, refused us, or dropped us: try again below
        finally:
            if ws is not None:
                await ws.close()
        if ws is not None and ws.close_code == 4001:
            return  # the same token will fail again: retrying is a storm, not a fix
        if opened is not None and time.monotonic() - opened >= stable:
            failures = 0  # it was up long enough: this is a new outage, start small again
        await asyncio.sleep(random.uniform(0, min(cap, base * 2**failures)))
        failures += 1
'''

PLACEHOLDER = """
import websockets


async def run_client(url, token, on_message, *, base=0.5, cap=30.0, stable=10.0) -> None:
    ...  # connect, send the auth frame, answer pings, give the rest to on_message; reconnect; stop on 4001
"""


@dataclass
class _Script:
    """What the checker's server does with each connection, and what it saw."""

    steps: list[str]
    hold: float = 0.0
    arrivals: list[float] = field(default_factory=list)
    departures: list[float] = field(default_factory=list)
    first_frames: list[str] = field(default_factory=list)

    def gaps(self) -> list[float]:
        """Seconds between each connection's end and the next one's arrival: the delays the client chose."""
        return [b - a for a, b in zip(self.departures, self.arrivals[1:], strict=False)]


def _server(script: _Script) -> Starlette:
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        script.arrivals.append(time.monotonic())
        step = script.steps[min(len(script.arrivals) - 1, len(script.steps) - 1)]
        try:
            first = await asyncio.wait_for(websocket.receive_text(), 1.0)
            script.first_frames.append(first)
            if step == "deny":
                await websocket.close(4001, "authentication failed")
            elif step == "stable":
                await websocket.send_json({"type": "ping"})
                await websocket.send_json({"type": "message", "from": "bob", "text": "welcome back"})
                await asyncio.sleep(script.hold)
                await websocket.close(1012, "restarting")
            else:
                await websocket.close(1012, "restarting")
        except (TimeoutError, WebSocketDisconnect, RuntimeError):
            with contextlib.suppress(RuntimeError):
                await websocket.close(1008, "no auth frame")
        finally:
            script.departures.append(time.monotonic())

    return Starlette(routes=[WebSocketRoute("/ws/chat/lobby", endpoint)])


class BuildReconnect(BuildExercise):
    """q: the reconnecting client loop."""

    chapter = "05"
    saves = False
    name = "Build it: a reconnecting client with full jitter, a cap, a stable-period reset, no retry on 4001"
    reads = ("run_client",)
    placeholder = PLACEHOLDER
    hints = (
        'One `while True` loop: connect, send `{"type": "auth", "token": token}`, read messages until '
        "the connection ends (answer each ping with a pong), then decide whether and how long to wait.",
        "The wait is full jitter: `random.uniform(0, min(cap, base * 2**failures))`, then `failures += 1`. "
        "Catch `OSError` (server down), `websockets.InvalidHandshake` and `websockets.ConnectionClosed`.",
        "After the connection ends, look at `ws.close_code`: 4001 means `return`. Note when the connection "
        "opened; only if it stayed up at least `stable` seconds set `failures = 0`.",
    )
    solution_code = SOLUTION
    wrong_answers = (
        WrongAnswer(
            "exponential backoff without jitter",
            SOLUTION.replace("random.uniform(0, min(", "(min("),
            "retries at the same instants",
        ),
        WrongAnswer(
            "no cap",
            SOLUTION.replace("min(cap, base * 2**failures)", "base * 2**failures"),
            "waited longer than the cap",
        ),
        WrongAnswer(
            "counter reset on every connect",
            SOLUTION.replace("if opened is not None and time.monotonic() - opened >= stable:", "if opened:"),
            "the delays never grew",
        ),
        WrongAnswer(
            "counter never reset",
            SOLUTION.replace("failures = 0  # it was", "pass  # it was"),
            "still waited as long as during the outage",
        ),
        WrongAnswer(
            "retries on 4001",
            SOLUTION.replace("            return  # the same", "            pass  # the same"),
            "the same token fails again",
        ),
        WrongAnswer(
            "crashes when the server is down",
            SOLUTION.replace(
                "except (OSError, websockets.InvalidHandshake", "except (websockets.InvalidHandshake"
            ),
            "while the server was down",
        ),
    )
    secrets = ("failures = 0  # it was up",)
    correct_message = (
        "While the server was down your client kept trying, and once it flapped, your delays grew, stayed "
        "under the cap and were spread out (jitter), so a crowd of clients would not come back at once. "
        "After a connection that stayed up, the next delay was short again. On 4001 it stopped for good. "
        "Saved in `mychat/client.py`."
    )

    async def _check(self, *answers: Any) -> None:
        (run_client,) = answers
        if not inspect.iscoroutinefunction(run_client):
            raise Incorrect(
                "`run_client` should be an `async def` function: it runs for as long as the app does."
            )
        async with Run("") as run:
            await self._down_then_flapping(run, run_client)
            await self._stable_resets(run, run_client)
            await self._denied(run, run_client)
        source = cell_source(run_client)
        if source is not None:
            path = build_dir() / "client.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source, encoding="utf-8")

    async def _drive(
        self,
        run: Run,
        run_client: Callable[..., Any],
        script: _Script,
        until: Callable[[], bool],
        limit: float,
        base: float,
        cap: float,
        stable: float,
        delay_start: float = 0.0,
    ) -> tuple[asyncio.Task[Any], list[dict[str, Any]]]:
        port = free_port()
        received: list[dict[str, Any]] = []

        async def on_message(message: dict[str, Any]) -> None:
            received.append(message)

        url = f"ws://127.0.0.1:{port}/ws/chat/lobby"
        task = asyncio.get_running_loop().create_task(
            run_client(url, TOKEN, on_message, base=base, cap=cap, stable=stable)
        )
        try:
            if delay_start:
                await asyncio.sleep(delay_start)
                if task.done():
                    self._raise_from(task, "while the server was down (connection refused)")
            await run.lab.serve(_server(script), "scripted", port=port)
            deadline = time.monotonic() + limit
            while not until() and time.monotonic() < deadline and not task.done():
                await asyncio.sleep(0.01)
        except BaseException:
            task.cancel()
            raise
        return task, received

    @staticmethod
    def _raise_from(task: asyncio.Task[Any], when: str) -> None:
        exc = task.exception()
        if isinstance(exc, NotImplementedError):
            raise NotAttempted("`run_client` raised NotImplementedError: replace the `...` with your code.")
        if exc is not None:
            raise Incorrect(f"`run_client` raised {type(exc).__name__}: {exc} {when}; it should keep trying.")
        raise Incorrect(f"`run_client` returned {when}; it should keep trying until a 4001.")

    @staticmethod
    async def _stop(task: asyncio.Task[Any]) -> None:
        task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 2)

    async def _down_then_flapping(self, run: Run, run_client: Callable[..., Any]) -> None:
        base, cap, flaps = 0.05, 0.4, 14
        script = _Script(["flap"])

        def enough() -> bool:
            waiting = len(script.departures) == len(script.arrivals) > 0
            too_long = waiting and time.monotonic() - script.departures[-1] > cap + 0.5
            return len(script.departures) >= flaps or too_long

        task, _ = await self._drive(run, run_client, script, enough, 12.0, base, cap, 10.0, 0.3)
        try:
            if task.done() and len(script.departures) < flaps:
                self._raise_from(task, "while the server flapped (accepting, then closing with 1012)")
            if script.first_frames and '"auth"' not in script.first_frames[0]:
                raise Incorrect(
                    f"The first frame your client sent was {script.first_frames[0][:60]!r}: it should be the "
                    'auth frame, `{"type": "auth", "token": ...}`.'
                )
            gaps = script.gaps()
            shown = ", ".join(f"{g:.2f}" for g in gaps[:10])
            if len(script.departures) < flaps:
                raise Incorrect(
                    f"The server flapped (accept, close 1012) and your client connected only "
                    f"{len(script.arrivals)} time(s) (delays, seconds: {shown}), then waited more than "
                    f"{cap + 0.5:g} s, with base={base}, cap={cap}: it waited longer than the cap allows. "
                    "Take `min(cap, ...)` of the exponential bound."
                )
            if max(gaps) > cap + 0.25:
                raise Incorrect(
                    f"With cap={cap} your client waited {max(gaps):.2f} s between two attempts "
                    f"(delays: {shown}): "
                    "it waited longer than the cap. Take `min(cap, ...)` of the exponential bound."
                )
            late = gaps[5:]
            if max(late) < 0.12:
                raise Incorrect(
                    f"The server flapped {flaps} times and the delays never grew (seconds: {shown}), with "
                    f"base={base}: a connection that opens and drops at once is still a failure, so do not "
                    "reset the counter on connect; reset it only after `stable` seconds up."
                )
            if min(late) > 0.8 * cap:
                raise Incorrect(
                    f"Once at the cap, every delay was about {cap} s (seconds: {shown}): a client without "
                    "jitter "
                    "retries at the same instants as every other client. Draw the delay with "
                    "`random.uniform(0, bound)`."
                )
        finally:
            await self._stop(task)

    async def _stable_resets(self, run: Run, run_client: Callable[..., Any]) -> None:
        base, cap, stable = 0.05, 1.0, 0.25
        steps = ["flap"] * 5 + ["stable", "flap"] * 4
        script = _Script(steps, hold=stable + 0.15)
        task, received = await self._drive(
            run, run_client, script, lambda: len(script.departures) >= len(steps), 20.0, base, cap, stable
        )
        try:
            if task.done():
                self._raise_from(task, "after a connection that stayed up")
            gaps = script.gaps()
            after_stable = [gaps[i] for i in range(5, min(len(gaps), len(steps) - 1), 2)]
            if not any(m.get("type") == "message" for m in received):
                raise Incorrect(
                    "The server sent a `message` to your client, but `on_message` never received it."
                )
            if any(m.get("type") == "ping" for m in received):
                raise Incorrect(
                    "`on_message` received a ping: answer it with a pong instead of passing it on."
                )
            if after_stable and max(after_stable) > 0.15:
                shown = ", ".join(f"{g:.2f}" for g in after_stable)
                raise Incorrect(
                    f"After connections that stayed up longer than `stable` ({stable} s), your client still "
                    f"waited as long as during the outage (seconds: {shown}; base={base}): reset the counter "
                    "once a connection has been up for `stable` seconds."
                )
        finally:
            await self._stop(task)

    async def _denied(self, run: Run, run_client: Callable[..., Any]) -> None:
        script = _Script(["deny"])
        task, _ = await self._drive(
            run, run_client, script, lambda: len(script.arrivals) >= 3, 1.5, 0.02, 0.1, 10.0
        )
        try:
            if len(script.arrivals) > 1:
                raise Incorrect(
                    "The server closed with 4001 (bad token) and your client came back "
                    f"{len(script.arrivals) - 1} "
                    "more times within 1.5 s: the same token fails again, forever. Return on 4001."
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), 1.0)
            if not task.done():
                raise Incorrect("After a 4001 your client did not return: `run_client` should end there.")
            if task.exception() is not None:
                exc = task.exception()
                raise Incorrect(
                    f"After a 4001 `run_client` raised {type(exc).__name__}: {exc}; it should return."
                )
        finally:
            await self._stop(task)

    async def _run(self, module: str) -> None:  # pragma: no cover - _check is overridden
        raise NotImplementedError
