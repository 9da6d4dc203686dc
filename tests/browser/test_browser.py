"""A real Chromium (the system one, driven by Playwright) talks WebSocket to a lab server.

This is the smoke test that the browser the later chapters rely on works here: it loads a page from a
lab server, the page's own JavaScript opens a WebSocket, and the server sees the browser's Origin.
Skipped with the install hint where no browser is installed; a failure in CI (WSLAB_REQUIRE).
"""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from wslab import Lab
from wslab.apps import echo
from wslab.components import CHROMIUM_ARGS, require_or_skip

pytestmark = pytest.mark.anyio

PAGE = """<!doctype html>
<title>echo</title>
<p id="out">waiting</p>
<script>
  const ws = new WebSocket(`ws://${location.host}/ws/echo`);
  ws.onopen = () => ws.send("hello from chromium");
  ws.onmessage = (event) => { document.getElementById("out").textContent = "echo: " + event.data; };
</script>
"""


async def test_chromium_opens_a_websocket_to_a_lab_server() -> None:
    browser_component = require_or_skip("browser")
    from playwright.async_api import async_playwright

    origins: list[str | None] = []

    async def echo_recording_origin(websocket: WebSocket) -> None:
        origins.append(websocket.headers.get("origin"))
        await echo(websocket)

    app = Starlette(
        routes=[
            Route("/", lambda request: HTMLResponse(PAGE)),
            WebSocketRoute("/ws/echo", echo_recording_origin),
        ]
    )
    async with Lab() as lab:
        server = await lab.serve(app, name="page")
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=browser_component.path, headless=True, args=list(CHROMIUM_ARGS)
            )
            try:
                page = await browser.new_page()
                await page.goto(server.url + "/")
                await page.wait_for_function(
                    "document.getElementById('out').textContent.startsWith('echo')", timeout=10_000
                )
                assert await page.text_content("#out") == "echo: hello from chromium"
            finally:
                await browser.close()
        assert origins == [server.url]  # browsers always send Origin; the server can check it (F25)
