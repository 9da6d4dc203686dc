"""A small WebSocket chat with FastAPI and Redis: what the wslab course teaches, in one file.

No wslab inside: copy this directory and run it.

    pip install fastapi uvicorn redis
    REDIS_URL=redis://127.0.0.1:6379/0 CHAT_SECRET=a-long-random-string uvicorn chat:app

then open http://127.0.0.1:8000/ in two browser tabs (see README.md). What it does, and which chapter
explains it:

- rooms, broadcast and DMs; membership is removed by the handler that owns the connection, in
  ``finally``, so a malformed message or a vanished peer cannot leave a ghost (chapter 02);
- authentication in the first message, within ``AUTH_DEADLINE``; ``accept()`` first so the client sees
  4001; the connection closes with 4002 when the token expires (chapter 03);
- an application heartbeat that tracks pongs and closes a silent peer with 1011 (chapter 04);
- one Redis pub/sub listener per process with reference-counted SUBSCRIBE, so replicas share rooms
  (chapter 06); the browser client reconnects with full jitter (chapter 05).
"""

import asyncio
import hashlib
import hmac
import json
import os
import time
from pathlib import Path

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from redis import asyncio as aioredis


class Rooms:
    """Who is in which room, and sending to them. Removal is the owning handler's job."""

    def __init__(self) -> None:
        self.rooms: dict[str, dict[str, WebSocket]] = {}

    def join(self, room: str, user: str, websocket: WebSocket) -> None:
        self.rooms.setdefault(room, {})[user] = websocket

    def leave(self, room: str, user: str, websocket: WebSocket) -> None:
        members = self.rooms.get(room, {})
        if members.get(user) is websocket:
            del members[user]
        if not members:
            self.rooms.pop(room, None)

    def members(self, room: str) -> list[str]:
        return list(self.rooms.get(room, {}))

    async def send(self, room: str, user: str, message: dict) -> bool:
        websocket = self.rooms.get(room, {}).get(user)
        if websocket is None:
            return False
        try:  # noqa: SIM105 - the except clause is the lesson: which three errors mean "peer gone"
            await websocket.send_json(message)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # that peer is gone: its own handler notices and leaves, in its `finally`
        return True

    async def broadcast(self, room: str, message: dict) -> None:
        for user in self.members(room):  # a copy: someone may leave while we send
            await self.send(room, user, message)


CHAT_SECRET = os.environ.get("CHAT_SECRET", "change-me")
AUTH_DEADLINE = float(os.environ.get("AUTH_DEADLINE", "10"))  # seconds to send the auth frame


def make_token(user: str, ttl: float) -> str:
    """A token for `user` that expires in `ttl` seconds: `user|expires_at|signature`."""
    expires_at = f"{time.time() + ttl:.3f}"
    signature = hmac.new(CHAT_SECRET.encode(), f"{user}|{expires_at}".encode(), hashlib.sha256).hexdigest()
    return f"{user}|{expires_at}|{signature}"


def verify_token(token: object) -> tuple[str, float] | None:
    """`(user, expires_at)` if we signed `token` (expired or not: check the time yourself), else None."""
    if not isinstance(token, str) or token.count("|") != 2:
        return None
    user, expires_at, signature = token.split("|")
    good = hmac.new(CHAT_SECRET.encode(), f"{user}|{expires_at}".encode(), hashlib.sha256).hexdigest()
    if not user or not hmac.compare_digest(signature, good):
        return None
    return user, float(expires_at)


async def authenticate(websocket: WebSocket) -> tuple[str, float] | None:
    """Wait for the auth frame: `(user, expires_at)`, or close (4001 bad, 4002 expired) and None."""
    try:
        first = await asyncio.wait_for(websocket.receive_json(), AUTH_DEADLINE)
        claims = verify_token(first.get("token")) if first.get("type") == "auth" else None
    except WebSocketDisconnect:
        return None  # gone before saying who they are
    except (TimeoutError, ValueError, KeyError, AttributeError):
        claims = None  # too slow, not JSON, a binary frame, not an object
    if claims is None:
        await websocket.close(4001, "authentication failed")
        return None
    if claims[1] <= time.time():
        await websocket.close(4002, "token expired")
        return None
    return claims


PING_INTERVAL = float(os.environ.get("PING_INTERVAL", "20"))  # seconds between our pings
PONG_TIMEOUT = float(os.environ.get("PONG_TIMEOUT", "10"))  # how late a pong may be before we give up


async def heartbeat(websocket: WebSocket, last_pong: dict[str, float]) -> None:
    """Ping every PING_INTERVAL; return (the peer is gone) when a pong is PONG_TIMEOUT late."""
    while True:
        await asyncio.sleep(PING_INTERVAL)
        sent = time.monotonic()
        await websocket.send_json({"type": "ping"})
        await asyncio.sleep(PONG_TIMEOUT)
        if last_pong["at"] < sent:
            return


