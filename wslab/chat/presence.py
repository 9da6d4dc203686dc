"""Who is in a room across every replica: one Redis sorted set per room, entries that expire.

Without it, each replica knows only the members connected to it, and a user's ``ready`` lists only the
people who happen to share their process (F11, chapter 06). Every member of a room is an entry
``{key}|{user}`` in ``wslab:chat:presence:{room}`` whose score is its expiry time; each process
refreshes its own entries every ``ttl / 3`` and removes them when a member leaves. A replica that
crashes cannot remove anything, so its entries simply expire: its users disappear from the lists
within ``ttl``. Expiry is computed from Redis's clock (``TIME`` inside the scripts), so replicas with
drifting clocks agree.

Presence is best effort: if Redis is unreachable, a join goes ahead with the local members only and
the failure is counted (``health.presence_failures``); a join waits at most two Redis timeouts for it.
The list a joining user gets is a snapshot taken one round trip before the join: someone who leaves or
joins on another replica during that round trip is not corrected for that user until they rejoin.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.exceptions import RedisError

PREFIX = "wslab:chat:presence:"

_ENTER = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[i - 1], now + tonumber(ARGV[1]), ARGV[i])
  if redis.call('PTTL', KEYS[i - 1]) < tonumber(ARGV[1]) then  -- never shorten another replica's ttl
    redis.call('PEXPIRE', KEYS[i - 1], tonumber(ARGV[1]))
  end
end
return #ARGV - 1
"""

_USERS = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


def key(room: str) -> str:
    return PREFIX + room


class RedisPresence:
    """The members of each room on every replica (see the module docstring)."""

    def __init__(self, client: Any, ttl: float, health: Any) -> None:
        self.client = client
        self.ttl = ttl
        self.health = health
        self._enter = client.register_script(_ENTER)
        self._users = client.register_script(_USERS)
        self._local: dict[tuple[str, str], str] = {}  # (room, member key) -> user, on this process
        self._tasks: set[asyncio.Task[None]] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._closed = False

    async def users(self, room: str) -> list[str]:
        """Every user present in ``room`` on any replica (sorted, each once); [] if Redis fails."""
        try:
            entries = await self._users(keys=[key(room)])
        except (RedisError, OSError):
            self.health.presence_failures += 1
            return []
        return sorted({entry.decode().split("|", 1)[1] for entry in entries})

    async def enter(self, room: str, member_key: str, user: str) -> None:
        """Record a local member; refreshed until :meth:`leave`."""
        self._local[(room, member_key)] = user
        self._ensure_refresher()
        try:
            await self._enter(keys=[key(room)], args=[int(self.ttl * 1000), f"{member_key}|{user}"])
        except (RedisError, OSError):
            self.health.presence_failures += 1

    def leave(self, room: str, member_key: str) -> None:
        """Forget a local member now, and remove it from Redis in the background (never blocks a close)."""
        user = self._local.pop((room, member_key), None)
        if user is None or self._closed:
            return  # after close, the entry expires within ttl
        task = asyncio.get_running_loop().create_task(self._remove(room, f"{member_key}|{user}"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _remove(self, room: str, entry: str) -> None:
        try:
            await self.client.zrem(key(room), entry)
        except (RedisError, OSError):
            self.health.presence_failures += 1  # it expires within ttl anyway

    def _ensure_refresher(self) -> None:
        if (self._refresher is None or self._refresher.done()) and not self._closed:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh(), name="presence")

    def refresh_soon(self) -> None:
        """Write every local entry again now: after a Redis restart, which lost them all (no persistence)."""
        if self._local and not self._closed:
            task = asyncio.get_running_loop().create_task(self._refresh_once())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            await self._refresh_once()

    async def _refresh_once(self) -> None:
        entries = list(self._local.items())
        if not entries:
            return
        keys_ = [key(room) for (room, _), _ in entries]
        members = [f"{member_key}|{user}" for (_, member_key), user in entries]
        try:
            await self._enter(keys=keys_, args=[int(self.ttl * 1000), *members])
        except Exception:  # whatever it was, the refresher must go on, or every entry would expire
            self.health.presence_failures += 1

    async def aclose(self) -> None:
        self._closed = True
        tasks = [*self._tasks, *([self._refresher] if self._refresher is not None else [])]
        if self._refresher is not None:
            self._refresher.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        self._refresher = None
