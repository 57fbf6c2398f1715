"""Deployed for real: Debian's nginx with the deploy site (TLS, WebSocket upgrade,
least connections) in front of two `python -m chat` processes on a Redis broker, with
`CHAT_PROXY_HOPS=1`.

Clients connect from two loopback addresses, 127.0.0.2 and 127.0.0.3, so nginx (and,
through it, the app) sees two different people; each client behaves like the browser
(home form, session cookie, `Origin`, the room's socket; pages reconnect after 1012 like
htmx: `tests.kit.Member` and its pages).
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from tests.kit import LiveServer, MakeServer, Member, wait_until
from tests.kit.nginx import Nginx, NginxMissing, nginx_binary

pytestmark = pytest.mark.e2e

FIRST, SECOND = "127.0.0.2", "127.0.0.3"
PER_USER, PER_ADDRESS, FAILED_JOINS = 3, 5, 3
TOO_MANY_JOINS = "Too many attempts to join"
ROOM_MISSING = "Room does not exist."
TIMEOUT = 15.0


@pytest.fixture
def app_processes(redis_server, database_url, make_live_server: MakeServer):
    env = {
        "CHAT_BROKER_URL": redis_server.url,
        "CHAT_DATABASE_URL": database_url,
        "CHAT_SECRET_KEY": "proxy-test-" + uuid.uuid4().hex,
        "CHAT_PROXY_HOPS": "1",
        "CHAT_JOIN_FAIL_RATE": f"{FAILED_JOINS}/600",
        "CHAT_MESSAGE_RATE": "off",
        "CHAT_CREATE_RATE": "off",
        "CHAT_SOCKETS_PER_USER": str(PER_USER),
        "CHAT_SOCKETS_PER_ADDRESS": str(PER_ADDRESS),
    }
    return (make_live_server(env=env, args=["--access-log"], name="a"),
            make_live_server(env=env, args=["--access-log"], name="b"))


@pytest.fixture
def proxy(tmp_path, app_processes) -> Iterator[Nginx]:
    try:
        nginx_binary()
    except NginxMissing as missing:
        if os.environ.get("CI"):
            pytest.fail(str(missing))
        pytest.skip(str(missing))
    nginx = Nginx(tmp_path / "nginx", upstreams=[(s.host, s.port) for s in app_processes])
    nginx.start()
    yield nginx
    nginx.stop()
    print(f"\n--- nginx ---\n{nginx.log_tail()}")


@pytest.fixture
async def clients(proxy: Nginx) -> AsyncIterator[dict[str, Member]]:
    """People on two machines, through nginx: Alice and Dave at the first address, Bob and
    Carol at the second."""
    made = {name: Member(proxy, name, local_address=address) for name, address in
            (("Alice", FIRST), ("Dave", FIRST), ("Bob", SECOND), ("Carol", SECOND))}
    yield made
    for client in made.values():
        await client.close()


async def join_status(member: Member, code: str, **headers: str) -> tuple[int, str]:
    """Try to join `code` through the home form: (status, page or redirect target)."""
    reply = await member.try_join(code, **headers)
    return reply.status, reply.location or reply.text


async def outcome(ws: aiohttp.ClientWebSocketResponse) -> str:
    """"open" when the socket's first frame arrives, else "<close code> <reason>"."""
    message = await ws.receive(TIMEOUT)
    if message.type == aiohttp.WSMsgType.TEXT:
        return "open"
    if message.type == aiohttp.WSMsgType.CLOSE:
        return f"{message.data} {message.extra}"
    return f"{ws.close_code} {message.type.name}"


def logs(*servers: LiveServer) -> str:
    return "\n".join(server.log_path.read_text(errors="replace") for server in servers)


