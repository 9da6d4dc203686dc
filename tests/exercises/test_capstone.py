"""The capstone and examples/: one file each, run with plain uvicorn, passing the whole build-track suite.

examples/chat.py is the course's transferable reference: no wslab import, FastAPI and redis-py only. It
must pass the same checks as a learner's capstone, and ship the same browser client as the course.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from wslab.exercises import capstone
from wslab.exercises.build import save

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    return {name.split(".")[0] for name in names}


def test_examples_import_nothing_from_wslab_and_stay_small() -> None:
    source = EXAMPLES / "chat.py"
    assert _imported_modules(source) <= {
        "asyncio",
        "hashlib",
        "hmac",
        "json",
        "os",
        "time",
        "pathlib",
        "fastapi",
        "pydantic",
        "redis",
    }
    assert len(source.read_text(encoding="utf-8").splitlines()) < 400
    assert "uvicorn chat:app" in (EXAMPLES / "README.md").read_text(encoding="utf-8")


def test_examples_ship_the_course_page_and_client_unchanged() -> None:
    assert (EXAMPLES / "index.html").read_text(encoding="utf-8") == capstone.page_html()
    shipped = (EXAMPLES / "static" / "reconnecting-websocket.js").read_bytes()
    assert shipped == capstone.CLIENT_JS.read_bytes()


@pytest.mark.anyio
async def test_examples_pass_the_whole_suite() -> None:
    report = await capstone.full_check(EXAMPLES / "chat.py")
    assert report, report
    assert [row[0] for row in report.rows][-1] == "behind nginx: page, login, chat"


@pytest.mark.anyio
async def test_the_capstone_is_built_from_the_learners_saved_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WSLAB_BUILD_DIR", str(tmp_path))
    assert "reference solution" in repr(capstone.assemble())
    mine = (
        (EXAMPLES / "chat.py")
        .read_text(encoding="utf-8")
        .replace('"reason": "no_such_user"', '"reason": "nobody_here"')
    )
    save("06", mine)
    assembled = capstone.assemble()
    assert "chapter 06: your code" in repr(assembled)
    text = assembled.path.read_text(encoding="utf-8")
    assert '"nobody_here"' in text and text.count("async def chat(") == 1
    assert "wslab" not in "".join(line for line in text.splitlines() if "import" in line)


@pytest.mark.anyio
async def test_a_broken_capstone_fails_with_the_scenario_that_broke(tmp_path: Path) -> None:
    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    source = (EXAMPLES / "chat.py").read_text(encoding="utf-8")
    broken = source.replace("await bus.subscribe(room)\n", "pass  # never subscribes: nobody hears Redis\n")
    assert broken != source
    (broken_dir / "chat.py").write_text(broken, encoding="utf-8")
    capstone.write_page(broken_dir)
    report = await capstone.full_check(broken_dir / "chat.py")
    assert not report
    assert ("rooms, DMs, bad input, a vanished peer", "failed") in report.rows
    assert "Scenario “" in report.failures[0]


@pytest.mark.anyio
async def test_the_course_page_chats_through_two_replicas_of_the_example_in_chromium() -> None:
    """alice's tab on one replica, bob's on the other: the page, the login and Redis work together."""
    from playwright.async_api import async_playwright, expect

    from wslab import Lab
    from wslab.components import CHROMIUM_ARGS, require_or_skip

    component = require_or_skip("browser")
    wait = 5_000
    async with Lab() as lab:
        redis = await lab.redis()
        env = {"REDIS_URL": redis.url, "CHAT_SECRET": "browser-test-secret"}
        servers = [await capstone.PlainUvicorn.start(EXAMPLES, "chat", env) for _ in range(2)]
        try:
            async with async_playwright() as p:
                browser = await p.chromium.launch(
                    executable_path=component.path, headless=True, args=list(CHROMIUM_ARGS)
                )
                try:
                    pages = []
                    for name, server in zip(("alice", "bob"), servers, strict=True):
                        page = await browser.new_page()
                        await page.goto(f"http://127.0.0.1:{server.port}/?base=0.05&cap=0.2")
                        await page.fill("#name", name)
                        await page.fill("#room", "lobby")
                        await page.click("#join-button")
                        await expect(page.locator("#state")).to_have_attribute(
                            "data-state", "open", timeout=wait
                        )
                        pages.append(page)
                    alice, bob = pages
                    await expect(alice.locator("#log")).to_contain_text("bob joined", timeout=wait)
                    await bob.fill("#text", "hello from the other replica")
                    await bob.click("#send")
                    await expect(alice.locator("#log")).to_contain_text(
                        "bob: hello from the other replica", timeout=wait
                    )
                finally:
                    await browser.close()
        finally:
            for server in servers:
                await server.stop()
