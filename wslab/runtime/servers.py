"""Run an ASGI app with uvicorn inside a lesson: on the running loop, in a thread, or as a subprocess.

Why not ``uvicorn.run``? It owns the event loop, installs signal handlers and configures logging, and a
notebook kernel already has a loop, needs its signals, and must not get log lines printed from background
work. So the default here drives ``uvicorn.Server``'s own ``startup`` on the kernel's loop, bound to
127.0.0.1 port 0 with the real port read back from the socket. The thread variant exists for apps with
blocking code (they would freeze the kernel's loop); the subprocess variant for real multi-process scaling.

Stopping is fast on purpose. ``uvicorn.Server.shutdown`` sleeps 0.1 s and then polls every 0.1 s, so a
stop takes about 0.2 s; a lesson that restarts servers a dozen times would spend seconds waiting. The same
steps are done here with a 2 ms poll, and a connection still open after the grace period is aborted (RST),
so nothing is left dangling.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from wslab.events import EventLog
from wslab.runtime.process import HOST, kill_now, spawn, terminate

DEFAULT_GRACE = 1.0
"""Seconds a stopping server waits for connections and handlers to finish before aborting them."""

_reporter: contextvars.ContextVar[Callable[[logging.LogRecord], None] | None] = contextvars.ContextVar(
    "wslab_log_reporter", default=None
)


class _RouteToEvents(logging.Handler):
    """Send uvicorn's log records to the event log of the server that produced them.

    uvicorn logs through process-wide loggers, so the record alone does not say which server wrote it.
    Each lab server starts inside its own ``contextvars`` context holding a reporter; asyncio copies that
    context into every callback and task the server spawns, so the record finds its way back. Records
    from outside any lab server go to the root logger, as they would without wslab.
    """

    def emit(self, record: logging.LogRecord) -> None:
        report = _reporter.get()
        if report is not None:
            report(record)
        elif logging.getLogger().hasHandlers():
            logging.getLogger().handle(record)


_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def _install_log_routing() -> None:
    """Route uvicorn's loggers to the event log, again at every server start.

    Why again: anyone who creates a ``uvicorn.Config`` with its default ``log_config`` (a learner trying
    uvicorn by hand in the kernel) runs ``logging.config.dictConfig``, which puts uvicorn's own stream
    handlers back on these loggers and removes ours; every later server would then print into whatever
    cell happens to run. uvicorn's handlers are recognised by their formatter; other handlers stay.
    """
    from uvicorn.logging import ColourizedFormatter

    for name in _UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler.formatter, ColourizedFormatter):
                logger.removeHandler(handler)
        if name != "uvicorn":
            logger.propagate = True  # to "uvicorn", where the routing is
    root = logging.getLogger("uvicorn")
    if not any(isinstance(h, _RouteToEvents) for h in root.handlers):
        root.addHandler(_RouteToEvents())
    # Never print from background work: records reach the event log, not stderr.
    root.propagate = False
    root.setLevel(logging.INFO)


def _reporter_for(events: EventLog, source: str) -> Callable[[logging.LogRecord], None]:
    def report(record: logging.LogRecord) -> None:
        message = record.getMessage()
        data: dict[str, Any] = {"logger": record.name, "level": record.levelname}
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            message = f"{message} ({type(exc).__name__}: {exc})"
            data["exception"] = exc
        events.record(source, _log_kind(record.name, message), message, **data)

    return report


def _log_kind(logger: str, message: str) -> str:
    """``access`` for request lines: HTTP ones come from ``uvicorn.access``, WebSocket ones from
    ``uvicorn.error`` (``'... "WebSocket /path" [accepted]'``); both can leak a token in a query string."""
    return "access" if logger == "uvicorn.access" or '"WebSocket ' in message else "log"


class _FastServer(uvicorn.Server):
    """``uvicorn.Server`` with a start and stop that do not tick (see the module docstring)."""

    async def start(self) -> None:
        if not self.config.loaded:
            self.config.load()
        self.lifespan = self.config.lifespan_class(self.config)
        await self.startup()
        if not self.started:
            raise RuntimeError("uvicorn did not start (lifespan startup failed); see lab.events")
        await self.on_tick(0)  # sets the default response headers, as uvicorn's main loop would

    @property
    def port(self) -> int:
        return int(self.servers[0].sockets[0].getsockname()[1])

    async def stop(self, grace: float = DEFAULT_GRACE) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()  # WebSockets get close 1012 (service restart), idle HTTP a close
        deadline = time.monotonic() + grace
        while self.server_state.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
        while self.server_state.tasks and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        tasks = list(self.server_state.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for server in self.servers:
            await server.wait_closed()
        await self.lifespan.shutdown()


def app_server_options(app: Any) -> dict[str, Any]:
    """The uvicorn options an app asks for: ``app.state.settings.uvicorn_options()`` if it has one.

    Why the app says it: its protocol limits (the chat's ``max_message_bytes``) decide what the transport
    should accept, and uvicorn's defaults (16 MiB messages, compression on) are far above them. Every
    way wslab runs an app (``Lab.serve``, thread and process replicas, clusters) starts from these.
    """
    settings = getattr(getattr(app, "state", None), "settings", None)
    recommended = getattr(settings, "uvicorn_options", None)
    return dict(recommended()) if callable(recommended) else {}


def option_warnings(app: Any, options: dict[str, Any]) -> list[str]:
    """Sentences for each explicit option that loosens what the app asks for (a bigger ``ws_max_size``,
    compression it turned off): allowed, since a lesson may want exactly that, but never silent."""
    warnings = []
    for key, wanted in app_server_options(app).items():
        if key not in options or options[key] == wanted:
            continue
        given = options[key]
        looser = given > wanted if key == "ws_max_size" else bool(given) and not wanted
        if looser:
            warnings.append(f"{key}={given!r} is looser than the app's limits ask ({key}={wanted!r})")
    return warnings


def _config(app: Any, port: int, options: dict[str, Any]) -> uvicorn.Config:
    settings: dict[str, Any] = {
        "host": HOST,
        "port": port,
        "log_config": None,  # leave logging alone: records are routed to the event log
        "log_level": "info",
        "date_header": False,  # keeps handshake bytes shown in lessons identical from run to run
        "lifespan": "auto",
    }
    settings.update(app_server_options(app))
    settings.update(options)
    return uvicorn.Config(app, **settings)


class ServerHandle:
    """What a lesson holds for a running server: where it is, and how to stop it.

    ``url`` is ``http://127.0.0.1:<port>``; ``ws_url("/ws")`` the matching ``ws://`` URL.
    """

    kind = "task"

    def __init__(self, name: str, port: int, events: EventLog) -> None:
        self.name = name
        self.port = port
        self.events = events
        self.running = True
        events.alias(f"{HOST}:{port}", name)

    @property
    def source(self) -> str:
        return f"server:{self.name}"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def ws_url(self, path: str = "/") -> str:
        """The ``ws://`` URL of ``path`` on this server."""
        return f"ws://{HOST}:{self.port}/{path.lstrip('/')}"

    async def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.name!r} ({self.kind}, {state})>"


