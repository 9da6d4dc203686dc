"""Real-client scenarios for the build track: the learner's server in its own process, named clients.

A build checker is a list of scenarios (``async with Scenario(run, "bob sends a malformed message")``):
each connects named clients to the learner's server, does something, and judges what they saw. When a
judgement fails, :meth:`Scenario.fail` raises :class:`~wslab.exercises._core.Incorrect` with the
scenario's name, what went wrong, a short transcript of every client in it and a hint, which is what a
learner needs to find the bug without being handed the answer.

Nothing here can hang a notebook: the learner's module runs in a child process (import errors and
handlers that never return stay there), every wait has a deadline, and :class:`Run` owns a private
:class:`~wslab.lab.Lab` that stops the process, clients, proxies and temp files when the check ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Protocol

from websockets.exceptions import InvalidStatus

from wslab.clients import LabClient
from wslab.exercises._core import Incorrect
from wslab.lab import Lab
from wslab.runtime.process import HOST, free_port

__all__ = ["HOST", "Run", "Scenario", "Served", "free_port", "token_for", "transcript_lines"]


def python_path(directory: Path) -> str:
    """``PYTHONPATH`` for a child that imports a module from ``directory``, keeping what was set before."""
    return os.pathsep.join(p for p in (str(directory), os.environ.get("PYTHONPATH", "")) if p)


class Served(Protocol):
    """What a check needs from a server it started: where it listens."""

    port: int

    def ws_url(self, path: str = "/") -> str: ...


MODULE = "mychat_checked"
"""The name the learner's module is imported under in the server process."""

CONNECT_TIMEOUT = 3.0
"""Seconds a handshake may take: a server that never accepts fails the scenario, not the workshop."""


def _short(payload: object, width: int = 70) -> str:
    text = payload if isinstance(payload, str) else repr(payload)
    return text if len(text) <= width else text[: width - 1] + "…"


def _is_ping(payload: object) -> bool:
    return isinstance(payload, str) and payload.replace(" ", "") == '{"type":"ping"}'


def transcript_lines(clients: dict[str, LabClient], limit: int = 8) -> list[str]:
    """One line per frame each client sent or received (its last ``limit``), then how it closed."""
    lines: list[str] = []
    width = max((len(name) for name in clients), default=0)
    for name, client in clients.items():
        entries = [e for e in client.transcript if not _is_ping(e.payload)][-limit:]
        if not entries:
            lines.append(f"{name.ljust(width)}  (nothing)")
        for entry in entries:
            arrow = {"sent": "→", "received": "←"}.get(entry.direction, "×")
            lines.append(f"{name.ljust(width)}  {arrow} {_short(entry.payload)}")
        if not client.closed:
            lines.append(f"{name.ljust(width)}  (still open)")
    return lines


class Run:
    """One check: a private lab, the learner's module serving in a child process, env for its settings."""

    def __init__(self, source: str, env: dict[str, str] | None = None) -> None:
        self.source = source
        self.env = dict(env or {})
        self.lab = Lab(time_scale=0.01)
        self.directory: Path | None = None

    async def __aenter__(self) -> Run:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.lab.close()

    def write(self, module: str = MODULE) -> Path:
        """Write the learner's module into this run's temp dir; ``SyntaxError`` becomes ``Incorrect``."""
        try:
            compile(self.source, f"{module}.py", "exec")
        except SyntaxError as exc:
            line = (exc.text or "").strip()
            raise Incorrect(
                f"Your code does not compile: {exc.msg} at line {exc.lineno} of the module (`{line}`). "
                "An exercise cell should hold only definitions: no top-level `await`, no `%` magics."
            ) from None
        if self.directory is None:
            self.directory = self.lab.temp_dir("module")
        path = self.directory / f"{module}.py"
        path.write_text(self.source, encoding="utf-8")
        return path

    async def serve(self, name: str = "server", env: dict[str, str] | None = None) -> Served:
        """Start the learner's ``app`` with uvicorn in a child process; failing to start is Incorrect."""
        self.write()
        assert self.directory is not None
        child_env = {**self.env, **(env or {}), "PYTHONPATH": python_path(self.directory)}
        try:
            return await self.lab.serve_process(f"{MODULE}:app", name, env=child_env)
        except RuntimeError as exc:
            detail = _last_error(str(exc))
            raise Incorrect(
                f"Your module did not start under uvicorn: {detail}. The checker imports the cells that "
                "define the exercise's names (plus what earlier chapters gave); define everything they "
                "use in those cells, and the FastAPI app as `app`."
            ) from None


def _last_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "Exception" in line or "not found" in line:
            return f"`{_short(line, 160)}`"
    return "it never said it was listening"


async def _answer_pings(client: LabClient) -> None:
    """Watch ``client``'s transcript and answer each ping with a pong until the connection closes."""
    seen = 0
    while not client.closed:
        entries = client.transcript[seen:]
        seen += len(entries)
        for entry in entries:
            if entry.direction == "received" and _is_ping(entry.payload):
                with contextlib.suppress(Exception):
                    await client.ws.send('{"type":"pong"}')
        await asyncio.sleep(0.01)


