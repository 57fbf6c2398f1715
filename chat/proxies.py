"""The client's address and scheme behind trusted reverse proxies (`CHAT_PROXY_HOPS`).

Each proxy appends the address it received the request from to `X-Forwarded-For`, and
the scheme to `X-Forwarded-Proto`. With N trusted proxies in front, the Nth entry from
the end was written by the outermost trusted proxy, about the client it saw; everything
before it came from the client and is ignored. With fewer than N entries the request did
not come through the proxies and keeps the address it arrived from.

Why not `hypercorn.middleware.ProxyFixMiddleware` (which picks the same entries, for
WebSockets too): it works on a deep copy of the scope, so hypercorn's access log still
shows the proxy's address; it also trusts `X-Forwarded-Host` and replaces `Host` with
it, yet proxies pass a client's own `X-Forwarded-Host` through untouched, so a client
could choose the host that the same-origin check and invite links see; and it gives a
WebSocket the scheme `https` instead of `wss`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]

SCHEMES = {"http": ("http", "ws"), "https": ("https", "wss")}


def trusted_entry(headers: Iterable[tuple[bytes, bytes]], name: bytes, hops: int) -> str | None:
    """The `hops`-th comma-separated entry from the end of header `name` (all its
    occurrences, in order), or None when there are not that many."""
    if hops < 1:
        return None
    entries: list[str] = []
    for header, value in headers:
        if header.lower() == name:
            entries.extend(part.strip() for part in value.decode("latin-1").split(","))
    if len(entries) < hops:
        return None
    return entries[-hops] or None


def resolve(scope: Scope, hops: int) -> None:
    """Set the scope's client address and scheme from what the trusted proxies say."""
    headers = scope.get("headers", ())
    client = trusted_entry(headers, b"x-forwarded-for", hops)
    if client is not None:
        scope["client"] = (client, 0)
    proto = trusted_entry(headers, b"x-forwarded-proto", hops)
    if proto is not None and proto.lower() in SCHEMES:
        http, websocket = SCHEMES[proto.lower()]
        scope["scheme"] = websocket if scope["type"] == "websocket" else http


class TrustedProxies:
    """ASGI middleware: `resolve` every HTTP request and WebSocket before the app sees it.

    The scope is changed in place, on purpose: hypercorn logs the scope it passed on,
    so its access log shows the client's address too.
    """

    def __init__(self, app: ASGIApp, hops: int) -> None:
        self.app = app
        self.hops = hops

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] in ("http", "websocket"):
            resolve(scope, self.hops)
        await self.app(scope, receive, send)
