"""F17, reconnect storm: write the sliding-window decision at the heart of admission control.

The learner writes ``admit(recent, now, limit, window)``: ``recent`` holds the times of earlier
admissions, oldest first; admit (and record ``now``) only if fewer than ``limit`` happened in the last
``window`` seconds. The checker puts it inside the notebook's ``AdmissionControl`` in front of a real
server and sends storms of real clients: a burst larger than the limit, a second burst within the window,
and a third once the window has passed. What each client saw (kept open, or closed 1013) is the verdict.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from wslab.admission import AdmissionControl
from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer, article
from wslab.exercises._live import Guarded, scenario
from wslab.wire import CloseCode

LIMIT, WINDOW = 5, 1.0
"""At most ``LIMIT`` new WebSockets in any ``WINDOW`` seconds."""
FIRST, SECOND, THIRD = 12, 3, 8
"""Clients in each burst."""
SHOWN = "admit(recent, now, limit, window)"


class _Gate(AdmissionControl):
    """The notebook's admission control, deciding with the learner's ``admit``."""

    def __init__(self, app: Any, guard: Guarded) -> None:
        super().__init__(app, LIMIT, WINDOW)
        self.guard = guard

    def try_admit(self) -> bool:
        now = self.clock()
        verdict = self.guard(self._recent, now, self.limit, self.window)
        if not isinstance(verdict, bool):
            shown = "None" if verdict is None else article(type(verdict).__name__)
            self.guard.fail(f"`{SHOWN}` returned {shown}; it should return True or False.")
            return False
        if verdict:
            self.admitted_at.append(now)
        return verdict


def _held_app() -> Starlette:
    async def hold(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass

    return Starlette(routes=[WebSocketRoute("/ws", hold)])


class Admit(Exercise):
    """q1: a sliding window of admissions."""

    name = "Admission control"
    reads = ("admit",)
    placeholder = """
from collections import deque


def admit(recent: deque, now: float, limit: int, window: float) -> bool:
    ...  # your code here
"""
    hints = (
        "`recent` is the memory of the gate: the times of the admissions that still count. Forget the ones "
        "older than `window`, then decide; when you admit, remember `now`.",
        "The oldest time is `recent[0]`; drop it with `recent.popleft()` while it is `<= now - window`. "
        "Then the admissions within the window are exactly `len(recent)`.",
        "Refuse when `len(recent) >= limit` (that many already); otherwise `recent.append(now)` and admit.",
    )
    solution_code = """
from collections import deque


def admit(recent: deque, now: float, limit: int, window: float) -> bool:
    while recent and recent[0] <= now - window:
        recent.popleft()
    if len(recent) >= limit:
        return False
    recent.append(now)
    return True
"""
    wrong_answers = (
        WrongAnswer(
            "never forgets an admission",
            """
def admit(recent, now, limit, window):
    if len(recent) >= limit:
        return False
    recent.append(now)
    return True
""",
            "once the window had passed",
        ),
        WrongAnswer(
            "decides, but never records the admission",
            """
def admit(recent, now, limit, window):
    while recent and recent[0] <= now - window:
        recent.popleft()
    return len(recent) < limit
""",
            f"let {FIRST} of a burst of {FIRST} in",
        ),
        WrongAnswer(
            "off by one",
            """
def admit(recent, now, limit, window):
    while recent and recent[0] <= now - window:
        recent.popleft()
    if len(recent) > limit:
        return False
    recent.append(now)
    return True
""",
            f"let {LIMIT + 1} of a burst of {FIRST} in",
        ),
        WrongAnswer(
            "forgets the recent admissions instead of the old ones",
            """
def admit(recent, now, limit, window):
    while recent and recent[-1] > now - window:
        recent.pop()
    if len(recent) >= limit:
        return False
    recent.append(now)
    return True
""",
            f"let {FIRST} of a burst of {FIRST} in",
        ),
    )
    secrets = ("recent[0] <= now - window",)
    correct_message = (
        f"`admit` let exactly {LIMIT} of a burst of {FIRST} clients in and closed the rest with 1013, and "
        f"let clients in again once the {WINDOW:g} s window had passed."
    )
    call_timeout = 30.0

    async def _check(self, admit: Callable[..., Any]) -> None:
        from wslab.lab import Lab

        guard = Guarded(self, admit, SHOWN)
        gate = _Gate(_held_app(), guard)
        async with Lab() as lab:
            server = await lab.serve(gate, name="f17-check")
            async with scenario(f"a burst of {FIRST} clients", 10, [guard]):
                first = await self._burst(lab, server, "first", FIRST)
                if first != LIMIT:
                    raise Incorrect(
                        f"the gate let {first} of a burst of {FIRST} in (the rest saw 1013); at most {LIMIT} "
                        f"may pass in any {WINDOW:g} s."
                    )
            async with scenario(f"{SECOND} more within the window", 10, [guard]):
                second = await self._burst(lab, server, "second", SECOND)
                if second:
                    raise Incorrect(
                        f"{LIMIT} clients were let in less than {WINDOW:g} s ago, and the gate let {second} "
                        "more in: count the admissions of the whole window."
                    )
            async with scenario(f"{THIRD} more after the window", 10, [guard]):
                await asyncio.sleep(max(0.0, gate.admitted_at[-1] + WINDOW + 0.05 - gate.clock()))
                third = await self._burst(lab, server, "third", THIRD)
                if third != LIMIT:
                    raise Incorrect(
                        f"the gate let {third} of {THIRD} new clients in once the window had passed; the "
                        f"admissions of {WINDOW:g} s ago no longer count, so {LIMIT} may pass again."
                    )

    @staticmethod
    async def _burst(lab: Any, server: Any, label: str, count: int) -> int:
        """Connect ``count`` clients at once; how many the gate let through (not closed 1013)."""
        clients = await asyncio.gather(
            *(lab.connect(server.ws_url("/ws"), name=f"{label}-{i}") for i in range(count))
        )
        await asyncio.sleep(0.1)  # a refused client is closed right after its handshake
        admitted = 0
        for client in clients:
            if not client.closed:
                admitted += 1
            elif client.close_code != CloseCode.TRY_AGAIN_LATER:
                raise Incorrect(
                    f"{client.name} was closed with {client.closed_as}, not 1013 TRY_AGAIN_LATER."
                )
        return admitted


CHAPTER = Chapter("F17", "F17_reconnect_storm", (Admit,))
