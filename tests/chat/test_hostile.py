"""Hostile input against the real chat app: uvicorn on the loop, real sockets, generated and hand-picked.

One server per class (a class-scoped :class:`Arena`), a healthy *sentinel* client in the lobby, and per case
a fresh raw socket built with :mod:`wslab.wire` (``mallory``) that does something hostile. After every case:

* mallory got the documented answer (a close code, or an ``error`` message on a connection that stays usable);
* the server still serves others: the sentinel sees the ``joined``/``left`` broadcasts and its own ``say``;
* nothing is left behind: the lobby holds only the sentinel, and uvicorn holds only the sentinel's socket.

Hypothesis drives each class through ``asyncio.Runner.run`` (the tests are sync, the server lives on the
runner's loop and runs whenever a case does). Cases cost a TCP connect, a handshake and an auth (about 3 ms
here), so 500 per class keeps the whole file well under a minute.
"""

from __future__ import annotations

import asyncio
import json
import string
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from wslab import Lab
from wslab.chat import ChatSettings, ConnectionManager, create_app, issue_token
from wslab.chat.protocol import Auth, Dm, ProtocolViolation, Reauth, parse_client_message
from wslab.clients import LabClient
from wslab.runtime.servers import TaskServer
from wslab.wire import (
    CloseCode,
    Frame,
    FrameParser,
    HandshakeRequest,
    HandshakeResponse,
    Opcode,
    WireError,
    text_frame,
)

SECRET = "wslab-hostile-test-secret-0123456789abcdef"
LOBBY = "/ws/chat/lobby"
MAX_BYTES = 1024  # the app's protocol limit (ChatSettings.max_message_bytes)
WS_MAX = 2048  # uvicorn's transport limit, a little above it (see wslab.chat.app)
STEP = 2.0  # seconds any single read may take before the case fails
CASES = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- a raw client: the hostile side -----------------------------------------------------------------


@dataclass
class Raw:
    """One TCP connection driven byte by byte, with a parser for what the server sends."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    parser: FrameParser = field(default_factory=lambda: FrameParser(expect_masked=False))
    frames: list[Frame] = field(default_factory=list)

    @classmethod
    async def open(cls, port: int) -> Raw:
        async with asyncio.timeout(STEP):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def handshake(self, port: int) -> None:
        request = HandshakeRequest(path=LOBBY, host=f"127.0.0.1:{port}")
        self.writer.write(request.serialize())
        async with asyncio.timeout(STEP):
            head = await self.reader.readuntil(b"\r\n\r\n")
        HandshakeResponse.parse(head).check(request)

    async def auth(self, token: str) -> None:
        self.send_text(json.dumps({"type": "auth", "token": token}))
        ready = await self.next_json()
        assert ready["type"] == "ready" and ready["user"] == "mallory", ready

    def send_text(self, text: str) -> None:
        self.writer.write(text_frame(text, mask=True).serialize())

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def next_frame(self) -> Frame | None:
        """The next frame from the server, or None when it closed TCP."""
        async with asyncio.timeout(STEP):
            while not self.frames:
                data = await self.reader.read(65536)
                if not data:
                    return None
                self.frames += self.parser.feed(data)
        return self.frames.pop(0)

    async def next_json(self) -> dict[str, Any]:
        frame = await self.next_frame()
        assert frame is not None and frame.opcode is Opcode.TEXT, frame
        return json.loads(frame.text or "")

    async def close_code(self) -> int | None:
        """Read on until the server's close frame; its code (texts before it are skipped)."""
        while True:
            frame = await self.next_frame()
            if frame is None:
                return None
            if frame.opcode is Opcode.CLOSE:
                return frame.close_code

    def drop(self) -> None:
        self.writer.transport.abort()


# --- one server per class ----------------------------------------------------------------------------


