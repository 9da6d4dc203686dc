"""Sends that survive a reconnect: connections cut during sends, every message delivered exactly once.

The sender talks to the reference chat through the lab's relay (``FaultProxy``), which cuts every
connection (a TCP reset) again and again while messages are in flight; a receiver connected directly
counts what reaches the room. Three things must hold together, and each test shows the one that fails
without them:

- the client keeps each message until the server's ``ack`` and sends it again after a reconnect
  (without that, a cut loses messages: the control below);
- the server recognises a ``msg_id`` it has already broadcast and only acks it again (without that, a
  message whose ack was lost arrives twice);
- both clients (Python's ``ReconnectingClient`` and the browser's ``ReconnectingWebSocket``) do it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from wslab import Lab
from wslab.backoff import FullJitterBackoff
from wslab.chat import ChatSettings, create_app, issue_token
from wslab.clients import ClientState, LabClient, ReconnectingClient
from wslab.netem import FaultProxy

pytestmark = pytest.mark.anyio

FAST = FullJitterBackoff(base=0.005, cap=0.02)
SETTINGS = ChatSettings(rate=1e6, burst=10**6)  # a burst of sends is the point here, not rate limiting


@contextlib.asynccontextmanager
async def chat_behind_a_relay() -> AsyncIterator[tuple[Lab, Any, FaultProxy, LabClient]]:
    """The chat, a relay in front of it for the sender, and a receiver connected directly."""
    async with Lab() as lab:
        app = create_app(SETTINGS)
        server = await lab.serve(app, name="chat")
        relay = await lab.proxy(server, name="relay")
        receiver = await lab.connect(server.ws_url("/ws/chat/lobby"), name="receiver")
        await receiver.send_json({"type": "auth", "token": issue_token("receiver", SETTINGS.secret, 600)})
        assert (await receiver.recv_json())["type"] == "ready"
        yield lab, app, relay, receiver


async def sender(lab: Lab, relay: FaultProxy) -> ReconnectingClient:
    token = issue_token("alice", SETTINGS.secret, 600)
    client = await lab.connect_reconnecting(
        relay.ws_url("/ws/chat/lobby"), name="alice", token=token, policy=FAST, stable_after=0
    )
    await client.wait_for_state(ClientState.OPEN)
    return client


async def texts_received(receiver: LabClient, expected: int, timeout: float = 10) -> Counter[str]:
    """How many times each ``say`` text reached the receiver, once ``expected`` distinct ones did."""
    counts: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(counts) < expected and loop.time() < deadline:
        with contextlib.suppress(TimeoutError):
            message = await receiver.recv_json(timeout=0.2)
            if message["type"] == "message":
                counts[message["text"]] += 1
    with contextlib.suppress(TimeoutError):  # and a little longer: a duplicate may still be on its way
        while True:
            message = await receiver.recv_json(timeout=0.2)
            if message["type"] == "message":
                counts[message["text"]] += 1
    return counts


async def next_say(client: LabClient | ReconnectingClient, timeout: float = 5) -> Any:
    """The next ``message`` the client gets (skipping ready, joined, left)."""
    while True:
        message = await client.recv_json(timeout=timeout)
        if message["type"] == "message":
            return message


async def cut_repeatedly(relay: FaultProxy, every: float, stop: asyncio.Event) -> int:
    cuts = 0
    while not stop.is_set():
        await asyncio.sleep(every)
        await relay.reset()
        cuts += 1
    return cuts


async def test_cuts_during_sends_lose_nothing_and_duplicate_nothing() -> None:
    async with chat_behind_a_relay() as (lab, app, relay, receiver):
        alice = await sender(lab, relay)
        stop = asyncio.Event()
        cutter = asyncio.create_task(cut_repeatedly(relay, 0.02, stop))
        ids = []
        for n in range(200):
            ids.append(await alice.deliver({"type": "say", "text": f"m{n}", "exclude_self": True}))
            await asyncio.sleep(0.001)
        stop.set()
        cuts = await cutter
        for msg_id in ids:
            await alice.acked(msg_id, timeout=10)
        counts = await texts_received(receiver, 200)

        assert cuts >= 5 and alice.connections >= 5  # the connection really was cut, many times
        assert alice.resent > 0  # and messages really were in flight when it was
        assert sorted(counts) == sorted(f"m{n}" for n in range(200))  # nothing lost...
        assert set(counts.values()) == {1}  # ...nothing twice
        assert alice.pending == 0
        assert app.state.chat.recent_ids.duplicates == alice.duplicate_acks


async def test_a_lost_ack_is_a_retry_the_server_recognises() -> None:
    async with chat_behind_a_relay() as (lab, app, relay, receiver):
        alice = await sender(lab, relay)
        relay.delay = 0.2  # every chunk is held 200 ms in the relay, both ways
        msg_id = await alice.deliver({"type": "say", "text": "exactly once", "exclude_self": True})
        assert (await next_say(receiver))["text"] == "exactly once"  # the say reached the room...
        await relay.reset()  # ...and its ack, still held in the relay, dies with the connection
        relay.delay = 0
        await alice.acked(msg_id, timeout=5)

        assert alice.connections == 2 and alice.resent == 1 and alice.duplicate_acks == 1
        assert app.state.chat.recent_ids.duplicates == 1
        with pytest.raises(TimeoutError):
            await next_say(receiver, timeout=0.3)  # the retry was not broadcast again


async def test_without_acks_a_cut_loses_what_was_in_flight() -> None:
    # The control: the same cut with fire-and-forget sends. This is what the two tests above prevent.
    async with chat_behind_a_relay() as (lab, _, relay, receiver):
        alice = await sender(lab, relay)
        relay.delay = 0.2
        await alice.send_json({"type": "say", "text": "lost", "exclude_self": True})
        await asyncio.sleep(0.05)  # still inside the relay
        await relay.reset()
        relay.delay = 0
        await alice.wait_for_state(ClientState.OPEN, timeout=5)
        with pytest.raises(TimeoutError):
            await next_say(receiver, timeout=0.4)
        assert alice.resent == 0 and alice.pending == 0


async def test_a_say_without_msg_id_gets_no_ack_as_before() -> None:
    async with chat_behind_a_relay() as (lab, _, relay, receiver):
        alice = await sender(lab, relay)
        await alice.send_json({"type": "say", "text": "plain"})
        assert (await next_say(alice))["text"] == "plain"  # the echo
        assert (await next_say(receiver))["text"] == "plain"
        await asyncio.sleep(0.3)
        assert lab.events.count(source="client:alice", kind="ack") == 0
        assert not [m for m in alice.received if m.get("type") == "ack"]


async def test_the_browser_client_delivers_exactly_once_through_cuts() -> None:
    from wslab.browser import CLIENT_PAGE, chromium, open_client_page, with_pages

    async with Lab() as lab, chromium() as browser:
        app = create_app(SETTINGS)
        site = await lab.serve(with_pages(app, {"/client": CLIENT_PAGE}), name="site")
        relay = await lab.proxy(site, name="relay")
        receiver = await lab.connect(site.ws_url("/ws/chat/lobby"), name="receiver")
        await receiver.send_json({"type": "auth", "token": issue_token("receiver", SETTINGS.secret, 600)})
        assert (await receiver.recv_json())["type"] == "ready"

        page = await open_client_page(browser, relay.url)
        options = {
            "base": 0.005,
            "cap": 0.02,
            "stableAfter": 0,
            "token": issue_token("alice", SETTINGS.secret, 600),
        }
        await page.evaluate("([path, options]) => start(path, options)", ["/ws/chat/lobby", options])
        await page.wait_for_function("client.state === 'open'", polling=10, timeout=10_000)
        stop = asyncio.Event()
        cutter = asyncio.create_task(cut_repeatedly(relay, 0.03, stop))
        await page.evaluate(
            """async () => {
                const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
                const sent = [];
                for (let n = 0; n < 100; n++) {
                    sent.push(client.deliver({ type: "say", text: `b${n}`, exclude_self: true }));
                    await sleep(2);
                }
                window.done = Promise.all(sent);
            }"""
        )
        stop.set()
        cuts = await cutter
        await page.evaluate("done")  # every message acknowledged
        counts = await texts_received(receiver, 100)
        resent, duplicate_acks, pending, connections = await page.evaluate(
            "[client.resent, client.duplicateAcks, client.pending, client.connections]"
        )
        await page.close()

        assert cuts >= 3 and connections >= 3 and resent > 0
        assert sorted(counts) == sorted(f"b{n}" for n in range(100)) and set(counts.values()) == {1}
        # Every duplicate ack the client got, the server counted; the server may count more: an ack sent
        # on a connection that is cut before the client reads it is lost, and the client resends again.
        assert pending == 0 and app.state.chat.recent_ids.duplicates >= duplicate_acks