class Scenario:
    """A named scenario: connect named clients, act, and :meth:`fail` with their transcripts."""

    def __init__(self, run: Run, title: str, hint: str = "") -> None:
        self.run = run
        self.title = title
        self.hint = hint
        self.clients: dict[str, LabClient] = {}
        self._pongers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Scenario:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for task in self._pongers:
            task.cancel()
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.abort(), 2)

    async def connect(self, name: str, url: str, autopong: bool = True) -> LabClient:
        """Connect ``name``; a refused or unanswered handshake fails the scenario with what happened.

        ``autopong``: answer the server's ``{"type": "ping"}`` with ``{"type": "pong"}``, as the course's
        browser client does, without taking anything out of the client's inbox.
        """
        try:
            client = await self.run.lab.connect(url, f"{self.title}:{name}", timeout=CONNECT_TIMEOUT)
        except InvalidStatus as exc:
            status = exc.response.status_code
            self.fail(
                f"{name}'s handshake was refused with HTTP {status}: the server closed before accepting, "
                "so the client never sees a close code",
                "Call `await websocket.accept()` first; close with a code only after that.",
            )
        except (TimeoutError, OSError) as exc:
            self.fail(
                f"{name}'s handshake got no answer within {CONNECT_TIMEOUT:g} s ({type(exc).__name__})",
                "Does your endpoint `await websocket.accept()` before anything that waits?",
            )
        self.clients[name] = client
        if autopong:
            self._pongers.append(asyncio.get_running_loop().create_task(_answer_pings(client)))
        return client

    async def recv(self, name: str, timeout: float = 2.0, what: str = "a message") -> dict[str, Any]:
        """The next JSON message ``name`` gets, skipping pings; a timeout or close fails the scenario."""
        client = self.clients[name]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                raw = await client.recv(max(0.0, deadline - loop.time()))
            except TimeoutError:
                if not any(e.direction == "received" for e in client.transcript):
                    self.fail(
                        f"{name} waited {timeout:g} s for {what} and received nothing: nothing at all "
                        "arrived on this connection since the handshake",
                        "Does the handler send before it waits? Does anything block the event loop "
                        "(`time.sleep`, a loop without `await`)? One blocking call stalls every connection.",
                    )
                self.fail(f"{name} waited {timeout:g} s for {what} and received nothing")
            except ConnectionError:
                self.fail(f"{name}'s connection closed ({client.closed_as}) while waiting for {what}")
            try:
                message = json.loads(raw)
            except ValueError:
                self.fail(f"{name} received {_short(raw)!r}, which is not JSON")
            if not isinstance(message, dict):
                self.fail(f"{name} received {_short(raw)!r}: every message should be a JSON object")
            if message.get("type") == "ping":
                continue
            return {str(key): value for key, value in message.items()}

    async def expect(self, name: str, what: str, hint: str = "", **fields: Any) -> dict[str, Any]:
        """The next message ``name`` gets must have these fields, else fail saying ``what`` was due.

        Unless a ``joined``/``left`` is what is expected, those are skipped: they may interleave.
        """
        presence = ("joined", "left")
        try:
            message = await self.recv(name, what=what)
            while fields.get("type") not in presence and message.get("type") in presence:
                message = await self.recv(name, what=what)  # who came and went is not this step's business
        except Incorrect as exc:
            if hint:
                raise Incorrect(f"{exc}".replace(f"Hint: {self.hint}", f"Hint: {hint}")) from None
            raise
        wrong = {k: v for k, v in fields.items() if message.get(k) != v}
        if wrong:
            self.fail(f"{name} should have received {what}, but got {_short(json.dumps(message))}", hint)
        return message

    async def silent(self, name: str, duration: float, why: str) -> None:
        """``name`` must receive nothing (pings aside) for ``duration`` seconds."""
        client = self.clients[name]
        deadline = asyncio.get_running_loop().time() + duration
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                raw = await client.recv(left)
            except (TimeoutError, ConnectionError):
                return
            with contextlib.suppress(ValueError):
                if json.loads(raw).get("type") == "ping":
                    continue
            self.fail(f"{name} received {_short(raw)!r}, but {why}")

    async def closed_with(self, name: str, within: float) -> int | None:
        """Wait up to ``within`` s for ``name``'s connection to close: its close code, or None if open."""
        client = self.clients[name]
        with contextlib.suppress(TimeoutError):
            await client.wait_closed(within)
        return client.close_code if client.closed else None

    def fail(self, what: str, hint: str = "") -> NoReturn:
        """Raise ``Incorrect``: the scenario, what went wrong, each client's transcript, a hint."""
        lines = transcript_lines(self.clients)
        seen = "\n\nWhat each client saw:\n```\n" + "\n".join(lines) + "\n```" if lines else ""
        hint = hint or self.hint
        tail = f"\n\nHint: {hint}" if hint else ""
        raise Incorrect(f"Scenario “{self.title}”: {what}.{seen}{tail}")


SECRET = "wslab-check-secret"
"""The ``CHAT_SECRET`` a checked server gets, so the checker can sign tokens for its named users."""


def token_for(user: str, ttl: float, secret: str = SECRET) -> str:
    """A token as chapter 03's ``make_token`` makes it (``user|expires_at|hmac``), for the checker's users."""
    import hashlib
    import hmac
    import time

    expires_at = f"{time.time() + ttl:.3f}"
    signature = hmac.new(secret.encode(), f"{user}|{expires_at}".encode(), hashlib.sha256).hexdigest()
    return f"{user}|{expires_at}|{signature}"