@dataclass
class Arena:
    """A chat server on a loop of its own, a sentinel in the lobby, and the checks every case ends with."""

    runner: asyncio.Runner
    lab: Lab
    server: TaskServer
    manager: ConnectionManager
    sentinel: LabClient
    token: str
    sentinel_speaks: bool = True
    cases: int = 0

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    async def clean_slate(self) -> None:
        """Even after a failed case, start from a quiet lobby, so that hypothesis shrinks the real failure."""
        await eventually(lambda: self.manager.rooms == {"lobby": ["sentinel"]}, "a membership leaked")
        await eventually(lambda: self.server.open_connections == 1, "uvicorn still holds a socket")
        self.sentinel.drain()

    async def mallory(self, *, auth: bool = True) -> Raw:
        await self.clean_slate()
        raw = await Raw.open(self.server.port)
        await raw.handshake(self.server.port)
        if auth:
            await raw.auth(self.token)
        return raw

    async def settle(
        self,
        raw: Raw,
        *,
        joined: bool,
        allowed: Callable[[dict[str, Any]], bool] | None = None,
        user: str = "mallory",
    ) -> list[dict[str, Any]]:
        """End a case: mallory is gone, nothing of it remains, and the sentinel is still served.

        Returns what the sentinel received between mallory's ``joined`` and ``left`` (each one ``allowed``).
        """
        raw.drop()
        notices: list[dict[str, Any]] = []
        self.cases += 1
        if joined:  # the sentinel saw mallory come and go, and nothing else but what `allowed` permits
            while True:
                msg = await self.sentinel.recv_json(STEP)
                if msg["type"] == "left":
                    assert msg["user"] == user, msg
                    break
                notices.append(msg)
            assert notices and (notices[0]["type"], notices[0]["user"]) == ("joined", user), notices[:3]
            extra = [m for m in notices[1:] if not (allowed and allowed(m))]
            assert not extra, extra[:3]
        await eventually(lambda: self.manager.rooms == {"lobby": ["sentinel"]}, "a membership leaked")
        await eventually(lambda: self.server.open_connections == 1, "uvicorn still holds mallory's socket")
        if self.sentinel_speaks:  # the sentinel can still talk, and hears itself
            text = f"still here {self.cases}"
            await self.sentinel.send_json({"type": "say", "text": text})
            msg = await self.sentinel.recv_json(STEP)
            assert (msg["type"], msg["from"], msg["text"]) == ("message", "sentinel", text), msg
        assert self.sentinel.drain() == []
        return notices[1:]


async def eventually(check: Callable[[], bool], what: str, timeout: float = STEP) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still true after {timeout} s: {what}")
        await asyncio.sleep(0.001)


def _settings(**overrides: Any) -> ChatSettings:
    values: dict[str, Any] = {
        "secret": SECRET,
        "auth_timeout": 2.0,
        "rate": 1e6,
        "burst": 10**6,
        "max_message_bytes": MAX_BYTES,
    }
    values.update(overrides)
    return ChatSettings(**values)


@pytest.fixture(scope="class")
def arena(request: pytest.FixtureRequest) -> Iterator[Arena]:
    overrides: dict[str, Any] = getattr(request.cls, "SETTINGS", {})
    sentinel_speaks: bool = getattr(request.cls, "SENTINEL_SPEAKS", True)
    with asyncio.Runner() as runner:

        async def start() -> Arena:
            lab = Lab()
            app = create_app(_settings(**overrides))
            server = await lab.serve(app, name="chat", ws_max_size=WS_MAX)
            sentinel = await lab.connect(server.ws_url(LOBBY), name="sentinel")
            await sentinel.send_json({"type": "auth", "token": issue_token("sentinel", SECRET, 600)})
            assert (await sentinel.recv_json())["type"] == "ready"
            manager: ConnectionManager = app.state.chat
            token = issue_token("mallory", SECRET, 600)
            return Arena(runner, lab, server, manager, sentinel, token, sentinel_speaks)

        arena = runner.run(start())
        try:
            yield arena
            assert arena.manager.evictions == []
            # hypothesis stops early once it has tried every distinct input: make sure it did not
            assert arena.cases >= getattr(request.cls, "MIN_CASES", 500), arena.cases
        finally:
            runner.run(arena.lab.close())


# --- oracles: what the server must answer, computed without it -----------------------------------------


def expected_error(text: str) -> str | None:
    """The ``error.reason`` the app must send mallory (in the lobby with the sentinel) for this text message,
    or None if the message is valid and acted on."""
    try:
        message = parse_client_message(text)
    except ProtocolViolation as exc:
        return exc.reason
    if isinstance(message, Auth):
        return "unexpected"
    if isinstance(message, Reauth):
        return "bad_token"  # no generated token is ours
    if isinstance(message, Dm) and message.to not in ("sentinel", "mallory"):
        return "unknown_user"
    return None


