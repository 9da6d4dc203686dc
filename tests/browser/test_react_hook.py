"""useChatSocket in a real Chromium: how many sockets the *server* holds open, per way of using the client.

The page (``wslab.browser.REACT_PAGE``) mounts the same chat component written two ways against the
reference chat. The server counts its open sockets (``SocketCounter``), because a socket the page lost
track of is still open there: that is where a leak shows.

- naive (the client constructed in the component body): one socket per render, none ever closed;
- the hook: exactly one per mounted component, through re-renders and StrictMode's double mount, and
  none after unmount.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from wslab import Lab
from wslab.browser import REACT_PAGE, SocketCounter, chromium, with_pages
from wslab.chat import ChatSettings, create_app, issue_token

pytestmark = pytest.mark.anyio

WAIT = 10_000  # ms: generous for a loaded CI machine; a passing run takes a fraction of it


@contextlib.asynccontextmanager
async def react_chat() -> AsyncIterator[tuple[Any, SocketCounter, str, str]]:
    """A lab serving the reference chat (counted) and the React page, and a Chromium."""
    settings = ChatSettings()
    counter = SocketCounter(create_app(settings))
    async with Lab() as lab, chromium() as browser:
        site = await lab.serve(with_pages(counter, {"/react": REACT_PAGE}), name="site")
        token = issue_token("alice", settings.secret, 600)
        yield browser, counter, site.url, token


async def mount(browser: Any, base: str, token: str, mode: str, strict: bool) -> Any:
    page = await browser.new_page()
    await page.goto(base + "/react")
    await page.wait_for_function("window.mountChat !== undefined", polling=10, timeout=WAIT)
    url = base.replace("http://", "ws://") + "/ws/chat/lobby"
    await page.evaluate("(o) => mountChat(o)", {"mode": mode, "url": url, "token": token, "strict": strict})
    return page


@pytest.mark.parametrize("strict", [False, True], ids=["plain", "strict-mode"])
async def test_the_naive_component_leaks_one_socket_per_render(strict: bool) -> None:
    async with react_chat() as (browser, counter, base, token):
        page = await mount(browser, base, token, "naive", strict)
        for _ in range(3):
            await page.click("#rerender")
        bodies = await page.evaluate("wslabReact.naiveBodies()")
        assert bodies == (8 if strict else 4)  # 4 renders; StrictMode runs each body twice
        await counter.settle(bodies)
        assert counter.open == bodies  # one socket per render, all still open

        await page.click("#leave")  # unmounting closes nothing: no cleanup owns them
        await page.wait_for_timeout(200)
        assert counter.open == bodies
        await page.close()  # only closing the tab ends them


@pytest.mark.parametrize("strict", [False, True], ids=["plain", "strict-mode"])
async def test_the_hook_holds_one_socket_through_rerenders_and_unmount_closes_it(strict: bool) -> None:
    from playwright.async_api import expect

    async with react_chat() as (browser, counter, base, token):
        page = await mount(browser, base, token, "hook", strict)
        await expect(page.locator("#state")).to_have_attribute("data-state", "open", timeout=WAIT)
        await expect(page.locator("#messages")).to_contain_text('"type":"ready"', timeout=WAIT)
        for _ in range(5):
            await page.click("#rerender")
        await counter.settle(1)
        assert counter.open == 1
        assert counter.accepted <= (2 if strict else 1)  # StrictMode's first mount was closed by cleanup
        assert await page.text_content("#state") == "open: connection 1"
        assert set(counter.urls) == {"/ws/chat/lobby"}  # the token went in the first message, not the URL

        await page.click("#leave")
        await counter.settle(0)
        assert counter.open == 0
        attempts = counter.attempts
        await page.wait_for_timeout(300)  # a reconnect scheduled by a client left behind would fire by now
        assert counter.open == 0 and counter.attempts == attempts
        await page.close()


async def test_two_tabs_hold_one_socket_each_and_see_each_other() -> None:
    from playwright.async_api import expect

    async with react_chat() as (browser, counter, base, token):
        tabs = [await mount(browser, base, token, "hook", strict=True) for _ in range(2)]
        for tab in tabs:
            await expect(tab.locator("#state")).to_have_attribute("data-state", "open", timeout=WAIT)
        await counter.settle(2)
        assert counter.open == 2
        # the first tab hears the second one join: the hook delivers messages into React state
        await expect(tabs[0].locator("#messages")).to_contain_text('"type":"joined"', timeout=WAIT)
        for tab in tabs:
            await tab.close()


async def test_the_hook_delivers_a_message_and_reports_its_ack() -> None:
    # deliver() is the client's (tests/chat/test_delivery.py cuts connections under it); here: the hook
    # passes it through, and the component re-renders on the ack without opening another socket.
    from playwright.async_api import expect

    async with react_chat() as (browser, counter, base, token):
        page = await mount(browser, base, token, "hook", strict=True)
        await expect(page.locator("#state")).to_have_attribute("data-state", "open", timeout=WAIT)
        await page.click("#say")
        await expect(page.locator("#delivered")).to_have_text("1", timeout=WAIT)  # acknowledged
        await expect(page.locator("#messages")).to_contain_text("hello from react 1", timeout=WAIT)
        assert await page.evaluate("document.querySelectorAll('#messages li').length") == 2  # ready, echo
        assert await counter.settle(1) == 1
        await page.close()