class TaskServer(ServerHandle):
    """A uvicorn server on the current event loop: the default, and the fastest to start and stop."""

    def __init__(self, name: str, server: _FastServer, events: EventLog) -> None:
        super().__init__(name, server.port, events)
        self._server = server
        self._context = contextvars.copy_context()

    @classmethod
    async def start(cls, app: Any, name: str, events: EventLog, port: int = 0, **options: Any) -> TaskServer:
        _install_log_routing()
        source = f"server:{name}"
        server = _FastServer(_config(app, port, options))
        context = contextvars.copy_context()
        context.run(_reporter.set, _reporter_for(events, source))
        # Everything the server spawns inherits this context, so its log records carry its name.
        await asyncio.get_running_loop().create_task(server.start(), context=context)
        handle = cls(name, server, events)
        handle._context = context
        events.record(source, "started", f"listening on {HOST}:{handle.port}")
        for warning in option_warnings(app, options):
            events.record(source, "warning", warning)
        return handle

    @property
    def open_connections(self) -> int:
        """Connections the server holds right now (HTTP and WebSocket): a leak shows up here."""
        return len(self._server.server_state.connections)

    async def stop(self, grace: float = DEFAULT_GRACE) -> None:
        """Stop accepting, close every connection (WebSockets get 1012), wait briefly, abort the rest."""
        if not self.running:
            return
        self.running = False
        # In the server's own context, so the shutdown's log lines are attributed to it too.
        await asyncio.get_running_loop().create_task(self._server.stop(grace), context=self._context)
        self.events.record(self.source, "stopped", "")


