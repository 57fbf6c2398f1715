"""The scripted browser: clients that use a real `python -m chat` server as people do.

Everything here talks to `LiveServer` (tests/e2e/conftest.py) over 127.0.0.1, the way a
browser does: `Member` is one cookie jar (one session) speaking HTTP with aiohttp,
`LiveClient` is one WebSocket (the `websockets` library) that records every frame and
reconnects like htmx's `hx-ws` (on 1006/1011/1012/1013, with `?after=<newest id seen>`),
`RawWebSocket` does the handshake by hand on a plain socket so a test can misbehave below
the WebSocket library (never read, send after close, send binary junk).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import random
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from yarl import URL

from tests.e2e.conftest import LiveServer

# Settings that keep limits out of the way of tests that are not about them.
NO_LIMITS = {
    "CHAT_MESSAGE_RATE": "off",
    "CHAT_JOIN_FAIL_RATE": "off",
    "CHAT_CREATE_RATE": "off",
    "CHAT_SOCKETS_PER_ADDRESS": "off",  # every scripted client comes from 127.0.0.1
    "CHAT_LEAVE_GRACE": "0.3",
}
RECONNECT_CODES = frozenset({1001, 1005, 1006, 1011, 1012, 1013, 1014})  # as hx-ws
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]*)"')
MESSAGE = re.compile(
    r'<article[^>]* class="message[^"]*" id="message-(\d+)"[^>]*>\s*'
    r'<header><span class="author">(.*?)</span>'
    r'.*?<p class="text">(.*?)</p>',
    re.S,
)
MESSAGE_ID = re.compile(r'id="message-(\d+)"')
NOTICE = re.compile(r'<p class="notice">(.*?)</p>', re.S)
# The member list: a whole list (on connect), or one item added or deleted by id.
MEMBERS = re.compile(r'<ul[^>]*class="members"[^>]*>(.*?)</ul>', re.S)
MEMBER = re.compile(r'<li(?P<attrs>[^>]*)>(?P<name>.*?)</li>', re.S)
MEMBER_KEY = re.compile(r'id="member-([^"]+)"')
FORM_ERROR = re.compile(r'<p id="message-error" class="error" role="alert">(.*?)</p>', re.S)
EARLIER = re.compile(r'/rooms/[A-Z]+/messages\?before=(\d+)')
SERVER_FAULTS = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b")


# Waiting ------------------------------------------------------------------------------


async def wait_until(check: Callable[[], bool], within: float = 10.0, what: str = "") -> None:
    """Poll `check` every 20 ms; fail the test after `within` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or check}")
        await asyncio.sleep(0.02)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# Server log ---------------------------------------------------------------------------


class LogWatch:
    """The part of a server's log written after a mark, checked for handler faults."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.offset = 0
        self.mark()

    def mark(self) -> None:
        self.offset = self.server.log_path.stat().st_size if self.server.log_path.exists() else 0

    def text(self) -> str:
        with self.server.log_path.open("rb") as log:
            log.seek(self.offset)
            return log.read().decode(errors="replace")

    def faults(self) -> list[str]:
        return [line for line in self.text().splitlines() if SERVER_FAULTS.search(line)]

    def assert_clean(self) -> None:
        faults = self.faults()
        assert not faults, ("server logged faults:\n" + "\n".join(faults[:20]) + "\n"
                            + self.text()[-4000:])


def server_log_text(server: LiveServer) -> str:
    return server.log_path.read_text(errors="replace")


def database_rows(server: LiveServer, query: str, args: tuple = ()) -> list[tuple]:
    """Read the server's SQLite file directly (read-only), e.g. to prove nothing changed."""
    uri = f"file:{server.database}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
        return db.execute(query, args).fetchall()


def count_rooms(server: LiveServer) -> int:
    return database_rows(server, "SELECT count(*) FROM rooms")[0][0]


def count_messages(server: LiveServer, code: str | None = None) -> int:
    if code is None:
        return database_rows(server, "SELECT count(*) FROM messages")[0][0]
    return database_rows(server, "SELECT count(*) FROM messages WHERE room_code = ?", (code,))[0][0]


# HTTP: one browser's cookie jar -------------------------------------------------------


@dataclass
class Reply:
    status: int
    text: str
    headers: dict[str, str]

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")


