"""The reference chat app (wslab.chat), served by a Lab and driven by real clients.

Each test reads like a lesson: alice, bob and carol connect, do something, and we assert on what each
of them received, on how connections closed, and on the server's own view (``app.state.chat``).
Every test ends with everyone gone and asserts that no room membership leaked.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import pytest
from support.chat import SECRET, chat_settings, join, start, token
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wslab import Lab
from wslab.chat import ConnectionManager, TokenBucket, issue_token, verify_token
from wslab.chat.auth import TokenExpired, TokenInvalid
from wslab.chat.origins import origin_allowed
from wslab.chat.protocol import ProtocolViolation, parse_client_message
from wslab.chat.session import ChatSession, State
from wslab.clients import LabClient
from wslab.lessons import StalledClient, until
from wslab.wire import CloseCode

pytestmark = pytest.mark.anyio

LOBBY = "/ws/chat/lobby"


async def everyone_leaves(manager: ConnectionManager, *clients: LabClient) -> None:
    """Close every client and assert that no membership leaked: every room is gone."""
    for client in clients:
        await client.close()
    await until(lambda: manager.rooms == {})


def seqs(client: LabClient) -> list[int]:
    return [json.loads(m)["seq"] for m in client.received if isinstance(m, str)]


# --- rooms, fan-out, direct messages, ordering -----------------------------------------------------


async def test_rooms_notices_broadcast_dm_and_seq() -> None:
    async with Lab() as lab:
        server, manager = await start(lab)
        alice = await join(lab, server, "alice")
        bob = await join(lab, server, "bob")
        assert bob.received and json.loads(bob.received[0])["members"] == ["alice", "bob"]
        joined = await alice.recv_json()
        assert (joined["type"], joined["user"]) == ("joined", "bob")  # alice sees bob join...
        carol = await join(lab, server, "carol", room="garden")
        await alice.expect_silence(0.1)  # ...but nobody in the lobby sees carol join the garden
        await bob.expect_silence(0.01)
        assert manager.rooms == {"lobby": ["alice", "bob"], "garden": ["carol"]}

        await alice.send_json({"type": "say", "text": "hello"})
        for client in (alice, bob):
            msg = await client.recv_json()
            assert (msg["type"], msg["from"], msg["text"]) == ("message", "alice", "hello")
        await carol.expect_silence(0.1)

        await alice.send_json({"type": "say", "text": "not to myself", "exclude_self": True})
        assert (await bob.recv_json())["text"] == "not to myself"
        await alice.expect_silence(0.1)

        await bob.send_json({"type": "dm", "to": "alice", "text": "psst"})
        dm = await alice.recv_json()
        assert (dm["type"], dm["from"], dm["text"]) == ("dm", "bob", "psst")
        await bob.expect_silence(0.1)
        await carol.expect_silence(0.01)

        await bob.send_json({"type": "dm", "to": "carol", "text": "carol is in another room"})
        error = await bob.recv_json()
        assert (error["type"], error["reason"]) == ("error", "unknown_user")
        await carol.expect_silence(0.1)

        await bob.close()
        left = await alice.recv_json()
        assert (left["type"], left["user"]) == ("left", "bob")
        await carol.close()
        await until(lambda: manager.rooms == {"lobby": ["alice"]})  # the empty garden is gone

        for client in (alice, bob, carol):
            assert seqs(client) == sorted(set(seqs(client))), (client.name, seqs(client))
        assert seqs(alice)[-1] == manager.seq("lobby")
        await everyone_leaves(manager, alice)


async def test_malformed_messages_get_an_error_and_the_connection_survives() -> None:
    async with Lab() as lab:
        server, manager = await start(lab)
        alice = await join(lab, server, "alice")
        bad = [
            ("not json", "bad_json"),
            ("[1, 2]", "bad_json"),
            ('{"text": "no type"}', "unknown_type"),
            ('{"type": "shout", "text": "x"}', "unknown_type"),
            ('{"type": "say"}', "invalid_message"),
            ('{"type": "say", "text": 42}', "invalid_message"),
            ('{"type": "dm", "text": "to nobody"}', "invalid_message"),
            ('{"type": "auth", "token": "again"}', "unexpected"),
        ]
        for payload, reason in bad:
            await alice.send(payload)
            error = await alice.recv_json()
            assert (error["type"], error["reason"]) == ("error", reason), (payload, error)
            assert error["detail"]
        await alice.send_json({"type": "pong"})  # accepted, needs no answer
        await alice.expect_silence(0.05)
        await alice.send_json({"type": "say", "text": "still here"})
        assert (await alice.recv_json())["text"] == "still here"
        assert not alice.closed and manager.rooms == {"lobby": ["alice"]}
        await everyone_leaves(manager, alice)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b'{"type": "say", "text": "as bytes"}', CloseCode.UNSUPPORTED_DATA),
        ("x" * 5000, CloseCode.MESSAGE_TOO_BIG),
    ],
    ids=["binary-1003", "oversize-1009"],
)
async def test_binary_and_oversized_messages_close_the_connection(
    payload: str | bytes, code: CloseCode
) -> None:
    async with Lab() as lab:
        server, manager = await start(lab)
        alice = await join(lab, server, "alice")
        bob = await join(lab, server, "bob")
        await alice.recv_json()  # bob joined
        await bob.send(payload)
        await bob.wait_closed()
        assert bob.close_code == code, bob.closed_as
        left = await alice.recv_json()
        assert (left["type"], left["user"]) == ("left", "bob")
        await everyone_leaves(manager, alice)


async def test_flood_is_closed_4008_and_the_others_keep_receiving() -> None:
    async with Lab() as lab:
        server, manager = await start(lab, rate=20.0, burst=10)
        alice = await join(lab, server, "alice")
        bob = await join(lab, server, "bob")
        mallory = await join(lab, server, "mallory")
        try:
            for i in range(200):
                await mallory.send_json({"type": "say", "text": f"spam {i}", "exclude_self": True})
        except ConnectionClosed:
            pass  # the server stopped listening
        await mallory.wait_closed()
        assert mallory.close_code == CloseCode.RATE_LIMITED, mallory.closed_as
        await until(lambda: manager.rooms == {"lobby": ["alice", "bob"]})
        await alice.send_json({"type": "say", "text": "quiet again"})
        for client in (alice, bob):
            received = []
            while not received or received[-1].get("text") != "quiet again":
                received.append(await client.recv_json())
            spam = [m for m in received if m.get("from") == "mallory"]
            assert 1 <= len(spam) <= 10, len(spam)  # the burst got through, then nothing more
            assert {"type": "left", "user": "mallory"} in [
                {k: m.get(k) for k in ("type", "user")} for m in received
            ]
        assert lab.events.table(source="chat", kind="closed")
        await everyone_leaves(manager, alice, bob)


# --- authentication, origin, expiry ---------------------------------------------------------------


async def test_no_auth_in_time_closes_4001_and_never_joins() -> None:
    async with Lab() as lab:
        server, manager = await start(lab, auth_timeout=0.2)
        silent = await lab.connect(server.ws_url(LOBBY), name="silent")
        started = time.monotonic()
        await silent.wait_closed()
        assert silent.close_code == CloseCode.UNAUTHORIZED, silent.closed_as
        assert 0.15 < time.monotonic() - started < 1.5
        # speaking before authenticating does not help either
        eager = await lab.connect(server.ws_url(LOBBY), name="eager")
        await eager.send_json({"type": "say", "text": "let me in"})
        await eager.wait_closed()
        assert eager.close_code == CloseCode.UNAUTHORIZED, eager.closed_as
        assert silent.received == [] and eager.received == []
        # never a member: nothing was queued for anyone, nobody joined
        assert manager.rooms == {} and manager.stats.enqueued == 0
        assert not lab.events.table(source="chat", kind="joined").rows
        assert len(lab.events.table(source="chat", kind="auth_failed").rows) == 2


@pytest.mark.parametrize(
    ("bad_token", "code"),
    [
        ("not-a-jwt", CloseCode.UNAUTHORIZED),
        (issue_token("alice", "some-other-secret-0123456789abcdef", 60), CloseCode.UNAUTHORIZED),
        (issue_token("alice", SECRET, 60, now=time.time() - 120), CloseCode.TOKEN_EXPIRED),
    ],
    ids=["garbage", "wrong-secret", "expired"],
)
async def test_bad_token_is_refused(bad_token: str, code: CloseCode) -> None:
    async with Lab() as lab:
        server, manager = await start(lab)
        alice = await lab.connect(server.ws_url(LOBBY), name="alice")
        await alice.send_json({"type": "auth", "token": bad_token})
        await alice.wait_closed()
        assert alice.close_code == code, alice.closed_as
        assert alice.received == [] and manager.rooms == {} and manager.stats.enqueued == 0


async def test_foreign_origin_is_rejected_before_the_handshake_completes() -> None:
    async with Lab() as lab:
        server, manager = await start(lab, allowed_origins={"https://chat.example"})
        with pytest.raises(InvalidStatus) as rejected:
            await lab.connect(server.ws_url(LOBBY), name="evil", origin="http://evil.example")
        assert rejected.value.response.status_code == 403
        assert lab.events.table(source="chat", kind="rejected").rows
        # the allowlisted site, the app's own origin, and non-browser clients (no Origin) get in
        allowed = await join(lab, server, "alice", origin="https://chat.example")
        same = await join(lab, server, "bob", origin=server.url)
        script = await join(lab, server, "carol")
        assert manager.rooms == {"lobby": ["alice", "bob", "carol"]}
        await everyone_leaves(manager, allowed, same, script)


async def test_token_expiry_closes_an_open_socket_4002() -> None:
    async with Lab() as lab:
        server, manager = await start(lab)
        bob = await join(lab, server, "bob")
        alice = await lab.connect(server.ws_url(LOBBY), name="alice")
        await alice.send_json({"type": "auth", "token": token("alice", ttl=0.3)})
        assert (await alice.recv_json())["type"] == "ready"
        await alice.wait_closed(timeout=2)
        assert alice.close_code == CloseCode.TOKEN_EXPIRED, alice.closed_as
        notices = [(await bob.recv_json())["type"], (await bob.recv_json())["type"]]
        assert notices == ["joined", "left"]
        await everyone_leaves(manager, bob)


async def test_reauth_before_expiry_extends_the_session() -> None:
    async with Lab() as lab:
        server, manager = await start(lab)
        alice = await lab.connect(server.ws_url(LOBBY), name="alice")
        await alice.send_json({"type": "auth", "token": token("alice", ttl=0.4)})
        assert (await alice.recv_json())["type"] == "ready"
        # a token for someone else, or one that does not expire later, cannot extend the session
        await alice.send_json({"type": "reauth", "token": token("bob", ttl=5)})
        assert (await alice.recv_json())["reason"] == "bad_token"
        await alice.send_json({"type": "reauth", "token": token("alice", ttl=3)})
        reauthed = await alice.recv_json()
        assert reauthed["type"] == "reauthed" and 2 < reauthed["expires_in"] <= 3
        await asyncio.sleep(0.5)  # past the first token's expiry
        await alice.send_json({"type": "say", "text": "still in"})
        assert (await alice.recv_json())["text"] == "still in"
        assert not alice.closed
        await everyone_leaves(manager, alice)


# --- a stalled consumer ---------------------------------------------------------------------------


async def test_a_stalled_consumer_is_evicted_4009_and_the_room_keeps_going() -> None:
    async with Lab() as lab:
        server, manager = await start(lab, queue_size=16, max_message_bytes=8192)
        alice = await join(lab, server, "alice")
        bob = await join(lab, server, "bob")
        stalled = await StalledClient.join(server.port, "stalled", secret=SECRET)
        try:
            sent: list[str] = []
            # random text: nothing compresses it, so it really fills the buffers (catalogue F06)
            while not manager.evictions and len(sent) < 3000:
                for _ in range(20):
                    text = os.urandom(1500).hex()
                    await alice.send_json({"type": "say", "text": text, "exclude_self": True})
                    sent.append(text)
                await asyncio.sleep(0.01)
            assert [(e.user, e.room) for e in manager.evictions] == [("stalled", "lobby")]
            assert manager.stats.evictions == 1
            for _ in range(20):  # the room goes on after the eviction
                sent.append(os.urandom(1500).hex())
                await alice.send_json({"type": "say", "text": sent[-1], "exclude_self": True})

            got: list[str] = []
            others: list[dict[str, Any]] = []
            while len(got) < len(sent):
                msg = await bob.recv_json()
                if msg["type"] == "message":
                    got.append(msg["text"])
                else:
                    others.append(msg)
            assert got == sent  # everything, in order, none lost
            assert [(m["type"], m["user"]) for m in others] == [("joined", "stalled"), ("left", "stalled")]
            assert seqs(bob) == sorted(set(seqs(bob)))

            backlog, code = await stalled.read_until_close()
            assert code == CloseCode.SLOW_CONSUMER
            assert 0 < len(backlog) < len(sent)  # it got what fit in the buffers, then was cut off
            assert [m["seq"] for m in backlog] == sorted(m["seq"] for m in backlog)
        finally:
            stalled.close()
        assert lab.events.table(source="chat", kind="evicted").rows
        await everyone_leaves(manager, alice, bob)


# --- the small parts, without a server ------------------------------------------------------------


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(rate=2, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5  # one token back at 2/s
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 60  # a long pause refills to the burst, not beyond
    assert sum(bucket.take() for _ in range(10)) == 3


def test_tokens_tell_expired_from_invalid() -> None:
    t = issue_token("alice", SECRET, ttl=10, now=1000.0)
    assert verify_token(t, SECRET, now=1005.0).user == "alice"
    assert verify_token(t, SECRET, now=1009.5).expires_in(1009.5) == pytest.approx(0.5)
    with pytest.raises(TokenExpired):
        verify_token(t, SECRET, now=1010.0)
    with pytest.raises(TokenInvalid):
        verify_token(t, "another-secret-0123456789abcdef-xyz", now=1005.0)
    with pytest.raises(TokenInvalid):
        verify_token(t[:-2], SECRET, now=1005.0)


def test_origin_rules() -> None:
    settings = chat_settings(allowed_origins={"https://chat.example"})
    assert origin_allowed(None, "127.0.0.1:8000", settings)  # a script, not a browser
    assert origin_allowed("https://chat.example", "127.0.0.1:8000", settings)
    assert origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000", settings)  # the app's own page
    assert not origin_allowed("http://127.0.0.1:8001", "127.0.0.1:8000", settings)
    assert not origin_allowed("http://evil.example", "127.0.0.1:8000", settings)
    assert not origin_allowed("null", "127.0.0.1:8000", settings)
    strict = chat_settings(allow_missing_origin=False, allow_same_origin=False)
    assert not origin_allowed(None, "h", strict) and not origin_allowed("http://h", "h", strict)


def test_protocol_violations_name_the_problem() -> None:
    with pytest.raises(ProtocolViolation) as info:
        parse_client_message('{"type": "say", "text": "hi", "colour": "red"}')
    assert info.value.reason == "invalid_message" and "colour" in info.value.detail
    assert parse_client_message('{"type": "dm", "to": "bob", "text": "hi"}').to == "bob"


def test_the_connection_state_machine_refuses_illegal_moves() -> None:
    session = ChatSession.__new__(ChatSession)
    session.state = State.AWAIT_AUTH
    with pytest.raises(RuntimeError, match="AWAIT_AUTH -> AWAIT_AUTH"):
        session._move(State.AWAIT_AUTH)
    session._move(State.READY)
    session._move(State.CLOSED)
    with pytest.raises(RuntimeError, match="CLOSED -> READY"):
        session._move(State.READY)