def first_frame_verdict(data: bytes) -> tuple[str, int | None, bytes]:
    """What the server must do with the first frame in ``data``: (outcome, close code, the bytes to send).

    Outcomes: ``close`` (with the code), ``error`` (a text the app answers with an error message),
    ``pong`` (a ping), ``quiet`` (valid, needs no answer) and ``partial`` (not a whole frame yet).
    The order of the checks is websockets' (uvicorn's protocol): what the header alone proves wrong
    (reserved opcode, no mask, a length over ``ws_max_size``) fails at once; everything else only once the
    whole frame is in.
    """
    if len(data) < 2:
        return "partial", None, data
    if data[0] & 0x0F not in set(Opcode) or not data[1] & 0x80:
        return "close", CloseCode.PROTOCOL_ERROR, data
    length, header = data[1] & 0x7F, 2
    if length >= 126:
        header = 4 if length == 126 else 10
        if len(data) < header:
            return "partial", None, data
        length = int.from_bytes(data[2:header], "big")
    if length > WS_MAX:
        return "close", CloseCode.MESSAGE_TOO_BIG, data
    end = header + 4 + length
    if len(data) < end:
        return "partial", None, data
    chunk = data[:end]
    if data[0] & 0x70:  # RSV bits, but no extension was negotiated: checked before the payload
        return "close", CloseCode.PROTOCOL_ERROR, chunk
    if data[0] & 0x0F == Opcode.CLOSE and data[0] & 0x80 and 2 < length <= 125:
        # websockets decodes a close frame's reason before it checks the code (Close.parse), so a reason
        # that is not UTF-8 wins over an invalid code: 1007, not 1002 (found by hypothesis).
        mask = chunk[header : header + 4]
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(chunk[header + 4 : end]))
        try:
            payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            return "close", CloseCode.INVALID_DATA, chunk
    try:
        # UTF-8 is checked below and only for a whole message: uvicorn's protocol validates text when the
        # message is complete, so an invalid first fragment just waits for the rest (RFC 6455 §8.1
        # allows failing earlier, but does not require it).
        (frame,) = FrameParser(expect_masked=True, validate_utf8=False).feed(chunk)
    except WireError:
        return "close", CloseCode.PROTOCOL_ERROR, chunk
    if frame.opcode is Opcode.TEXT and frame.fin:
        try:
            frame.payload.decode("utf-8")
        except UnicodeDecodeError:
            return "close", CloseCode.INVALID_DATA, chunk
    if frame.opcode is Opcode.CLOSE:
        return "close", frame.close_code, chunk  # echoed; None for a close frame without a code
    if frame.opcode is Opcode.PING:
        return "pong", None, chunk
    if frame.opcode is Opcode.PONG or not frame.fin:
        return "quiet", None, chunk  # a pong needs no answer; a first fragment waits for the rest
    if frame.opcode is Opcode.BINARY:
        return "close", CloseCode.UNSUPPORTED_DATA, chunk
    if len(frame.payload) > MAX_BYTES:
        return "close", CloseCode.MESSAGE_TOO_BIG, chunk
    return ("error", None, chunk) if expected_error(frame.text or "") else ("quiet", None, chunk)


# --- strategies ---------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
TYPES = ["auth", "say", "dm", "reauth", "pong"]
wrong_shapes = st.builds(
    lambda kind, fields: {"type": kind, **fields},
    st.sampled_from([*TYPES, "shout", "", "SAY", "join"]) | json_values,
    st.dictionaries(
        st.sampled_from(["text", "to", "token", "exclude_self", "extra"]), json_values, max_size=3
    ),
)


@st.composite
def frame_shaped(draw: st.DrawFn) -> bytes:
    """A plausible header (any opcode, some flags) on random bytes: gets past the first checks."""
    opcode = draw(st.integers(0, 15))
    flags = draw(st.sampled_from([0x80, 0x80, 0x80, 0x00, 0xC0, 0x90]))
    payload = draw(st.binary(max_size=140))
    key = draw(st.binary(min_size=4, max_size=4))
    raw = Frame(Opcode.TEXT, payload, mask_key=key).serialize()
    cut = draw(st.integers(1, len(raw)))  # sometimes only part of it
    return bytes([flags | opcode]) + raw[1:cut]


INVALID_UTF8 = [
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe2\x82",
    b"\xc3",
]


# --- the classes ----------------------------------------------------------------------------------------


