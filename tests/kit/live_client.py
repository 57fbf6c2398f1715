"""One page's live socket, scripted: `LiveClient` connects like htmx's `hx-ws` (the
`websockets` library), keeps what the page would show (messages by id as htmx upserts
them, the member list, notices) and reconnects like the page: on 1001/1005/1006/1011/
1012/1013/1014, with `?after=<newest id seen>` (and the `since` of the page as served).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import random
import re
import ssl
import time

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.kit.forms import message_frame
from tests.kit.server import LiveServer
from tests.kit.wait import wait_until

RECONNECT_CODES = frozenset({1001, 1005, 1006, 1011, 1012, 1013, 1014})  # as hx-ws
ARTICLE = re.compile(
    r'<article[^>]* class="message[^"]*" id="message-(\d+)"[^>]*>(.*?)</article>', re.S
)
AUTHOR = re.compile(r'<span class="author">(.*?)</span>', re.S)
TEXT = re.compile(r'<p class="text[^"]*">(.*?)</p>', re.S)
CHANGED = 'hx-swap-oob="outerHTML"'  # a message sent again because it was changed
NOTICE = re.compile(r'<p class="notice">(.*?)</p>', re.S)
# The member list: a whole list (on connect), or one item added or deleted by id.
MEMBERS = re.compile(r'<ul[^>]*class="members"[^>]*>(.*?)</ul>', re.S)
MEMBER = re.compile(r'<li(?P<attrs>[^>]*)>(?P<name>.*?)</li>', re.S)
MEMBER_KEY = re.compile(r'id="member-([^"]+)"')
MEMBER_COUNT = re.compile(r'id="member-count" class="count">\((\d+)\)</span>')
FORM_ERROR = re.compile(r'<p id="message-error" class="error" role="alert">(.*?)</p>', re.S)
ENTERED, LEFT = " has entered the room", " has left the room"


def _unverified_tls() -> ssl.SSLContext:
    """TLS to a test server, whose certificate is self-signed."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def parse_articles(text: str) -> list[tuple[int, str, str, str]]:
    """Each message in `text`: (id, author, text, the whole article); a deleted one's
    text is its note."""
    found = []
    for id_, article in ARTICLE.findall(text):
        author, body = AUTHOR.search(article), TEXT.search(article)
        found.append((int(id_), html.unescape(author.group(1)) if author else "",
                      html.unescape(body.group(1)) if body else "", article))
    return found


def parse_messages(text: str) -> list[tuple[int, str, str]]:
    """Each message in `text`: (id, author, text)."""
    return [(id_, author, body) for id_, author, body, _ in parse_articles(text)]


