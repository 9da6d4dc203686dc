"""The Origin check that runs before ``accept()`` (catalogue F25, Cross-Site WebSocket Hijacking).

CORS does not apply to WebSockets and Starlette's ``CORSMiddleware`` passes WebSocket scopes through
untouched, so an app that wants to refuse other web sites has to look at the Origin header itself.
The rules are documented on :class:`~wslab.chat.settings.ChatSettings`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from wslab.chat.settings import ChatSettings


def origin_allowed(origin: str | None, host: str | None, settings: ChatSettings) -> bool:
    """Whether a handshake with this ``Origin`` (and ``Host``) header may proceed."""
    if origin is None:
        return settings.allow_missing_origin
    origin = origin.rstrip("/")
    if origin in settings.allowed_origins:
        return True
    if settings.allow_same_origin and host:
        parts = urlsplit(origin)
        # "null" (sandboxed iframes, file:// pages) has no netloc and never matches.
        return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()
    return False
