"""Build track, chapter 02: the room endpoint and its connection manager, served and checked for real.

The learner writes ``Rooms`` (join, leave, members, send, broadcast) and the FastAPI endpoint ``chat``
at ``/ws/chat/{room}?user=NAME``. The checker serves their module with uvicorn in a child process and
plays four scenarios with named clients; each sentence of the success message is one scenario that a
known mistake fails (see ``wrong_answers``, run by CI).
"""

from __future__ import annotations

from typing import Any

from wslab.exercises._core import Incorrect, WrongAnswer
from wslab.exercises.build import BuildExercise, runnable_placeholder
from wslab.exercises.build_solutions import CHAT_02, ROOMS_02
from wslab.exercises.live import Run, Scenario

__all__ = ["BuildRooms", "play_rooms"]

PLACEHOLDER_ROOMS = '''
class Rooms:
    """Who is in which room, and sending to them."""

    def __init__(self) -> None:
        self.rooms: dict[str, dict[str, WebSocket]] = {}  # room -> user -> socket

    def join(self, room: str, user: str, websocket: WebSocket) -> None: ...

    def leave(self, room: str, user: str, websocket: WebSocket) -> None: ...

    def members(self, room: str) -> list[str]: ...

    async def send(self, room: str, user: str, message: dict) -> bool: ...  # False: no such user

    async def broadcast(self, room: str, message: dict) -> None: ...
'''

PLACEHOLDER_CHAT = """
app = FastAPI()
rooms = Rooms()


@app.websocket("/ws/chat/{room}")
async def chat(websocket: WebSocket, room: str, user: str) -> None:
    ...  # accept; tell the room; join; send "ready"; handle messages until the peer goes; clean up
"""

_TUTORIAL_MANAGER = """
class Rooms:
    def __init__(self):
        self.rooms = {}

    def join(self, room, user, websocket):
        self.rooms.setdefault(room, {})[user] = websocket

    def leave(self, room, user, websocket):
        self.rooms.get(room, {}).pop(user, None)

    def members(self, room):
        return list(self.rooms.get(room, {}))

    async def send(self, room, user, message):
        websocket = self.rooms.get(room, {}).get(user)
        if websocket is None:
            return False
        await websocket.send_json(message)
        return True

    async def broadcast(self, room, message):
        for user in self.members(room):
            try:
                await self.send(room, user, message)
            except RuntimeError:
                CLEANUP
"""

_TUTORIAL_ENDPOINT = """
app = FastAPI()
rooms = Rooms()


@app.websocket("/ws/chat/{room}")
async def chat(websocket: WebSocket, room: str, user: str):
    await websocket.accept()
    await rooms.broadcast(room, {"type": "joined", "user": user})
    rooms.join(room, user, websocket)
    await websocket.send_json({"type": "ready", "user": user, "room": room, "members": rooms.members(room)})
    try:
        while True:
            message = json.loads(await websocket.receive_text())
            if message["type"] == "say":
                await rooms.broadcast(room, {"type": "message", "from": user, "text": message["text"]})
            elif message["type"] == "dm":
                dm = {"type": "dm", "from": user, "text": message["text"]}
                if not await rooms.send(room, message["to"], dm):
                    await websocket.send_json({"type": "error", "reason": "no_such_user"})
    except WebSocketDisconnect:
        LEAVE
"""

_LEAVE = """rooms.leave(room, user, websocket)
        await rooms.broadcast(room, {"type": "left", "user": user})"""


def _tutorial(cleanup_in_broadcast: bool) -> str:
    manager = _TUTORIAL_MANAGER.replace(
        "CLEANUP", "self.rooms[room].pop(user, None)" if cleanup_in_broadcast else "pass"
    )
    endpoint = _TUTORIAL_ENDPOINT.replace("LEAVE", "pass" if cleanup_in_broadcast else _LEAVE)
    return manager + endpoint


_ONE_ROOM = (
    ROOMS_02.replace("self.rooms.get(room, {})", "self.rooms.get('all', {})").replace(
        "self.rooms.setdefault(room, {})", "self.rooms.setdefault('all', {})"
    )
    + CHAT_02
)

