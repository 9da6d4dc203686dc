"""F03, trusting input: write the message check that turns every bad message into an error, not a crash.

The learner writes ``parse_say(message)``: given what ``await websocket.receive()`` returned for one
frame, return the text of a valid ``{"text": "..."}`` message, or raise ``ValueError`` with a reason. The
checker's room chat answers a ``ValueError`` with ``{"type": "error", "reason": ...}`` and keeps the
connection, as the reference does; anything else escapes and kills the handler, as in the notebook. bob
then sends the notebook's triggers (and one more), with alice listening.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer
from wslab.exercises._live import scenario, until

WAIT = 2.0


@dataclass(frozen=True)
class Trigger:
    """One message bob sends, as a scenario names it."""

    scenario: str
    payload: str | bytes


TRIGGERS = (
    Trigger("bob sends text that is not JSON", "not json"),
    Trigger("bob sends a binary frame", b"\x01\x02"),
    Trigger("bob sends an object without `text`", '{"txt": "typo"}'),
    Trigger("bob sends a JSON list", "[1, 2]"),
    Trigger("bob sends a `text` that is not a string", '{"text": {"html": "<b>hi</b>"}}'),
)


def _chat_app(parse: Callable[..., Any]) -> Starlette:
    """``/ws/{name}``: one room; ``app.state.outcomes`` records what each message led to, in order."""
    room: list[WebSocket] = []
    outcomes: list[tuple[str, Any]] = []

    async def chat(websocket: WebSocket) -> None:
        name = websocket.path_params["name"]
        await websocket.accept()
        room.append(websocket)
        try:
            while (message := await websocket.receive())["type"] != "websocket.disconnect":
                try:
                    text = parse(message)
                except ValueError as exc:
                    outcomes.append(("error", exc))
                    await websocket.send_text(json.dumps({"type": "error", "reason": str(exc)}))
                    continue
                except Exception as exc:
                    outcomes.append(("crash", exc))
                    raise
                outcomes.append(("said", text))
                for peer in [p for p in room if p is not websocket]:
                    await peer.send_text(json.dumps({"type": "message", "user": name, "text": text}))
        finally:
            room.remove(websocket)

    app = Starlette(routes=[WebSocketRoute("/ws/{name}", chat)])
    app.state.outcomes = outcomes
    app.state.room = room
    return app


class ParseSay(Exercise):
    """q1: validate a message instead of trusting it."""

    name = "Validate, do not trust"
    reads = ("parse_say",)
    placeholder = """
import json


def parse_say(message: dict) -> str:
    ...  # your code here
"""
    hints = (
        "Every line of `json.loads(message['text'])['text']` raises on input a client controls, and most "
        "of those exceptions are not `ValueError`. Check each assumption, and raise `ValueError` yourself.",
        "A binary frame's message has `bytes` and `text` is None (`message.get('text')`). `json.loads` "
        "raises `json.JSONDecodeError` (a `ValueError`) on text that is not JSON; do not return that text.",
        "After parsing, check `isinstance(data, dict)` and `isinstance(data.get('text'), str)` before "
        "returning `data['text']`; a list, a number, or a missing or non-string `text` is a `ValueError`.",
    )
    solution_code = """
import json


