"""Scale-out end to end: two `python -m chat` processes on one Redis broker and one
database behave like one server.

WebSocket clients follow the browser's flow (home form with its CSRF token and session
cookie, then the room's socket) and behave like the page: messages are kept by id
(htmx upserts them), and after a 1012/1013 close they reconnect with
`?after=<newest id on the page>`. Each test starts its own `redis-server` on a free port;
the database is a fresh PostgreSQL database when PostgreSQL answers on 127.0.0.1:5432,
else a SQLite file both processes share.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.e2e.conftest import LiveServer, MakeServer

pytestmark = pytest.mark.e2e

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


@pytest.fixture
def two_servers(redis_server, database_url, make_live_server: MakeServer):
    env = {
        "CHAT_BROKER_URL": redis_server.url,
        "CHAT_DATABASE_URL": database_url,
        "CHAT_SECRET_KEY": "scale-out-test-" + uuid.uuid4().hex,
        "CHAT_MESSAGE_RATE": "off",
        "CHAT_JOIN_FAIL_RATE": "off",
        "CHAT_CREATE_RATE": "off",
    }
    return make_live_server(env=env, name="a"), make_live_server(env=env, name="b")


@pytest.fixture
async def users() -> AsyncIterator[dict[str, User]]:
    made = {name: User(name) for name in ("Alice", "Bob", "Carol")}
    yield made
    for user in made.values():
        await user.close()


def assert_complete(pages: list[Page], expected: int) -> None:
    ids = set(pages[0].messages)
    for page in pages:
        assert len(page.messages) == expected, (page.user.name, sorted(page.messages))
        assert set(page.messages) == ids, page.user.name
        assert page.doubled == [], (page.user.name, page.doubled)


async def test_two_processes_chat_as_one_through_restart_and_redis_outage(
    two_servers, redis_server, users
):
    a, b = two_servers
    alice, bob, carol = users["Alice"], users["Bob"], users["Carol"]

    # Presence merged: one room, members on both processes, Carol on both.
    code = await alice.join(a)
    on_a = await alice.open(a, code)
    await bob.join(b, code)
    on_b = await bob.open(b, code)
    # One arrival at a time: member counts announced by two processes at once can reach
    # Redis in either order, and the older count may land last (see docs/scale-out.md).
    await eventually(lambda: "Bob" in on_a.notices(ENTERED), "Bob's arrival on A")
    await carol.join(a, code)
    carol_a = await carol.open(a, code)
    await eventually(lambda: "Carol" in on_b.notices(ENTERED), "Carol's arrival on B")
    carol_b = await carol.open(b, code)
    pages = [on_a, on_b, carol_a, carol_b]

    def merged(page: Page) -> bool:
        return page.members() == (["Alice", "Bob", "Carol"], 3)

    await eventually(lambda: all(merged(p) for p in pages), "everyone in every member list")
    await asyncio.sleep(0.3)
    assert all(merged(p) for p in pages), [p.members() for p in pages]  # Carol counts once
    assert sorted(on_a.notices(ENTERED)) == ["Alice", "Bob", "Carol"]  # one notice per user
    assert sorted(on_b.notices(ENTERED)) == ["Bob", "Carol"]

    # Chat from both processes: every page gets every message once, in one order.
    for round_ in range(5):
        for page in pages:
            await page.send(f"{page.user.name.lower()}-{page.server.name}-{round_}")
    await eventually(lambda: all(len(p.messages) == 20 for p in pages), "20 messages everywhere")
    await asyncio.sleep(0.3)
    assert_complete(pages, 20)
    assert on_a.order == on_b.order == carol_a.order == carol_b.order

    # Restart B: its sockets close with 1012, reconnect and catch up what A got meanwhile.
    await b.astop()
    for i in range(3):
        await on_a.send(f"while-b-restarts-{i}")
    await b.astart()
    await eventually(lambda: all(len(p.messages) == 23 for p in pages), "23 messages everywhere")
    await asyncio.sleep(0.3)
    assert_complete(pages, 23)
    assert on_b.connects >= 2 and carol_b.connects >= 2
    assert on_a.notices(LEFT) == []  # back within the grace period: nobody left
    # ... and nobody entered again: the restart announced no one.
    assert sorted(on_a.notices(ENTERED)) == ["Alice", "Bob", "Carol"]
    assert sorted(on_b.notices(ENTERED)) == ["Bob", "Carol"]

    # Redis goes away: degraded, same-process chat goes on; back: everyone catches up.
    redis_server.stop()
    await eventually(lambda: health(a) == health(b) == "degraded", "degraded health")
    for i in range(2):
        await on_a.send(f"during-outage-{i}")
    await eventually(lambda: len(carol_a.messages) == 25, "local delivery during the outage")
    assert len(on_b.messages) == 23  # B cannot hear A now
    redis_server.start()
    await eventually(lambda: health(a) == health(b) == "ok", "recovered health", timeout=20)
    await eventually(lambda: all(len(p.messages) == 25 for p in pages), "caught up after outage")
    for page in pages:
        await page.send(f"after-outage-{page.user.name}-{page.server.name}")
    await eventually(lambda: all(len(p.messages) == 29 for p in pages), "29 messages everywhere")
    await asyncio.sleep(0.3)
    assert_complete(pages, 29)
    texts = " ".join(on_b.messages.values())
    for needle in ("alice-a-4", "bob-b-0", "carol-b-3", "while-b-restarts-2", "during-outage-1",
                   "after-outage-Bob-b"):
        assert needle in texts


async def test_changes_reach_the_other_process_and_a_page_that_was_away(two_servers, users):
    a, b = two_servers
    alice, bob = users["Alice"], users["Bob"]
    code = await alice.join(a)
    on_a = await alice.open(a, code)
    await bob.join(b, code)
    on_b = await bob.open(b, code)
    await on_a.send("draft one")
    await eventually(lambda: len(on_b.messages) == 1, "the message on B")
    (message_id,) = on_b.messages

    await alice.change(a, code, message_id, "edit", {"message": "final one"})
    await eventually(lambda: "final one" in on_b.messages[message_id], "the edit on B")
    assert "edited" in on_b.messages[message_id]
    await alice.change(a, code, message_id, "reactions", {"emoji": "🎉"})
    await eventually(lambda: "🎉 1" in on_b.messages[message_id], "the reaction on B")

    # B restarts; meanwhile the message is deleted on A. B's page, reconnecting with the
    # address it was served, catches up on the deletion.
    await b.astop()
    await alice.change(a, code, message_id, "delete", {})
    await b.astart()
    await eventually(lambda: "This message was deleted." in on_b.messages[message_id],
                     "the deletion on B after its restart")
    assert "final one" not in on_b.messages[message_id]


async def test_member_lists_converge_after_a_redis_outage_and_a_crash(
    two_servers, redis_server, users
):
    a, b = two_servers
    alice, bob, carol = users["Alice"], users["Bob"], users["Carol"]
    code = await alice.join(a)
    on_a = await alice.open(a, code)
    await bob.join(b, code)
    on_b = await bob.open(b, code)
    await eventually(lambda: "Bob" in on_a.notices(ENTERED), "Bob's arrival on A")
    await carol.join(a, code)
    carol_a = await carol.open(a, code)
    pages = [on_a, on_b, carol_a]
    everyone = (["Alice", "Bob", "Carol"], 3)
    await eventually(lambda: all(p.members() == everyone for p in pages), "everyone listed")

    # Redis loses everything it knew (restarted empty) while both processes run on.
    redis_server.stop()
    await eventually(lambda: health(a) == health(b) == "degraded", "degraded health")
    await asyncio.sleep(1.0)
    redis_server.start()
    await eventually(lambda: health(a) == health(b) == "ok", "recovered health", timeout=20)
    # Recovered, every page reconnects (to catch up) and is sent the list anew.
    await eventually(lambda: all(p.connects >= 2 for p in pages), "pages to reconnect")
    await eventually(lambda: all(p.members() == everyone for p in pages),
                     "every list to show everyone again", timeout=25)
    await asyncio.sleep(1.0)
    assert [p.members() for p in pages] == [everyone] * 3, [
        (p.members(), p.notices(ENTERED), p.notices(LEFT)) for p in pages]
    assert on_a.notices(LEFT) == []  # nobody left, so nobody was announced as leaving

    # B dies without a word: Bob, on B only, leaves A's lists with a notice.
    b.kill()
    await eventually(lambda: all(p.members() == (["Alice", "Carol"], 2) for p in (on_a, carol_a)),
                     "Bob to leave the lists", timeout=45)
    assert on_a.notices(LEFT) == carol_a.notices(LEFT) == ["Bob"]


def test_in_process_broker_refuses_a_second_process(make_live_server: MakeServer, tmp_path):
    database = tmp_path / "one.db"
    first = make_live_server(name="first", database=database)
    second = make_live_server(name="second", database=database, start=False)
    with pytest.raises(Exception, match="exited with 2"):
        second.start(timeout=20)
    assert "CHAT_BROKER_URL is not set" in second.log_tail()
    assert health(first) == "ok"
