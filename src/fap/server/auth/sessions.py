"""Sign-in sessions: the server's own short-lived access token and rotating refresh token,
issued once an identity provider's ID token was verified (and by nothing else).

An access token lasts minutes, so a session ended anywhere (signing out, a member removed, a
reused refresh token) stops working everywhere within them, though each request reads its token
anyway. A refresh token is used once; a session lasts at most ``SESSION_SECONDS`` whatever its
refreshes, after which its user signs in again.
"""

from __future__ import annotations

from dataclasses import dataclass

from fap.server.auth.tokens import hash_token, new_token
from fap.server.errors import Unauthorized
from fap.server.store import RefreshOutcome, Store, User

__all__ = ("ACCESS_SECONDS", "SESSION_SECONDS", "IssuedSession", "refresh_session", "start_session")

ACCESS_SECONDS = 15 * 60.0
SESSION_SECONDS = 30 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class IssuedSession:
    access_token: str
    refresh_token: str
    access_expires_at: float
    session_expires_at: float
    user_id: str
    session_id: str


async def start_session(store: Store, user: User, issuer: str, now: float) -> IssuedSession:
    access, refresh = new_token("session"), new_token("refresh")
    session = await store.credentials.start_session(
        user.id,
        issuer,
        hash_token(access),
        hash_token(refresh),
        now + ACCESS_SECONDS,
        now + SESSION_SECONDS,
        now,
    )
    return IssuedSession(
        access, refresh, now + ACCESS_SECONDS, session.expires_at, user.id, session.id
    )


async def refresh_session(store: Store, refresh_token: str, now: float) -> IssuedSession:
    """The next access and refresh tokens; Unauthorized if this one cannot be used (again)."""
    access, refresh = new_token("session"), new_token("refresh")
    refreshed = await store.credentials.refresh(
        hash_token(refresh_token),
        hash_token(access),
        hash_token(refresh),
        now + ACCESS_SECONDS,
        now,
    )
    if refreshed.outcome == RefreshOutcome.REUSED:
        raise Unauthorized(
            "That refresh token was used before, so the session may have been copied: it is "
            "ended. Sign in again (fap login)."
        )
    if refreshed.outcome != RefreshOutcome.ROTATED or refreshed.session is None:
        raise Unauthorized("The session is unknown, ended or expired; sign in again (fap login).")
    session = refreshed.session
    return IssuedSession(
        access, refresh, now + ACCESS_SECONDS, session.expires_at, session.user_id, session.id
    )
