"""The scripted browser: a person using a real server over 127.0.0.1 as a browser does.

`Member` is one cookie jar (one session) speaking HTTP with aiohttp: the home form with
its hidden inputs (`tests.kit.forms`), the room page, history, changes to messages; its
pages are `LiveClient`s (tests/kit/live_client.py), one live socket each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import aiohttp
from yarl import URL

from tests.kit.forms import connect_address, join_form, room_code
from tests.kit.live_client import LiveClient, parse_messages
from tests.kit.server import LiveServer

# Settings that keep limits out of the way of tests that are not about them.
NO_LIMITS = {
    "CHAT_MESSAGE_RATE": "off",
    "CHAT_JOIN_FAIL_RATE": "off",
    "CHAT_CREATE_RATE": "off",
    "CHAT_SOCKETS_PER_ADDRESS": "off",  # every scripted client comes from 127.0.0.1
    "CHAT_LEAVE_GRACE": "0.3",
}
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]*)"')
EARLIER = re.compile(r'/rooms/[A-Z]+/messages\?before=(\d+)')


@dataclass
class Reply:
    status: int
    text: str
    headers: dict[str, str]

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")


class Member:
    """One person's cookie jar: a session on the server, driven through the HTML forms.

    `server` is anything with `url` and `ws_url` (a `LiveServer`, or nginx in front of
    some); with `local_address` every connection leaves from that address, as from a
    machine of its own. Pages opened with `open` are closed with the member."""

    def __init__(self, server: LiveServer, name: str = "member", *,
                 local_address: str | None = None) -> None:
        self.server = server
        self.name = name
        self.origin = server.url
        self.local = None if local_address is None else (local_address, 0)
        self.jar = aiohttp.CookieJar(unsafe=True)  # unsafe: keep cookies for an IP host
        self.http = aiohttp.ClientSession(
            base_url=server.url, cookie_jar=self.jar, timeout=aiohttp.ClientTimeout(total=15),
            connector=aiohttp.TCPConnector(local_addr=self.local, ssl=False),
        )
        self.pages: list[LiveClient] = []

    async def close(self) -> None:
        for page in self.pages:
            await page.stop()
        await self.http.close()

    async def __aenter__(self) -> Member:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def get(self, path: str, **options) -> Reply:
        async with self.http.get(path, allow_redirects=False, **options) as response:
            return Reply(response.status, await response.text(errors="replace"),
                         dict(response.headers))

    async def post(self, path: str, data, *, headers: dict[str, str] | None = None,
                   origin: str | None = "default") -> Reply:
        """POST `data` as the browser would; `origin=None` sends no Origin header."""
        sent = dict(headers or {})
        if origin == "default":
            origin = self.origin
        if origin is not None:
            sent.setdefault("Origin", origin)
        async with self.http.post(path, data=data, headers=sent, allow_redirects=False) as response:
            return Reply(response.status, await response.text(errors="replace"),
                         dict(response.headers))

    async def csrf_token(self, path: str = "/") -> str:
        """GET `path` (/ starts the session) and read its forms' hidden token."""
        page = await self.get(path)
        assert page.status == 200, page
        return CSRF_INPUT.search(page.text).group(1)

    # The home form --------------------------------------------------------------------

    async def try_join(self, code: str | None, name: str | None = None,
                       **headers: str) -> Reply:
        """Submit the home form, joining `code` (creating a room when None): the answer."""
        home = await self.get("/")
        assert home.status == 200, home
        return await self.post("/", join_form(home.text, name or self.name, code),
                               headers=headers)

    async def create_room(self, name: str | None = None) -> str:
        reply = await self.try_join(None, name)
        assert reply.status == 303, (reply.status, reply.text[:500])
        return room_code(reply.location)

    async def join_room(self, code: str, name: str | None = None) -> None:
        reply = await self.try_join(code, name)
        assert reply.status == 303, (reply.status, reply.text[:500])
        assert reply.location.endswith(f"/rooms/{code}"), reply.location

    # The room ---------------------------------------------------------------------------

    async def change(self, code: str, message_id: int, action: str,
                     form: dict[str, str]) -> None:
        """Edit, delete or react to a message (`action`: edit, delete, reactions)."""
        token = await self.csrf_token(f"/rooms/{code}")
        reply = await self.post(f"/rooms/{code}/messages/{message_id}/{action}",
                                {**form, "csrf_token": token})
        assert reply.status == 303, (reply.status, reply.text[:500])

    async def history(self, code: str) -> list[tuple[int, str, str]]:
        """The room's whole history as the pages show it, oldest first: (id, author, text).

        The room page holds the newest page; "Load earlier messages" links go back."""
        page = await self.get(f"/rooms/{code}")
        assert page.status == 200, (page.status, page.location)
        pages = [parse_messages(page.text)]
        earlier = EARLIER.search(page.text)
        while earlier:
            older = await self.get(f"/rooms/{code}/messages?before={earlier.group(1)}")
            assert older.status == 200, older.status
            pages.append(parse_messages(older.text))
            earlier = EARLIER.search(older.text)
        return [message for chunk in reversed(pages) for message in chunk]

    def cookie_header(self, server: LiveServer | None = None) -> str:
        cookies = self.jar.filter_cookies(URL((server or self.server).url))
        return "; ".join(f"{key}={morsel.value}" for key, morsel in cookies.items())

    def session_cookie(self) -> str:
        return self.jar.filter_cookies(URL(self.server.url))["session"].value

    def client(self, code: str, *, server: LiveServer | None = None, **options) -> LiveClient:
        """A live socket to the room (not started), as this member."""
        server = server or self.server
        if self.local is not None:
            options.setdefault("connect_options", {"local_addr": self.local})
        return LiveClient(server, code, self.cookie_header(server), name=self.name, **options)

    async def open(self, code: str, *, server: LiveServer | None = None,
                   **options) -> LiveClient:
        """A tab on the room page (of `server`, by default the member's own): its socket
        connects where the page says, as of when it was served, and is open once this
        returns; it is closed with the member."""
        page = await self.get(f"{(server or self.server).url}/rooms/{code}")
        assert page.status == 200, (page.status, page.location)
        address = connect_address(page.text)
        since = parse_qs(urlsplit(address).query).get("since") if address else None
        tab = self.client(code, server=server, since=int(since[0]) if since else None,
                          **options)
        self.pages.append(tab)
        return await tab.open()

    async def socket(self, code: str, *, after: int = 0, server: LiveServer | None = None,
                     **options) -> aiohttp.ClientWebSocketResponse:
        """The room's socket, bare (aiohttp), for a test that reads the frames itself."""
        server = server or self.server
        return await self.http.ws_connect(f"{server.ws_url}/rooms/{code}/ws?after={after}",
                                          origin=server.url, **options)