_DM_TO_ROOM = ROOMS_02 + CHAT_02.replace(
    "elif not await rooms.send(room, to, {", "elif not await rooms.broadcast(room, {"
)


async def play_rooms(run: Run, url_for: Any) -> None:
    """The four chapter-02 scenarios against a served module; ``url_for(room, user)`` gives each URL.

    Shared with later chapters and the capstone (which connect through auth, a proxy or nginx).
    """
    async with Scenario(
        run,
        "alice, bob and dan in lobby, carol in kitchen",
        "Follow the protocol in the task: `ready` with the members to the newcomer, `joined` to the others, "
        "`message` to the whole room (sender included), `dm` to the recipient only.",
    ) as s:
        for name, room, members in (
            ("alice", "lobby", ["alice"]),
            ("bob", "lobby", ["alice", "bob"]),
            ("dan", "lobby", ["alice", "bob", "dan"]),
            ("carol", "kitchen", ["carol"]),
        ):
            await url_for(s, name, room)
            ready = await s.expect(name, f"`ready` in {room}", type="ready")
            if sorted(ready.get("members") or []) != members:
                s.fail(f"{name}'s `ready` listed {ready.get('members')}, but {room} holds {members}")
        for name in ("alice", "bob"):
            await s.expect(name, "`joined` for the next member", type="joined")
        await s.expect("alice", "`joined` for dan", type="joined", user="dan")
        await s.clients["alice"].send_json({"type": "say", "text": "hi lobby"})
        for name in ("alice", "bob", "dan"):
            await s.expect(name, "alice's message", type="message", text="hi lobby")
        await s.silent("carol", 0.3, "carol is in kitchen and alice spoke in lobby")
        # a DM reaches its recipient and nobody else
        await s.clients["alice"].send_json({"type": "dm", "to": "bob", "text": "psst"})
        await s.expect("bob", "alice's DM", type="dm", text="psst")
        await s.silent("dan", 0.3, "alice's DM was for bob only")
        await s.clients["alice"].send_json({"type": "dm", "to": "zed", "text": "anyone?"})
        await s.expect(
            "alice",
            "an `error`: nobody called zed is in lobby",
            "`send` returns False when the user is not in the room: answer the sender with an `error`.",
            type="error",
        )

    async with Scenario(
        run,
        "bob sends a malformed message",
        "Whatever a message does to your handler, its `finally` must take the user out of the room: a "
        "`try`/`finally` around the receive loop, not an `except` for one exception type.",
    ) as s:
        await url_for(s, "alice", "garden")
        await s.expect("alice", "`ready`", type="ready")
        await url_for(s, "bob", "garden")
        await s.expect("bob", "`ready`", type="ready")
        await s.expect("alice", "`joined` for bob", type="joined")
        await s.clients["bob"].send("{this is not json")
        bob_code = await s.closed_with("bob", 0.5)
        await url_for(s, "erin", "garden")
        try:
            ready = await s.expect("erin", "`ready`", type="ready")
        except Incorrect:
            if not s.clients["erin"].closed:
                raise
            s.fail(
                f"erin's connection died as she joined ({s.clients['erin'].closed_as}): after bob's "
                "malformed "
                "message his socket is closed, yet he is still in the room, so the member list no longer "
                "tells the truth, and sending `joined` to that ghost raised in erin's handler"
            )
        truth = ["alice", "erin"] if bob_code is not None else ["alice", "bob", "erin"]
        if sorted(ready.get("members") or []) != truth:
            state = f"closed ({bob_code})" if bob_code is not None else "still open"
            s.fail(
                f"after bob's malformed message his connection is {state}, yet erin's `ready` lists "
                f"{ready.get('members')}: the member list no longer tells the truth"
            )
        if bob_code is None:
            await s.expect("bob", "an `error` answering his malformed message", type="error")
        await s.clients["alice"].send_json({"type": "say", "text": "still here?"})
        await s.expect("alice", "her own message", type="message", text="still here?")

    async with Scenario(
        run,
        "dan vanishes without a close frame",
        "When the connection drops, `receive` raises in dan's own handler; that handler's `finally` is "
        "where he leaves the room and the others hear about it.",
    ) as s:
        await url_for(s, "alice", "attic")
        await s.expect("alice", "`ready`", type="ready")
        await url_for(s, "dan", "attic")
        await s.expect("dan", "`ready`", type="ready")
        await s.expect("alice", "`joined` for dan", type="joined")
        await s.clients["dan"].abort()
        await s.expect("alice", "`left` for dan, who vanished", type="left", user="dan")
        await url_for(s, "frank", "attic")
        ready = await s.expect("frank", "`ready`", type="ready")
        if sorted(ready.get("members") or []) != ["alice", "frank"]:
            s.fail(f"frank's `ready` lists {ready.get('members')}: dan vanished and should be gone")


