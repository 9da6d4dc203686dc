"""Rooms across processes: one interface, three backends, chosen when the app is created.

Shaped like encode/broadcaster: :mod:`~wslab.chat.fanout.base` holds the types, the
:class:`FanOut` interface, the in-process backend's health (:class:`MemoryFanOut`) and the supervisor
every Redis backend runs under; :mod:`~wslab.chat.fanout.pubsub` and :mod:`~wslab.chat.fanout.streams`
are the Redis backends, each importing only the base; :mod:`~wslab.chat.fanout.manager` is the
rooms whose fan-out goes through a backend; :func:`create_fanout` picks the backend a
:class:`~wslab.chat.settings.ChatSettings` names.
"""

from wslab.chat.fanout.base import (
    PRESENCE_TTL,
    REDIS_TIMEOUT,
    FanOut,
    FanOutHealth,
    HasHealth,
    MemoryFanOut,
    RefCounts,
    Supervised,
    redis_client,
)
from wslab.chat.fanout.manager import FanOutManager, FanOutMember
from wslab.chat.fanout.pubsub import PubSubFanOut
from wslab.chat.fanout.streams import StreamsFanOut

__all__ = [
    "FanOut",
    "FanOutHealth",
    "FanOutManager",
    "FanOutMember",
    "HasHealth",
    "MemoryFanOut",
    "PubSubFanOut",
    "RefCounts",
    "StreamsFanOut",
    "Supervised",
    "create_fanout",
    "redis_client",
]


def create_fanout(
    backend: str,
    redis_url: str | None,
    stream_maxlen: int,
    redis_timeout: float = REDIS_TIMEOUT,
    presence_ttl: float = PRESENCE_TTL,
) -> FanOut | None:
    """The backend named in :class:`~wslab.chat.settings.ChatSettings` (None for ``memory``)."""
    if backend == "memory":
        return None
    if redis_url is None:
        raise ValueError(f"the {backend!r} fan-out needs ChatSettings.redis_url")
    if backend == "pubsub":
        return PubSubFanOut(redis_url, timeout=redis_timeout, presence_ttl=presence_ttl)
    if backend == "streams":
        return StreamsFanOut(
            redis_url, maxlen=stream_maxlen, timeout=redis_timeout, presence_ttl=presence_ttl
        )
    raise ValueError(f"unknown fan-out backend {backend!r}: memory, pubsub or streams")