async def test_each_client_keeps_its_own_address_through_nginx(proxy, app_processes, clients):
    alice, bob = clients["Alice"], clients["Bob"]
    code = await alice.create_room()
    await bob.join_room(code)
    cookie = next(iter(alice.jar))
    assert cookie["secure"], "the session cookie over https is Secure"

    # Chat through nginx, each page on whichever process nginx picked.
    pages = [await alice.open(code), await bob.open(code)]
    pages[0].send("hello from alice")
    pages[1].send("hello from bob")
    await wait_until(lambda: all(len(p.messages) == 2 for p in pages), 15, "both messages on both")

    # Alice mistypes codes until she is stopped (counted across both processes)...
    missing = "QQQQ" if code != "QQQQ" else "XXXX"
    for _ in range(FAILED_JOINS):
        status, page = await join_status(alice, missing)
        assert status == 404 and ROOM_MISSING in page
    status, page = await join_status(alice, missing)
    assert status == 429 and TOO_MANY_JOINS in page
    # ...and her own X-Forwarded-For, whatever it says, does not free her,
    for forged in ("127.0.0.9", SECOND, f"{SECOND}, 127.0.0.9"):
        status, page = await join_status(alice, code, **{"X-Forwarded-For": forged})
        assert status == 429 and TOO_MANY_JOINS in page
    # nor does it lock Bob out: from his own address he still gets in and gets told.
    assert (await join_status(bob, missing))[0] == 404
    status, location = await join_status(bob, code)
    assert status == 303 and location.endswith(f"/rooms/{code}")

    # nginx passed the forged header on (the app then saw "127.0.0.9, 127.0.0.2")...
    assert f'{FIRST} "POST / HTTP/1.1" 429 xff="127.0.0.9"' in proxy.access_log()
    # ...and the app's access log shows each client's own address, not nginx's.
    app_log = logs(*app_processes)
    assert re.search(rf'{re.escape(FIRST)}:0 .*"POST / 1.1" 429', app_log), app_log[-2000:]
    assert re.search(rf'{re.escape(SECOND)}:0 .*"POST / 1.1" 303', app_log)
    assert "127.0.0.9" not in app_log


async def test_socket_limits_hold_across_processes_per_session_and_address(
    proxy, app_processes, clients
):
    alice, dave, bob, carol = (clients[n] for n in ("Alice", "Dave", "Bob", "Carol"))
    code = await alice.create_room()
    for client in (dave, bob, carol):
        await client.join_room(code)

    # Alice's tabs, spread over both processes by nginx: the next one over is refused.
    tabs = [await alice.socket(code) for _ in range(PER_USER)]
    assert [await outcome(tab) for tab in tabs] == ["open"] * PER_USER
    refused = await alice.socket(code)
    assert await outcome(refused) == "1008 too many connections"

    # Closing a tab frees its place (on whichever process the next one lands).
    await tabs.pop().close()

    async def reopened() -> bool:
        tab = await alice.socket(code)
        if await outcome(tab) == "open":
            tabs.append(tab)
            return True
        return False

    await eventually_async(reopened, "a place for Alice after closing a tab")

    # Bob and Carol share 127.0.0.3: five sockets from there, whoever holds them.
    bobs = [await bob.socket(code) for _ in range(PER_USER)]
    carols = [await carol.socket(code) for _ in range(PER_ADDRESS - PER_USER)]
    assert [await outcome(ws) for ws in bobs + carols] == ["open"] * PER_ADDRESS
    refused = await carol.socket(code)  # Carol holds 2 of her 3, the address 5 of 5
    assert await outcome(refused) == "1008 too many connections"
    forged = await carol.socket(code, headers={"X-Forwarded-For": "127.0.0.9"})
    assert await outcome(forged) == "1008 too many connections"
    # Dave, at Alice's address (3 of 5 used), is not held back by 127.0.0.3.
    assert await outcome(await dave.socket(code)) == "open"

    assert f"address={SECOND}" in logs(*app_processes)  # the refusal names the client
    for ws in tabs + bobs + carols:
        await ws.close()


async def eventually_async(check, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_sigterm_moves_live_pages_through_nginx_to_the_other_process(
    proxy, app_processes, clients
):
    a, _ = app_processes
    alice, bob = clients["Alice"], clients["Bob"]
    code = await alice.create_room()
    await bob.join_room(code)
    # Alice at her socket limit: her pages must get their places back on the other side.
    pages = [await alice.open(code) for _ in range(PER_USER)]
    pages += [await bob.open(code) for _ in range(2)]
    for i, page in enumerate(pages):
        page.send(f"before-{i}")
    await wait_until(lambda: all(len(p.messages) == len(pages) for p in pages), 15,
                     "every message on every page")

    await a.astop()  # SIGTERM: a closes its sockets with 1012 and exits
    # nginx spreads the pages (least connections), so some were on `a` and come back.
    await wait_until(lambda: any(page.connects >= 2 for page in pages), 15,
                     "pages of the stopped process to reconnect")
    await wait_until(lambda: all(p.connected.is_set() for p in pages), 15,
                     "every page connected again")
    for i, page in enumerate(pages):
        page.send(f"after-{i}")
    total = 2 * len(pages)
    await wait_until(lambda: all(len(p.messages) == total for p in pages), 15,
                     "every message on every page after the move")
    for page in pages:
        assert not page.finished.is_set(), "a page gave up"
        assert page.doubled == []
        texts = " ".join(page.texts())
        assert all(f"after-{i}" in texts for i in range(len(pages)))
    assert re.search(r"shutting down: closing live connections", logs(a))
