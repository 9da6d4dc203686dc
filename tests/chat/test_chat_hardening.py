"""What an independent attacker found in the reference chat, each fixed and checked here on a real server.

A name that cannot be encoded must not poison a room; a burst from many members must not evict members
that read at full speed; one user with many sockets gets one user's limits; ``exp`` must be a finite
number; room names are plain printable names and nothing a client sends reaches a log raw; a client's
invalid UTF-8 is not the server's error. (Redis key shapes: tests/fanout/test_fanout_keys.py; transport limits
and the runner: tests/chat/test_transport_limits.py.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from websockets.exceptions import InvalidStatus

from wslab import Lab
from wslab.chat import ChatSettings, ConnectionManager, create_app, issue_token, verify_token
from wslab.chat.auth import TokenInvalid
from wslab.chat.logfilter import ClientFaultFilter
from wslab.chat.names import InvalidName, check_name, printable
from wslab.chat.protocol import ServerMessage
from wslab.chat.rooms import Room
from wslab.clients import LabClient
from wslab.runtime.servers import ServerHandle
from wslab.wire import CloseCode, Frame, FrameParser, HandshakeRequest, HandshakeResponse, Opcode, text_frame

pytestmark = pytest.mark.anyio

SECRET = "wslab-hardening-test-secret-0123456789abcdef"

HOSTILE_NAMES = [
    "\ud800",  # a lone surrogate: valid JSON ("\\ud800"), not UTF-8
    "\udc00tail",
    "a\r\nb",  # a forged log line
    "nul\x00",
    "esc\x1b[31m",
    "\u202egnp.exe",  # a bidi override
    "zero\u200bwidth",  # a zero-width space
    "joiner\u200d",
    "bom\ufeff",
    " padded ",
    "line\u2028sep",
    "x" * 65,
    "",
]


async def start(lab: Lab, **overrides: Any) -> tuple[ServerHandle, ConnectionManager]:
    settings = ChatSettings(secret=SECRET, **overrides)
    app = create_app(settings, report=lambda kind, msg: lab.events.record("chat", kind, msg))
    server = await lab.serve(app, name="chat")
    return server, app.state.chat


def raw_token(payload: dict[str, Any]) -> str:
    """A token signed with the app's secret, with exactly these claims (PyJWT writes NaN/Infinity as-is)."""
    return jwt.encode(payload, SECRET, algorithm="HS256")


async def join(lab: Lab, server: ServerHandle, user: str, room: str = "lobby", name: str = "") -> LabClient:
    client = await lab.connect(server.ws_url(f"/ws/chat/{room}"), name=name or user)
    await client.send_json({"type": "auth", "token": issue_token(user, SECRET, 600)})
    ready = await client.recv_json()
    assert ready["type"] == "ready" and ready["user"] == user, ready
    return client


async def raw_member(
    port: int, user: str, rcvbuf: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A member on a raw socket: handshake and auth written with ``wslab.wire``; it reads only if asked
    (``rcvbuf`` shrinks its receive window, so a member that does not read stalls quickly)."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: sets the window
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**20)
    request = HandshakeRequest(path="/ws/chat/lobby", host=f"127.0.0.1:{port}")
    writer.write(request.serialize())
    HandshakeResponse.parse(await reader.readuntil(b"\r\n\r\n")).check(request)
    auth = json.dumps({"type": "auth", "token": issue_token(user, SECRET, 600)})
    writer.write(text_frame(auth, mask=True).serialize())
    return reader, writer


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s")
        await asyncio.sleep(0.005)


# --- 1. a name that cannot be encoded ----------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_a_signed_token_with_a_hostile_name_is_refused_and_the_room_stays_usable(name: str) -> None:
    async with Lab() as lab:
        server, manager = await start(lab)
        for attempt in range(2):  # the second one would meet the ghost of the first
            mallory = await lab.connect(server.ws_url("/ws/chat/lobby"), name=f"mallory{attempt}")
            now = time.time()
            await mallory.send_json({"type": "auth", "token": raw_token({"sub": name, "exp": now + 60})})
            await mallory.wait_closed(2.0)
            assert mallory.close_code == CloseCode.UNAUTHORIZED
        assert manager.rooms == {}
        alice = await join(lab, server, "alice")
        assert json.loads(alice.received[0])["members"] == ["alice"]
        await alice.close()
        await eventually(lambda: manager.rooms == {})
        errors = [e for e in lab.events if e.data.get("level") == "ERROR"]
        assert errors == []


