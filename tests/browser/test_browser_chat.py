"""The chat page in a real Chromium: two people chat, survive a server restart, and an expired token stops.

What a user would see is what is asserted: the state badge (``#state``, with ``data-state``), the
message log and the member list. Backoff is made short through the page's query string, so a restart
costs tens of milliseconds, not seconds. Skipped with the install hint where no browser is installed;
a failure in CI (WSLAB_REQUIRE=...,browser).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from wslab import Lab
from wslab.backoff import decide
from wslab.chat import ChatSettings, create_app, issue_token
from wslab.components import CHROMIUM_ARGS, require_or_skip
from wslab.wire import CloseCode

pytestmark = pytest.mark.anyio

FAST = "?base=0.05&cap=0.2"
"""Backoff for tests: first retry within 50 ms, never more than 200 ms apart."""
WAIT = 5_000  # ms: generous for a loaded CI machine; a passing run takes a fraction of it


def counting(app: Any, seen: list[str]) -> Callable[[Any, Any, Any], Awaitable[None]]:
    """``app`` behind a counter of WebSocket connection attempts (paths), as the server sees them."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            seen.append(scope["path"])
        await app(scope, receive, send)

    return wrapped


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    component = require_or_skip("browser")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=component.path, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            await browser.close()


async def join(browser: Any, url: str, name: str, room: str = "lobby") -> Any:
    from playwright.async_api import expect

    page = await browser.new_page()
    await page.goto(url)
    await page.fill("#name", name)
    await page.fill("#room", room)
    await page.click("#join-button")
    await expect(page.locator("#state")).to_have_attribute("data-state", "open", timeout=WAIT)
    await expect(page.locator("#log")).to_contain_text(f"you are {name} in {room}", timeout=WAIT)
    return page


async def say(page: Any, text: str) -> None:
    await page.fill("#text", text)
    await page.click("#send")


async def test_two_pages_chat_in_a_room() -> None:
    from playwright.async_api import expect

    async with Lab() as lab, chromium() as browser:
        server = await lab.serve(create_app(ChatSettings()), name="chat")
        alice = await join(browser, server.url + "/" + FAST, "alice")
        bob = await join(browser, server.url + "/" + FAST, "bob")
        await expect(alice.locator("#members")).to_contain_text("bob", timeout=WAIT)
        await expect(alice.locator("#log")).to_contain_text("bob joined", timeout=WAIT)

        await say(alice, "hello bob")
        await expect(bob.locator("#log")).to_contain_text("alice: hello bob", timeout=WAIT)
        await say(bob, "hi alice")
        await expect(alice.locator("#log")).to_contain_text("bob: hi alice", timeout=WAIT)
        assert await alice.locator("#members li").all_text_contents() == ["alice", "bob"]


async def test_both_pages_reconnect_after_a_server_restart_and_keep_chatting() -> None:
    from playwright.async_api import expect

    app = create_app(ChatSettings())  # the same app (and token secret) before and after the restart
    async with Lab() as lab, chromium() as browser:
        server = await lab.serve(app, name="chat")
        port = server.port
        url = server.url + "/" + FAST
        alice = await join(browser, url, "alice")
        bob = await join(browser, url, "bob")
        await expect(alice.locator("#members")).to_contain_text("bob", timeout=WAIT)

        await server.stop()  # every socket gets 1012; nothing listens until the new server is up
        for page in (alice, bob):
            state = page.locator("#state")
            await expect(state).to_have_attribute("data-state", "backing off", timeout=WAIT)
            await expect(state).to_contain_text("retrying in", timeout=WAIT)
            await expect(page.locator("#send")).to_be_disabled()  # no silent queueing while away

        await lab.serve(app, name="chat", port=port)
        for page in (alice, bob):
            await expect(page.locator("#state")).to_have_attribute("data-state", "open", timeout=WAIT)
        await expect(alice.locator("#members")).to_contain_text("bob", timeout=WAIT)
        await expect(bob.locator("#members")).to_contain_text("alice", timeout=WAIT)

        await say(alice, "still there?")
        await expect(bob.locator("#log")).to_contain_text("alice: still there?", timeout=WAIT)
        await say(bob, "yes")
        await expect(alice.locator("#log")).to_contain_text("bob: yes", timeout=WAIT)
        for page in (alice, bob):
            assert await page.evaluate("window.wslabChat.client.connections") == 2


async def test_an_expired_token_goes_offline_with_the_reason_and_never_retries() -> None:
    from playwright.async_api import expect

    settings = ChatSettings()
    seen: list[str] = []
    async with Lab() as lab, chromium() as browser:
        server = await lab.serve(counting(create_app(settings), seen), name="chat")
        expired = issue_token("carol", settings.secret, ttl=60, now=0)  # expired since 1970
        page = await browser.new_page()
        await page.goto(f"{server.url}/{FAST}#token={expired}")
        await page.fill("#name", "carol")
        await page.click("#join-button")

        state = page.locator("#state")
        await expect(state).to_have_attribute("data-state", "offline", timeout=WAIT)
        # The page cannot renew a token it was handed, so after 4002 it stops and says why.
        await expect(state).to_have_text("offline: token expired and no new token")
        await page.wait_for_timeout(600)  # three times the backoff cap: a retry would have happened
        assert seen == ["/ws/chat/lobby"]  # exactly one connection attempt
        assert await page.evaluate("window.wslabChat.client.closeCodes") == [CloseCode.TOKEN_EXPIRED]
        assert decide(CloseCode.TOKEN_EXPIRED).action == "refresh token"  # the rule the page followed


async def test_the_page_answers_heartbeats_and_its_watchdog_knows_the_interval() -> None:
    from playwright.async_api import expect

    async with Lab() as lab, chromium() as browser:
        app = create_app(
            # 0.25 s: the page's watchdog fires after 1.5 intervals without a frame; at 0.1 s a busy
            # test machine (Chromium, uvicorn and other workers on two cores) missed that by scheduling
            # alone, which is not what this test is about
            ChatSettings(heartbeat_interval=0.25),
            report=lambda kind, msg: lab.events.record("chat", kind, msg),
        )
        server = await lab.serve(app, name="chat")
        page = await join(browser, server.url + "/" + FAST, "dave")
        assert await page.evaluate("window.wslabChat.client.options.heartbeat") == 0.25  # from the server
        await page.wait_for_timeout(1500)  # about six pings, each answered with a pong
        await expect(page.locator("#state")).to_have_attribute("data-state", "open")
        connections = await page.evaluate("window.wslabChat.client.connections")
        codes = await page.evaluate("window.wslabChat.client.closeCodes")
        assert connections == 1, (codes, lab.events.select(source="chat"))  # never timed out
        assert await page.evaluate("window.wslabChat.client.pongs") >= 3
        assert lab.events.count(source="chat", kind="heartbeat_timeout") == 0
        assert "ping" not in await page.text_content("#log")  # answered by the client, not shown