class TestRandomFrames:
    """Random bytes after a good handshake and auth: uvicorn fails garbage (1002) before the app sees it."""

    @CASES
    @given(data=st.binary(min_size=1, max_size=64) | frame_shaped())
    @example(data=b"\x81\x05hello")  # unmasked text
    @example(data=b"\x83\x80abcd")  # reserved opcode
    @example(data=b"\x89\xfe\x00\xc8" + b"abcd" + bytes(200))  # a ping longer than 125 bytes
    @example(data=b"\x08\x80abcd")  # a fragmented close
    # a close with an invalid code and a reason that is not UTF-8
    @example(data=b"\x88\x90\xd8A_o7D\xbf\xfe\xbf\x86\xe2\xa6^\x9ci\x90\xa4\xf0\xe8\xe5")
    @example(data=b"\x80\x80abcd")  # a continuation with nothing to continue
    @example(data=bytes([0x81, 0xFF]) + (2**40).to_bytes(8, "big") + b"abcd")  # 1 TiB announced
    @example(
        data=b"\x88\x82abcd" + bytes(a ^ b for a, b in zip(b"\x03\xed", b"ab", strict=True))
    )  # close 1005
    @example(data=b"\x01\x850\xe7\x8b\x15PK?1\xca")  # a first fragment with invalid UTF-8: waits
    def test_garbage_frames(self, arena: Arena, data: bytes) -> None:
        arena.run(self.case(arena, data))

    async def case(self, arena: Arena, data: bytes) -> None:
        outcome, code, chunk = first_frame_verdict(data)
        raw = await arena.mallory()
        raw.send(chunk)
        if outcome == "close":
            got = await raw.close_code()
            assert got == code, (data, outcome, got)
        elif outcome == "error":
            msg = await raw.next_json()
            assert msg["type"] == "error", msg
        elif outcome == "pong":
            frame = await raw.next_frame()
            assert frame is not None and frame.opcode is Opcode.PONG, frame
        await arena.settle(raw, joined=True)


class TestInvalidUtf8:
    """Text frames that are not UTF-8, whole or split across fragments: 1007, never a crash."""

    @CASES
    @given(
        prefix=st.text(max_size=30),
        bad=st.sampled_from(INVALID_UTF8),
        suffix=st.binary(max_size=10),
        split=st.none() | st.integers(0, 40),
    )
    @example(prefix='{"type": "say", "text": "', bad=b"\xed\xa0\x80", suffix=b'"}', split=None)
    def test_invalid_utf8_closes_1007(
        self, arena: Arena, prefix: str, bad: bytes, suffix: bytes, split: int | None
    ) -> None:
        payload = prefix.encode() + bad + suffix
        try:
            payload.decode()
        except UnicodeDecodeError:
            pass
        else:  # a truncated sequence completed by the suffix: valid after all
            assume(False)
        arena.run(self.case(arena, payload, split))

    async def case(self, arena: Arena, payload: bytes, split: int | None) -> None:
        raw = await arena.mallory()
        if split is None:
            raw.send(Frame(Opcode.TEXT, payload, mask_key=b"\x01\x02\x03\x04").serialize())
        else:
            cut = min(split, len(payload))
            raw.send(Frame(Opcode.TEXT, payload[:cut], fin=False, mask_key=b"abcd").serialize())
            raw.send(Frame(Opcode.CONT, payload[cut:], mask_key=b"efgh").serialize())
        assert await raw.close_code() == CloseCode.INVALID_DATA
        await arena.settle(raw, joined=True)