async def test_a_join_that_fails_after_the_member_is_added_leaves_nothing_behind() -> None:
    class Failing(ConnectionManager):
        def _ready_members(self, room: Room) -> list[str]:
            raise RuntimeError("cannot list the members")

    manager = Failing()
    for _ in range(2):
        with pytest.raises(RuntimeError):
            async with manager.membership("lobby", "alice"):
                raise AssertionError("never reached")
        assert manager.rooms == {}

    class Unencodable(ConnectionManager):
        def broadcast(self, room: str, message: ServerMessage, exclude: Any = None) -> int:
            message.encode(0).encode()  # what sending does: a name that is not UTF-8 fails here
            return 0

    manager = Unencodable()
    async with manager.membership("lobby", "alice"):
        with pytest.raises(Exception, match="surrogates not allowed"):
            async with manager.membership("lobby", "\ud800"):
                raise AssertionError("never reached")
        assert manager.rooms == {"lobby": ["alice"]}
    assert manager.rooms == {}


@pytest.mark.parametrize("name", ["\ud800", "a\nb", " alice", "\u202eevil", "zero\u200bwidth"])
async def test_the_demo_login_refuses_a_hostile_name_with_422_not_500(name: str) -> None:
    async with Lab() as lab:
        server, _ = await start(lab)
        body = json.dumps({"user": name}).encode()  # "\\ud800": valid JSON
        async with httpx.AsyncClient(base_url=server.url) as http:
            answer = await http.post("/token", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == ["body", "user"]
        assert "input" not in answer.json()["detail"][0]  # the value is never echoed back


def test_issue_token_refuses_what_verify_token_would_refuse() -> None:
    for name in HOSTILE_NAMES:
        with pytest.raises(InvalidName):
            issue_token(name, SECRET, 60)
    with pytest.raises(ValueError, match="finite"):
        issue_token("alice", SECRET, math.inf)


def test_check_name_accepts_ordinary_names_in_any_script() -> None:
    for name in ["alice", "Zoë", "学生", "room 42", "a.b-c_d", "🙂", "x" * 64]:
        assert check_name(name) == name


# --- 7. exp and iat must be finite numbers --------------------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": math.inf},
        {"exp": math.nan},
        {"exp": -math.inf},
        {"exp": 10**400},  # too large for a float
        {"exp": True},
        {"exp": "tomorrow"},
        {"exp": None},
        {"iat": math.nan},  # a NaN iat would compare False with every revocation: never revoked
        {"iat": math.inf},
        {"iat": "today"},
    ],
)
def test_exp_and_iat_must_be_finite_numbers(claims: dict[str, Any]) -> None:
    token = raw_token({"sub": "alice", "exp": time.time() + 60, **claims})
    with pytest.raises(TokenInvalid):
        verify_token(token, SECRET)


@pytest.mark.parametrize("field", ["token_ttl", "auth_timeout", "rate", "close_timeout", "backlog_timeout"])
@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_settings_refuse_infinite_and_nan_durations(field: str, value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        ChatSettings(**{field: value})
    with pytest.raises(ValueError, match="finite"):
        ChatSettings(heartbeat_interval=value)


# --- 9. room names, and what reaches a log --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("a%0D%0Ab", "control character"),
        ("nul%00", "control character"),
        ("%E2%80%AEevil", "invisible formatting"),
        ("zero%E2%80%8Bwidth", "invisible formatting"),
        ("x" * 65, "at most 64"),
        ("%20lobby", "space"),
    ],
)
async def test_a_hostile_room_name_is_refused_at_the_handshake(path: str, why: str) -> None:
    async with Lab() as lab:
        server, manager = await start(lab)
        with pytest.raises(InvalidStatus) as refused:
            await lab.connect(server.ws_url(f"/ws/chat/{path}"), name="mallory")
        response = refused.value.response
        assert response.status_code == 400
        assert why in response.body.decode(), response.body
        assert manager.rooms == {}
        for event in lab.events:  # nothing the client sent reaches a log raw
            assert not any(ch in event.message for ch in "\r\n\x00\u202e\u200b"), event
        alice = await join(lab, server, "alice", room="café")  # ordinary non-ASCII names work
        await alice.close()


def test_printable_escapes_every_character_a_name_may_not_hold() -> None:
    assert printable("a\r\nb") == "a\\u000d\\u000ab"
    assert printable("\ud800") == "\\ud800"
    assert printable("\u202eevil") == "\\u202eevil"
    assert printable("back\\slash") == "back\\\\slash"  # so an escape in the input cannot fake one
    assert printable("x" * 300).endswith("…") and len(printable("x" * 300)) == 201
    for name in HOSTILE_NAMES:
        text = printable(name)
        text.encode()  # always encodable
        assert "\r" not in text and "\n" not in text


