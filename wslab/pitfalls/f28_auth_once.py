"""F28, authenticate once: a token that expires, or a logout, never reaches a socket already open.

WebSocket frames carry no ``Authorization`` header, so the token is checked once, when the socket
authenticates, and "checked once" quietly becomes "valid for as long as the socket lives". After the
token's ``exp``, after a logout or a password change, the open socket keeps streaming private messages
and accepting commands until the client happens to reconnect (catalogue F28). Two variants, each a few
lines away from the reference:

* :class:`AuthOnceSession` is :class:`~wslab.chat.session.ChatSession` whose watchdog no longer looks at
  the token: only a close request (an eviction) ends the connection. The reference sleeps until the
  token's ``exp`` and closes 4002, unless the client sent ``reauth`` with a fresh token first.
* :class:`RevocationListManager` is :class:`~wslab.chat.rooms.ConnectionManager` whose ``revoke`` (what
  ``POST /logout`` calls) only records the revocation. New sockets with the old token are refused;
  the open ones are not closed. The reference also closes them, 4001.

``create_app`` builds the reference app with both; nothing else differs.
"""

from __future__ import annotations

from fastapi import FastAPI

from wslab.chat.app import create_app as create_reference_app
from wslab.chat.rooms import ConnectionManager, Member, Report, no_report
from wslab.chat.session import ChatSession, CloseConnection
from wslab.chat.settings import ChatSettings

__all__ = ["AuthOnceSession", "RevocationListManager", "create_app"]


class AuthOnceSession(ChatSession):
    """The reference session, with the token checked only by the first message."""

    async def _watchdog(self, member: Member) -> None:
        await member.stopped.wait()  # THE PITFALL: nothing looks at the token again, expiry included
        assert member.close_request is not None
        raise CloseConnection(*member.close_request)


class RevocationListManager(ConnectionManager):
    """The reference rooms, whose logout only refuses *new* sockets."""

    def revoke(self, user: str, reason: str = "logged out") -> int:
        self.revocations.revoke(user)  # THE PITFALL: the sockets already open are left alone
        self.report("revoked", f"{user}: tokens revoked ({reason}), 0 connection(s) closing")
        return 0


def create_app(settings: ChatSettings | None = None, report: Report = no_report) -> FastAPI:
    """The reference chat app with both pitfalls: tokens are looked at once, logouts reach no socket."""
    settings = settings if settings is not None else ChatSettings()
    manager = RevocationListManager(queue_size=settings.queue_size, report=report)
    return create_reference_app(settings, report, rooms=manager, session=AuthOnceSession)
