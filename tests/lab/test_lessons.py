"""wslab.lessons: the helpers notebooks and tests share, on a real chat server and real sockets."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from wslab import Lab
from wslab.chat import ChatSettings, create_app, issue_token
from wslab.lessons import (
    RawPeer,
    StalledClient,
    capture_logs,
    chat_texts,
    hears,
    join_chat,
    post_json,
    reporter,
    small_send_buffer,
    until,
)
from wslab.wire import CloseCode

pytestmark = pytest.mark.anyio

SECRET = "wslab-lessons-test-secret-0123456789abcdef"


async def test_join_chat_authenticates_and_says_why_it_could_not() -> None:
    async with Lab() as lab:
        app = create_app(ChatSettings(secret=SECRET), report=reporter(lab.events, "chat"))
        server = await lab.serve(app, name="chat")
        alice = await join_chat(lab, server, "alice", secret=SECRET)
        lobby = server.ws_url("/ws/chat/lobby")
        bob = await join_chat(lab, lobby, "bob", token=issue_token("bob", SECRET, 60))
        await alice.send_json({"type": "say", "text": "hi bob"})
        assert await hears(bob, "hi bob", quiet=2.0)
        assert not await hears(bob, "never said", quiet=0.1)
        assert chat_texts(alice) == ["hi bob"]
        assert lab.events.count(source="chat", kind="joined") == 2  # the reporter wrote the app's reports
        with pytest.raises(AssertionError, match="could not join"):
            await join_chat(lab, server, "mallory", secret="not-the-secret-0123456789abcdef012345")
        with pytest.raises(ValueError):
            await join_chat(lab, server, "nobody")


async def test_until_takes_sync_and_async_checks_and_fails_loudly() -> None:
    flag: list[int] = []

    async def later() -> None:
        await asyncio.sleep(0.02)
        flag.append(1)

    task = asyncio.create_task(later())
    await until(lambda: bool(flag), timeout=2)

    async def async_check() -> bool:
        return bool(flag)

    await until(async_check, timeout=2)
    with pytest.raises(TimeoutError, match="still false"):
        await until(lambda: False, timeout=0.05)
    await task


async def test_capture_logs_routes_records_and_removes_its_handler() -> None:
    async with Lab() as lab:
        logger = logging.getLogger("wslab.test.lessons")
        before = list(logger.handlers)
        with capture_logs(lab.events, "wslab.test.lessons", "app", keep=lambda r: "keep" in r.getMessage()):
            logger.warning("keep this")
            logger.warning("drop this")
        logger.warning("keep, but after the block")
        assert [e.message for e in lab.events.select(source="app")] == ["keep this"]
        last = lab.events.last(source="app")
        assert last is not None and last.kind == "warning" and last.data["args"] == ()
        assert logger.handlers == before


async def test_raw_peer_sees_the_close_frame_of_an_oversized_message() -> None:
    async with Lab() as lab:
        settings = ChatSettings(secret=SECRET, max_message_bytes=1024)
        server = await lab.serve(create_app(settings), name="chat")
        auth = json.dumps({"type": "auth", "token": issue_token("mallory", SECRET, 60)})
        peer = await RawPeer.open(server.port, "/ws/chat/lobby", auth)
        peer.send_text(json.dumps({"type": "say", "text": "x" * 4096}))
        closed = await peer.close_frame(timeout=2)
        assert closed is not None and closed[0] == CloseCode.MESSAGE_TOO_BIG
        peer.abort()
        quiet = await RawPeer.open(server.port, "/ws/chat/lobby")
        assert await quiet.close_frame(timeout=0.05) is None  # nothing said, nothing closed yet
        quiet.reset()


async def test_a_stalled_client_is_evicted_and_then_reads_its_backlog() -> None:
    async with Lab() as lab:
        settings = ChatSettings(secret=SECRET, rate=1e6, burst=10**6, queue_size=8, max_message_bytes=8192)
        app = create_app(settings, report=reporter(lab.events, "chat"))
        server = await lab.serve(app, name="chat", ws=small_send_buffer())
        alice = await join_chat(lab, server, "alice", secret=SECRET)
        stalled = await StalledClient.join(server.port, "stalled", secret=SECRET)
        try:
            sent = 0
            while not app.state.chat.evictions and sent < 3000:
                await alice.send_json({"type": "say", "text": "y" * 3000 + str(sent), "exclude_self": True})
                sent += 1
                if sent % 20 == 0:
                    await asyncio.sleep(0.01)
            assert [e.user for e in app.state.chat.evictions] == ["stalled"]
            backlog, code = await stalled.read_until_close()
            assert code == CloseCode.SLOW_CONSUMER
            assert 0 < len(backlog) < sent
        finally:
            stalled.close()
        with pytest.raises(AssertionError, match="could not join"):
            await StalledClient.join(server.port, "eve", secret="wrong-secret-0123456789abcdef0123456789")


async def test_post_json_returns_the_answer_and_error_statuses_without_raising() -> None:
    async with Lab() as lab:
        server = await lab.serve(create_app(ChatSettings(secret=SECRET)), name="chat")
        alice = await join_chat(lab, server, "alice", secret=SECRET)
        token = issue_token("alice", SECRET, 60)
        answer = await post_json(server.url + "/logout", token=token)
        assert answer == {"user": "alice", "connections_closed": 1}
        assert (await alice.wait_closed()).startswith("4001")
        refused = await post_json(server.url + "/logout", token=token)  # already revoked
        assert refused["status"] == 401 and "bearer token" in refused["detail"]
