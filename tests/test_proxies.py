"""Behind reverse proxies (`CHAT_PROXY_HOPS`): which address and scheme the app uses.

The client address decides the failed-join and room-creation limits; the scheme decides
the `Secure` cookie and which `Origin` is ours. Requests go through the whole app
(Quart's test client calls the ASGI app, middleware included), arriving from the
proxy's address with the headers a proxy chain would add, plus what a client forges.
"""

from __future__ import annotations

import asyncio

import pytest
from quart.testing.connections import WebsocketDisconnectError

from chat.proxies import TrustedProxies, resolve, trusted_entry
from chat.settings import Rate
from tests.kit.in_process import csrf_token, join_room

PROXY = ("10.0.0.1", 40000)  # where every request arrives from: the nearest proxy


def headers(**named: str) -> list[tuple[bytes, bytes]]:
    return [(name.replace("_", "-").encode(), value.encode()) for name, value in named.items()]


# Picking the entry -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("hops", "forwarded_for", "expected"),
    [
        (0, "203.0.113.7", None),  # no proxy trusted: the header means nothing
        (1, "203.0.113.7", "203.0.113.7"),
        (1, "6.6.6.6, 203.0.113.7", "203.0.113.7"),  # the client's own entry comes first
        (2, "6.6.6.6, 203.0.113.7, 10.0.0.2", "203.0.113.7"),
        (2, "203.0.113.7", None),  # fewer entries than proxies: not through the chain
        (3, " 203.0.113.7 ,10.0.0.3 , 10.0.0.2 ", "203.0.113.7"),
        (1, "", None),
    ],
)
def test_the_entry_written_by_the_outermost_trusted_proxy_counts(hops, forwarded_for, expected):
    sent = headers(x_forwarded_for=forwarded_for)
    assert trusted_entry(sent, b"x-forwarded-for", hops) == expected


def test_repeated_header_lines_read_as_one_list():
    lines = headers(x_forwarded_for="6.6.6.6") + headers(X_Forwarded_For="203.0.113.7, 10.0.0.2")
    assert trusted_entry(lines, b"x-forwarded-for", 2) == "203.0.113.7"
    assert trusted_entry(lines, b"x-forwarded-for", 3) == "6.6.6.6"


@pytest.mark.parametrize(
    ("kind", "proto", "scheme"),
    [
        ("http", "https", "https"),
        ("websocket", "https", "wss"),
        ("websocket", "http", "ws"),
        ("http", "HTTPS", "https"),
        ("http", "gopher", "http"),  # not a scheme we serve: ignored
    ],
)
def test_scheme_follows_the_trusted_proto(kind, proto, scheme):
    scope = {"type": kind, "scheme": "ws" if kind == "websocket" else "http", "client": PROXY,
             "headers": headers(x_forwarded_proto=proto, x_forwarded_for="203.0.113.7")}
    resolve(scope, 1)
    assert scope["scheme"] == scheme
    assert scope["client"] == ("203.0.113.7", 0)


async def test_middleware_changes_the_scope_in_place_so_the_access_log_shows_the_client():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope)

    scope = {"type": "http", "scheme": "http", "client": PROXY,
             "headers": headers(x_forwarded_for="6.6.6.6, 203.0.113.7",
                                x_forwarded_host="evil.example", host="chat.example")}
    await TrustedProxies(app, 1)(scope, None, None)
    assert seen == [scope]  # the very dict the server logs from
    assert scope["client"] == ("203.0.113.7", 0)
    assert (b"host", b"chat.example") in scope["headers"]  # X-Forwarded-Host is not trusted
    lifespan = {"type": "lifespan"}
    await TrustedProxies(app, 1)(lifespan, None, None)
    assert lifespan == {"type": "lifespan"}


# Through the app ---------------------------------------------------------------------


async def failed_join(client, forwarded_for: str | None, proto: str = "http") -> int:
    """A join with an unknown code from behind the proxy; the response status."""
    sent = {"Origin": f"{proto}://localhost", "X-Forwarded-Proto": proto}
    if forwarded_for is not None:
        sent["X-Forwarded-For"] = forwarded_for
    token = await csrf_token(client)
    response = await client.post(
        "/", form={"name": "Eve", "code": "ZZZZ", "join": "1", "csrf_token": token},
        headers=sent, scope_base={"client": PROXY})
    return response.status_code