class ThreadServer(ServerHandle):
    """A uvicorn server on its own event loop in a thread, for apps whose handlers block.

    A blocking handler on the kernel's loop would freeze every cell; here it only freezes its own server,
    which is exactly what a lesson about blocking wants to show.
    """

    kind = "thread"

    def __init__(self, name: str, port: int, events: EventLog, thread: threading.Thread) -> None:
        super().__init__(name, port, events)
        self._thread = thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None

    @classmethod
    async def start(
        cls, app: Any, name: str, events: EventLog, port: int = 0, **options: Any
    ) -> ThreadServer:
        _install_log_routing()
        source = f"server:{name}"
        ready: asyncio.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event, int]] = (
            asyncio.get_running_loop().create_future()
        )
        caller = asyncio.get_running_loop()

        def resolve(value: Any = None, error: BaseException | None = None) -> None:
            def apply() -> None:
                if ready.done():
                    return
                if error is not None:
                    ready.set_exception(error)
                else:
                    ready.set_result(value)

            caller.call_soon_threadsafe(apply)

        async def run() -> None:
            _reporter.set(_reporter_for(events, source))
            server = _FastServer(_config(app, port, options))
            stop_requested = asyncio.Event()
            try:
                await server.start()
            except BaseException as exc:  # report startup failures to the caller instead of dying silently
                resolve(error=RuntimeError(f"server {name!r} failed to start: {exc!r}"))
                return
            resolve((asyncio.get_running_loop(), stop_requested, server.port))
            await stop_requested.wait()
            await server.stop(float(options.get("timeout_graceful_shutdown") or DEFAULT_GRACE))

        thread = threading.Thread(target=asyncio.run, args=(run(),), name=f"wslab-server-{name}", daemon=True)
        thread.start()
        loop, stop_requested, real_port = await asyncio.wait_for(ready, timeout=10)
        handle = cls(name, real_port, events, thread)
        handle._loop, handle._stop_requested = loop, stop_requested
        events.record(source, "started", f"listening on {HOST}:{real_port} (in a thread)")
        for warning in option_warnings(app, options):
            events.record(source, "warning", warning)
        return handle

    async def stop(self, grace: float = DEFAULT_GRACE) -> None:
        """Ask the server's loop to stop, then wait for its thread to end."""
        if not self.running:
            return
        self.running = False
        self.stop_blocking(timeout=grace + 5)
        self.events.record(self.source, "stopped", "")

    def stop_blocking(self, timeout: float = 5.0) -> None:
        """Stop from synchronous code (kernel exit); also used by :meth:`stop`."""
        if self._loop is not None and self._stop_requested is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._stop_requested.set)
        self._thread.join(timeout)


class ProcessServer(ServerHandle):
    """A uvicorn server in a child process: a real replica, as in a multi-process deployment.

    The app is given as an import string (``"package.module:app"``, or a factory with ``factory=True``),
    as ``uvicorn`` requires for processes. The child reports its port and its log records as JSON lines on
    stdout; a reader task turns them into events.
    """

    kind = "process"

    def __init__(self, name: str, port: int, events: EventLog, process: asyncio.subprocess.Process) -> None:
        super().__init__(name, port, events)
        self.process = process
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(
        cls,
        app_path: str,
        name: str,
        events: EventLog,
        port: int = 0,
        factory: bool = False,
        env: dict[str, str] | None = None,
        **options: Any,
    ) -> ProcessServer:
        source = f"server:{name}"
        spec = json.dumps({"app": app_path, "factory": factory, "port": port, "options": options})
        child_env = {**os.environ, **(env or {})}
        process = await spawn(sys.executable, "-m", "wslab.runtime.replica", spec, env=child_env)
        assert process.stdout is not None
        real_port = None
        early: list[str] = []
        try:
            async with asyncio.timeout(20):
                while real_port is None:
                    line = await process.stdout.readline()
                    if not line:
                        break
                    msg = _parse_child_line(line)
                    if msg.get("event") == "listening":
                        real_port = int(msg["port"])
                    else:
                        early.append(msg.get("message", ""))
        except TimeoutError:
            pass
        if real_port is None:
            kill_now(process)
            await process.wait()
            detail = "\n".join(early[-20:])
            raise RuntimeError(f"replica {name!r} ({app_path}) did not start:\n{detail}")
        handle = cls(name, real_port, events, process)
        for message in early:
            events.record(source, "log", message)
        handle._reader = asyncio.get_running_loop().create_task(handle._read_logs())
        events.record(source, "started", f"listening on {HOST}:{real_port} (process)", pid=process.pid)
        return handle

    async def _read_logs(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            msg = _parse_child_line(line)
            message = str(msg.pop("message", ""))
            kind = str(msg.pop("kind", "")) or _log_kind(str(msg.get("logger", "")), message)
            self.events.record(self.source, kind, message, **msg)

    async def stop(self, grace: float = DEFAULT_GRACE) -> None:
        """SIGTERM: the replica closes its connections (1012) and exits; SIGKILL if it takes too long."""
        await self._end(signal.SIGTERM, grace + 5)

    async def kill(self) -> None:
        """SIGKILL: the replica vanishes without closing anything, like a crashed or OOM-killed process."""
        await self._end(signal.SIGKILL, 5)

    async def _end(self, sig: signal.Signals, timeout: float) -> None:
        if not self.running:
            return
        self.running = False
        await terminate(self.process, sig, timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        how = "killed" if sig == signal.SIGKILL else "stopped"
        self.events.record(self.source, how, f"exit code {self.process.returncode}")

    def kill_blocking(self) -> None:
        """For kernel exit, when no loop runs: make sure the child is gone."""
        kill_now(self.process)


def _parse_child_line(line: bytes) -> dict[str, Any]:
    text = line.decode("utf-8", "replace").rstrip("\n")
    try:
        msg = json.loads(text)
    except ValueError:
        return {"message": text}
    return msg if isinstance(msg, dict) else {"message": text}
