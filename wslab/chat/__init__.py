"""The reference real-time chat, done right: rooms, first-message auth, limits, bounded fan-out.

Modules, one job each: :mod:`~wslab.chat.protocol` (the messages, documented in one table),
:mod:`~wslab.chat.auth` (tokens), :mod:`~wslab.chat.ratelimit` (token bucket),
:mod:`~wslab.chat.origins` (the Origin allowlist), :mod:`~wslab.chat.rooms` (membership and fan-out),
:mod:`~wslab.chat.session` (one connection's state machine, the Origin check included),
:mod:`~wslab.chat.app` (the FastAPI app: one route, parts swappable), :mod:`~wslab.chat.page` (the
browser page), :mod:`~wslab.chat.presence` (who is in a room on every replica),
:mod:`~wslab.chat.fanout` (rooms across processes: ``memory``, Redis ``pubsub`` or ``streams``).

>>> app = create_app(ChatSettings(auth_timeout=lab.seconds(5)))      # doctest: +SKIP
>>> server = await lab.serve(app, name="chat")
>>> alice = await lab.connect(server.ws_url("/ws/chat/lobby"), name="alice")
>>> await alice.send_json({"type": "auth", "token": issue_token("alice", app.state.settings.secret, 60)})
"""

from wslab.chat.app import create_app, create_app_from_env
from wslab.chat.auth import Claims, TokenError, TokenExpired, TokenInvalid, issue_token, verify_token
from wslab.chat.fanout import FanOutHealth, FanOutManager
from wslab.chat.protocol import Resume
from wslab.chat.ratelimit import TokenBucket
from wslab.chat.rooms import ConnectionManager, Eviction, Member, Stats
from wslab.chat.session import ChatSession, State
from wslab.chat.settings import ChatSettings

__all__ = [
    "ChatSession",
    "ChatSettings",
    "Claims",
    "ConnectionManager",
    "Eviction",
    "FanOutHealth",
    "FanOutManager",
    "Member",
    "Resume",
    "State",
    "Stats",
    "TokenBucket",
    "TokenError",
    "TokenExpired",
    "TokenInvalid",
    "create_app",
    "create_app_from_env",
    "issue_token",
    "verify_token",
]
