"""Build track, chapter 03: first-message authentication with a deadline, close codes after accept, expiry.

The learner writes ``authenticate(websocket)`` and a new ``chat`` that accepts, authenticates, joins, and
closes with 4002 when the token expires. The checker serves the module with a short ``AUTH_DEADLINE``
and plays mallory (forged token), a garbage auth frame, eve (says nothing), bob (token expires while he
is connected) and the chapter 02 scenarios behind authentication.
"""

from __future__ import annotations

from wslab.exercises._core import WrongAnswer
from wslab.exercises.build import BuildExercise, runnable_placeholder
from wslab.exercises.build_ch02 import play_rooms
from wslab.exercises.build_solutions import AUTH_03, CHAT_03
from wslab.exercises.live import SECRET, Run, Scenario, token_for

__all__ = ["BuildAuth", "play_auth"]

DEADLINE = 0.5
"""``AUTH_DEADLINE`` of the checked server, in seconds."""

ENV = {"CHAT_SECRET": SECRET, "AUTH_DEADLINE": str(DEADLINE)}

PLACEHOLDER_AUTH = """
async def authenticate(websocket: WebSocket) -> tuple[str, float] | None:
    ...  # wait AUTH_DEADLINE for {"type": "auth", "token": ...}; (user, expires_at), or close and None
"""

PLACEHOLDER_CHAT = """
app = FastAPI()
rooms = Rooms()


@app.websocket("/ws/chat/{room}")
async def chat(websocket: WebSocket, room: str) -> None:
    ...  # accept; authenticate; then as in chapter 02, until the token expires (close 4002)
"""


def _authenticated(url: str) -> object:
    async def url_for(s: Scenario, name: str, room: str) -> None:
        client = await s.connect(name, url + f"/ws/chat/{room}")
        await client.send_json({"type": "auth", "token": token_for(name, 60)})

    return url_for


async def play_auth(run: Run, ws_base: str) -> None:
    """The chapter 03 scenarios against ``ws_base`` (``ws://host:port``); shared with the capstone."""
    async with Scenario(
        run,
        "mallory presents a forged token",
        "Accept first, then read the auth frame; a bad token gets `close(4001)` after `accept()`.",
    ) as s:
        mallory = await s.connect("mallory", ws_base + "/ws/chat/lobby")
        await mallory.send_json({"type": "auth", "token": token_for("mallory", 60, secret="guessed")})
        code = await s.closed_with("mallory", 1.0 + DEADLINE)
        if code != 4001:
            s.fail(f"mallory's connection should close with 4001, but it is {mallory.closed_as}")

    async with Scenario(
        run,
        "a client sends garbage instead of an auth frame",
        "Parsing the first frame can fail (not JSON, binary, not an object): catch that and close with 4001.",
    ) as s:
        junk = await s.connect("junk", ws_base + "/ws/chat/lobby")
        await junk.send("{not json")
        code = await s.closed_with("junk", 1.0 + DEADLINE)
        if code != 4001:
            s.fail(
                f"the connection should close with 4001, but it is {junk.closed_as}: a garbage auth frame "
                "must not crash the handler"
            )

    async with Scenario(
        run,
        "eve connects and says nothing",
        "`asyncio.wait_for(websocket.receive_json(), AUTH_DEADLINE)`: a silent socket costs a task and "
        "memory until someone closes it.",
    ) as s:
        eve = await s.connect("eve", ws_base + "/ws/chat/lobby")
        code = await s.closed_with("eve", DEADLINE + 1.0)
        if code is None:
            s.fail(
                f"eve was still connected {DEADLINE + 1.0:g} s later, with AUTH_DEADLINE = {DEADLINE:g} s: "
                "nothing enforces the deadline"
            )
        if code != 4001:
            s.fail(f"eve's connection should close with 4001 at the deadline, but it is {eve.closed_as}")

    async with Scenario(
        run,
        "bob's token expires while he is connected",
        "Run the receive loop under `asyncio.timeout(expires_at - time.time())`; on `TimeoutError` close "
        "with 4002. The `finally` still takes bob out of the room.",
    ) as s:
        alice = await s.connect("alice", ws_base + "/ws/chat/study")
        await alice.send_json({"type": "auth", "token": token_for("alice", 60)})
        await s.expect("alice", "`ready`", type="ready")
        bob = await s.connect("bob", ws_base + "/ws/chat/study")
        await bob.send_json({"type": "auth", "token": token_for("bob", 0.6)})
        await s.expect("bob", "`ready`", type="ready")
        await s.expect("alice", "`joined` for bob", type="joined", user="bob")
        code = await s.closed_with("bob", 2.0)
        if code is None:
            s.fail("bob's token expired 0.6 s after he connected, yet he is still connected 2 s later")
        if code != 4002:
            s.fail(f"bob's connection should close with 4002 (token expired), but it is {bob.closed_as}")
        await s.expect("alice", "`left` for bob, whose token expired", type="left", user="bob")
        carol = await s.connect("carol", ws_base + "/ws/chat/study")
        await carol.send_json({"type": "auth", "token": token_for("carol", -1)})
        code = await s.closed_with("carol", 1.0 + DEADLINE)
        if code != 4002:
            s.fail(
                f"carol's token had already expired: close with 4002, but her connection is {carol.closed_as}"
            )


