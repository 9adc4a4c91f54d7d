"""Sign-in for the report pages: the API key once, then a signed session cookie.

A marketer should not paste the API key into every request, and the key must never
sit in a cookie. Signing in checks the key (constant time, ``key_matches``) and sets
a cookie holding only a signed, timestamped fingerprint of the key: it proves the
holder knew the key when it was issued, expires after ``MAX_AGE``, and stops working
when the API key changes. It also names a row of ``report_sessions``, which signing
out deletes: a copied cookie is worthless once its holder has signed out. The cookie
is HttpOnly (no script can read it) and SameSite=Strict (no other site can make the
browser send it), so forms need no separate CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from tracker.api.auth import key_matches
from tracker.config import Settings
from tracker.store.sessions import close_session, open_session, session_is_open

COOKIE = "tracker_session"
SALT = "tracker.web.session.v1"
MAX_AGE = 12 * 3600  # a working day; then sign in again


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    # itsdangerous signs with the last key and accepts all; TRACKER_SECRET_KEYS is newest first
    return URLSafeTimedSerializer(list(reversed(settings.secret_keys)), salt=SALT)


def _fingerprint(settings: Settings) -> str:
    """Names the API key without revealing it: a new key ends every session."""
    return hmac.new(settings.api_key.encode(), b"tracker report session",
                    hashlib.sha256).hexdigest()[:32]


def key_is_right(settings: Settings, given: str) -> bool:
    return bool(given) and key_matches(given, settings.api_key)


def _session_id(request: Request) -> bytes | None:
    """The session the request's cookie names, if its signature is good, it has not
    expired and it was issued for the current API key."""
    value = request.cookies.get(COOKIE)
    if not value or len(value) > 512:
        return None
    settings: Settings = request.app.state.settings
    try:
        data = _serializer(settings).loads(value, max_age=MAX_AGE)
    except BadSignature:  # also SignatureExpired
        return None
    if not (isinstance(data, dict) and isinstance(data.get("s"), str) and hmac.compare_digest(
            str(data.get("k", "")), _fingerprint(settings))):
        return None
    try:
        return bytes.fromhex(data["s"])
    except ValueError:
        return None


async def valid(request: Request) -> bool:
    """True when the request carries an unexpired session for the current API key
    that has not been signed out."""
    ident = _session_id(request)
    if ident is None:
        return False
    async with request.app.state.pool.acquire() as conn:
        return await session_is_open(conn, ident)


def _secure(request: Request) -> bool:
    settings: Settings = request.app.state.settings
    return request.url.scheme == "https" or settings.public_url.startswith("https://")


async def sign_in(request: Request, response: Response) -> None:
    """Open a session and set its cookie on ``response``."""
    settings: Settings = request.app.state.settings
    async with request.app.state.pool.acquire() as conn:
        ident = await open_session(conn, MAX_AGE)
    value = _serializer(settings).dumps({"k": _fingerprint(settings), "s": ident.hex()})
    response.set_cookie(COOKIE, value, max_age=MAX_AGE,
                        path="/reports", httponly=True, samesite="strict",
                        secure=_secure(request))


async def sign_out(request: Request, response: Response) -> None:
    """Close the request's session, wherever its cookie may have been copied, and
    clear the cookie."""
    ident = _session_id(request)
    if ident is not None:
        async with request.app.state.pool.acquire() as conn:
            await close_session(conn, ident)
    response.delete_cookie(COOKIE, path="/reports", httponly=True, samesite="strict",
                           secure=_secure(request))
