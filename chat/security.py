"""Browser-facing defences: CSRF tokens bound to the session, same-origin checks and
the security headers every response carries.

No maintained Quart CSRF extension exists (quart-csrf and quart-wtf are abandoned), and
the check is a few lines: a random token kept in the signed session cookie, echoed by
each form, compared in constant time, plus the browser's Origin header.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from quart import Quart, Response, has_request_context, request, session
from quart.sessions import SecureCookieSessionInterface

CSRF_FIELD = "csrf_token"
SECURE_SCHEMES = ("https", "wss")
_SESSION_KEY = "csrf"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def csrf_token() -> str:
    """The session's token, created on first use (templates call this for each form)."""
    token = session.get(_SESSION_KEY)
    if not token:
        token = session[_SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def is_same_origin(origin: str | None, host: str, scheme: str = "") -> bool:
    """Whether `origin` names our `host`. Over https (or wss), directly or as trusted
    proxies report it, a plain-http page is another origin; over http either is
    accepted, since a TLS proxy the app was not told about looks like http."""
    if not origin:
        return False
    parts = urlsplit(origin)
    if parts.netloc.lower() != host.lower():
        return False
    return scheme not in SECURE_SCHEMES or parts.scheme == "https"


def _request_is_same_origin() -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # older browsers send only a Referer on same-origin posts
        origin = request.headers.get("Referer")
    # No header at all: a non-browser client, which cannot hold the victim's cookie.
    return origin is None or is_same_origin(origin, request.host, request.scheme)


async def csrf_is_valid() -> bool:
    expected = session.get(_SESSION_KEY)
    if not expected or not _request_is_same_origin():
        return False
    sent = (await request.form).get(CSRF_FIELD, "")
    return hmac.compare_digest(sent.encode(), expected.encode())


async def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class SessionCookies(SecureCookieSessionInterface):
    """The signed cookie session, marked `Secure` when the request came over https
    (directly, or through trusted proxies: `chat.proxies`), so the browser never sends
    it over plain http; over http it cannot be, or the session would not work."""

    def get_cookie_secure(self, app: Quart) -> bool:
        if super().get_cookie_secure(app):
            return True
        return has_request_context() and request.scheme == "https"