async def test_invalid_utf8_frames_are_not_logged_as_server_errors() -> None:
    async with Lab() as lab:
        server, manager = await start(lab)
        for _ in range(3):
            reader, writer = await raw_member(server.port, "m")
            writer.write(Frame(Opcode.TEXT, b"\xff\xfe", mask_key=b"abcd").serialize())
            frames: list[Frame] = []
            parser = FrameParser(expect_masked=False)
            while not any(f.opcode is Opcode.CLOSE for f in frames):
                data = await asyncio.wait_for(reader.read(65536), 2.0)
                assert data
                frames += parser.feed(data)
            assert [f.close_code for f in frames if f.opcode is Opcode.CLOSE] == [CloseCode.INVALID_DATA]
            writer.transport.abort()
        await eventually(lambda: manager.rooms == {})
        logged = [e for e in lab.events if "Invalid UTF-8" in e.message]
        assert len(logged) == 3
        assert all(e.data["level"] == "INFO" and "exception" not in e.data for e in logged), logged


def test_the_client_fault_filter_only_downgrades_client_faults() -> None:
    def record(msg: str, level: int) -> logging.LogRecord:
        try:
            b"\xff".decode()
        except UnicodeDecodeError as exc:
            info = (type(exc), exc, exc.__traceback__)
        return logging.LogRecord("uvicorn.error", level, __file__, 1, msg, None, info)

    client = record("Invalid UTF-8 sequence received from client.", logging.ERROR)
    assert ClientFaultFilter().filter(client) and client.levelno == logging.INFO and client.exc_info is None
    server = record("Exception in ASGI application", logging.ERROR)
    assert ClientFaultFilter().filter(server) and server.levelno == logging.ERROR and server.exc_info


# --- 2. bursts from many members, fast readers, per-user limits -------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "pubsub", "streams"])
async def test_a_burst_from_many_talkers_never_evicts_readers_that_keep_up(backend: str) -> None:
    """Eight members send their whole burst in the same loop turn (default queue, backlog and burst
    settings), five times over; two members that read at full speed get every message and nobody is
    evicted; through Redis too. The refill rate is raised so that the pause between rounds, until every
    talker's bucket is full again, is a tenth of a second instead of two: a full bucket is a full bucket."""
    talkers, rounds = 8, 5
    burst, rate = ChatSettings().burst, 200.0
    async with Lab() as lab:
        redis = {} if backend == "memory" else {"backend": backend, "redis_url": (await lab.redis()).url}
        server, manager = await start(lab, rate=rate, **redis)
        readers = [await join(lab, server, f"reader{i}") for i in range(2)]
        streams = [await raw_member(server.port, f"t{i}") for i in range(talkers)]
        await eventually(lambda: len(manager.rooms.get("lobby", [])) == talkers + 2)
        for reader_client in readers:
            reader_client.drain()
        expected = 0
        for round_ in range(rounds):
            frames = [
                b"".join(
                    text_frame(
                        json.dumps({"type": "say", "text": f"{i}.{round_}.{k}"}), mask=True
                    ).serialize()
                    for k in range(burst)
                )
                for i in range(talkers)
            ]
            for (_, writer), data in zip(streams, frames, strict=True):
                writer.write(data)  # every talker's whole burst, before the server runs once
            expected += talkers * burst
            for reader_client in readers:
                while len([m for m in reader_client.received if '"message"' in m]) < expected:
                    await reader_client.recv_json(5.0)
            await asyncio.sleep(burst / rate + 0.05)  # every talker's bucket is full again
        assert manager.evictions == []
        for reader_client in readers:
            said = [json.loads(m) for m in reader_client.received if '"message"' in m]
            assert len(said) == talkers * burst * rounds
            seqs = [m["seq"] for m in said]
            assert seqs == sorted(seqs)
        for _, writer in streams:
            writer.transport.abort()


