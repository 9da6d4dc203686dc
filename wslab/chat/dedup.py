"""Recently seen message ids: what lets a client retry a send without the room seeing it twice.

A client that lost its connection cannot know whether its last messages reached the server (the cut
may have eaten the message, or only the server's ``ack``). So it sends them again, with the same
``msg_id``, and the server must recognise the ones it already has: at-least-once delivery from the
client plus de-duplication here make each message reach the room once.

Memory is bounded: the window keeps the last ``capacity`` ids of this process, oldest forgotten first.
A retry has to arrive while its id is still in the window, so ``capacity`` must cover the messages
sent during the longest reconnect you want to survive (10 000 ids, under 2 MB, cover 10 messages/s
for over 15 minutes on one process). Ids are kept per user, so one user cannot suppress another's
message by reusing its id. The window belongs to one process: a retry that lands on another replica is
not recognised there (route a user's reconnects to the same replica, or keep the window in Redis).
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["RecentIds"]


class RecentIds:
    """The last ``capacity`` ``(user, msg_id)`` pairs seen by this process, oldest evicted first."""

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.duplicates = 0  # retries recognised, for tests and metrics
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def first_time(self, user: str, msg_id: str) -> bool:
        """True (and remember it) the first time ``user`` sends ``msg_id``; False for a repeat."""
        key = (user, msg_id)
        if key in self._seen:
            self._seen.move_to_end(key)  # still being retried: keep it
            self.duplicates += 1
            return False
        self._seen[key] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._seen)