class Member:
    """One person's cookie jar: a session on the server, driven through the HTML forms."""

    def __init__(self, server: LiveServer, name: str = "member") -> None:
        self.server = server
        self.name = name
        self.origin = server.url
        self.jar = aiohttp.CookieJar(unsafe=True)  # unsafe: keep cookies for an IP host
        self.http = aiohttp.ClientSession(
            base_url=server.url, cookie_jar=self.jar, timeout=aiohttp.ClientTimeout(total=15)
        )

    async def close(self) -> None:
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

    async def csrf_token(self) -> str:
        """GET / (which starts the session) and read the form's hidden token."""
        page = await self.get("/")
        assert page.status == 200, page
        return CSRF_INPUT.search(page.text).group(1)

    async def create_room(self, name: str | None = None) -> str:
        token = await self.csrf_token()
        form = {"name": name or self.name, "create": "1", "csrf_token": token}
        reply = await self.post("/", form)
        assert reply.status == 303, (reply.status, reply.text[:500])
        return reply.location.rsplit("/", 1)[1]

    async def join_room(self, code: str, name: str | None = None) -> None:
        token = await self.csrf_token()
        reply = await self.post(
            "/", {"name": name or self.name, "code": code, "join": "1", "csrf_token": token}
        )
        assert reply.status == 303, (reply.status, reply.text[:500])
        assert reply.location.endswith(f"/rooms/{code}"), reply.location

    def cookie_header(self) -> str:
        cookies = self.jar.filter_cookies(URL(self.server.url))
        return "; ".join(f"{key}={morsel.value}" for key, morsel in cookies.items())

    def session_cookie(self) -> str:
        return self.jar.filter_cookies(URL(self.server.url))["session"].value

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

    def client(self, code: str, **options) -> LiveClient:
        return LiveClient(self.server, code, self.cookie_header(), name=self.name, **options)


def parse_messages(text: str) -> list[tuple[int, str, str]]:
    return [(int(id_), html.unescape(author), html.unescape(body))
            for id_, author, body in MESSAGE.findall(text)]


# WebSocket: one page's live connection ------------------------------------------------