async def listen(room: str, user: str, websocket: WebSocket, last_pong: dict[str, float]) -> None:
    """The receive loop: a pong updates `last_pong`, anything else goes to `handle`."""
    while True:
        text = await websocket.receive_text()
        try:
            is_pong = json.loads(text).get("type") == "pong"
        except (ValueError, AttributeError):
            is_pong = False
        if is_pong:
            last_pong["at"] = time.monotonic()
        else:
            await handle(room, user, websocket, text)


REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


class Bus:
    """One pub/sub listener per process, shared by every room; SUBSCRIBE on the first member, not each."""

    def __init__(self, url: str) -> None:
        self.redis = aioredis.from_url(url)
        self.pubsub = self.redis.pubsub()
        self.counts: dict[str, int] = {}  # room -> members on this process
        self.listener: asyncio.Task | None = None

    async def subscribe(self, room: str) -> None:
        self.counts[room] = self.counts.get(room, 0) + 1
        if self.counts[room] == 1:
            await self.pubsub.subscribe(f"room:{room}")
        if self.listener is None or self.listener.done():
            self.listener = asyncio.create_task(self.listen())

    async def unsubscribe(self, room: str) -> None:
        self.counts[room] -= 1
        if self.counts[room] == 0:  # the last member here left: stop paying for the room
            del self.counts[room]
            await self.pubsub.unsubscribe(f"room:{room}")

    async def publish(self, room: str, message: dict) -> None:
        await self.redis.publish(f"room:{room}", json.dumps(message))

    async def listen(self) -> None:
        async for item in self.pubsub.listen():
            if item["type"] == "message":
                room = item["channel"].decode().removeprefix("room:")
                await rooms.broadcast(room, json.loads(item["data"]))  # to the members on this process


bus = Bus(REDIS_URL)


async def handle(room: str, user: str, websocket: WebSocket, text: str) -> None:
    """One client message: `say` to the room, `dm` to one member; anything else earns an error."""
    try:
        message = json.loads(text)
        kind, body = message["type"], str(message["text"])
    except (ValueError, KeyError, TypeError):
        await websocket.send_json({"type": "error", "reason": "bad_message", "detail": text[:40]})
        return
    to = str(message.get("to"))
    if kind == "say":
        await bus.publish(room, {"type": "message", "from": user, "text": body})
    elif kind != "dm":
        await websocket.send_json({"type": "error", "reason": "unknown_type", "detail": str(kind)[:40]})
    elif not await rooms.send(room, to, {"type": "dm", "from": user, "text": body}):
        await websocket.send_json({"type": "error", "reason": "no_such_user", "detail": to[:40]})


app = FastAPI()
rooms = Rooms()


@app.websocket("/ws/chat/{room}")
async def chat(websocket: WebSocket, room: str) -> None:
    await websocket.accept()
    claims = await authenticate(websocket)
    if claims is None:
        return
    user, expires_at = claims
    await bus.publish(room, {"type": "joined", "user": user})
    rooms.join(room, user, websocket)
    await bus.subscribe(room)
    last_pong = {"at": time.monotonic()}
    tasks = [asyncio.create_task(heartbeat(websocket, last_pong))]
    tasks.append(asyncio.create_task(listen(room, user, websocket, last_pong)))
    try:
        members = rooms.members(room)
        await websocket.send_json({"type": "ready", "user": user, "room": room, "members": members})
        async with asyncio.timeout(expires_at - time.time()):
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[0] in done:  # the heartbeat returned: no pong in time
            await websocket.close(1011, "no pong")
        else:
            tasks[1].result()  # why did the receive loop end? (re-raises a disconnect)
    except TimeoutError:
        await websocket.close(4002, "token expired")
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        for task in tasks:
            task.cancel()  # the other one must not outlive the connection
        rooms.leave(room, user, websocket)
        await bus.unsubscribe(room)
        await bus.publish(room, {"type": "left", "user": user})


HERE = Path(__file__).resolve().parent
TOKEN_TTL = float(os.environ.get("TOKEN_TTL", "900"))
app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")


class Login(BaseModel):
    user: str


@app.get("/", response_class=HTMLResponse)
async def page() -> str:
    return (HERE / "index.html").read_text(encoding="utf-8").replace("__HEARTBEAT__", repr(PING_INTERVAL))


@app.post("/token")
async def token(login: Login) -> dict:
    """Demo login without a password, so two browser tabs can be two people. A real app issues the
    token from its own session (a cookie, an OAuth flow), never to whoever asks."""
    return {"user": login.user, "token": make_token(login.user, TOKEN_TTL), "expires_in": TOKEN_TTL}
