"""Rooms across processes: interface (:mod:`.base`), Redis backends (:mod:`.pubsub`, :mod:`.streams`)."""

from wslab.chat.fanout.base import (
    RESUME,
    FanOut,
    FanOutHealth,
    FanOutManager,
    FanOutMember,
    MemoryFanOut,
    RefCounts,
    Resume,
    Supervised,
    create_fanout,
    redis_client,
)
from wslab.chat.fanout.pubsub import PubSubFanOut
from wslab.chat.fanout.streams import StreamsFanOut

__all__ = [
    "RESUME",
    "FanOut",
    "FanOutHealth",
    "FanOutManager",
    "FanOutMember",
    "MemoryFanOut",
    "PubSubFanOut",
    "RefCounts",
    "Resume",
    "StreamsFanOut",
    "Supervised",
    "create_fanout",
    "redis_client",
]
