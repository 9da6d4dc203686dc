"""Logout everywhere (F28): revoked tokens stop new sockets, and the sockets already open are closed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from support.chat import SECRET, chat_settings, join, logout, start, token

from wslab import Lab
from wslab.chat import ConnectionManager, create_app, issue_token
from wslab.chat.auth import Claims, Revocations
from wslab.chat.protocol import Resume
from wslab.chat.rooms import Member
from wslab.clients import LabClient
from wslab.lessons import until

pytestmark = pytest.mark.anyio


async def still_talks(client: LabClient) -> bool:
    """True if ``client`` can still say something and hear it back."""
    await client.send_json({"type": "say", "text": "still here"})
    while (message := await client.recv_json()).get("type") != "message":
        pass
    return bool(message["text"] == "still here")


def test_a_revocation_voids_the_tokens_issued_until_then() -> None:
    revocations = Revocations()
    before, after = Claims("alice", 2000.0, 1000.0), Claims("alice", 2000.0, 1000.5)
    assert not revocations.is_revoked(before)
    revocations.revoke("alice", now=1000.2)
    assert revocations.is_revoked(before) and not revocations.is_revoked(after)
    assert revocations.is_revoked(Claims("alice", 2000.0))  # no iat: issued at the beginning of time
    assert not revocations.is_revoked(Claims("bob", 2000.0, 1000.0))
    revocations.revoke("alice", now=900.0)  # an older revocation never shortens a newer one
    assert revocations.is_revoked(before)


async def test_logout_closes_every_open_socket_of_the_user_and_refuses_the_old_token() -> None:
    async with Lab() as lab:
        server, manager = await start(lab)
        old_token = token("alice")
        phone = await join(lab, server, "alice", room="lobby")
        laptop = await lab.connect(server.ws_url("/ws/chat/ops"), name="alice-laptop")
        await laptop.send_json({"type": "auth", "token": token("alice")})
        assert (await laptop.recv_json())["type"] == "ready"
        bob = await join(lab, server, "bob", room="lobby")
        status, body = await logout(server, old_token)
        assert (status, body) == (200, {"user": "alice", "connections_closed": 2})
        for client in (phone, laptop):
            assert await client.wait_closed(2) == "4001 UNAUTHORIZED 'token revoked: logged out'"
        await until(lambda: manager.rooms == {"lobby": ["bob"]})
        await bob.send_json({"type": "say", "text": "still here"})  # nobody else was touched
        while (message := await bob.recv_json())["type"] != "message":
            assert message["type"] == "left" and message["user"] == "alice", message
        assert message["text"] == "still here"

        again = await lab.connect(server.ws_url("/ws/chat/lobby"), name="alice-again")
        await again.send_json({"type": "auth", "token": old_token})  # a copy of the old token: refused
        assert await again.wait_closed(2) == "4001 UNAUTHORIZED 'token revoked'"
        await asyncio.sleep(0.01)
        fresh = await join(lab, server, "alice")  # logging in again issues a newer token: welcome back
        await lab.events.wait_for(source="chat", kind="revoked", contains="alice")
        await fresh.close()
        await bob.close()


async def test_logout_needs_a_valid_token_and_logs_out_only_its_owner() -> None:
    async with Lab() as lab:
        server, manager = await start(lab)
        alice = await join(lab, server, "alice")
        assert (await logout(server, "not-a-token"))[0] == 401
        assert (await logout(server, token("alice", secret="another-secret-0123456789abcdef-x")))[0] == 401
        status, body = await logout(server, token("mallory"))  # mallory can only log herself out
        assert (status, body) == (200, {"user": "mallory", "connections_closed": 0})
        await alice.send_json({"type": "say", "text": "unaffected"})
        assert (await alice.recv_json())["text"] == "unaffected"
        assert manager.rooms == {"lobby": ["alice"]}
        await alice.close()


async def test_a_recently_expired_token_can_still_log_out_an_old_one_cannot() -> None:
    async with Lab() as lab:
        server, manager = await start(lab)  # token_ttl 900 s
        assert (await logout(server, token("alice", ttl=-2000)))[0] == 401  # expired 2000 s ago
        assert not manager.revocations.is_revoked(Claims("alice", time.time() + 60, time.time() - 1))
        status, body = await logout(server, token("alice", ttl=-10))  # a tab left open overnight
        assert (status, body) == (200, {"user": "alice", "connections_closed": 0})
        assert manager.revocations.is_revoked(Claims("alice", time.time() + 60, time.time() - 1))


async def test_a_revoked_token_cannot_log_its_owner_out_again() -> None:
    async with Lab() as lab:
        server, _ = await start(lab)
        stolen = token("alice")
        assert (await logout(server, stolen))[0] == 200  # alice logs out; a thief kept a copy
        await asyncio.sleep(0.01)
        alice = await join(lab, server, "alice")  # she logs in again
        assert (await logout(server, stolen))[0] == 401  # the copy cannot end her new session
        assert await still_talks(alice)
        await alice.close()


async def test_reauth_with_a_revoked_token_is_refused_and_the_socket_keeps_its_own() -> None:
    async with Lab() as lab:
        server, _ = await start(lab)
        old = issue_token("alice", SECRET, 3600, now=time.time() - 1)  # issued before the logout
        assert (await logout(server, old))[0] == 200
        await asyncio.sleep(0.01)
        alice = await join(lab, server, "alice")  # a token issued after it (60 s)
        await alice.send_json({"type": "reauth", "token": old})  # expires later, but is revoked
        error = await alice.recv_json()
        assert (error["type"], error["reason"]) == ("error", "bad_token") and "revoked" in error["detail"]
        assert await still_talks(alice)
        await alice.close()


class SlowJoinManager(ConnectionManager):
    """Joins after a pause, as a fan-out manager does while it waits for Redis (subscribe, catch up)."""

    def __init__(self) -> None:
        super().__init__()
        self.joining = asyncio.Event()

    @contextlib.asynccontextmanager
    async def membership(self, room: str, user: str, resume: Resume | None = None) -> AsyncIterator[Member]:
        self.joining.set()
        await asyncio.sleep(0.2)
        async with super().membership(room, user, resume) as member:
            yield member


async def test_a_logout_while_the_socket_is_joining_closes_it_before_anything_is_sent() -> None:
    async with Lab() as lab:
        manager = SlowJoinManager()
        server = await lab.serve(create_app(chat_settings(), rooms=manager), name="slow")
        bearer = token("alice")
        client = await lab.connect(server.ws_url("/ws/chat/lobby"), name="alice")
        await client.send_json({"type": "auth", "token": bearer})
        await manager.joining.wait()  # authenticated, not yet in the room
        assert await logout(server, bearer) == (200, {"user": "alice", "connections_closed": 0})
        assert await client.wait_closed(2) == "4001 UNAUTHORIZED 'token revoked'"
        assert client.received == []  # not even its "ready"
