"""Build track, chapter 04: an application heartbeat that tracks pongs and drops a silent peer.

The learner writes ``heartbeat(websocket, last_pong)``, ``listen(...)`` (the receive loop, recording
pongs) and a ``chat`` that runs both and ends the connection when either ends. The checker serves the
module with short ``PING_INTERVAL``/``PONG_TIMEOUT`` and puts dan behind a relay that starts dropping
every byte (``Mode.BLACKHOLE``: a closed laptop lid), so the server can only find out by the heartbeat.
"""

from __future__ import annotations

import asyncio

from wslab.exercises._core import WrongAnswer
from wslab.exercises.build import BuildExercise, runnable_placeholder
from wslab.exercises.build_ch02 import play_rooms
from wslab.exercises.build_ch03 import ENV as AUTH_ENV
from wslab.exercises.build_ch03 import _authenticated, play_auth
from wslab.exercises.build_solutions import CHAT_04, HEARTBEAT_04
from wslab.exercises.live import Run, Scenario, token_for
from wslab.netem import Mode

__all__ = ["BuildHeartbeat", "play_heartbeat"]

INTERVAL, TIMEOUT = 0.2, 0.3
ENV = {**AUTH_ENV, "PING_INTERVAL": str(INTERVAL), "PONG_TIMEOUT": str(TIMEOUT)}
SLACK = 1.0
"""Seconds beyond interval + timeout the checker allows (a loaded laptop, a slow CI runner)."""

PLACEHOLDER_HEARTBEAT = """
async def heartbeat(websocket: WebSocket, last_pong: dict[str, float]) -> None:
    ...  # every PING_INTERVAL send {"type": "ping"}; return once a pong is PONG_TIMEOUT late


async def listen(room: str, user: str, websocket: WebSocket, last_pong: dict[str, float]) -> None:
    ...  # receive forever: a pong sets last_pong["at"] = time.monotonic(); anything else goes to handle
"""

PLACEHOLDER_CHAT = """
app = FastAPI()
rooms = Rooms()


@app.websocket("/ws/chat/{room}")
async def chat(websocket: WebSocket, room: str) -> None:
    ...  # as in chapter 03, but run heartbeat and listen as tasks; when either ends, the connection ends
"""


async def play_heartbeat(run: Run, port: int, ws_base: str) -> None:
    """The chapter 04 scenarios: a healthy client stays, a blackholed one is dropped (also the capstone's)."""
    relay = await run.lab.proxy(port, "relay")
    limit = INTERVAL + TIMEOUT + SLACK
    async with Scenario(
        run,
        "bob answers every ping",
        "Compare the time of the last pong with the time you sent the ping; update it in `listen`.",
    ) as s:
        bob = await s.connect("bob", ws_base + "/ws/chat/porch")
        await bob.send_json({"type": "auth", "token": token_for("bob", 60)})
        await s.expect("bob", "`ready`", type="ready")
        await asyncio.sleep(4 * (INTERVAL + TIMEOUT))
        if bob.closed:
            s.fail(
                f"bob answered every ping, but the server closed him ({bob.closed_as}) within "
                f"{4 * (INTERVAL + TIMEOUT):g} s: a live peer must stay connected"
            )
        if not any('"ping"' in str(e.payload) for e in bob.transcript if e.direction == "received"):
            s.fail(
                f"bob received no ping in {4 * (INTERVAL + TIMEOUT):g} s (PING_INTERVAL = {INTERVAL:g} s)",
                "Start `heartbeat` as a task next to the receive loop: "
                "`asyncio.create_task(heartbeat(...))`.",
            )

    async with Scenario(
        run,
        "dan's network goes silent (a blackholing relay), alice is in the room",
        "A ping nobody answers proves nothing by itself: record each pong, and give up when one is "
        "PONG_TIMEOUT late, and end the connection so that the handler's `finally` runs.",
    ) as s:
        alice = await s.connect("alice", ws_base + "/ws/chat/cellar")
        await alice.send_json({"type": "auth", "token": token_for("alice", 60)})
        await s.expect("alice", "`ready`", type="ready")
        dan = await s.connect("dan", relay.ws_url("/ws/chat/cellar"))
        await dan.send_json({"type": "auth", "token": token_for("dan", 60)})
        await s.expect("dan", "`ready`", type="ready")
        await s.expect("alice", "`joined` for dan", type="joined", user="dan")
        relay.mode = Mode.BLACKHOLE
        try:
            left = await s.recv("alice", timeout=limit, what="`left` for dan")
        except Exception:
            s.fail(
                f"dan's network went silent and alice never heard he left ({limit:g} s with PING_INTERVAL = "
                f"{INTERVAL:g} s and PONG_TIMEOUT = {TIMEOUT:g} s): the server still counts a dead peer"
            )
        if left.get("type") != "left" or left.get("user") != "dan":
            s.fail(f"alice should have received `left` for dan, but got {left}")
        relay.mode = Mode.PASS


class BuildHeartbeat(BuildExercise):
    """q: an application heartbeat with pong tracking."""

    chapter = "04"
    name = "Build it: a heartbeat that tracks pongs and drops a silent peer"
    reads = ("heartbeat", "listen", "chat")
    placeholder = runnable_placeholder("04", PLACEHOLDER_HEARTBEAT, PLACEHOLDER_CHAT)
    hints = (
        "`heartbeat` is a loop: sleep `PING_INTERVAL`, note the time, send a ping, sleep `PONG_TIMEOUT`, and "
        "return if `last_pong['at']` is older than the ping. `listen` is chapter 03's receive loop plus: a "
        "pong updates `last_pong['at']` instead of going to `handle`.",
        "In `chat`, start both as tasks (`asyncio.create_task`) and `await asyncio.wait(tasks, "
        "return_when=asyncio.FIRST_COMPLETED)` inside chapter 03's `asyncio.timeout(...)`.",
        "If the heartbeat finished, `await websocket.close(1011, 'no pong')`. In `finally`, cancel both "
        "tasks before `rooms.leave(...)`: neither may outlive the connection.",
    )
    solution_code = HEARTBEAT_04 + "\n\n" + CHAT_04
    wrong_answers = (
        WrongAnswer(
            "pings without pong tracking",
            HEARTBEAT_04.replace(
                '        if last_pong["at"] < sent:\n            return\n', "        _ = sent\n"
            )
            + CHAT_04,
            "the server still counts a dead peer",
        ),
        WrongAnswer(
            "pongs not recorded",
            HEARTBEAT_04.replace('last_pong["at"] = time.monotonic()', "pass") + CHAT_04,
            "a live peer must stay connected",
        ),
        WrongAnswer(
            "no heartbeat at all",
            HEARTBEAT_04.replace(
                "    while True:\n        await asyncio.sleep(PING_INTERVAL)",
                "    while True:\n        await asyncio.sleep(3600)",
                1,
            )
            + CHAT_04,
            "bob received no ping",
        ),
    )
    secrets = ('last_pong["at"] < sent',)
    correct_message = (
        "bob, who answered every ping, stayed connected; dan, whose network went silent without a word, was "
        "dropped within PING_INTERVAL + PONG_TIMEOUT and alice heard he left. The chapter 02 and 03 "
        "scenarios "
        "still pass. Saved in `mychat/ch04.py`."
    )

    async def _run(self, module: str) -> None:
        async with Run(module, ENV) as run:
            server = await run.serve()
            base = f"ws://127.0.0.1:{server.port}"
            await play_heartbeat(run, server.port, base)
            await play_auth(run, base)
            await play_rooms(run, _authenticated(base))