class LiveClient:
    """A scripted `hx-ws` connection: records frames, message ids and close codes, queues
    outgoing messages while down, and reconnects like htmx with `?after=<newest id>`.

    `server` is anything with `url` and `ws_url` (a `LiveServer`, or nginx in front of
    some); `connect_options` go to the socket's connection (e.g. `local_addr`)."""

    def __init__(self, server: LiveServer, code: str, cookie: str, *, name: str = "",
                 origin: str | None = "default", after: int = 0, since: int | None = None,
                 reconnect: bool = True, backoff: float = 0.2, backoff_max: float = 2.0,
                 record_frames: bool = True, extra_headers: dict[str, str] | None = None,
                 connect_options: dict | None = None) -> None:
        self.server = server
        self.code = code
        self.name = name
        self.cookie = cookie
        self.origin = server.url if origin == "default" else origin
        self.newest = after
        self.since = since  # the room's revision the page was rendered at
        self.reconnect = reconnect
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.record_frames = record_frames
        self.extra_headers = extra_headers or {}
        self.connect_options = dict(connect_options or {})
        if server.ws_url.startswith("wss:"):
            self.connect_options.setdefault("ssl", _unverified_tls())
        self.frames: list[str] = []
        self.arrivals: list[int] = []  # message ids in arrival order, repeats included
        self.messages: dict[int, tuple[str, str]] = {}  # id -> (author, text)
        self.articles: dict[int, str] = {}  # id -> the article, as htmx upserts it
        self.doubled: list[int] = []  # ids one connection sent twice, not as a change
        self.first_seen: dict[int, float] = {}  # id -> monotonic time
        self.notices: list[str] = []
        self.members: list[str] | None = None  # names shown in the member list
        self.member_count: int | None = None  # the "(N)" beside it
        self._present: dict[str, str] = {}
        self._seen_here: set[int] = set()  # ids this connection has sent
        self.form_errors: list[str] = []
        # Answers to what this page sent, while it alone posts: each message reaches its
        # sender too (once, whatever catch-up repeats), and a refused one comes back in
        # the form.
        self.answers = 0
        self.close_codes: list[int] = []
        self.close_times: list[float] = []
        self.connects = 0
        self.sent: list[str] = []  # texts handed to the socket
        self._outbox: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()
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

    def address(self) -> str:
        """Where the next connection goes: the page's address, after the newest id seen."""
        since = "" if self.since is None else f"&since={self.since}"
        return f"{self.server.ws_url}/rooms/{self.code}/ws?after={self.newest}{since}"

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
        self._was_up = False
        try:
            async with connect(self.address(), additional_headers=self.headers(),
                               max_size=None, open_timeout=5, close_timeout=3,
                               ping_interval=None, compression=None,
                               **self.connect_options) as ws:
                self._socket = ws
                self.connects += 1
                self._was_up = True
                self._seen_here = set()
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
            text, nonce = await self._outbox.get()
            try:
                await ws.send(message_frame(text, nonce))
            except ConnectionClosed:
                # send it after reconnecting (htmx queues too)
                self._outbox.put_nowait((text, nonce))
                return
            self.sent.append(text)

    def _record(self, frame: str) -> None:
        now = time.monotonic()
        if self.record_frames:
            self.frames.append(frame)
        changed = CHANGED in frame
        for message_id, author, body, article in parse_articles(frame):
            self.arrivals.append(message_id)
            if message_id in self._seen_here and not changed:
                self.doubled.append(message_id)
            self._seen_here.add(message_id)
            if message_id not in self.first_seen:
                self.answers += 1
            self.first_seen.setdefault(message_id, now)
            self.messages[message_id] = (author, body)
            self.articles[message_id] = article
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
        for count in MEMBER_COUNT.findall(frame):
            self.member_count = int(count)

    @staticmethod
    def _key(item: re.Match) -> str:
        key = MEMBER_KEY.search(item["attrs"])
        return key.group(1) if key else "name:" + item["name"]

    # Sending ----------------------------------------------------------------------------

    def send(self, text: str, nonce: str | None = None) -> None:
        """Queue one message (sent at once when connected, else after reconnecting)."""
        self._outbox.put_nowait((text, nonce))

    async def send_raw(self, data: str | bytes) -> None:
        """One frame exactly as given (no JSON wrapping): for fuzzing."""
        assert self._socket is not None, "not connected"
        await self._socket.send(data)

    # Views ------------------------------------------------------------------------------

    def ids(self) -> list[int]:
        return list(self.arrivals)

    @property
    def order(self) -> list[int]:
        """Message ids in the order they first arrived."""
        return list(dict.fromkeys(self.arrivals))

    def texts(self) -> list[str]:
        return [self.messages[i][1] for i in sorted(self.messages)]

    def has_text(self, text: str) -> bool:
        return any(body == text for _, body in self.messages.values())

    def entered(self) -> list[str]:
        """Who the page was told has entered the room, in order."""
        return [n.removesuffix(ENTERED) for n in self.notices if n.endswith(ENTERED)]

    def left(self) -> list[str]:
        """Who the page was told has left the room, in order."""
        return [n.removesuffix(LEFT) for n in self.notices if n.endswith(LEFT)]
