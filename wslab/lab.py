"""Lab: the one object a notebook or a test holds. It starts things, names them, and stops them all.

Every server, client, proxy and temporary directory a lesson uses is started through a Lab, under a
name. Starting a name again replaces the old one (so re-running a cell is safe), and ``await
lab.close()`` stops everything in reverse order of creation. If a kernel exits without closing, an
``atexit`` hook stops what cannot outlive the process on its own (replica processes, server threads,
temp dirs); sockets on the kernel's loop die with the process.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wslab.clients import DEFAULT_TIMEOUT, LabClient, ReconnectingClient
from wslab.cluster import Cluster, start_cluster
from wslab.events import EventLog, Table
from wslab.netem import FaultProxy
from wslab.runtime.nginx import Nginx, NginxSettings
from wslab.runtime.redis_server import RedisServer
from wslab.runtime.servers import ProcessServer, ServerHandle, TaskServer, ThreadServer
from wslab.timing import DEFAULT_SCALE, TimeScale
from wslab.versions import warn_if_drifted

Resource = ServerHandle | LabClient | ReconnectingClient | FaultProxy | RedisServer | Nginx | Cluster | Path

# Strong references on purpose: a lab that was never closed still owns processes, threads and temp dirs,
# so it must stay reachable for ``Lab.open()`` and for the exit hook even after its variable is gone.
_open_labs: set[Lab] = set()


class Lab:
    """Owns everything a lesson starts; see the module docstring.

    >>> lab = Lab()                      # doctest: +SKIP
    >>> server = await lab.serve(app, name="echo")
    >>> alice = await lab.connect(server.ws_url("/ws"), name="alice")
    >>> await lab.close()
    """

    def __init__(self, time_scale: float | None = None) -> None:
        factor = (
            time_scale if time_scale is not None else float(os.environ.get("WSLAB_TIME_SCALE", DEFAULT_SCALE))
        )
        self.time = TimeScale(factor)
        self.events = EventLog()
        self._resources: dict[tuple[str, str], Resource] = {}
        self.closed = False
        _open_labs.add(self)

    @classmethod
    async def open(cls, time_scale: float | None = None) -> Lab:
        """Close every lab still open in this process, then make a new one.

        The first cell of a notebook uses this, so running the notebook again from the top does not
        leave the previous run's servers behind. It also says, once per process, if the installed
        packages differ from the tested set (:func:`wslab.versions.warn_if_drifted`).
        """
        warn_if_drifted()
        for old in list(_open_labs):
            await old.close()
        return cls(time_scale)

    async def __aenter__(self) -> Lab:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- time ---------------------------------------------------------------------------------------------
    def seconds(self, production_seconds: float) -> float:
        """Lab duration standing for ``production_seconds`` (``lab.seconds(30)`` is 0.3 at 1/100)."""
        return self.time.seconds(production_seconds)

    def explain(self, production_seconds: float) -> str:
        """``"30 s in production → 0.3 s here"``."""
        return self.time.explain(production_seconds)

    async def sleep(self, production_seconds: float) -> None:
        """Sleep for the lab duration of ``production_seconds``."""
        await asyncio.sleep(self.seconds(production_seconds))

    # -- ownership ----------------------------------------------------------------------------------------
    async def _replace(self, kind: str, name: str) -> None:
        old = self._resources.pop((kind, name), None)
        if old is not None:
            await _stop(old)

    def _own(self, kind: str, name: str, resource: Resource) -> None:
        if self.closed:
            raise RuntimeError("this lab is closed; make a new one with `await Lab.open()`")
        self._resources[(kind, name)] = resource

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this lab is closed; make a new one with `await Lab.open()`")

    # -- servers ------------------------------------------------------------------------------------------
    async def serve(
        self,
        app: Any,
        name: str = "server",
        *,
        port: int = 0,
        in_thread: bool = False,
        **uvicorn_options: Any,
    ) -> TaskServer | ThreadServer:
        """Run an ASGI ``app`` with uvicorn on 127.0.0.1 and return its handle.

        By default the server runs on this event loop (no thread, no process). ``in_thread=True`` gives it
        a loop of its own, for apps that block. ``port`` reuses a port (to restart "the same" server);
        other keyword arguments go to ``uvicorn.Config`` (``ws_ping_interval``, ``ws_max_size``, ``ws``...).
        """
        self._check_open()
        await self._replace("server", name)
        starter = ThreadServer if in_thread else TaskServer
        handle = await starter.start(app, name, self.events, port=port, **uvicorn_options)
        self._own("server", name, handle)
        return handle

    async def serve_process(
        self,
        app_path: str,
        name: str = "replica",
        *,
        port: int = 0,
        factory: bool = False,
        env: dict[str, str] | None = None,
        **uvicorn_options: Any,
    ) -> ProcessServer:
        """Run ``app_path`` (``"module:app"``) in a child process: a real replica, for multi-process work."""
        self._check_open()
        await self._replace("server", name)
        handle = await ProcessServer.start(
            app_path, name, self.events, port=port, factory=factory, env=env, **uvicorn_options
        )
        self._own("server", name, handle)
        return handle

    # -- clients ------------------------------------------------------------------------------------------
    async def connect(
        self, url: str, name: str = "client", *, timeout: float = DEFAULT_TIMEOUT, **options: Any
    ) -> LabClient:
        """Connect a :class:`~wslab.clients.LabClient` named ``name`` (replacing one of the same name)."""
        self._check_open()
        await self._replace("client", name)
        client = await LabClient.connect(url, name, self.events, timeout=timeout, **options)
        self._own("client", name, client)
        return client

    async def connect_reconnecting(
        self, url: str, name: str = "client", **options: Any
    ) -> ReconnectingClient:
        """Start a :class:`~wslab.clients.ReconnectingClient` (it connects in the background).

        ``options`` are its keyword arguments (``policy``, ``token``, ``heartbeat``, ``max_attempts``...).
        Wait for it with ``await client.wait_for_state(ClientState.OPEN)``.
        """
        self._check_open()
        await self._replace("client", name)
        client = ReconnectingClient(url, name, self.events, **options).start()
        self._own("client", name, client)
        return client

    # -- proxies ------------------------------------------------------------------------------------------
    async def tap(self, target: ServerHandle | int, name: str = "tap") -> FaultProxy:
        """Put a frame tap in front of ``target`` (a server handle or a port) and return it.

        Clients connect to ``tap.ws_url(path)``; ``tap.table()`` then shows every frame both ways.
        """
        return await self.proxy(target, name, tap=True)

    async def proxy(
        self,
        target: ServerHandle | int | Sequence[ServerHandle | int],
        name: str = "proxy",
        *,
        tap: bool = False,
    ) -> FaultProxy:
        """A TCP relay in front of ``target``: the network faults of later lessons, or a round-robin
        balancer when ``target`` is a list of servers."""
        self._check_open()
        await self._replace("proxy", name)
        targets = list(target) if isinstance(target, Sequence) else [target]
        upstreams = [(t.name, t.port) if isinstance(t, ServerHandle) else (str(t), int(t)) for t in targets]
        proxy = await FaultProxy(name, upstreams, self.events, tap=tap).start()
        self._own("proxy", name, proxy)
        return proxy

    # -- nginx ------------------------------------------------------------------------------------------
    async def nginx(
        self,
        target: ServerHandle | int | Sequence[ServerHandle | int],
        name: str = "nginx",
        **settings: Any,
    ) -> Nginx:
        """A real nginx reverse proxy in front of ``target`` (one server or several: ``upstream``).

        ``settings`` are :class:`~wslab.runtime.nginx.NginxSettings` fields (``proxy_read_timeout=...`` in lab
        seconds). Raises :class:`~wslab.components.ComponentMissing` with the install hint when this
        machine has no nginx; chapters then fall back to ``lab.proxy`` and say so.
        """
        self._check_open()
        await self._replace("proxy", name)
        targets = list(target) if isinstance(target, Sequence) else [target]
        server = await Nginx.start(name, self.events, targets, NginxSettings(**settings))
        self._own("proxy", name, server)
        return server

    # -- clusters ---------------------------------------------------------------------------------------
    async def cluster(
        self,
        replicas: int,
        backend: str = "memory",
        name: str = "cluster",
        *,
        balancer: str = "proxy",
        settings_env: dict[str, str] | None = None,
    ) -> Cluster:
        """``replicas`` real processes of the reference chat app behind a round-robin balancer.

        ``backend`` is "memory" (no backing store: each replica only knows its own users), "pubsub" or
        "streams" (through this lab's Redis, started if needed). ``balancer="nginx"`` puts a real nginx
        ``upstream`` in front instead of the lab's relay. See :mod:`wslab.cluster`.
        """
        self._check_open()
        await self._replace("cluster", name)
        redis = await self.redis() if backend != "memory" else None
        cluster = await start_cluster(name, self.events, replicas, backend, redis, balancer, settings_env)
        self._own("cluster", name, cluster)
        return cluster

    # -- redis ------------------------------------------------------------------------------------------
    async def redis(self, name: str = "redis") -> RedisServer:
        """A real Redis for this lab (:mod:`wslab.runtime.redis_server`); ``.url`` and ``.version`` say which.

        Started once per name: asking again for a running one returns it (so every cell can call
        ``lab.redis()``); ``await lab.redis_restart()`` style faults go through the returned object.
        """
        self._check_open()
        existing = self._resources.get(("redis", name))
        if isinstance(existing, RedisServer) and existing.running:
            return existing
        await self._replace("redis", name)
        server = await RedisServer.start(name, self.events)
        self._own("redis", name, server)
        return server

    # -- files --------------------------------------------------------------------------------------------
    def temp_dir(self, name: str = "tmp") -> Path:
        """A fresh temporary directory removed by :meth:`close` (configs, logs, sockets)."""
        self._check_open()
        old = self._resources.pop(("dir", name), None)
        if isinstance(old, Path):
            shutil.rmtree(old, ignore_errors=True)
        path = Path(tempfile.mkdtemp(prefix=f"wslab-{name}-"))
        self._own("dir", name, path)
        return path

    # -- inventory ----------------------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Resource | None:
        """A resource by kind (``server``, ``client``, ``proxy``, ``dir``) and name, or None."""
        return self._resources.get((kind, name))

    def inventory(self) -> Table:
        """What this lab holds right now: kind, name, state (no ports or paths)."""
        rows = [(kind, name, _describe(res)) for (kind, name), res in self._resources.items()]
        return Table(["kind", "name", "state"], rows)

    # -- cleanup ------------------------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop everything this lab started, newest first. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        _open_labs.discard(self)
        for key in reversed(list(self._resources)):
            resource = self._resources.pop(key)
            with contextlib.suppress(Exception):
                await _stop(resource)
        self.events.record("lab", "closed", "")

    def _close_blocking(self) -> None:
        """Kernel exit: no loop runs any more; end what would outlive the process."""
        for resource in self._resources.values():
            if isinstance(resource, ProcessServer | RedisServer | Nginx | Cluster):
                resource.kill_blocking()
            elif isinstance(resource, ThreadServer):
                resource.stop_blocking(timeout=2)
            elif isinstance(resource, Path):
                shutil.rmtree(resource, ignore_errors=True)
        self._resources.clear()
        self.closed = True

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._resources)} resources"
        return f"<Lab ({self.time}; {state})>"


async def _stop(resource: Resource) -> None:
    if isinstance(resource, Path):
        shutil.rmtree(resource, ignore_errors=True)
    elif isinstance(resource, ReconnectingClient):
        await resource.close()
    elif isinstance(resource, LabClient):
        if resource.closed:
            return
        try:
            await resource.close()
        except (TimeoutError, OSError):
            await resource.abort()
    else:
        await resource.stop()


def _describe(resource: Resource) -> str:
    if isinstance(resource, Path):
        return "directory" if resource.exists() else "removed"
    if isinstance(resource, LabClient):
        return resource.closed_as
    if isinstance(resource, ReconnectingClient):
        return resource.state.value
    if isinstance(resource, FaultProxy):
        return "running" if resource.running else "stopped"
    if isinstance(resource, Cluster):
        up = sum(r.running for r in resource.replicas)
        return f"{up} of {len(resource.replicas)} replicas running ({resource.backend})"
    if isinstance(resource, Nginx):
        return "nginx, running" if resource.running else "nginx, stopped"
    if isinstance(resource, RedisServer):
        return f"redis {resource.source}, {'running' if resource.running else 'stopped'}"
    return f"{resource.kind}, {'running' if resource.running else 'stopped'}"


@atexit.register
def _close_all_at_exit() -> None:
    for lab in list(_open_labs):
        lab._close_blocking()
