"""F13, a Redis listener that goes quiet: a replica stops hearing the other replicas, and says it is fine.

The reference fan-out (:mod:`wslab.chat.fanout.pubsub`) runs its one subscriber under a supervisor
that reconnects, re-subscribes and tells members ``resync`` whatever ended the listener, and the
listener PINGs Redis after a silence and gives up on a PING that gets no answer. Two variants, each a
few lines away from it, show what each of those parts is for (catalogue F13):

* :class:`UnsupervisedPubSubFanOut` runs the listener once, as tutorials do with
  ``asyncio.create_task(listener())`` at start-up. The first Redis restart, failover, ``CLIENT KILL`` or
  output-buffer cut (F14) ends it; the error may be logged once, and nothing subscribes again. Redis
  shows one subscriber fewer (``PUBSUB NUMSUB``); the replica's health still says "connected".
* :class:`NoWatchdogPubSubFanOut` is supervised but takes silence for "nothing to say". When the
  connection to Redis goes half-open (Redis or the path to it vanishes without a FIN or RST: a failover
  to another node, a dropped NAT entry), no read ever fails, so nothing wakes the supervisor. Redis
  itself, on the far side, may still count the subscriber (``PUBSUB NUMSUB`` looks right); only an
  end-to-end canary notices.

Everything else, publishing included, is the reference: use them with
``create_app(settings, fanout=UnsupervisedPubSubFanOut(redis_url))``.
"""

from __future__ import annotations

from typing import Any

from wslab.chat.fanout.pubsub import PubSubFanOut

__all__ = ["NoWatchdogPubSubFanOut", "UnsupervisedPubSubFanOut"]


class UnsupervisedPubSubFanOut(PubSubFanOut):
    """The reference pub/sub fan-out with its supervisor replaced by a single run of the listener."""

    async def _supervise(self) -> None:
        self.health.state = "connecting"
        try:
            await self._listen()  # THE PITFALL: when this returns or raises, nothing runs it again
        except Exception as exc:  # logged once, as the tutorials do, and that is all
            self.report("fanout_error", f"pubsub listener: {type(exc).__name__}: {exc}")


class NoWatchdogPubSubFanOut(PubSubFanOut):
    """The reference pub/sub fan-out whose listener never asks Redis whether it is still there."""

    async def _receive(self, pubsub: Any) -> None:
        while True:
            message = await pubsub.get_message(timeout=1.0)  # THE PITFALL: silence is taken for calm
            if message is not None:
                self._handle(message)
