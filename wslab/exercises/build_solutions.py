"""Reference answers of the build track's server chapters, as the learner would type them in cells.

Kept apart from the checkers so :func:`wslab.exercises.build.reference_module` can assemble the
reference chat of any chapter (what a learner who skipped one loads) without importing checkers.
"""

from __future__ import annotations

ROOMS_02 = '''\
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
        try:
            await websocket.send_json(message)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # that peer is gone: its own handler notices and leaves, in its `finally`
        return True

    async def broadcast(self, room: str, message: dict) -> None:
        for user in self.members(room):  # a copy: someone may leave while we send
            await self.send(room, user, message)
'''

CHAT_02 = '''\
app = FastAPI()
rooms = Rooms()


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
        await rooms.broadcast(room, {"type": "message", "from": user, "text": body})
    elif kind != "dm":
        await websocket.send_json({"type": "error", "reason": "unknown_type", "detail": str(kind)[:40]})
    elif not await rooms.send(room, to, {"type": "dm", "from": user, "text": body}):
        await websocket.send_json({"type": "error", "reason": "no_such_user", "detail": to[:40]})


@app.websocket("/ws/chat/{room}")
async def chat(websocket: WebSocket, room: str, user: str) -> None:
    await websocket.accept()
    await rooms.broadcast(room, {"type": "joined", "user": user})
    rooms.join(room, user, websocket)
    try:
        members = rooms.members(room)
        await websocket.send_json({"type": "ready", "user": user, "room": room, "members": members})
        while True:
            await handle(room, user, websocket, await websocket.receive_text())
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the peer went away; nothing to answer
    finally:
        rooms.leave(room, user, websocket)
        await rooms.broadcast(room, {"type": "left", "user": user})
'''

SERVER_SOLUTIONS: dict[str, str] = {"02": ROOMS_02 + "\n\n" + CHAT_02}

AUTH_03 = '''\
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
'''

CHAT_03 = """\
app = FastAPI()
rooms = Rooms()


@app.websocket("/ws/chat/{room}")
async def chat(websocket: WebSocket, room: str) -> None:
    await websocket.accept()  # first: a close code only reaches a client after the handshake
    claims = await authenticate(websocket)
    if claims is None:
        return
    user, expires_at = claims
    await rooms.broadcast(room, {"type": "joined", "user": user})
    rooms.join(room, user, websocket)
    try:
        members = rooms.members(room)
        await websocket.send_json({"type": "ready", "user": user, "room": room, "members": members})
        async with asyncio.timeout(expires_at - time.time()):
            while True:
                await handle(room, user, websocket, await websocket.receive_text())
    except TimeoutError:  # before OSError: TimeoutError is one
        await websocket.close(4002, "token expired")
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        rooms.leave(room, user, websocket)
        await rooms.broadcast(room, {"type": "left", "user": user})
"""

SERVER_SOLUTIONS["03"] = AUTH_03 + "\n\n" + CHAT_03

HEARTBEAT_04 = '''\
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
'''

CHAT_04 = """\
app = FastAPI()
rooms = Rooms()


@app.websocket("/ws/chat/{room}")
async def chat(websocket: WebSocket, room: str) -> None:
    await websocket.accept()
    claims = await authenticate(websocket)
    if claims is None:
        return
    user, expires_at = claims
    await rooms.broadcast(room, {"type": "joined", "user": user})
    rooms.join(room, user, websocket)
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
        await rooms.broadcast(room, {"type": "left", "user": user})
"""

SERVER_SOLUTIONS["04"] = HEARTBEAT_04 + "\n\n" + CHAT_04

BUS_06 = '''\
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
'''

HANDLE_06 = (
    CHAT_02[CHAT_02.index("async def handle(") : CHAT_02.index("@app.websocket")]
    .replace("await rooms.broadcast(room, {", "await bus.publish(room, {")
    .rstrip()
    + "\n"
)

CHAT_06 = CHAT_04.replace(
    'await rooms.broadcast(room, {"type": "joined", "user": user})\n    rooms.join(room, user, websocket)',
    'await bus.publish(room, {"type": "joined", "user": user})\n'
    "    rooms.join(room, user, websocket)\n"
    "    await bus.subscribe(room)",
).replace(
    "        rooms.leave(room, user, websocket)\n"
    '        await rooms.broadcast(room, {"type": "left", "user": user})',
    "        rooms.leave(room, user, websocket)\n"
    "        await bus.unsubscribe(room)\n"
    '        await bus.publish(room, {"type": "left", "user": user})',
)

SERVER_SOLUTIONS["06"] = BUS_06 + "\n\n" + HANDLE_06 + "\n\n" + CHAT_06