class BuildRooms(BuildExercise):
    """q2: the chat's rooms, served by uvicorn and checked by real clients."""

    chapter = "02"
    name = "Build it: rooms, broadcast and DMs that survive bad input and vanished peers"
    reads = ("Rooms", "chat")
    placeholder = runnable_placeholder("02", PLACEHOLDER_ROOMS, PLACEHOLDER_CHAT)
    hints = (
        "Start with `Rooms`: a dict of rooms, each a dict of user -> socket. `broadcast` sends to a copy of "
        "the member list (`list(...)`), because a send can yield and someone may leave meanwhile.",
        "In `chat`: `accept()` first, then `broadcast` `joined`, `join`, and send `ready` with the members. "
        "Then loop on `receive_text()`. Parse each message inside its own `try`: a bad one gets "
        '`{"type": "error", ...}` and the loop goes on.',
        "Put the receive loop in `try: ... finally: rooms.leave(...)` and broadcast `left` there. Every way "
        "out of the loop (a disconnect, a bug, a malformed message) then cleans up. In `send`, catch "
        "`WebSocketDisconnect`, `RuntimeError` and `OSError` and let the dead peer's own handler leave.",
    )
    solution_code = ROOMS_02 + "\n\n" + CHAT_02
    wrong_answers = (
        WrongAnswer(
            "cleanup inside broadcast (the handler has no finally)",
            _tutorial(cleanup_in_broadcast=True),
            "the member list no longer tells the truth",
        ),
        WrongAnswer(
            "except RuntimeError in broadcast, cleanup only on WebSocketDisconnect",
            _tutorial(cleanup_in_broadcast=False),
            "the member list no longer tells the truth",
        ),
        WrongAnswer("one member list for every room", _ONE_ROOM, "`ready` listed"),
        WrongAnswer("a DM broadcast to the whole room", _DM_TO_ROOM, "alice's DM was for bob only"),
        WrongAnswer(
            "never accepts",
            ROOMS_02 + CHAT_02.replace("await websocket.accept()", "await asyncio.sleep(3600)"),
            "got no answer within",
        ),
        WrongAnswer(
            "closes before accepting",
            ROOMS_02 + CHAT_02.replace("await websocket.accept()", "await websocket.close(4000)"),
            "refused with HTTP 403",
        ),
        WrongAnswer(
            "blocks the event loop forever after accepting",
            ROOMS_02
            + CHAT_02.replace("await websocket.accept()", "await websocket.accept()\n    time.sleep(3600)"),
            "nothing at all arrived",
        ),
        WrongAnswer("fails at import", ROOMS_02 + CHAT_02 + "\nstartup = undefined_name\n", "did not start"),
    )
    secrets = ("if members.get(user) is websocket:",)
    correct_message = (
        "alice's message reached everyone in lobby and nobody in kitchen, and her DM reached bob alone. "
        "After bob's malformed message the member list still told the truth. dan vanished without a close "
        "frame, and the room heard he left. Your module is saved in `mychat/ch02.py`; chapter 03 builds "
        "on it."
    )

    async def _run(self, module: str) -> None:
        async with Run(module) as run:
            server = await run.serve()

            async def url_for(s: Scenario, name: str, room: str) -> None:
                await s.connect(name, server.ws_url(f"/ws/chat/{room}?user={name}"))

            await play_rooms(run, url_for)
