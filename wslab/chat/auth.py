"""Tokens: short-lived HS256 JWTs, checked in the first message rather than in the URL (catalogue F24).

A token in the query string ends up in every access log on the way (uvicorn logs the full path at
INFO); a token in the first WebSocket message does not. The server gives a new socket
``auth_timeout`` seconds to send ``{"type": "auth", "token": ...}``, and registers nothing before
that (F29). Tokens expire; an open socket is closed when its token does (F28), unless the client
refreshes it in-band with ``reauth``.

Expiry is checked here, not by PyJWT, for two reasons: PyJWT compares ``int(exp)`` with the clock, so
a lab token that lives 0.3 s would be off by up to a second; and taking ``now`` as a parameter makes
expiry testable without sleeping. ``exp`` is therefore written as a float (RFC 7519 allows
non-integer NumericDates).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import jwt

from wslab.chat.names import InvalidName, check_name

__all__ = [
    "ALGORITHM",
    "Claims",
    "Revocations",
    "TokenError",
    "TokenExpired",
    "TokenInvalid",
    "issue_token",
    "verify_token",
]

ALGORITHM = "HS256"


class TokenError(Exception):
    """The token cannot be used: base class of :class:`TokenInvalid` and :class:`TokenExpired`."""


class TokenInvalid(TokenError):
    """Not a token signed by us with a subject and an expiry: reject (close 4001), do not retry."""


class TokenExpired(TokenError):
    """A genuine token whose time is up: get a fresh one (close 4002), then reconnect or ``reauth``."""


@dataclass(frozen=True)
class Claims:
    """What the app uses from a verified token: who, until when, and since when (Unix time, seconds)."""

    user: str
    expires_at: float
    issued_at: float | None = None
    """``iat``: a revocation (logout) cancels every token of the user issued up to that moment."""

    def expires_in(self, now: float | None = None) -> float:
        """Seconds left before expiry (negative once expired)."""
        return self.expires_at - (time.time() if now is None else now)


def issue_token(user: str, secret: str, ttl: float, now: float | None = None) -> str:
    """A token for ``user`` valid for ``ttl`` seconds from ``now`` (default: the current time)."""
    check_name(user, "user name")  # an InvalidName (a ValueError) says why
    if not math.isfinite(ttl):  # negative is allowed: tests and lessons make expired tokens
        raise ValueError(f"a token's ttl must be a finite number of seconds, got {ttl!r}")
    issued = time.time() if now is None else now
    return jwt.encode({"sub": user, "iat": issued, "exp": issued + ttl}, secret, algorithm=ALGORITHM)


def verify_token(token: str, secret: str, now: float | None = None) -> Claims:
    """The claims of ``token``, or :class:`TokenInvalid` / :class:`TokenExpired` saying why not."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],  # never trust the token's own "alg" header
            options={"require": ["sub", "exp"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise TokenInvalid(f"invalid token: {exc}") from None
    user, exp, iat = payload["sub"], payload["exp"], payload.get("iat")
    # Every claim is client-controlled in the sense that matters: the login signed whatever name it was
    # asked for. A name that cannot be encoded (a lone surrogate) or that forges log lines is refused
    # here, before it can be stored in a room; an exp of NaN or Infinity would never expire.
    try:
        check_name(user, "user name")
    except InvalidName as exc:
        raise TokenInvalid(f"invalid token: 'sub' is not a valid user name ({exc})") from None
    if not _finite_number(exp):
        raise TokenInvalid("invalid token: 'exp' must be a finite number")
    if iat is not None and not _finite_number(iat):
        raise TokenInvalid("invalid token: 'iat' must be a finite number")
    claims = Claims(user=user, expires_at=float(exp), issued_at=float(iat) if iat is not None else None)
    if claims.expires_in(now) <= 0:
        raise TokenExpired(f"token for {user!r} expired {-claims.expires_in(now):.3g} s ago")
    return claims


def _finite_number(value: object) -> bool:
    """True for an int or float (not a bool) that is a finite float: NaN, Infinity and 1e400 are not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer too large for a float
        return False


class Revocations:
    """Users who logged out (or were logged out): every token issued to them until then is void (F28).

    Why "issued until then" rather than a list of tokens: a logout must cancel every session of the
    user, also those on other devices, and the server never stored the tokens it issued. A token without
    ``iat`` counts as issued at the beginning of time. Kept in memory, per process: with several replicas
    the revocation must also reach the others (through Redis, like the room messages: F11, F13), which
    this course does not build. Two limits of the rule: it trusts the clocks (a token issued by a host
    whose clock runs ahead survives a logout; a per-user session counter in the token would not), and
    it keeps one entry per user who ever logged out (production stores it with a TTL of one token
    lifetime, after which every token it could void has expired anyway).
    """

    def __init__(self) -> None:
        self._since: dict[str, float] = {}

    def revoke(self, user: str, now: float | None = None) -> float:
        """Void every token of ``user`` issued up to ``now``; returns that moment."""
        at = time.time() if now is None else now
        self._since[user] = max(at, self._since.get(user, at))
        return self._since[user]

    def is_revoked(self, claims: Claims) -> bool:
        revoked_at = self._since.get(claims.user)
        if revoked_at is None:
            return False
        return claims.issued_at is None or claims.issued_at <= revoked_at