class LiveClient:
    """A scripted `hx-ws` connection: records frames, message ids and close codes, queues
    outgoing messages while down, and reconnects like htmx with `?after=<newest id>`."""

    def __init__(self, server: LiveServer, code: str, cookie: str, *, name: str = "",
                 origin: str | None = "default", after: int = 0, reconnect: bool = True,
                 backoff: float = 0.2, backoff_max: float = 2.0, record_frames: bool = True,
                 extra_headers: dict[str, str] | None = None) -> None:
        self.server = server
        self.code = code
        self.name = name
        self.cookie = cookie
        self.origin = server.url if origin == "default" else origin
        self.newest = after
        self.reconnect = reconnect
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.record_frames = record_frames
        self.extra_headers = extra_headers or {}
        self.frames: list[str] = []
        self.arrivals: list[int] = []  # message ids in arrival order, repeats included
        self.messages: dict[int, tuple[str, str]] = {}  # id -> (author, text)
        self.first_seen: dict[int, float] = {}  # id -> monotonic time
        self.notices: list[str] = []
        self.members: list[str] | None = None  # names shown in the member list
        self._present: dict[str, str] = {}
        self.form_errors: list[str] = []
        # Answers to what this page sent, while it alone posts: each message reaches its
        # sender too (once, whatever catch-up repeats), and a refused one comes back in
        # the form.
        self.answers = 0
        self.close_codes: list[int] = []
        self.close_times: list[float] = []
        self.connects = 0
        self.sent: list[str] = []  # texts handed to the socket
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._socket: ClientConnection | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._was_up = False
        self.connected = asyncio.Event()
        self.finished = asyncio.Event()

    # Life cycle -----------------------------------------------------------------------

    def start(self) -> LiveClient:
        self._task = asyncio.create_task(self._run(), name=f"live-client-{self.name}")
        return self

    async def open(self, within: float = 10.0) -> LiveClient:
        """Start and wait for the first connection and its member list."""
        self.start()
        await wait_until(lambda: self.members is not None or self.finished.is_set(), within,
                         f"{self.name} to connect")
        return self

    async def stop(self) -> None:
        self._stopping = True
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._socket.close(), 3)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    @property
    def close_code(self) -> int | None:
        return self.close_codes[-1] if self.close_codes else None

    def headers(self) -> dict[str, str]:
        headers = dict(self.extra_headers)
        if self.cookie:
            headers["Cookie"] = self.cookie
        if self.origin is not None:
            headers["Origin"] = self.origin
        return headers

    async def _run(self) -> None:
        delay = self.backoff
        try:
            while not self._stopping:
                code = await self._connect_once()
                self.close_codes.append(code)
                self.close_times.append(time.monotonic())
                if self._stopping or not self.reconnect or code not in RECONNECT_CODES:
                    return
                if self._was_up:  # a connection that worked resets the back-off
                    delay = self.backoff
                await asyncio.sleep(delay * random.uniform(0.7, 1.3))
                delay = min(delay * 2, self.backoff_max)
        finally:
            self.connected.clear()
            self.finished.set()

    async def _connect_once(self) -> int:
        url = f"{self.server.ws_url}/rooms/{self.code}/ws?after={self.newest}"
        self._was_up = False
        try:
            async with connect(url, additional_headers=self.headers(), max_size=None,
                               open_timeout=5, close_timeout=3, ping_interval=None,
                               compression=None) as ws:
                self._socket = ws
                self.connects += 1
                self._was_up = True
                self.connected.set()
                sender = asyncio.create_task(self._send_loop(ws))
                try:
                    async for frame in ws:
                        self._record(frame if isinstance(frame, str) else frame.decode())
                except ConnectionClosed:
                    pass
                finally:
                    sender.cancel()
                    with contextlib.suppress(BaseException):
                        await sender
                    self.connected.clear()
                    self._socket = None
                return ws.close_code if ws.close_code is not None else 1006
        except (OSError, InvalidHandshake, TimeoutError):
            return 1006

    async def _send_loop(self, ws: ClientConnection) -> None:
        while True:
            text = await self._outbox.get()
            try:
                await ws.send(json.dumps({"message": text, "headers": {
                    "HX-Request": "true", "HX-Source": "form#message-form"}}))
            except ConnectionClosed:
                self._outbox.put_nowait(text)  # send it after reconnecting (htmx queues too)
                return
            self.sent.append(text)

    def _record(self, frame: str) -> None:
        now = time.monotonic()
        if self.record_frames:
            self.frames.append(frame)
        for id_, author, body in MESSAGE.findall(frame):
            message_id = int(id_)
            self.arrivals.append(message_id)
            if message_id not in self.first_seen:
                self.answers += 1
            self.first_seen.setdefault(message_id, now)
            self.messages[message_id] = (html.unescape(author), html.unescape(body))
            self.newest = max(self.newest, message_id)
        self.notices.extend(html.unescape(n) for n in NOTICE.findall(frame))
        self._record_members(frame)
        if 'id="message-form"' in frame:
            # one frame can carry several queued fragments (the writer joins them)
            self.answers += frame.count('id="message-form"')
            self.form_errors.extend(html.unescape(e) for e in FORM_ERROR.findall(frame))

    def _record_members(self, frame: str) -> None:
        whole = MEMBERS.search(frame)
        if whole:
            self._present = {}
            rest = frame[:whole.start()] + frame[whole.end():]
            for item in MEMBER.finditer(whole.group(1)):
                if 'class="empty"' not in item["attrs"]:
                    self._present[self._key(item)] = html.unescape(item["name"])
        else:
            rest = frame
        for item in MEMBER.finditer(rest):
            if "member-" not in item["attrs"]:
                continue
            if 'hx-swap-oob="delete"' in item["attrs"]:
                self._present.pop(self._key(item), None)
            else:
                self._present[self._key(item)] = html.unescape(item["name"])
        if whole or self.members is not None:
            self.members = sorted(self._present.values(), key=lambda n: (n.casefold(), n))

    @staticmethod
    def _key(item: re.Match) -> str:
        key = MEMBER_KEY.search(item["attrs"])
        return key.group(1) if key else "name:" + item["name"]

    # Sending ----------------------------------------------------------------------------

    def send(self, text: str) -> None:
        """Queue one message (sent at once when connected, else after reconnecting)."""
        self._outbox.put_nowait(text)

    async def send_raw(self, data: str | bytes) -> None:
        """One frame exactly as given (no JSON wrapping): for fuzzing."""
        assert self._socket is not None, "not connected"
        await self._socket.send(data)

    # Views ------------------------------------------------------------------------------

    def ids(self) -> list[int]:
        return list(self.arrivals)

    def texts(self) -> list[str]:
        return [self.messages[i][1] for i in sorted(self.messages)]

    def has_text(self, text: str) -> bool:
        return any(body == text for _, body in self.messages.values())
