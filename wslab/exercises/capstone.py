"""The capstone: the learner's pieces in one file that runs with plain ``uvicorn``, and the whole suite.

:func:`assemble` writes ``mychat/chat.py`` (the learner's chapter 06 module, or the reference where a
chapter was skipped, plus the course's browser page and its demo login), ``mychat/index.html`` and
``mychat/static/``. :func:`full_check` runs every build-track scenario against a file like that, served
by ``python -m uvicorn chat:app`` in child processes (two replicas, a real Redis, a real nginx in front),
and returns a report. ``examples/chat.py`` passes the same suite (tests/exercises/test_capstone.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx

from wslab.chat import page as course_page
from wslab.components import ComponentMissing
from wslab.events import Table
from wslab.exercises._core import Incorrect
from wslab.exercises.build import _saved_path, build_dir, prune, reference_module
from wslab.exercises.build_ch02 import play_rooms
from wslab.exercises.build_ch03 import _authenticated, play_auth
from wslab.exercises.build_ch04 import ENV as HEARTBEAT_ENV
from wslab.exercises.build_ch04 import play_heartbeat
from wslab.exercises.build_ch06 import play_replicas
from wslab.exercises.live import HOST, Run, Scenario, free_port, python_path, token_for

__all__ = ["Assembled", "Report", "assemble", "full_check"]

PAGE_CELL = '''\
# The course's browser page at /, its client at /static, and a demo login at POST /token.
from pathlib import Path

from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

HERE = Path(__file__).resolve().parent
TOKEN_TTL = float(os.environ.get("TOKEN_TTL", "900"))
app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")


class Login(BaseModel):
    user: str


@app.get("/", response_class=HTMLResponse)
async def page() -> str:
    return (HERE / "index.html").read_text(encoding="utf-8").replace("__HEARTBEAT__", repr(PING_INTERVAL))


@app.post("/token")
async def token(login: Login) -> dict:
    """Demo login without a password, so two browser tabs can be two people. A real app issues the
    token from its own session (a cookie, an OAuth flow), never to whoever asks."""
    return {"user": login.user, "token": make_token(login.user, TOKEN_TTL), "expires_in": TOKEN_TTL}
'''

HEADER = '''\
"""My chat, assembled by wslab's chapter 11 from the code I wrote in chapters 02-06.

Run it:   REDIS_URL=redis://127.0.0.1:6379/0 CHAT_SECRET=something-long uvicorn chat:app
Then open http://127.0.0.1:8000/ in two browser tabs.
"""
'''


@dataclass
class Assembled:
    """Where the capstone file is, and whose code each chapter's part is."""

    path: Path
    origins: dict[str, str]

    def __repr__(self) -> str:
        rows = "\n".join(f"  chapter {chapter}: {origin}" for chapter, origin in self.origins.items())
        return f"{self.path.parent.name}/{self.path.name}, built from:\n{rows}"


def _origin(chapter: str) -> str:
    return "your code" if _saved_path(chapter).exists() else "the reference solution"


def assemble(directory: Path | None = None) -> Assembled:
    """Write ``chat.py``, ``index.html`` and ``static/`` into ``directory`` (default: ``mychat/``).

    The chat is the learner's chapter 06 module if its check passed (it already holds 02-04), else the
    reference; then the page. Everything it needs is in the directory: no wslab import, so it is theirs.
    """
    target = directory or build_dir()
    target.mkdir(parents=True, exist_ok=True)
    saved = _saved_path("06")
    server = saved.read_text(encoding="utf-8") if saved.exists() else reference_module("06")
    module = prune(HEADER + "\n\n" + _without_docstring(server) + "\n\n" + PAGE_CELL)
    path = target / "chat.py"
    path.write_text(module, encoding="utf-8")
    write_page(target)
    origins = {chapter: _origin(chapter) for chapter in ("02", "03", "04", "06")}
    origins = {c: (origins["06"] if origins["06"] == "your code" else o) for c, o in origins.items()}
    return Assembled(path, origins)


def _without_docstring(module: str) -> str:
    """The module without its first docstring, so the capstone's own header is the file's docstring."""
    import ast

    body = ast.parse(module).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        lines = module.splitlines()
        return "\n".join(lines[body[0].end_lineno or 1 :])
    return module


def page_html() -> str:
    """The course's chat page (with its ``__HEARTBEAT__`` placeholder)."""
    return course_page.PAGE_FILE.read_text(encoding="utf-8")


CLIENT_JS = course_page.STATIC_DIR / "reconnecting-websocket.js"
"""The course's browser client, built from its TypeScript source."""


def write_page(directory: Path) -> None:
    """The course's page and its built client, next to a chat module, so ``/`` and ``/static`` work."""
    (directory / "index.html").write_text(page_html(), encoding="utf-8")
    static = directory / "static"
    static.mkdir(exist_ok=True)
    shutil.copyfile(CLIENT_JS, static / "reconnecting-websocket.js")


