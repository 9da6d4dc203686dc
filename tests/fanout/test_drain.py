"""wslab.drain: a server that tells each client when to come back, and a client that listens."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from wslab import Lab
from wslab.backoff import FixedBackoff
from wslab.chat import ChatSettings, create_app, issue_token
from wslab.clients import ClientState
from wslab.drain import DrainAwareClient, DrainMiddleware, HintedBackoff, format_retry_hint, parse_retry_hint
from wslab.storm import AcceptCounter
from wslab.wire import CloseCode

pytestmark = pytest.mark.anyio

SECRET = "wslab-drain-test-secret-0123456789abcdef"


async def eventually(check, timeout: float = 3.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def test_hints_round_trip_and_other_reasons_are_not_hints() -> None:
    assert format_retry_hint(3.2) == "drain:retry_in=3.200"
    assert parse_retry_hint(format_retry_hint(3.2)) == pytest.approx(3.2)
    for reason in (None, "", "going away", "drain:retry_in=", "drain:retry_in=-1", "drain:retry_in=1s"):
        assert parse_retry_hint(reason) is None
    with pytest.raises(ValueError):
        format_retry_hint(-1)


def test_a_hint_replaces_one_delay_then_the_policy_resumes() -> None:
    policy = HintedBackoff(FixedBackoff(0.5))
    assert policy.delay(0) == 0.5
    policy.hint = 7.0
    assert [policy.delay(0), policy.delay(1)] == [7.0, 0.5]
    assert policy.used == [7.0]


async def test_drain_closes_every_socket_with_1012_and_its_own_hint() -> None:
    async with Lab() as lab:
        drain = DrainMiddleware(AcceptCounter(), rng=random.Random(0))
        server = await lab.serve(drain, name="svc")
        clients = [await lab.connect(server.ws_url("/ws"), name=f"c{i}") for i in range(5)]
        await eventually(lambda: drain.open_sockets == 5)
        hints = await drain.drain(after=2.0, spread=4.0)
        for client in clients:
            await client.wait_closed()
        assert [c.close_code for c in clients] == [CloseCode.SERVICE_RESTART] * 5
        received = [parse_retry_hint(c.close_reason) for c in clients]
        assert received == pytest.approx(hints) and len(set(hints)) == 5
        assert all(2.0 <= h <= 6.0 for h in hints)
        await eventually(lambda: drain.open_sockets == 0)


async def test_a_draining_chat_ends_its_sessions_cleanly() -> None:
    async with Lab() as lab:
        app = create_app(ChatSettings(secret=SECRET))
        drain = DrainMiddleware(app)
        server = await lab.serve(drain, name="chat")
        alice = await lab.connect(server.ws_url("/ws/chat/lobby"), name="alice")
        await alice.send_json({"type": "auth", "token": issue_token("alice", SECRET, 60)})
        assert (await alice.recv_json())["type"] == "ready"
        assert len(await drain.drain(after=1.0, spread=1.0)) == 1
        await alice.wait_closed()
        assert parse_retry_hint(alice.close_reason) is not None
        await eventually(lambda: app.state.chat.rooms == {})
        started = time.monotonic()
        await server.stop()
        assert time.monotonic() - started < 1.0  # nothing left to wait for


async def test_the_drain_aware_client_waits_for_the_hint() -> None:
    async with Lab() as lab:
        drain = DrainMiddleware(AcceptCounter(), rng=random.Random(1))
        server = await lab.serve(drain, name="svc")
        client = DrainAwareClient(server.ws_url("/ws"), "c", lab.events, policy=FixedBackoff(0.01)).start()
        try:
            await client.wait_for_state(ClientState.OPEN)
            [hint] = await drain.drain(after=0.3, spread=0.0)
            closed_at = time.monotonic()
            await eventually(lambda: client.connections == 2)
            assert time.monotonic() - closed_at >= 0.3
            assert client.policy.used == [pytest.approx(hint)]  # type: ignore[attr-defined]
            assert client.close_codes == [CloseCode.SERVICE_RESTART]
            assert lab.events.count(source="client:c", kind="hint") == 1
        finally:
            await client.close()
