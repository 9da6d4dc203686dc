"""Several real replicas of the chat app behind one balancer: the shape of a scaled-out deployment.

``await lab.cluster(3, backend="pubsub")`` starts three uvicorn **processes** of the reference app (one
shared token secret, one Redis when the backend needs it) and a round-robin balancer in front: the lab's
TCP relay by default, or a real nginx ``upstream`` with ``balancer="nginx"``. Clients connect to
``cluster.ws_url(...)`` and are spread across replicas, as a load balancer would spread them.
Killing or restarting a replica is one call, so lessons can show what users on it experience.

Processes rather than tasks on one loop: a backing store is only needed because replicas share no
memory (catalogue F11), and only separate processes make that true.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Any

from wslab.chat.auth import issue_token
from wslab.events import EventLog, Table
from wslab.netem import FaultProxy
from wslab.runtime.nginx import Nginx
from wslab.runtime.redis_server import RedisServer
from wslab.runtime.servers import ProcessServer

APP = "wslab.chat.app:create_app_from_env"
BACKENDS = ("memory", "pubsub", "streams")


class Cluster:
    """N chat replicas (processes), their balancer, and the Redis they share (the lab's, if any)."""

    def __init__(
        self,
        name: str,
        events: EventLog,
        backend: str,
        secret: str,
        redis: RedisServer | None,
        env: dict[str, str],
    ) -> None:
        self.name = name
        self.events = events
        self.backend = backend
        self.secret = secret
        self.redis = redis
        self.env = env
        self.replicas: list[ProcessServer] = []
        self.balancer: FaultProxy | Nginx | None = None

    @property
    def ws_url_base(self) -> str:
        assert self.balancer is not None
        return self.balancer.ws_url("/")

    def ws_url(self, path: str = "/") -> str:
        """The balancer's ``ws://`` URL for ``path``: what every client connects to."""
        assert self.balancer is not None, "the cluster has no balancer"
        return self.balancer.ws_url(path)

    def replica_url(self, index: int, path: str = "/") -> str:
        """A URL that bypasses the balancer and reaches replica ``index`` directly."""
        return self.replicas[index].ws_url(path)

    def token(self, user: str, ttl: float = 3600.0) -> str:
        """A token every replica accepts (they share the secret)."""
        return issue_token(user, self.secret, ttl)

    async def _spawn(self, index: int, port: int = 0) -> ProcessServer:
        name = f"{self.name}-{index + 1}"
        return await ProcessServer.start(APP, name, self.events, port=port, factory=True, env=self.env)

    async def start_replicas(self, count: int) -> None:
        """Start ``count`` replicas at once: each one spends most of its start-up importing, in parallel."""
        started = await asyncio.gather(*(self._spawn(i) for i in range(count)), return_exceptions=True)
        self.replicas = [r for r in started if isinstance(r, ProcessServer)]
        failures = [r for r in started if isinstance(r, BaseException)]
        if failures:
            raise failures[0]

    async def start_replica(self, index: int, port: int = 0) -> ProcessServer:
        """(Re)start replica ``index``, on ``port`` (0: any free port)."""
        replica = await self._spawn(index, port)
        self.replicas[index] = replica
        return replica

    async def kill(self, index: int) -> None:
        """SIGKILL replica ``index``: its clients see 1006 and the balancer skips it from now on."""
        await self.replicas[index].kill()

    async def restart(self, index: int) -> ProcessServer:
        """Stop replica ``index`` gracefully (1012 to its clients) and start it again on the same port."""
        old = self.replicas[index]
        await old.stop()
        return await self.start_replica(index, port=old.port)

    async def revive(self, index: int) -> ProcessServer:
        """Start a killed or stopped replica again on its old port."""
        return await self.start_replica(index, port=self.replicas[index].port)

    def table(self) -> Table:
        """Replicas and their state (no ports or pids)."""
        rows = [(r.name, "running" if r.running else "stopped") for r in self.replicas]
        return Table(["replica", "state"], rows)

    async def stop(self) -> None:
        """Stop the balancer, then every replica (in parallel). The Redis belongs to the lab and stays up."""
        if self.balancer is not None:
            await self.balancer.stop()
        results = await asyncio.gather(*(r.stop() for r in self.replicas), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result  # every replica was still asked to stop first

    def kill_blocking(self) -> None:
        """Kernel exit: end the replica processes and nginx without a loop."""
        for replica in self.replicas:
            replica.kill_blocking()
        if isinstance(self.balancer, Nginx):
            self.balancer.kill_blocking()

    @property
    def running(self) -> bool:
        return any(r.running for r in self.replicas)

    @property
    def kind(self) -> str:
        return "cluster"


async def start_cluster(
    name: str,
    events: EventLog,
    replicas: int,
    backend: str,
    redis: RedisServer | None,
    balancer: str = "proxy",
    settings_env: dict[str, str] | None = None,
) -> Cluster:
    """Start ``replicas`` processes with ``backend`` and a ``balancer`` ("proxy" or "nginx")."""
    if backend not in BACKENDS:
        raise ValueError(f"backend is one of {BACKENDS}, not {backend!r}")
    if backend != "memory" and redis is None:
        raise ValueError(f"the {backend!r} backend needs a Redis")
    owned = sorted(
        {"WSLAB_CHAT_SECRET", "WSLAB_CHAT_BACKEND", "WSLAB_CHAT_REDIS_URL", "REDIS_URL"}
        & set(settings_env or {})
    )
    if owned:
        # cluster.token() signs with the cluster's own secret, and backend/Redis come from the arguments
        raise ValueError(f"settings_env cannot set {', '.join(owned)}: the cluster sets it (use backend=)")
    secret = secrets.token_urlsafe(32)
    env = {"WSLAB_CHAT_SECRET": secret, "WSLAB_CHAT_BACKEND": backend, **(settings_env or {})}
    if redis is not None:
        env["REDIS_URL"] = redis.url
    cluster = Cluster(name, events, backend, secret, redis if backend != "memory" else None, env)
    try:
        await cluster.start_replicas(replicas)
        targets: Sequence[Any] = cluster.replicas
        if balancer == "nginx":
            cluster.balancer = await Nginx.start(f"{name}-lb", events, targets)
        elif balancer == "proxy":
            upstreams = [(r.name, r.port) for r in cluster.replicas]
            cluster.balancer = await FaultProxy(f"{name}-lb", upstreams, events).start()
        else:
            raise ValueError(f"balancer is 'proxy' or 'nginx', not {balancer!r}")
    except BaseException:
        await cluster.stop()
        raise
    return cluster