class BuildAuth(BuildExercise):
    """q: first-message auth with a deadline, 4001 after accept, 4002 on expiry."""

    chapter = "03"
    name = "Build it: first-message auth with a deadline, and expiry"
    reads = ("authenticate", "chat")
    placeholder = runnable_placeholder("03", PLACEHOLDER_AUTH, PLACEHOLDER_CHAT)
    hints = (
        "`accept()` first, always: a close code sent before the handshake completes never reaches the "
        "client (it gets an HTTP 403 instead). Then `authenticate` reads one frame and calls `verify_token`.",
        "In `authenticate`: `first = await asyncio.wait_for(websocket.receive_json(), AUTH_DEADLINE)`, "
        "inside "
        "a `try` that turns `TimeoutError`, `ValueError`, `KeyError` and `AttributeError` into a 4001 close. "
        "A token whose `expires_at` is already past gets 4002.",
        "In `chat`, wrap the chapter 02 receive loop in "
        "`async with asyncio.timeout(expires_at - time.time()):` "
        "and add `except TimeoutError: await websocket.close(4002, ...)` *before* the `except` that lists "
        "`OSError` (`TimeoutError` is an `OSError`).",
    )
    solution_code = AUTH_03 + "\n\n" + CHAT_03
    wrong_answers = (
        WrongAnswer(
            "closes before accepting (token checked in the URL, the Depends way)",
            AUTH_03
            + CHAT_03.replace(
                "async def chat(websocket: WebSocket, room: str) -> None:\n    await websocket.accept()",
                "async def chat(websocket: WebSocket, room: str, token: str = '') -> None:\n"
                "    if verify_token(token) is None:\n"
                "        await websocket.close(4001)\n"
                "        return\n"
                "    await websocket.accept()",
            ),
            "refused with HTTP 403",
        ),
        WrongAnswer(
            "no try around the auth frame",
            AUTH_03.replace(
                "except (TimeoutError, ValueError, KeyError, AttributeError):", "except TimeoutError:"
            )
            + CHAT_03,
            "must not crash the handler",
        ),
        WrongAnswer(
            "no deadline",
            AUTH_03.replace(
                "await asyncio.wait_for(websocket.receive_json(), AUTH_DEADLINE)",
                "await websocket.receive_json()",
            )
            + CHAT_03,
            "nothing enforces the deadline",
        ),
        WrongAnswer(
            "no expiry",
            AUTH_03 + CHAT_03.replace("async with asyncio.timeout(expires_at - time.time()):", "if True:"),
            "yet he is still connected",
        ),
        WrongAnswer(
            "closes without a code",
            AUTH_03.replace('await websocket.close(4001, "authentication failed")', "await websocket.close()")
            + CHAT_03,
            "should close with 4001",
        ),
    )
    secrets = ('await websocket.close(4002, "token expired")',)
    correct_message = (
        "A forged token and a garbage auth frame were each closed with 4001 after the handshake, so the "
        "client could read the code. eve, who said nothing, was closed with 4001 at the deadline. bob was "
        "closed with 4002 when his token expired and the room heard he left; carol's expired token got 4002 "
        "at once. The chapter 02 scenarios still pass behind authentication. Saved in `mychat/ch03.py`."
    )

    async def _run(self, module: str) -> None:
        async with Run(module, ENV) as run:
            server = await run.serve()
            base = f"ws://127.0.0.1:{server.port}"
            await play_auth(run, base)
            await play_rooms(run, _authenticated(base))