async def test_without_trusted_proxies_a_forged_header_changes_nothing(make_app):
    app = await make_app(proxy_hops=0, join_fail_rate=Rate(2, 60))
    client = app.test_client()
    assert [await failed_join(client, "203.0.113.7") for _ in range(2)] == [404, 404]
    # Everyone arrives from the proxy's address, so a new forged address is still limited.
    assert await failed_join(client, "198.51.100.1") == 429
    assert await failed_join(app.test_client(), None) == 429


async def test_with_one_proxy_each_client_has_its_own_limit(make_app):
    app = await make_app(proxy_hops=1, join_fail_rate=Rate(2, 60))
    mallory, alice = app.test_client(), app.test_client()
    assert [await failed_join(mallory, "203.0.113.7") for _ in range(2)] == [404, 404]
    assert await failed_join(mallory, "203.0.113.7") == 429
    # Another client behind the same proxy is not locked out...
    assert await failed_join(alice, "198.51.100.1") == 404
    # ...and Mallory's own header in front of the proxy's entry does not free her.
    assert await failed_join(mallory, "198.51.100.99, 203.0.113.7") == 429


async def test_with_two_proxies_the_entry_before_the_inner_proxy_counts(make_app):
    app = await make_app(proxy_hops=2, join_fail_rate=Rate(1, 60))
    client = app.test_client()
    assert await failed_join(client, "6.6.6.6, 203.0.113.7, 10.0.0.2") == 404
    assert await failed_join(client, "7.7.7.7, 203.0.113.7, 10.0.0.2") == 429
    assert await failed_join(client, "203.0.113.8, 10.0.0.2") == 404


async def test_room_creation_is_limited_per_client(make_app):
    app = await make_app(proxy_hops=1, create_rate=Rate(1, 60))

    async def create(forwarded_for: str) -> int:
        client = app.test_client()
        token = await csrf_token(client)
        response = await client.post(
            "/", form={"name": "Ann", "create": "1", "csrf_token": token},
            headers={"Origin": "http://localhost", "X-Forwarded-For": forwarded_for},
            scope_base={"client": PROXY})
        return response.status_code

    assert await create("203.0.113.7") == 303
    assert await create("203.0.113.7") == 429
    assert await create("6.6.6.6, 203.0.113.7") == 429
    assert await create("198.51.100.1") == 303


async def session_cookie(app, proto_header: str | None) -> str:
    client = app.test_client()
    sent = {} if proto_header is None else {"X-Forwarded-Proto": proto_header}
    response = await client.get("/", headers=sent, scope_base={"client": PROXY})
    return response.headers["Set-Cookie"]


async def test_session_cookie_is_secure_when_the_trusted_scheme_is_https(make_app):
    app = await make_app(proxy_hops=1)
    assert "Secure" in await session_cookie(app, "https")
    assert "Secure" not in await session_cookie(app, "http")
    assert "Secure" not in await session_cookie(app, "https, http")  # forged by the client


async def test_without_trusted_proxies_the_proto_header_is_ignored(make_app):
    app = await make_app(proxy_hops=0)
    assert "Secure" not in await session_cookie(app, "https")


async def test_over_https_a_plain_http_origin_is_foreign(make_app):
    app = await make_app(proxy_hops=1)

    async def post_from(origin: str) -> int:
        client = app.test_client()
        token = await csrf_token(client)
        response = await client.post(
            "/", form={"name": "Ann", "create": "1", "csrf_token": token},
            headers={"Origin": origin, "X-Forwarded-Proto": "https",
                     "X-Forwarded-For": "203.0.113.7"},
            scope_base={"client": PROXY})
        return response.status_code

    assert await post_from("http://localhost") == 403
    assert await post_from("https://evil.example") == 403
    assert await post_from("https://localhost") == 303


async def test_socket_over_wss_refuses_a_plain_http_origin(make_app):
    app = await make_app(proxy_hops=1)
    client = app.test_client()
    code = await join_room(client, "Ann")
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}

    async def first_frame(origin: str) -> str | int:
        async with client.websocket(f"/rooms/{code}/ws", headers={"Origin": origin, **proxied},
                                    scope_base={"client": PROXY}) as ws:
            try:
                return await asyncio.wait_for(ws.receive(), 2.0)
            except WebsocketDisconnectError as closed:
                return closed.args[0]

    assert await first_frame("http://localhost") == 1008
    assert "members" in await first_frame("https://localhost")