def parse_say(message: dict) -> str:
    if message.get("text") is None:
        raise ValueError("binary frames are not supported")
    try:
        data = json.loads(message["text"])
    except json.JSONDecodeError:
        raise ValueError("not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise ValueError('expected {"text": "..."}')
    return data["text"]
"""
    wrong_answers = (
        WrongAnswer(
            "trusts the message, as tutorials do",
            """
import json
def parse_say(message):
    return json.loads(message["text"])["text"]
""",
            "“bob sends a binary frame”: `parse_say(message)` raised KeyError",
        ),
        WrongAnswer(
            "catches KeyError and JSONDecodeError, but not a list",
            """
import json
def parse_say(message):
    try:
        return json.loads(message["text"])["text"]
    except (KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"bad message: {exc}") from None
""",
            "“bob sends a JSON list”: `parse_say(message)` raised TypeError",
        ),
        WrongAnswer(
            "any `text` will do",
            """
import json
def parse_say(message):
    if message.get("text") is None:
        raise ValueError("binary")
    data = json.loads(message["text"])
    if not isinstance(data, dict) or "text" not in data:
        raise ValueError("no text")
    return data["text"]
""",
            "“bob sends a `text` that is not a string”",
        ),
        WrongAnswer(
            "lenient: plain text is said as it is",
            """
import json
def parse_say(message):
    if message.get("text") is None:
        raise ValueError("binary")
    try:
        data = json.loads(message["text"])
    except json.JSONDecodeError:
        return message["text"]
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise ValueError("no text")
    return data["text"]
""",
            "“bob sends text that is not JSON”",
        ),
        WrongAnswer(
            "a missing `text` becomes an empty message",
            """
import json
def parse_say(message):
    if message.get("text") is None:
        raise ValueError("binary")
    data = json.loads(message["text"])
    if not isinstance(data, dict):
        raise ValueError("not an object")
    return str(data.get("text", ""))
""",
            "“bob sends an object without `text`”",
        ),
    )
    secrets = ('not isinstance(data, dict) or not isinstance(data.get("text"), str)',)
    correct_message = (
        f"`parse_say` returns the text of a valid message and raises `ValueError` for all {len(TRIGGERS)} "
        "bad ones (not JSON, a binary frame, no `text`, a JSON list, a `text` that is not a string): bob "
        "got an error for each and kept his connection, and alice heard only what bob really said."
    )
    call_timeout = 15.0

    async def _check(self, parse_say: Callable[..., Any]) -> None:
        from wslab.lab import Lab

        self.describe(parse_say)  # not a function: say so before starting anything
        app = _chat_app(parse_say)
        async with Lab() as lab:
            server = await lab.serve(app, name="f03-check")
            alice = await lab.connect(server.ws_url("/ws/alice"), name="alice")
            bob = await lab.connect(server.ws_url("/ws/bob"), name="bob")
            await until(lambda: len(app.state.room) == 2, WAIT)
            async with scenario("bob says hi", 5):
                kind, value = await self._outcome(app, bob, json.dumps({"text": "hi"}))
                if kind != "said":
                    raise Incorrect(
                        f'bob sent {{"text": "hi"}}, a valid message, and `parse_say(message)` raised '
                        f"{type(value).__name__}: {value}; it should return 'hi'."
                    )
                heard = await alice.recv_json(WAIT)
                if value != "hi":
                    raise Incorrect(f"`parse_say(message)` returned {value!r}; alice received {heard}.")
            for trigger in TRIGGERS:
                async with scenario(trigger.scenario, 5):
                    await self._rejected(app, bob, trigger)
            async with scenario("bob says hi again", 5):
                kind, value = await self._outcome(app, bob, json.dumps({"text": "still here"}))
                heard = await alice.recv_json(WAIT)
                if heard.get("text") != "still here":
                    raise Incorrect(f"alice received {heard} instead of bob's 'still here'.")

    async def _rejected(self, app: Starlette, bob: Any, trigger: Trigger) -> None:
        kind, value = await self._outcome(app, bob, trigger.payload)
        if kind == "crash":
            await bob.wait_closed(WAIT)
            raise Incorrect(
                f"`parse_say(message)` raised {type(value).__name__}: {value}, which is not a `ValueError`, "
                f"so it escaped and killed bob's handler (bob saw {bob.closed_as}). Raise `ValueError` for "
                "every message you cannot use: the server answers it with an error and keeps the connection."
            )
        if kind == "said":
            raise Incorrect(
                f"`parse_say(message)` returned {value!r} for {trigger.payload!r}, and the server sent it to "
                "alice as bob's message; it should raise `ValueError`."
            )
        reply = await bob.recv_json(WAIT)
        if reply.get("type") != "error":
            raise Incorrect(f"bob received {reply} instead of an error.")

    @staticmethod
    async def _outcome(app: Starlette, bob: Any, payload: str | bytes) -> tuple[str, Any]:
        seen = len(app.state.outcomes)
        await bob.send(payload)
        if not await until(lambda: len(app.state.outcomes) > seen, WAIT):
            raise Incorrect("the server never finished reading bob's message.")
        kind, value = app.state.outcomes[seen]
        return str(kind), value


CHAPTER = Chapter("F03", "F03_handler_exception_leak", (ParseSay,))