class TestJsonShapes:
    """Not JSON, JSON of the wrong shape, known types with wrong fields, unknown types: an ``error`` each,
    on one connection that stays usable (F03). Valid messages get their normal effect."""

    @pytest.fixture(scope="class")
    @classmethod
    def conn(cls, arena: Arena) -> Iterator[Raw]:
        raw = arena.run(arena.mallory())
        yield raw
        arena.run(arena.settle(raw, joined=True, allowed=lambda m: m.get("from") == "mallory"))

    @CASES
    @given(
        text=st.text(max_size=60)
        | json_values.map(json.dumps)
        | wrong_shapes.map(json.dumps)
        | st.sampled_from(TYPES).map(lambda t: json.dumps({"type": t}))
    )
    @example(text="not json")
    @example(text="")
    @example(text='{"type": "say", "text": "\\ud800"}')  # a lone surrogate
    @example(text='{"type": "say", "text": "x", "type": "dm"}')  # duplicate keys
    @example(text="[" * 400 + "]" * 400)  # deep nesting, under the size limit
    @example(text="1e999")
    @example(text='{"type": "auth", "token": "again"}')
    @example(text='{"type": "dm", "to": "nobody", "text": "hi"}')
    @example(text='{"type": "say", "text": "fine", "exclude_self": true}')
    def test_bad_messages_get_an_error_and_the_connection_survives(
        self, arena: Arena, conn: Raw, text: str
    ) -> None:
        if len(text.encode()) > MAX_BYTES:
            text = text[: MAX_BYTES // 4]
        arena.run(self.case(arena, conn, text))

    async def case(self, arena: Arena, raw: Raw, text: str) -> None:
        arena.cases += 1
        reason = expected_error(text)
        raw.send_text(text)
        # a probe after every message: its error marks the end of the answer to `text`
        raw.send_text('{"type": "dm", "to": "nobody", "text": "probe"}')
        answers = []
        while True:
            msg = await raw.next_json()
            if (
                msg["type"] == "error"
                and msg["detail"].startswith("nobody called 'nobody'")
                and (reason != "unknown_user" or answers)
            ):
                break
            answers.append(msg)
        if reason is not None:
            assert [(m["type"], m["reason"]) for m in answers] == [("error", reason)], (text, answers)
            assert answers[0]["detail"]
        else:
            assert all(m["type"] in ("message", "reauthed") for m in answers), (text, answers)
        assert arena.manager.rooms == {"lobby": ["sentinel", "mallory"]}


class TestHugeMessages:
    """Messages around and far over the limit: 1009 exactly when the UTF-8 size is over, from the app
    (``max_message_bytes``) or from uvicorn (``ws_max_size``); a message just under it is delivered."""

    @CASES
    @given(
        char=st.sampled_from(["x", "é", "€", "🙂"]),
        size=st.integers(MAX_BYTES - 40, MAX_BYTES + 40) | st.integers(MAX_BYTES, 3 * WS_MAX),
    )
    @example(char="€", size=MAX_BYTES)  # 4 * len(text) > limit, yet the bytes fit
    @example(char="x", size=16 * WS_MAX)
    def test_over_the_limit_closes_1009(self, arena: Arena, char: str, size: int) -> None:
        arena.run(self.case(arena, char, size))

    async def case(self, arena: Arena, char: str, size: int) -> None:
        head = '{"type": "say", "text": "'
        text = head + char * max(1, (size - len(head) - 2) // len(char.encode())) + '"}'
        raw = await arena.mallory()
        raw.send_text(text)
        if len(text.encode()) > MAX_BYTES:
            assert await raw.close_code() == CloseCode.MESSAGE_TOO_BIG
            await arena.settle(raw, joined=True)
        else:
            msg = await raw.next_json()
            assert (msg["type"], msg["from"], len(msg["text"])) == (
                "message",
                "mallory",
                len(text) - len(head) - 2,
            )
            await arena.settle(raw, joined=True, allowed=lambda m: m.get("from") == "mallory")


class TestFloods:
    """More messages than the burst, at once: 4008 on the first one over; exactly the burst gets through
    to the room (the sentinel receives it), then nothing."""

    BURST = 6
    SETTINGS: ClassVar[dict[str, Any]] = {"rate": 0.01, "burst": BURST}  # refill is negligible within a case
    SENTINEL_SPEAKS = False  # the sentinel's own bucket would run dry too; it listens instead

    @CASES
    @given(
        count=st.integers(0, 3 * BURST),
        kind=st.sampled_from(["say", "pong", "junk"]),
        words=st.text(min_size=1, max_size=30),
    )
    def test_flood_closes_4008(self, arena: Arena, count: int, kind: str, words: str) -> None:
        arena.run(self.case(arena, count, kind, words))

    async def case(self, arena: Arena, count: int, kind: str, words: str) -> None:
        say = json.dumps({"type": "say", "text": words, "exclude_self": True})
        payload = {"say": say, "pong": '{"type": "pong"}', "junk": words}
        if kind == "junk":
            assume(expected_error(words) is not None)
        raw = await arena.mallory()
        for _ in range(count):
            raw.send_text(payload[kind])
        raw.send_text('{"type": "dm", "to": "nobody", "text": "probe"}')  # one more message, then listen
        if count + 1 > self.BURST:
            assert await raw.close_code() == CloseCode.RATE_LIMITED
        else:
            answers = [await raw.next_json() for _ in range(count + 1 if kind == "junk" else 1)]
            assert [m["type"] for m in answers] == ["error"] * len(answers)
            assert answers[-1]["reason"] == "unknown_user"
        spam = min(count, self.BURST) if kind == "say" else 0
        got = await arena.settle(raw, joined=True, allowed=lambda m: m.get("from") == "mallory")
        assert len(got) == spam, (count, kind, len(got))  # the burst reached the room, nothing after it


class TestNeverAuthenticated:
    """Whatever comes instead of a valid ``auth`` (nothing, text, JSON, bad tokens, binary): closed 4001
    (1003 for binary, 1009 for too big), never a member, never sent anything, others unaffected (F29)."""

    SETTINGS: ClassVar[dict[str, Any]] = {"auth_timeout": 0.2}

    @CASES
    @given(
        first=st.none()
        | st.text(max_size=40)
        | json_values.map(json.dumps)
        | wrong_shapes.map(json.dumps)
        | st.text(string.ascii_letters + ".-_", max_size=60).map(
            lambda t: json.dumps({"type": "auth", "token": t})
        )
        | st.binary(max_size=40)
    )
    @example(first=None)
    @example(
        first=json.dumps(
            {
                "type": "auth",
                "token": issue_token("mallory", "not-our-secret-0123456789abcdef-0123456789", 60),
            }
        )
    )
    @example(first=json.dumps({"type": "say", "text": "let me in"}))
    @example(first="x" * (MAX_BYTES + 1))
    def test_no_valid_auth_is_refused(self, arena: Arena, first: str | bytes | None) -> None:
        arena.run(self.case(arena, first))

    async def case(self, arena: Arena, first: str | bytes | None) -> None:
        enqueued = arena.manager.stats.enqueued
        raw = await arena.mallory(auth=False)
        if isinstance(first, str):
            raw.send_text(first)
            expected = (
                CloseCode.MESSAGE_TOO_BIG if len(first.encode()) > MAX_BYTES else CloseCode.UNAUTHORIZED
            )
        elif isinstance(first, bytes):
            raw.send(Frame(Opcode.BINARY, first, mask_key=b"abcd").serialize())
            expected = CloseCode.UNSUPPORTED_DATA
        else:
            assert arena.manager.rooms == {"lobby": ["sentinel"]}  # waiting, but not a member
            expected = CloseCode.UNAUTHORIZED
        frame = await raw.next_frame()
        assert frame is not None and frame.opcode is Opcode.CLOSE, frame  # nothing else before the close
        assert frame.close_code == expected, (first, frame)
        assert arena.manager.stats.enqueued == enqueued  # nothing was queued for mallory or about mallory
        await arena.settle(raw, joined=False)


# --- hand-picked: many at once ---------------------------------------------------------------------------


class TestManyAtOnce:
    """Thirty silent sockets and thirty stalled handshakes held together: others keep chatting; the silent
    ones are closed 4001 at the deadline, the stalled ones are freed when they close."""

    SETTINGS: ClassVar[dict[str, Any]] = {"auth_timeout": 0.3}
    MIN_CASES = 0

    def test_crowds_of_silent_and_stalled_sockets(self, arena: Arena) -> None:
        arena.run(self.case(arena))

    async def case(self, arena: Arena) -> None:
        port = arena.server.port
        silent = [await Raw.open(port) for _ in range(30)]
        await asyncio.gather(*(raw.handshake(port) for raw in silent))
        stalled = [await Raw.open(port) for _ in range(30)]
        for raw in stalled:
            raw.send(HandshakeRequest(path=LOBBY, host="h").serialize()[:20])
        await eventually(lambda: arena.server.open_connections == 61, "not all sockets arrived")
        await arena.sentinel.send_json({"type": "say", "text": "anyone?"})
        assert (await arena.sentinel.recv_json())["text"] == "anyone?"
        assert arena.manager.rooms == {"lobby": ["sentinel"]}
        codes = await asyncio.gather(*(raw.close_code() for raw in silent))
        assert codes == [CloseCode.UNAUTHORIZED] * 30
        for raw in silent:
            raw.drop()
        await eventually(lambda: arena.server.open_connections == 31, "silent sockets not freed")
        for raw in stalled:
            raw.drop()
        await eventually(lambda: arena.server.open_connections == 1, "stalled sockets not freed")
        assert arena.manager.rooms == {"lobby": ["sentinel"]} and arena.sentinel.drain() == []


class TestPartialHandshakes:
    """Slowloris-style: a prefix of a valid upgrade request, maybe followed by junk, then the client stalls
    and vanishes. Whatever the server answers (nothing yet, 400, or a 101 for a request that happens to be
    complete), it holds nothing afterwards: no socket, no membership, and the sentinel is still served."""

    SETTINGS: ClassVar[dict[str, Any]] = {"auth_timeout": 0.2}

    @CASES
    @given(cut=st.integers(0, 220), junk=st.binary(max_size=40), stall=st.booleans())
    @example(cut=0, junk=b"", stall=True)  # connect and say nothing
    @example(cut=20, junk=b"", stall=True)  # half a request line
    @example(cut=220, junk=b"", stall=True)  # a whole request: upgraded, never authenticated
    @example(cut=40, junk=b"\r\n\r\n", stall=False)  # a head that ends too early
    def test_partial_handshakes_leave_nothing_behind(
        self, arena: Arena, cut: int, junk: bytes, stall: bool
    ) -> None:
        arena.run(self.case(arena, cut, junk, stall))

    async def case(self, arena: Arena, cut: int, junk: bytes, stall: bool) -> None:
        await arena.clean_slate()
        port = arena.server.port
        request = HandshakeRequest(path=LOBBY, host=f"127.0.0.1:{port}").serialize()
        raw = await Raw.open(port)
        try:
            raw.send(request[:cut] + junk)
            if stall:  # the server waits for the rest meanwhile; others must not notice
                await arena.sentinel.send_json({"type": "say", "text": "during"})
                assert (await arena.sentinel.recv_json(STEP))["text"] == "during"
        finally:
            await arena.settle(raw, joined=False)  # drops the socket, then checks nothing is left


# --- hostile names, claims, control frames, compression (the attacker's classes, generated) -------------

NAME_CHARS = st.characters(codec=None, categories=None) | st.sampled_from(
    [
        "\ud800",
        "\udfff",
        "\r",
        "\n",
        "\x00",
        "\x1b",
        "\u202e",
        "\u2066",
        "\u200b",
        "\u200d",
        "\ufeff",
        "\u2028",
    ]
)
hostile_names = st.text(NAME_CHARS, min_size=0, max_size=70) | st.sampled_from(
    ["\ud800", "a\r\nb", "\u202eevil", "zero\u200bwidth", " pad", "x" * 65, "x" * 64, "Zoë", "学生"]
)


def signed(claims: dict[str, Any]) -> str:
    """A token signed with the app's secret holding exactly ``claims`` (json allows NaN and Infinity)."""
    import jwt

    return jwt.encode(claims, SECRET, algorithm="HS256")


class TestHostileNames:
    """Correctly signed tokens whose ``sub`` is any text: a plain printable name joins (the sentinel sees it
    come and go), anything else (lone surrogates, controls, bidi overrides, zero-width, edge spaces, over
    64 characters) is closed 4001 and leaves nothing: the room stays joinable for the next case."""

    @CASES
    @given(name=hostile_names)
    @example(name="\ud800")  # the name that used to poison the room
    @example(name="sentinel")  # a second connection of the sentinel's user
    def test_any_name_in_a_signed_token(self, arena: Arena, name: str) -> None:
        arena.run(self.case(arena, name))

    async def case(self, arena: Arena, name: str) -> None:
        from wslab.chat.names import is_valid_name

        raw = await arena.mallory(auth=False)
        raw.send_text(json.dumps({"type": "auth", "token": signed({"sub": name, "exp": time.time() + 60})}))
        if not is_valid_name(name):
            assert await raw.close_code() == CloseCode.UNAUTHORIZED
            await arena.settle(raw, joined=False)
            return
        ready = await raw.next_json()
        assert (ready["type"], ready["user"]) == ("ready", name), ready
        await arena.settle(raw, joined=True, user=name)


class TestTokenClaims:
    """``exp`` and ``iat`` of any JSON type and value: only finite numbers count; an ``exp`` in the past is
    4002, anything that is not a finite number (NaN, Infinity, 1e400, booleans, strings) 4001."""

    @CASES
    @given(
        exp=st.floats(allow_nan=True, allow_infinity=True)
        | st.integers(min_value=-(10**30), max_value=10**400)
        | st.booleans()
        | st.text(max_size=5)
        | st.none(),
        iat=st.none() | st.floats() | st.booleans() | st.text(max_size=3),
    )
    @example(exp=float("inf"), iat=None)
    @example(exp=float("nan"), iat=None)
    @example(exp=10**400, iat=None)
    def test_exp_and_iat(self, arena: Arena, exp: Any, iat: Any) -> None:
        arena.run(self.case(arena, exp, iat))

    async def case(self, arena: Arena, exp: Any, iat: Any) -> None:
        import math

        def finite(value: Any) -> bool:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return False
            try:
                return math.isfinite(float(value))
            except OverflowError:
                return False

        claims: dict[str, Any] = {"sub": "mallory", "exp": exp}
        if iat is not None:
            claims["iat"] = iat
        raw = await arena.mallory(auth=False)
        raw.send_text(json.dumps({"type": "auth", "token": signed(claims)}))
        if finite(exp) and (iat is None or finite(iat)):
            if float(exp) > time.time() + 1:
                ready = await raw.next_json()
                assert ready["type"] == "ready", ready
                await arena.settle(raw, joined=True)
                return
            if float(exp) < time.time() - 1:
                assert await raw.close_code() == CloseCode.TOKEN_EXPIRED
                await arena.settle(raw, joined=False)
                return
            assume(False)  # within a second of now: either answer is right
        assert await raw.close_code() == CloseCode.UNAUTHORIZED, claims
        await arena.settle(raw, joined=False)


class TestRoomNames:
    """Any room name in the path: a plain printable name is accepted (101, and nobody is a member until
    auth); anything else is answered 400 before any WebSocket exists. Nothing is held afterwards."""

    @CASES
    @given(room=hostile_names)
    @example(room="a\r\nb")
    @example(room="x:epoch")
    def test_any_room_name(self, arena: Arena, room: str) -> None:
        from urllib.parse import quote

        assume(room and "/" not in room)
        raw_path = quote(room.encode("utf-8", "surrogatepass"), safe="")
        arena.run(self.case(arena, raw_path))

    async def case(self, arena: Arena, raw_path: str) -> None:
        from urllib.parse import unquote

        from wslab.chat.names import is_valid_name

        await arena.clean_slate()
        seen = unquote(raw_path)  # what the server decodes (invalid UTF-8 becomes U+FFFD)
        port = arena.server.port
        raw = await Raw.open(port)
        request = HandshakeRequest(path=f"/ws/chat/{raw_path}", host=f"127.0.0.1:{port}")
        raw.send(request.serialize())
        async with asyncio.timeout(STEP):
            head = await raw.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        assert status == (101 if is_valid_name(seen) else 400), (seen, head[:60])
        for event in arena.lab.events:  # nothing the client chose reaches a log raw
            assert "\r" not in event.message and "\n" not in event.message, event
        await arena.settle(raw, joined=False)


class TestControlFloods:
    """Pings and pongs, many at once from a member that reads nothing meanwhile: up to the burst they are
    answered (pings) or ignored (pongs); one more closes 1008, and no pong is owed beyond the burst."""

    BURST = 6
    SETTINGS: ClassVar[dict[str, Any]] = {"rate": 0.01, "burst": BURST}
    SENTINEL_SPEAKS = False

    @CASES
    @given(
        pings=st.integers(0, 3 * BURST),
        pongs=st.integers(0, 2 * BURST),
        size=st.integers(0, 125),
    )
    def test_control_frames_count_against_the_burst(
        self, arena: Arena, pings: int, pongs: int, size: int
    ) -> None:
        arena.run(self.case(arena, pings, pongs, size))

    async def case(self, arena: Arena, pings: int, pongs: int, size: int) -> None:
        raw = await arena.mallory()
        frames = [Frame(Opcode.PONG, b"p" * size, mask_key=b"abcd")] * pongs
        frames += [Frame(Opcode.PING, b"q" * size, mask_key=b"abcd")] * pings
        raw.send(b"".join(f.serialize() for f in frames))
        over = pings + pongs > self.BURST
        if not over:
            got = [await raw.next_frame() for _ in range(pings)]
            assert all(f is not None and f.opcode is Opcode.PONG for f in got), got
        else:
            answered = []
            while True:
                frame = await raw.next_frame()
                assert frame is not None
                if frame.opcode is Opcode.CLOSE:
                    assert frame.close_code == CloseCode.POLICY_VIOLATION
                    break
                answered.append(frame)
            assert all(f.opcode is Opcode.PONG for f in answered)
            assert len(answered) <= max(0, self.BURST - pongs), (pings, pongs, len(answered))
        await arena.settle(raw, joined=True)


class TestCompressionOffers:
    """Whatever ``permessage-deflate`` offer a client makes, the chat does not negotiate compression (a
    compressed frame could inflate to ``ws_max_size`` from a few bytes), and an RSV1 frame is 1002."""

    @CASES
    @given(
        params=st.lists(
            st.sampled_from(
                [
                    "client_max_window_bits",
                    "client_max_window_bits=9",
                    "server_max_window_bits=15",
                    "server_no_context_takeover",
                    "client_no_context_takeover",
                ]
            ),
            max_size=3,
        ),
        compressed=st.binary(min_size=1, max_size=40),
    )
    def test_compression_is_never_negotiated(
        self, arena: Arena, params: list[str], compressed: bytes
    ) -> None:
        arena.run(self.case(arena, params, compressed))

    async def case(self, arena: Arena, params: list[str], compressed: bytes) -> None:
        await arena.clean_slate()
        port = arena.server.port
        raw = await Raw.open(port)
        offer = "; ".join(["permessage-deflate", *params])
        request = HandshakeRequest(
            path=LOBBY, host=f"127.0.0.1:{port}", extra_headers=[("Sec-WebSocket-Extensions", offer)]
        )
        raw.send(request.serialize())
        async with asyncio.timeout(STEP):
            head = await raw.reader.readuntil(b"\r\n\r\n")
        assert b" 101 " in head and b"sec-websocket-extensions" not in head.lower(), head
        await raw.auth(arena.token)
        frame = Frame(Opcode.TEXT, compressed, mask_key=b"abcd").serialize()
        raw.send(bytes([frame[0] | 0x40]) + frame[1:])  # RSV1: "this frame is compressed"
        assert await raw.close_code() == CloseCode.PROTOCOL_ERROR
        await arena.settle(raw, joined=True)