async def test_a_reader_that_stops_is_still_evicted_once_its_backlog_stops_moving() -> None:
    """Under twice queue_size, a backlog that makes no progress for backlog_timeout is evicted 4009."""
    async with Lab() as lab:
        server, manager = await start(
            lab, queue_size=4, backlog_timeout=0.3, max_message_bytes=8192, rate=1000.0, burst=1000
        )
        alice = await join(lab, server, "alice")
        _, stalled = await raw_member(server.port, "stalled", rcvbuf=4096)
        await eventually(lambda: manager.rooms.get("lobby") == ["alice", "stalled"])
        member = next(m for m in manager._rooms["lobby"].members if m.user == "stalled")
        sent = 0
        while member.outbox.qsize() < 4 and sent < 3000:  # until its socket takes nothing more
            await alice.send_json({"type": "say", "text": os.urandom(1500).hex(), "exclude_self": True})
            sent += 1
            await asyncio.sleep(0.002)
        assert member.outbox.qsize() == 4 and not manager.evictions  # behind, but not yet for long
        for _ in range(20):  # slowly now: the hard bound (8) is not what evicts it
            await alice.send_json({"type": "say", "text": "x", "exclude_self": True})
            await asyncio.sleep(0.1)
            if manager.evictions:
                break
        assert [(e.user, e.room) for e in manager.evictions] == [("stalled", "lobby")]
        assert manager.evictions[0].queued < 2 * 4  # by the timeout, before the hard bound
        stalled.transport.abort()
        await alice.close()


async def test_one_user_holds_at_most_max_connections_per_user() -> None:
    async with Lab() as lab:
        server, manager = await start(lab, max_connections_per_user=3)
        tabs = [await join(lab, server, "alice", name=f"tab{i}") for i in range(3)]
        extra = await lab.connect(server.ws_url("/ws/chat/garden"), name="tab3")
        await extra.send_json({"type": "auth", "token": issue_token("alice", SECRET, 600)})
        await extra.wait_closed(2.0)
        assert extra.close_code == CloseCode.RATE_LIMITED
        bob = await join(lab, server, "bob")  # other users are not affected
        await tabs[0].close()
        await eventually(lambda: manager.rooms["lobby"].count("alice") == 2)
        again = await join(lab, server, "alice", room="garden", name="tab4")  # a slot is free again
        for client in [*tabs[1:], bob, again]:
            await client.close()
        await eventually(lambda: manager.rooms == {} and manager.limits.connections == {})


async def test_every_connection_of_a_user_draws_on_one_bucket() -> None:
    async with Lab() as lab:
        server, _ = await start(lab, rate=0.01, burst=4)
        one = await join(lab, server, "alice", name="one")
        two = await join(lab, server, "alice", name="two")
        for client in (one, two, one, two):  # four messages from two sockets: the whole burst
            await client.send_json({"type": "say", "text": "hi", "exclude_self": True})
        await asyncio.sleep(0.1)
        await two.send_json({"type": "say", "text": "one too many", "exclude_self": True})
        await two.wait_closed(2.0)
        assert two.close_code == CloseCode.RATE_LIMITED
        await one.close()


async def test_a_stalled_reader_is_evicted_even_when_the_room_then_goes_quiet() -> None:
    """Nothing more is said after the member fell behind: its own sender finds the stall."""
    async with Lab() as lab:
        server, manager = await start(
            lab, queue_size=4, backlog_timeout=0.3, max_message_bytes=8192, rate=1000.0, burst=1000
        )
        alice = await join(lab, server, "alice")
        _, stalled = await raw_member(server.port, "stalled", rcvbuf=4096)
        await eventually(lambda: manager.rooms.get("lobby") == ["alice", "stalled"])
        member = next(m for m in manager._rooms["lobby"].members if m.user == "stalled")
        while member.outbox.qsize() < 4:
            await alice.send_json({"type": "say", "text": os.urandom(1500).hex(), "exclude_self": True})
            await asyncio.sleep(0.002)
        assert not manager.evictions
        started = time.monotonic()
        await eventually(lambda: bool(manager.evictions), timeout=3.0)  # the room is quiet meanwhile
        assert 0.2 < time.monotonic() - started < 2.0
        assert [(e.user, e.room) for e in manager.evictions] == [("stalled", "lobby")]
        stalled.transport.abort()
        await alice.close()


async def test_the_stall_timer_counts_from_the_last_progress() -> None:
    """A backlog that moved shortly before the timer fires is not a stall yet (pure logic, a fake sender)."""
    manager = ConnectionManager(queue_size=2, backlog_timeout=0.3)
    async with manager.membership("lobby", "alice") as member:
        member.outbox.get_nowait()  # "ready"
        for n in range(3):  # behind: 3 >= 2, the timer is armed now
            assert member.offer(f"m{n}")
        await asyncio.sleep(0.2)
        member.outbox.get_nowait()  # the socket took one: progress, 0.1 s before the timer fires
        member.delivered += 1
        assert member.offer("m3")  # behind again; this stretch started at the progress
        await asyncio.sleep(0.15)  # the first timer has fired; only 0.15 s since the progress
        assert manager.evictions == [] and member.active
        await asyncio.sleep(0.3)  # now 0.45 s without progress
        assert [e.user for e in manager.evictions] == ["alice"] and not member.active
