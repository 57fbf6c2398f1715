"""Hardening fixtures: scripted clients that attack a real `python -m chat` server.

Everything here talks to `LiveServer` (tests/e2e/conftest.py) over 127.0.0.1, the way a
browser does: `Member` is one cookie jar (one session) speaking HTTP with aiohttp,
`LiveClient` is one WebSocket (the `websockets` library) that records every frame and
reconnects like htmx's `hx-ws` (on 1006/1011/1012/1013, with `?after=<newest id seen>`),
`RawWebSocket` does the handshake by hand on a plain socket so a test can misbehave below
the WebSocket library (never read, send after close, send binary junk).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import json
import os
import random
import re
import socket
import sqlite3
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from yarl import URL

# Reused, not copied: the e2e helper and its fixtures (importing registers the fixtures).
from tests.e2e.conftest import (  # noqa: F401
    LiveServer,
    MakeServer,
    browser,
    free_port,
    make_live_server,
)

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


# Markup check: what another member receives must be only our own markup ---------------

OUR_TAGS = frozenset({"div", "article", "header", "span", "time", "p", "form", "input",
                      "label", "button", "h2", "ul", "li", "a", "details", "summary",
                      "textarea"})


class _TagAudit(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in OUR_TAGS:
            self.problems.append(f"unexpected tag <{tag}>")
        for name, _ in attrs:
            if name.startswith("on") or name in {"src", "srcdoc", "style"}:
                self.problems.append(f"unexpected attribute {name} on <{tag}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)


def markup_problems(frame: str) -> list[str]:
    """Raw attacker markup in a pushed frame: tags or attributes our templates never emit."""
    audit = _TagAudit()
    audit.feed(frame)
    audit.close()
    lowered = frame.lower()
    raw = [needle for needle in ("<script", "<img", "<svg", "<iframe") if needle in lowered]
    return audit.problems + [f"raw {needle}" for needle in raw]


# Raw WebSocket: the handshake by hand ---------------------------------------------------


def ws_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    """One client frame (RFC 6455 §5.2), masked as clients must."""
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([bit | length])
    elif length < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def parse_server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Unmasked server frames from a byte stream: (opcode, payload); a cut-off tail is dropped."""
    frames, at = [], 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            if at + 2 > len(data):
                break
            (length,) = struct.unpack("!H", data[at:at + 2])
            at += 2
        elif length == 127:
            if at + 8 > len(data):
                break
            (length,) = struct.unpack("!Q", data[at:at + 8])
            at += 8
        if at + length > len(data):
            break
        frames.append((opcode, data[at:at + length]))
        at += length
    return frames


def close_code_of(frames: list[tuple[int, bytes]]) -> int | None:
    for opcode, payload in frames:
        if opcode == 0x8:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    return None


