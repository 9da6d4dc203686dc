"""One live feed, three ways (wslab.feed): the same events over WebSocket, SSE and polling."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from wslab import Lab
from wslab.feed import (
    FeedHub,
    PollingClient,
    SSEClient,
    SSEParser,
    WebSocketFeedClient,
    create_feed_app,
    format_sse,
)
from wslab.netem import CLIENT_TO_SERVER, SERVER_TO_CLIENT
from wslab.wire import CloseCode

RETRY = 0.02  # the SSE reconnect delay the test server asks for


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _feed(lab: Lab, hub: FeedHub | None = None, name: str = "feed"):  # type: ignore[no-untyped-def]
    hub = hub if hub is not None else FeedHub()
    app = create_feed_app(hub, retry=RETRY)
    return hub, app, await lab.serve(app, name=name)


# -- the hub and the format, without sockets ------------------------------------------------------


def test_hub_numbers_events_and_keeps_a_bounded_history() -> None:
    hub = FeedHub(history=3)
    ids = [hub.publish({"n": n}) for n in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    assert [e.id for e in hub.since(0)] == [3, 4, 5]  # 1 and 2 fell out of the history
    assert [e.id for e in hub.since(4)] == [5] and hub.since(5) == []
    assert hub.covers(2) and hub.covers(4) and not hub.covers(1)
    assert hub.get(4) is not None and hub.get(1) is None


def test_a_subscriber_that_falls_behind_is_dropped_not_buffered_forever() -> None:
    hub = FeedHub(queue_size=2)
    with hub.subscribe() as slow:
        for n in range(5):
            hub.publish(n)
        assert slow.ended == "overflow" and hub.dropped == 1 and hub.subscribers == 0
        assert slow.queue.qsize() == 3  # two events and the "you were dropped" marker: bounded


def test_sse_parser_follows_the_event_stream_format() -> None:
    parser = SSEParser()
    events = parser.feed("retry: 250\r\n: a comment\r\nid: 7\r\ndata: line one\r\ndata:line two\r\n\r\n")
    assert parser.retry_ms == 250
    assert [(e.id, e.data) for e in events] == [("7", "line one\nline two")]
    # split anywhere, including between CR and LF; the id persists for the next event
    assert parser.feed("data: x\r") == []
    assert [(e.id, e.data) for e in parser.feed("\n\n")] == [("7", "x")]
    assert parser.feed("retry: soon\n\n") == [] and parser.retry_ms == 250  # not digits: ignored


# -- the same events on every transport -----------------------------------------------------------


@pytest.mark.anyio
async def test_each_transport_delivers_the_same_ordered_events() -> None:
    async with Lab() as lab:
        hub, _, server = await _feed(lab)
        ws = WebSocketFeedClient(server.ws_url("/feed/ws"), events=lab.events).start()
        sse = SSEClient(f"{server.url}/feed/sse", events=lab.events).start()
        poll = PollingClient(f"{server.url}/feed/poll", events=lab.events, interval=0.01).start()
        long_poll = PollingClient(f"{server.url}/feed/poll", "long", lab.events, interval=0, wait=1).start()
        clients = (ws, sse, poll, long_poll)
        try:
            for client in clients:
                await client.wait_connected()
            await asyncio.sleep(0.05)  # let the first polls happen
            for n in range(10):
                hub.publish({"n": n})
                if n % 3 == 0:
                    await asyncio.sleep(0.005)
            await ws.say({"n": "from the WebSocket client"})  # client→server on the same connection
            for client in clients:
                await client.wait_for_id(11)
            expected = [(e.id, e.data) for e in hub.since(0)]
            assert expected[-1] == (11, {"n": "from the WebSocket client"})
            for client in clients:
                assert [(r.id, r.data) for r in client.received] == expected, client.name
            await ws.ack(11)
            for _ in range(100):
                if hub.upstream["ack"]:
                    break
                await asyncio.sleep(0.005)
            assert hub.upstream == {"say": 1, "ack": 1}
            assert hub.requests["websocket"] == 1 and hub.requests["sse"] == 1
            assert poll.polls >= 2 and poll.empty_polls >= 1 and poll.connections == 1  # keep-alive
        finally:
            for client in clients:
                await client.close()


# -- resuming ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_sse_resumes_with_last_event_id_after_a_server_restart() -> None:
    async with Lab() as lab:
        hub, app, server = await _feed(lab)
        sse = SSEClient(f"{server.url}/feed/sse", events=lab.events).start()
        try:
            await sse.wait_connected()
            for n in range(3):
                hub.publish(n)
            await sse.wait_for_id(3)
            port = server.port
            await server.stop()  # the stream ends; the client retries after the server's retry hint
            missed = [hub.publish(f"while down {n}") for n in range(4)]
            server = await lab.serve(app, name="feed", port=port)
            await sse.wait_connected(2)
            hub.publish("live again")
            await sse.wait_for_id(8)
            assert sse.retry == RETRY  # the server's retry: hint replaced the 3 s default
            assert sse.ids == [1, 2, 3, 4, 5, 6, 7, 8]  # nothing missed, nothing twice
            second = [r.id for r in sse.received if r.connection == 2]
            assert second[: len(missed)] == missed  # the missed events first, then live
            assert lab.events.last(source="client:sse", kind="connected").message.endswith(
                "(Last-Event-ID 3)"
            )
        finally:
            await sse.close()


@pytest.mark.anyio
async def test_sse_resume_sends_exactly_what_came_after_the_last_event_id() -> None:
    async with Lab() as lab:
        hub, _, server = await _feed(lab)
        for n in range(6):
            hub.publish(n)
        url, last = f"{server.url}/feed/sse", {"Last-Event-ID": "4"}
        async with httpx.AsyncClient(trust_env=False) as http, http.stream("GET", url, headers=last) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            text = ""
            async for chunk in r.aiter_text():
                text += chunk
                if text.endswith(format_sse(hub.get(6))):  # type: ignore[arg-type]
                    break
        assert text == f"retry: {round(RETRY * 1000)}\n\n" + format_sse(hub.get(5)) + format_sse(hub.get(6))  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_the_websocket_feed_resumes_only_when_the_client_says_after() -> None:
    async with Lab() as lab:
        hub, _, server = await _feed(lab)
        for n in range(3):
            hub.publish(n)
        fresh = await lab.connect(server.ws_url("/feed/ws"), name="fresh")
        resumed = await lab.connect(server.ws_url("/feed/ws?after=1"), name="resumed")
        hub.publish("new")
        assert [(await fresh.recv_json())["id"]] == [4]  # live only: 1–3 are not replayed
        assert [(await resumed.recv_json())["id"] for _ in range(3)] == [2, 3, 4]
        await fresh.expect_silence(0.02)


@pytest.mark.anyio
async def test_close_subscribers_ends_streams_so_a_restart_is_fast() -> None:
    async with Lab() as lab:
        hub, _, server = await _feed(lab)
        ws = await lab.connect(server.ws_url("/feed/ws"), name="ws")
        sse = SSEClient(f"{server.url}/feed/sse", events=lab.events, retry=RETRY).start()
        try:
            await sse.wait_connected()
            assert hub.subscribers == 2
            assert hub.close_subscribers() == 2
            assert await ws.wait_closed() == "1012 SERVICE_RESTART"
            await sse.wait_connected(2)  # EventSource-style: the ended stream is reopened
        finally:
            await sse.close()


# -- polling ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_polling_returns_only_newer_events_and_long_polls() -> None:
    async with Lab() as lab:
        hub, _, server = await _feed(lab)
        for n in range(4):
            hub.publish(n)
        async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
            assert [e["id"] for e in (await http.get("/feed/poll?after=2")).json()] == [3, 4]
            assert (await http.get("/feed/poll?after=4")).json() == []
            assert (await http.get("/feed/poll?after=-1")).status_code == 400
            assert (await http.get("/feed/poll?after=0&wait=soon")).status_code == 400

            async def publish_later() -> None:
                await asyncio.sleep(0.05)
                hub.publish("news")

            task = asyncio.create_task(publish_later())
            response = await http.get("/feed/poll?after=4&wait=2")  # held until the news arrives
            await task
            assert response.json() == [{"id": 5, "data": "news"}]
            assert (await http.post("/feed/say", json={"from": "http"})).json() == {"id": 6}


# -- who can send what ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_sse_and_polling_have_no_upstream_on_their_channel() -> None:
    async with Lab() as lab:
        hub, _, server = await _feed(lab)
        async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
            for path in ("/feed/sse", "/feed/poll"):
                response = await http.post(path, json={"type": "say", "data": "hi"})
                allowed = response.headers["allow"]
                assert response.status_code == 405 and "GET" in allowed and "POST" not in allowed, path
        assert hub.last_id == 0

        proxy = await lab.proxy(server, name="sse-proxy")
        sse = SSEClient(f"{proxy.url}/feed/sse", events=lab.events).start()
        try:
            await sse.wait_connected()
            request_bytes = proxy.bytes_relayed[CLIENT_TO_SERVER]
            assert request_bytes == sse.bytes_written > 0  # the GET, and nothing else
            for n in range(20):
                hub.publish(n)
            await sse.wait_for_id(20)
            assert proxy.bytes_relayed[CLIENT_TO_SERVER] == request_bytes  # 20 events later: still nothing
            assert proxy.bytes_relayed[SERVER_TO_CLIENT] == sse.bytes_read
        finally:
            await sse.close()


@pytest.mark.anyio
async def test_a_websocket_message_too_large_closes_with_1009() -> None:
    async with Lab() as lab:
        hub, _, server = await _feed(lab)
        client = await lab.connect(server.ws_url("/feed/ws"), name="big")
        await client.send_json({"type": "say", "data": "x" * 5000})
        assert await client.wait_closed() == f"{int(CloseCode.MESSAGE_TOO_BIG)} MESSAGE_TOO_BIG"
        assert hub.last_id == 0


@pytest.mark.anyio
async def test_the_sse_client_gives_up_on_something_that_is_not_an_event_stream() -> None:
    async with Lab() as lab:
        _, _, server = await _feed(lab)
        wrong = SSEClient(f"{server.url}/feed/poll", "wrong", lab.events, retry=RETRY).start()
        with pytest.raises(ConnectionError, match="stopped: HTTP 200"):
            await wrong.wait_for_id(1)
        assert wrong.closed and wrong.connections == 0 and wrong.error == "HTTP 200 application/json"
