"""The tutorial-style browser client of chapter 10 breaks the rules the course's client keeps, in Chromium.

``wslab/static/naive-reconnecting-websocket.js`` is a lesson, not a library: these tests pin the
mistakes it exists to show (so the chapter cannot silently stop showing them), each next to the course's
client on the same server, counted by the server (``SocketCounter``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette

from wslab import Lab
from wslab.backoff import decide
from wslab.browser import (
    CLIENT_PAGE,
    SocketCounter,
    chromium,
    misbehaving_routes,
    open_client_page,
    with_pages,
)
from wslab.chat import ChatSettings, create_app, issue_token
from wslab.wire import CloseCode

pytestmark = pytest.mark.anyio

FAST = {"base": 0.005, "cap": 0.3, "stableAfter": 0.1, "maxAttempts": None}
WAIT = 10_000  # ms: generous for a loaded CI machine


async def until(page: Any, condition: str) -> None:
    await page.wait_for_function(condition, polling=10, timeout=WAIT)


@contextlib.asynccontextmanager
async def site() -> AsyncIterator[tuple[Any, SocketCounter, str, ChatSettings]]:
    settings = ChatSettings(auth_timeout=0.05)
    counter = SocketCounter(Starlette(routes=[*misbehaving_routes(), *create_app(settings).routes]))
    async with Lab() as lab, chromium() as browser:
        server = await lab.serve(with_pages(counter, {"/client": CLIENT_PAGE}), name="site")
        yield browser, counter, server.url, settings


async def test_close_brings_the_naive_socket_back_and_the_course_client_stays_closed() -> None:
    async with site() as (browser, counter, base, _):
        page = await open_client_page(browser, base)
        await page.evaluate("([p, o]) => startNaive(p, 't', { base: o.base })", ["/ws/echo", FAST])
        await until(page, "badge === 'connected'")
        await page.evaluate("naive.close()")
        await until(page, "naive.attempts === 2 && badge === 'connected'")
        assert await counter.settle(1) == 1  # logged out, and the socket is back
        await page.close()
        assert await counter.settle(0) == 0

        page = await open_client_page(browser, base)
        await page.evaluate("([p, o]) => start(p, o)", ["/ws/echo", FAST])
        await until(page, "client.state === 'open'")
        await page.evaluate("client.close()")
        await page.wait_for_timeout(300)
        assert await counter.settle(0) == 0
        assert await page.evaluate("[client.attempts, client.state]") == [1, "offline"]
        await page.close()


async def test_the_naive_client_retries_4001_with_its_token_in_the_url_and_the_course_client_stops() -> None:
    async with site() as (browser, counter, base, settings):
        token = issue_token("alice", settings.secret, 600)
        page = await open_client_page(browser, base)
        await page.evaluate("([t, o]) => startNaive('/ws/chat/lobby', t, { base: o.base })", [token, FAST])
        await until(page, "naive.attempts >= 3")
        await page.close()
        assert counter.urls[:3] == [f"/ws/chat/lobby?token={token}"] * 3

        before = len(counter.urls)
        page = await open_client_page(browser, base)
        await page.evaluate("([o]) => start('/ws/chat/lobby', { ...o, token: 'not-a-token' })", [FAST])
        await until(page, "client.state === 'offline'")
        await page.wait_for_timeout(300)
        assert counter.urls[before:] == ["/ws/chat/lobby"]
        assert await page.evaluate("[client.closeCodes, client.offlineReason]") == [
            [CloseCode.UNAUTHORIZED],
            decide(CloseCode.UNAUTHORIZED).reason,
        ]
        await page.close()


async def test_the_naive_client_gives_up_silently_and_never_jitters() -> None:
    async with site() as (browser, _, base, _settings):
        page = await open_client_page(browser, base)
        await page.evaluate(
            "([o]) => { startNaive('/ws/refuse', 't', { base: o.base, maxRetries: 3 });"
            " start('/ws/refuse', { ...o, maxAttempts: 3 }); }",
            [FAST],
        )
        await until(page, "naive.attempts === 4 && client.state === 'offline'")
        await page.wait_for_timeout(200)
        assert await page.evaluate("[naive.attempts, badge, naive.delays]") == [
            4,
            "reconnecting…",  # nothing ever tells the page it gave up
            [0.005, 0.01, 0.02],  # base × 2ⁿ exactly: every tab computes the same schedule
        ]
        assert await page.evaluate("client.offlineReason") == "gave up after 3 failed attempts"
        await page.close()


async def test_send_while_connecting_throws_invalid_state_error_in_the_naive_client() -> None:
    async with site() as (browser, _, base, _settings):
        page = await open_client_page(browser, base)
        errors = await page.evaluate(
            """() => {
              const attempt = (send) => { try { send(); return "sent"; } catch (e) { return e.name; } };
              startNaive("/ws/echo", "t", {});
              start("/ws/echo", {});
              return [attempt(() => naive.send({})), attempt(() => client.send({}))];
            }"""
        )
        assert errors == ["InvalidStateError", "Error"]
        await page.close()