class PlainUvicorn:
    """``python -m uvicorn chat:app`` in a child process, as a learner runs it: no wslab in between."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.running = True

    @classmethod
    async def start(cls, directory: Path, module: str, env: dict[str, str]) -> PlainUvicorn:
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "uvicorn", f"{module}:app", "--host", HOST, "--port", str(port)),
            *("--log-level", "warning"),
            cwd=directory,
            env={**os.environ, **env, "PYTHONPATH": python_path(directory)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        server = cls(process, port)
        try:
            async with asyncio.timeout(20):
                while True:
                    if process.returncode is not None:
                        break
                    with contextlib.suppress(OSError):
                        _, writer = await asyncio.open_connection(HOST, port)
                        writer.close()
                        return server
                    await asyncio.sleep(0.05)
        except TimeoutError:
            pass
        await server.stop()
        assert process.stderr is not None
        detail = (await process.stderr.read()).decode("utf-8", "replace").strip().splitlines()[-1:] or ["?"]
        raise Incorrect(f"`uvicorn {module}:app` did not start: `{detail[0][:200]}`")

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        self.running = False


@dataclass
class Report:
    """One row per part of the suite: what it checks and how it went. Truthy when every row passed."""

    rows: list[tuple[str, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return not self.failures

    def table(self) -> Table:
        return Table(["check", "result"], self.rows)

    def __repr__(self) -> str:
        summary = "every check passed" if self else f"{len(self.failures)} check(s) failed"
        details = "".join(f"\n\n{failure}" for failure in self.failures)
        return f"{self.table()!r}\n{summary}{details}"

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()


async def full_check(path: Path | str) -> Report:
    """Serve ``path`` (a chat module) with plain uvicorn, twice, with Redis and nginx; run every scenario."""
    path = Path(path)
    report = Report()
    async with Run(path.read_text(encoding="utf-8"), HEARTBEAT_ENV) as run:
        servers: list[PlainUvicorn] = []
        try:
            redis = await run.lab.redis()
            env = {**HEARTBEAT_ENV, "REDIS_URL": redis.url}
            try:
                for _ in range(2):
                    servers.append(await PlainUvicorn.start(path.parent, path.stem, env))
            except Incorrect as exc:
                report.rows.append(("starts with plain uvicorn, twice", "failed"))
                report.failures.append(str(exc))
                return report
            report.rows.append(("starts with plain uvicorn, twice", "passed"))
            a, b = (f"ws://{HOST}:{s.port}" for s in servers)
            parts: list[tuple[str, Callable[[], Awaitable[None]]]] = [
                ("rooms, DMs, bad input, a vanished peer", lambda: play_rooms(run, _authenticated(a))),
                ("auth: deadline, 4001 after accept, expiry", lambda: play_auth(run, a)),
                ("heartbeat against a blackholed peer", lambda: play_heartbeat(run, servers[0].port, a)),
                ("two replicas through Redis", lambda: play_replicas(run, redis, (a, b))),
                ("behind nginx: page, login, chat", lambda: _behind_nginx(run, servers)),
            ]
            for title, part in parts:
                try:
                    await part()
                except Incorrect as exc:
                    report.rows.append((title, "failed"))
                    report.failures.append(str(exc))
                else:
                    report.rows.append((title, "passed"))
        finally:
            for server in servers:
                await server.stop()
    return report


async def _behind_nginx(run: Run, servers: list[PlainUvicorn]) -> None:
    """nginx in front of both replicas: the page and the login over HTTP, then alice and bob chat."""
    try:
        nginx = await run.lab.nginx([s.port for s in servers], name="nginx")
    except ComponentMissing as exc:
        if "nginx" in os.environ.get("WSLAB_REQUIRE", ""):
            raise Incorrect(f"nginx is required here and missing: {exc}") from None
        raise Incorrect(
            f"nginx is not installed on this machine, so this part could not run: {exc}"
        ) from None
    async with Scenario(
        run, "the page and the login through nginx", "Serve `/`, `/static` and `POST /token`."
    ) as s:
        async with httpx.AsyncClient(base_url=nginx.url, timeout=5) as http:
            page = await http.get("/")
            script = await http.get("/static/reconnecting-websocket.js")
            login = await http.post("/token", json={"user": "alice"})
        if page.status_code != 200 or "<title>wslab chat</title>" not in page.text:
            s.fail(f"GET / through nginx answered {page.status_code}, not the chat page")
        if script.status_code != 200 or "ReconnectingWebSocket" not in script.text:
            s.fail(f"GET /static/reconnecting-websocket.js answered {script.status_code}")
        if login.status_code != 200 or "token" not in login.json():
            s.fail(f"POST /token answered {login.status_code}: {login.text[:80]}")
        alice = await s.connect("alice", nginx.ws_url("/ws/chat/nginx-room"))
        await alice.send_json({"type": "auth", "token": login.json()["token"]})
        await s.expect("alice", "`ready` with the token from POST /token", type="ready", user="alice")
        bob = await s.connect("bob", nginx.ws_url("/ws/chat/nginx-room"))
        await bob.send_json({"type": "auth", "token": token_for("bob", 60)})
        await s.expect("bob", "`ready`", type="ready")
        await asyncio.sleep(0.2)
        await bob.send_json({"type": "say", "text": "through nginx"})
        await s.expect("alice", "bob's message, through nginx", type="message", text="through nginx")
