"""A scripted browser over HTTP and WebSocket (aiohttp), for end-to-end tests against
real servers: a person (`User`: cookie jar, the home form with its CSRF token, changes to
messages) and their tabs (`Page`: a live socket that keeps messages by id as htmx
upserts them and reconnects like the page with `?after=` and `?since=`)."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request

import aiohttp

from tests.e2e.conftest import LiveServer

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ARTICLE = re.compile(
    r'<article[^>]* class="message[^"]*" id="message-(\d+)"[^>]*>(.*?)</article>', re.S
)
ENTERED = re.compile(r"(\w+) has entered the room")
MEMBER_LIST = re.compile(r'<ul id="members"[^>]*>(.*?)</ul>', re.S)
MEMBER = re.compile(r'<li id="(member-[0-9a-f]+)"([^>]*)>([^<]*)</li>')
MEMBER_COUNT = re.compile(r'id="member-count" class="count">\((\d+)\)</span>')
LEFT = re.compile(r"(\w+) has left the room")
RECONNECT_CODES = {1001, 1006, 1011, 1012, 1013, 1014}
TIMEOUT = 15.0


async def eventually(check, what: str, timeout: float = TIMEOUT) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def health(server: LiveServer) -> str:
    try:
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=1.0) as response:
            return json.loads(response.read())["status"]
    except OSError:
        return "down"


class Page:
    """One browser tab: a live socket to one server, and the messages it shows."""

    def __init__(self, user: User, server: LiveServer, code: str) -> None:
        self.user, self.server, self.code = user, server, code
        self.messages: dict[int, str] = {}  # id -> article, as htmx upserts them
        self.order: list[int] = []  # ids in arrival order
        self.doubled: list[int] = []  # ids one socket sent twice
        self.frames: list[str] = []
        self.connects = 0
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.connected = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def open(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.connected.wait(), TIMEOUT)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.ws is not None:
            await self.ws.close()

    async def send(self, text: str) -> None:
        await eventually(lambda: self.ws is not None and not self.ws.closed, "an open socket")
        await self.ws.send_str(json.dumps({"message": text, "headers": {"HX-Request": "true"}}))

    def notices(self, pattern: re.Pattern[str]) -> list[str]:
        return [name for frame in self.frames for name in pattern.findall(frame)]

    def members(self) -> tuple[list[str], int | None]:
        """The member list and count the page shows: the whole list sent on connect,
        then the items added (upsert) and deleted by id, as htmx applies them."""
        shown: dict[str, str] = {}
        count = None
        for frame in self.frames:
            whole = MEMBER_LIST.search(frame)
            if whole:
                shown = {}
            for item_id, attrs, name in MEMBER.findall(frame):
                if 'hx-swap-oob="delete"' in attrs:
                    shown.pop(item_id, None)
                else:
                    shown[item_id] = name
            for found in MEMBER_COUNT.findall(frame):
                count = int(found)
        return sorted(shown.values(), key=str.casefold), count

    async def _run(self) -> None:
        since = await self.user.revision(self.server, self.code)
        while True:
            newest = max(self.messages, default=0)
            url = f"{self.server.ws_url}/rooms/{self.code}/ws?after={newest}&since={since}"
            try:
                self.ws = await self.user.session.ws_connect(
                    url, origin=self.server.url, max_msg_size=0)
            except (aiohttp.ClientError, OSError):
                await asyncio.sleep(0.2)  # the server is down: retry like htmx does
                continue
            self.connects += 1
            self.connected.set()
            seen: set[int] = set()
            async for frame in self.ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                self.frames.append(frame.data)
                for raw_id, article in ARTICLE.findall(frame.data):
                    message_id = int(raw_id)
                    replaced = 'hx-swap-oob="outerHTML"' in frame.data  # a change
                    if message_id in seen and not replaced:
                        self.doubled.append(message_id)
                    seen.add(message_id)
                    if message_id not in self.messages:
                        self.order.append(message_id)
                    self.messages[message_id] = article
            code = self.ws.close_code
            if code not in RECONNECT_CODES:
                raise AssertionError(f"{self.user.name}'s socket closed with {code}")
            await asyncio.sleep(0.1)


class User:
    def __init__(self, name: str, connector: aiohttp.BaseConnector | None = None) -> None:
        self.name = name
        self.session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.pages: list[Page] = []

    async def join(self, server: LiveServer, code: str | None = None) -> str:
        async with self.session.get(f"{server.url}/") as response:
            token = CSRF.search(await response.text()).group(1)
        form = {"name": self.name, "csrf_token": token}
        form.update({"create": "1"} if code is None else {"code": code, "join": "1"})
        async with self.session.post(f"{server.url}/", data=form, allow_redirects=False,
                                     headers={"Origin": server.url}) as response:
            assert response.status == 303, await response.text()
            return response.headers["Location"].rsplit("/", 1)[1]

    async def revision(self, server: LiveServer, code: str) -> int:
        """The room revision in the connect address of the room page, as served."""
        async with self.session.get(f"{server.url}/rooms/{code}") as response:
            return int(re.search(r"since=(\d+)", await response.text()).group(1))

    async def change(self, server: LiveServer, code: str, message_id: int, action: str,
                     form: dict[str, str]) -> None:
        async with self.session.get(f"{server.url}/rooms/{code}") as response:
            token = CSRF.search(await response.text()).group(1)
        async with self.session.post(
            f"{server.url}/rooms/{code}/messages/{message_id}/{action}",
            data={**form, "csrf_token": token}, allow_redirects=False,
            headers={"Origin": server.url},
        ) as response:
            assert response.status == 303, await response.text()

    async def open(self, server: LiveServer, code: str) -> Page:
        page = Page(self, server, code)
        self.pages.append(page)
        await page.open()
        return page

    async def close(self) -> None:
        for page in self.pages:
            await page.close()
        await self.session.close()