class RawWebSocket:
    """A blocking socket that does the WebSocket handshake itself, then whatever the test
    wants: never read (a stuck client), send after close, send malformed frames."""

    def __init__(self, server: LiveServer, path: str, *, cookie: str = "",
                 origin: str | None = "default", rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect((server.host, server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {server.host}:{server.port}",
                 "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        if origin is not None:
            lines.append(f"Origin: {server.url if origin == 'default' else origin}")
        if cookie:
            lines.append(f"Cookie: {cookie}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            response += chunk
        head, _, self.buffered = response.partition(b"\r\n\r\n")
        self.status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        assert " 101 " in self.status_line, self.status_line

    def send(self, opcode: int, payload: bytes, **options) -> bool:
        """Send one frame; False when the server has already gone."""
        try:
            self.sock.sendall(ws_frame(opcode, payload, **options))
            return True
        except OSError:
            return False

    def send_text(self, text: str) -> bool:
        return self.send(0x1, text.encode("utf-8", "surrogatepass"))

    def drain(self, timeout: float = 10.0) -> tuple[bytes, bool]:
        """Read everything until EOF (True) or `timeout` of silence (False)."""
        self.sock.settimeout(timeout)
        data = self.buffered
        self.buffered = b""
        try:
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    return data, True
                data += chunk
        except TimeoutError:
            return data, False
        except OSError:  # reset by the server: gone as well
            return data, True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# Fixtures -------------------------------------------------------------------------------


@pytest.fixture
async def clients() -> AsyncIterator[list[LiveClient]]:
    """Register `LiveClient`s here so they are stopped at teardown."""
    made: list[LiveClient] = []
    yield made
    await asyncio.gather(*(client.stop() for client in made), return_exceptions=True)


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory,
                  request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """One server shared by a module's tests (limits off unless the module sets
    `SERVER_ENV`)."""
    env = {**NO_LIMITS, **getattr(request.module, "SERVER_ENV", {})}
    folder = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    server = LiveServer(folder, env=env, name="module")
    server.start()
    try:
        yield server
    finally:
        server.close()
        print(f"\n--- {server.name} log ({server.log_path}) ---\n{server.log_tail()}")



# Load: many members in many rooms, checked message by message -------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class LoadReport:
    clients: int
    rooms: int
    seconds: float
    sent: int = 0
    stored: int = 0
    deliveries: int = 0
    expected_deliveries: int = 0
    lost: int = 0  # a stored message some member of its room never received
    duplicated: int = 0  # a message received twice by one member, or stored twice
    not_stored: int = 0  # a message sent but not in the history
    out_of_order: int = 0  # members whose arrival order differs from the history's
    reconnects: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)
    server_cpu: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.not_stored or self.out_of_order
                    or self.problems)

    def summary(self) -> str:
        lat = self.latencies
        cpu = ""
        if self.server_cpu is not None and self.deliveries:
            cpu = (f"\n  server CPU: {self.server_cpu:.2f} s, "
                   f"{self.server_cpu / self.deliveries * 1e6:.0f} µs per delivered message")
        return (
            f"load: {self.clients} clients in {self.rooms} rooms for {self.seconds:.0f} s "
            f"(client: 1 asyncio process, {os.cpu_count()} cores shared with the server)\n"
            f"  sent {self.sent}, stored {self.stored}, deliveries {self.deliveries}/"
            f"{self.expected_deliveries}\n"
            f"  lost {self.lost}, duplicated {self.duplicated}, not stored {self.not_stored}, "
            f"members out of order {self.out_of_order}, reconnects {self.reconnects}\n"
            f"  latency p50 {percentile(lat, .5) * 1000:.1f} ms, "
            f"p95 {percentile(lat, .95) * 1000:.1f} ms, "
            f"p99 {percentile(lat, .99) * 1000:.1f} ms, max {max(lat, default=0) * 1000:.1f} ms"
            + cpu + ("\n  problems: " + "; ".join(self.problems[:10]) if self.problems else "")
        )


async def run_load(server: LiveServer, *, clients: int, rooms: int, seconds: float,
                   rate: float = 0.5, settle: float = 20.0, pid: int | None = None,
                   progress: Callable[[str], None] | None = None) -> LoadReport:
    """`clients` members spread over `rooms` rooms each send about `rate` messages/s for
    `seconds`; then every member's arrivals are compared with the room's history."""
    say = progress or (lambda _: None)
    report = LoadReport(clients, rooms, seconds)
    members = [Member(server, f"u{i:03d}") for i in range(clients)]
    live: list[LiveClient] = []
    try:
        codes = [await members[r].create_room() for r in range(rooms)]
        room_of = {i: codes[i % rooms] for i in range(clients)}
        joining = asyncio.Semaphore(20)

        async def join(i: int) -> None:
            async with joining:
                if i >= rooms:
                    await members[i].join_room(room_of[i])

        await asyncio.gather(*(join(i) for i in range(clients)))
        live = [members[i].client(room_of[i], record_frames=False) for i in range(clients)]
        for first in range(0, clients, 20):
            await asyncio.gather(*(c.open() for c in live[first:first + 20]))
        size = {code: sum(1 for i in room_of if room_of[i] == code) for code in codes}
        await wait_until(lambda: all(len(c.members or []) == size[c.code] for c in live), 30,
                         "every member to see its whole room")
        say(f"{clients} clients connected in {rooms} rooms; chatting for {seconds:.0f} s")

        sent_at: dict[str, float] = {}
        sent_in: dict[str, list[str]] = {code: [] for code in codes}
        cpu_before = cpu_seconds(pid) if pid else None

        async def chat(i: int, client: LiveClient) -> None:
            end = time.monotonic() + seconds
            await asyncio.sleep(random.uniform(0, 1 / rate))
            n = 0
            while time.monotonic() < end:
                text = f"L{i:03d}-{n:05d}"
                sent_at[text] = time.monotonic()
                sent_in[client.code].append(text)
                client.send(text)
                n += 1
                await asyncio.sleep(random.expovariate(rate))

        await asyncio.gather(*(chat(i, c) for i, c in enumerate(live)))
        report.sent = len(sent_at)

        def settled() -> bool:
            return all(len(c.messages) >= len(sent_in[c.code]) for c in live)

        with contextlib.suppress(AssertionError):
            await wait_until(settled, settle, "every message to arrive")
        await asyncio.sleep(0.3)  # anything duplicated or late shows up now
        if pid:
            report.server_cpu = cpu_seconds(pid) - cpu_before
        say("chat over; checking every member against the history")

        for r, code in enumerate(codes):
            history = await members[r].history(code)
            ids = [m[0] for m in history]
            texts = [m[2] for m in history]
            report.stored += len(history)
            report.duplicated += len(texts) - len(set(texts))
            report.not_stored += len(set(sent_in[code]) - set(texts))
            for client in (c for c in live if c.code == code):
                arrivals = client.arrivals
                report.deliveries += len(set(arrivals))
                report.expected_deliveries += len(ids)
                report.duplicated += len(arrivals) - len(set(arrivals))
                report.lost += len(set(ids) - set(arrivals))
                if arrivals != ids:
                    report.out_of_order += sorted(set(arrivals)) == sorted(ids)
                extra = set(arrivals) - set(ids)
                if extra:
                    report.problems.append(f"{client.name} got ids not in the history: "
                                           f"{sorted(extra)[:5]}")
                for message_id, (_, text) in client.messages.items():
                    if text in sent_at and message_id in client.first_seen:
                        report.latencies.append(client.first_seen[message_id] - sent_at[text])
        report.reconnects = sum(max(0, c.connects - 1) for c in live)
        return report
    finally:
        await asyncio.gather(*(c.stop() for c in live), return_exceptions=True)
        await asyncio.gather(*(m.close() for m in members), return_exceptions=True)


@pytest.fixture(scope="module")
def arena(module_server: LiveServer) -> Iterator[object]:
    """The fuzzing modules' arena, on the module's server."""
    from tests.hardening.fuzzing import Arena

    arena = Arena(module_server)
    arena.run(arena.open())
    try:
        yield arena
    finally:
        arena.run(arena.close())
        arena.loop.close()
