"""The load generator: drives a server the way browsers do, in its own process.

`python -m bench.client` reads one JSON job on stdin (a scenario, the target server and
its sizes) and writes one JSON result on stdout; progress goes to stderr. The runner
pins this process to cores of its own.

Browser flow (target "browser": true), read and written with the test kit's forms
(tests/kit/forms.py), as the tests' scripted browser does: GET / → POST / with the form's
hidden inputs, keeping cookies → 303 → GET the room page → WebSocket from the page's
`hx-ws:connect` with `Origin` and the cookie → the text frames hx-ws sends. Floor servers
(browser false) get the WebSocket step only. A member here is a cookie dict and a socket
on one shared HTTP session, light enough for thousands.

Every message text holds a unique token `ZQ<n>QZ`; frames are scanned for tokens and
for the `id="message-<id>"` before each, which gives the server's order.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import resource
import sys
import time
from collections import defaultdict
from urllib.parse import urljoin

import aiohttp

from bench.procstat import cpu_seconds, rss_kib
from bench.progress import status
from tests.kit.forms import connect_address, join_form, message_frame, room_code

TOKEN = re.compile(rb'id="message-(\d+)"|ZQ(\d+)QZ')
FORM_FRAME = b'id="message-form"'
ARTICLE = b"<article"
FORM_ERROR = b'id="message-error"'
MESSAGE_ID = re.compile(r'id="message-(\d+)"')
now = time.monotonic


# Members -----------------------------------------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.tokens = 0
        self.frames = 0
        self.bytes = 0
        self.last_frame = now()
        self.form_errors = 0
        self.closed: list[tuple[str, int | None]] = []
        self.errors: list[str] = []


class Member:
    __slots__ = ("cookies", "got", "label", "reader", "room", "stats", "ws")

    def __init__(self, room: int, label: str, stats: Stats) -> None:
        self.room = room
        self.label = label
        self.stats = stats
        self.cookies: dict[str, str] = {}
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task | None = None
        # (token, server message id or None, receive time), in receive order
        self.got: list[tuple[int, int | None, float]] = []

    def cookie_header(self) -> dict[str, str]:
        if not self.cookies:
            return {}
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    def keep_cookies(self, response: aiohttp.ClientResponse) -> None:
        for name, morsel in response.cookies.items():
            self.cookies[name] = morsel.value

    async def read(self) -> None:
        ws, stats, got = self.ws, self.stats, self.got
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT or msg.type is aiohttp.WSMsgType.BINARY:
                t = now()
                data = msg.data
                stats.frames += 1
                stats.bytes += len(data)
                stats.last_frame = t
                if b"ZQ" not in data:
                    continue
                if FORM_FRAME in data:  # the sender's form, reset (or with an error)
                    if FORM_ERROR in data:
                        stats.form_errors += 1
                    if ARTICLE not in data:  # a fresh form rides on the sender's message
                        continue
                message_id = None
                for found in TOKEN.finditer(data):
                    mid, token = found.groups()
                    if mid is not None:
                        message_id = int(mid)
                    else:
                        got.append((int(token), message_id, t))
                        stats.tokens += 1
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                              aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                stats.closed.append((self.label, ws.close_code))
                return


class Client:
    def __init__(self, target: dict, job: dict) -> None:
        self.base = target["base"]
        self.browser = target["browser"]
        self.pid = target["pid"]
        self.deflate = 15 if job.get("deflate") else 0
        self.stats = Stats()
        self.http: aiohttp.ClientSession | None = None
        self.next_token = 1
        self.sent: dict[int, tuple[float, int]] = {}  # token -> (intended send time, room)

    async def __aenter__(self) -> Client:
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        self.http = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=60),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()

    async def _get(self, member: Member, url: str,
                   extra: dict | None = None) -> tuple[int, str, str]:
        async with self.http.get(url, headers={**member.cookie_header(), **(extra or {})},
                                 allow_redirects=False) as response:
            member.keep_cookies(response)
            return response.status, await response.text(), response.headers.get("Location", "")

    async def join(self, member: Member, code: str | None, name: str) -> str:
        """Join (or create, when `code` is None) and open the socket; the room code."""
        ws_path = f"/rooms/{code}/ws"
        if self.browser:
            status_, home, _ = await self._get(member, self.base + "/")
            if status_ != 200:
                raise RuntimeError(f"GET / answered {status_}")
            form = join_form(home, name, code)
            async with self.http.post(self.base + "/", data=form, headers=member.cookie_header(),
                                      allow_redirects=False) as response:
                member.keep_cookies(response)
                body = await response.text()
                if response.status != 303:
                    raise RuntimeError(f"POST / answered {response.status}: {body[:200]}")
                location = urljoin(self.base + "/", response.headers["Location"])
            code = room_code(location)
            status_, page, _ = await self._get(member, location)
            if status_ != 200:
                raise RuntimeError(f"GET {location} answered {status_}")
            ws_path = connect_address(page) or f"/rooms/{code}/ws"
        elif code is None:
            raise ValueError("floor servers need a code")
        headers = {"Origin": self.base, **member.cookie_header()}
        member.ws = await self.http.ws_connect(
            "ws" + self.base.removeprefix("http") + ws_path, headers=headers,
            max_msg_size=0, compress=self.deflate, autoping=True, decode_text=False,
        )
        member.reader = asyncio.create_task(member.read())
        return code

    async def room(self, room: int, size: int, code: str | None = None,
                   members: list[Member] | None = None, concurrency: int = 20,
                   deadline: float = math.inf) -> tuple[str, list[Member]]:
        """Fill room number `room` up to `size` members (the first one creates it)."""
        members = members if members is not None else []
        if code is None:
            first = Member(room, f"r{room}m0", self.stats)
            code = await self.join(first, None if self.browser else f"B{room:03d}", f"r{room}m0")
            members.append(first)
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> Member:
            async with gate:
                if now() > deadline:
                    raise TimeoutError("join phase over its time limit")
                member = Member(room, f"r{room}m{i}", self.stats)
                await self.join(member, code, f"r{room}m{i}")
                return member

        new = await asyncio.gather(*(one(i) for i in range(len(members), size)))
        members.extend(new)
        return code, members

    async def quiet(self, gap: float, limit: float) -> bool:
        """Wait until no frame arrived for `gap` seconds (at most `limit`)."""
        end = now() + limit
        while now() < end:
            idle = now() - self.stats.last_frame
            if idle >= gap:
                return True
            await asyncio.sleep(min(gap - idle, 0.05) + 0.001)
        return False

    def frame(self, token: int) -> str:
        return message_frame(f"bench message ZQ{token}QZ from the load generator")

    async def send_plan(self, member: Member, plan: list[tuple[float, int]]) -> None:
        for at, token in plan:
            delay = at - now()
            if delay > 0:
                await asyncio.sleep(delay)
            self.sent[token] = (at, member.room)
            try:
                await member.ws.send_str(self.frame(token))
            except (ConnectionError, aiohttp.ClientError, RuntimeError) as error:
                # closed by the server (e.g. 1013 when it fell behind); counted as lost
                self.stats.errors.append(f"{member.label}: send failed: {error}")
                return

    async def offer(self, rooms: dict[int, list[Member]], senders: dict[int, list[Member]],
                    rate: float, duration: float, drain: float) -> dict:
        """Open-loop: `rate` messages/s in total for `duration` s, spread round-robin over
        rooms and their senders; then wait for delivery (at most `drain` s)."""
        count = max(1, round(rate * duration))
        start = now() + 0.05
        first_token = self.next_token
        plans: dict[int, list[tuple[float, int]]] = defaultdict(list)
        room_ids = sorted(rooms)
        senders_of = {r: senders[r] for r in room_ids}
        by_id: dict[int, Member] = {}
        expected = 0
        for k in range(count):
            room = room_ids[k % len(room_ids)]
            sender = senders_of[room][(k // len(room_ids)) % len(senders_of[room])]
            by_id[id(sender)] = sender
            plans[id(sender)].append((start + k / rate, self.next_token))
            self.next_token += 1
            expected += len(rooms[room])
        tokens = range(first_token, self.next_token)
        cpu0, tokens0, wall0, own0 = cpu_seconds(self.pid), self.stats.tokens, now(), _own_cpu()
        tasks = [asyncio.create_task(self.send_plan(by_id[key], plan))
                 for key, plan in plans.items()]
        await asyncio.gather(*tasks)
        last_send = start + (count - 1) / rate
        while now() < last_send + drain and self.stats.tokens - tokens0 < expected:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # let duplicates show
        cpu1, wall1, own1 = cpu_seconds(self.pid), now(), _own_cpu()
        result = check(rooms, tokens, self.sent)
        result.update(
            expected=expected, offered_msgs_per_s=rate, messages=count, duration_s=duration,
            offered_deliveries_per_s=rate * expected / count,
            delivered_per_s=result["delivered"] / duration,
            server_cpu_s=cpu1 - cpu0, wall_s=wall1 - wall0,
            server_cpu_us_per_delivery=(1e6 * (cpu1 - cpu0) / result["delivered"]
                                        if result["delivered"] else None),
            client_cpu_share=(own1 - own0) / (wall1 - wall0),
        )
        return result


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def check(rooms: dict[int, list[Member]], tokens: range, sent: dict) -> dict:
    """Lost, duplicated, out-of-order deliveries and latencies for the `tokens` sent."""
    lo, hi = tokens.start, tokens.stop
    latencies: list[float] = []
    lost = duplicated = out_of_order = id_mismatch = 0
    per_token_worst: dict[int, float] = {}
    delivered = 0
    for members in rooms.values():
        room_tokens = {t for t in tokens if sent.get(t, (0, None))[1] == members[0].room}
        seen_by: list[list[tuple[int, int | None, float]]] = []
        server_id: dict[int, int] = {}
        for member in members:
            mine = [g for g in member.got if lo <= g[0] < hi]
            seen_by.append(mine)
            counts: dict[int, int] = defaultdict(int)
            for token, mid, t in mine:
                counts[token] += 1
                if counts[token] > 1:
                    duplicated += 1
                    continue
                delivered += 1
                latency = t - sent[token][0] if token in sent else math.inf
                latencies.append(latency)
                if latency > per_token_worst.get(token, -1.0):
                    per_token_worst[token] = latency
                if mid is not None and server_id.setdefault(token, mid) != mid:
                    id_mismatch += 1
            lost += sum(1 for t in room_tokens if t not in counts)
            for t in room_tokens:
                if t not in counts:
                    per_token_worst[t] = math.inf
        # The room's order: the server's message ids when frames carry them, else the
        # order the first member saw. Every member must see that order.
        if server_id:
            reference = sorted(server_id, key=server_id.__getitem__)
        else:
            reference = list(dict.fromkeys(g[0] for g in seen_by[0])) if seen_by else []
        position = {token: i for i, token in enumerate(reference)}
        for mine in seen_by:
            highest = -1
            for token, _, _ in mine:
                p = position.get(token, -1)
                if p < highest:
                    out_of_order += 1
                highest = max(highest, p)
    worst = list(per_token_worst.values())
    finite = [x for x in latencies if x != math.inf]
    return {
        "delivered": delivered,
        "lost": lost,
        "duplicated": duplicated,
        "out_of_order": out_of_order,
        "id_mismatch": id_mismatch,
        "p50_ms": _ms(_percentile(finite, 0.50)),
        "p99_ms": _ms(_percentile(finite, 0.99)),
        "max_ms": _ms(max(finite) if finite else None),
        "worst_per_message_ms": [_ms(x) if x != math.inf else None for x in worst],
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


# Scenarios ---------------------------------------------------------------------------


async def throughput(client: Client, job: dict) -> dict:
    n_rooms, size = job["rooms"], job["members"]
    deadline = now() + job["join_timeout"]
    status(f"{job['label']}: throughput: joining {n_rooms} x {size}")
    rooms: dict[int, list[Member]] = {}
    for r in range(n_rooms):
        _, rooms[r] = await client.room(r, size, deadline=deadline)
    await client.quiet(0.3, 10)
    out: dict = {"rooms": n_rooms, "members": size, "steps": []}

    async def step(deliveries_per_s: float, duration: float, what: str) -> dict:
        rate = deliveries_per_s / size
        await client.quiet(job["quiet_s"], 30)  # start from an idle server, not a previous backlog
        status(f"{job['label']}: {what}: {deliveries_per_s:,.0f} deliveries/s for {duration:g} s")
        result = await client.offer(rooms, rooms, rate, duration, job["drain"])
        # Several workers publish through Redis, so a message can arrive after a newer
        # one; the page still shows id order (htmx's upsert inserts by id).
        in_order = result["out_of_order"] == 0 or job.get("arrival_order_free", False)
        result["passed"] = (result["lost"] == 0 and result["duplicated"] == 0
                            and in_order and result["p99_ms"] is not None
                            and result["p99_ms"] <= job["p99_limit_ms"]
                            and not client.stats.closed)
        result["closed_connections"] = len(client.stats.closed)
        del result["worst_per_message_ms"]
        status(f"{job['label']}: {what}: {deliveries_per_s:,.0f}/s -> p99 {result['p99_ms']} ms, "
               f"lost {result['lost']}, dup {result['duplicated']}, "
               f"ooo {result['out_of_order']}", keep=True)
        return result

    await step(job["warmup_rate"], job["warmup_s"], "warm-up")
    if job.get("phase") == "fixed":
        out["fixed_load"] = await fixed_load(client, job, step)
        out["closed"] = client.stats.closed[:20]
        out["closed_count"] = len(client.stats.closed)
        return out
    failures = 0
    for deliveries_per_s in job["rates"]:
        result = await step(deliveries_per_s, job["step_s"], "step")
        out["steps"].append(result)
        if client.stats.closed:
            break
        failures += not result["passed"]
        if failures >= job["stop_after_failures"]:
            break
    passing = [s for s in out["steps"] if s["passed"]]
    out["best_delivered_per_s"] = max((s["delivered_per_s"] for s in passing), default=0.0)
    out["closed"] = client.stats.closed[:20]
    out["closed_count"] = len(client.stats.closed)
    out["form_errors"] = client.stats.form_errors
    return out


async def fixed_load(client: Client, job: dict, step) -> dict:
    """The headline: server CPU per delivery at one fixed offered load (a server of its own)."""
    spy = None
    if job.get("profile"):  # sample the server only while the fixed load runs
        spy = await asyncio.create_subprocess_exec(
            job["profile"]["py_spy"], "record", "--pid", str(client.pid), "--nonblocking",
            "--threads", "--rate", "200", "--format", "raw",
            "--duration", str(math.ceil(job["cpu_s"])), "--output", job["profile"]["output"],
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await asyncio.sleep(1.0)  # py-spy attaches
    result = await step(job["cpu_rate"], job["cpu_s"], "fixed load")
    if spy is not None:
        await asyncio.wait_for(spy.wait(), 60)
    return result


async def fanout(client: Client, job: dict) -> dict:
    members: list[Member] = []
    code = None if client.browser else "FANO"
    out: dict = {"senders": job["senders"], "steps": []}
    for size in job["sizes"]:
        status(f"{job['label']}: fan-out: joining up to {size} members")
        bytes0, t0 = client.stats.bytes, now()
        try:
            code, members = await client.room(0, size, code, members,
                                              deadline=now() + job["join_timeout"])
        except Exception as error:  # the join phase did not finish in bounds
            out["steps"].append({"members": size, "passed": False,
                                 "join_error": f"{type(error).__name__}: {error}",
                                 "join_s": round(now() - t0, 2),
                                 "join_bytes_received": client.stats.bytes - bytes0})
            break
        settled = await client.quiet(job["quiet_s"], job["join_timeout"])
        join_s = now() - t0
        join_bytes = client.stats.bytes - bytes0
        if client.stats.closed:
            out["steps"].append({"members": size, "passed": False, "join_s": round(join_s, 2),
                                 "join_bytes_received": join_bytes,
                                 "closed_during_join": len(client.stats.closed),
                                 "close_codes": sorted({c for _, c in client.stats.closed},
                                                       key=str)})
            break
        status(f"{job['label']}: fan-out: {size} members, {job['rate']:g} broadcasts/s")
        rooms = {0: members}
        result = await client.offer(rooms, {0: members[: job["senders"]]}, job["rate"],
                                    job["duration"], job["drain"])
        worst = result.pop("worst_per_message_ms")
        limit = job["within_ms"]
        within = sum(1 for w in worst if w is not None and w <= limit) / len(worst)
        result.update(members=size, join_s=round(join_s, 2), join_settled=settled,
                      join_bytes_received=join_bytes, share_within=within,
                      passed=within >= job["share"] and not client.stats.closed,
                      closed_connections=len(client.stats.closed))
        out["steps"].append(result)
        status(f"{job['label']}: fan-out {size}: {within:.0%} of broadcasts reached all "
               f"within {limit:g} ms (join {join_s:.1f} s, {join_bytes / 1e6:.1f} MB)", keep=True)
        if not result["passed"]:
            break
    passing = [s["members"] for s in out["steps"] if s["passed"]]
    out["largest_room"] = max(passing, default=0)
    out["closed"] = client.stats.closed[:20]
    return out


async def memory(client: Client, job: dict) -> dict:
    total, size = job["connections"], job["room_size"]
    # Warm up the code paths first, so "before" is the server ready to serve.
    warm = Member(-1, "warm", client.stats)
    await client.join(warm, None if client.browser else "WARM", "warm")
    await client.quiet(job["quiet_s"], 5)
    await warm.ws.close()
    await client.quiet(job["quiet_s"], 5)
    before = rss_kib(client.pid)
    deadline = now() + job["join_timeout"]
    rooms: dict[int, list[Member]] = {}
    opened = 0
    r = 0
    while opened < total:
        n = min(size, total - opened)
        status(f"{job['label']}: memory: {opened:,}/{total:,} connections open")
        code = None if client.browser else f"M{r:03d}"
        _, rooms[r] = await client.room(r, n, code, deadline=deadline, concurrency=50)
        opened += n
        r += 1
    status(f"{job['label']}: memory: {opened:,} connections open, settling")
    settled = await client.quiet(2 * job["quiet_s"], 60)
    await asyncio.sleep(job["settle_s"])
    idle = rss_kib(client.pid)
    # Then traffic: every socket receives messages (a compressor, if any, exists only
    # once a socket has sent something), and the figure is taken after it.
    messages = job.get("messages", 0)
    traffic: dict = {}
    if messages:
        status(f"{job['label']}: memory: {messages} messages per room")
        senders = {r: ms[:1] for r, ms in rooms.items()}
        traffic = await client.offer(rooms, senders, len(rooms) * messages, 1.0, 10.0)
        del traffic["worst_per_message_ms"]
        await client.quiet(2 * job["quiet_s"], 60)
        await asyncio.sleep(job["settle_s"])
    after = rss_kib(client.pid)
    still_open = sum(1 for ms in rooms.values() for m in ms if not m.ws.closed)
    result = {
        "connections": opened, "open_at_measure": still_open, "room_size": size,
        "rss_before_kib": before, "rss_idle_kib": idle, "rss_after_kib": after,
        "settled": settled, "messages_per_room": messages,
        "traffic": {k: traffic.get(k) for k in ("delivered", "lost", "duplicated", "p99_ms")},
        "kib_per_idle_connection": (idle - before) / opened,
        "kib_per_connection": (after - before) / opened,
        "closed": client.stats.closed[:20],
    }
    status(f"{job['label']}: memory: {result['kib_per_idle_connection']:.1f} KiB per "
           f"connection idle, {result['kib_per_connection']:.1f} after traffic", keep=True)
    return result


async def history(client: Client, job: dict) -> dict:
    out = {}
    for code, count in job["rooms"].items():
        member = Member(0, f"h{code}", client.stats)
        status(f"{job['label']}: history: {count:,} messages")
        # the browser flow, then the page again and again
        await client.join(member, code, "reader")
        await member.ws.close()
        page_times, earlier_times = [], []
        room_url = f"{client.base}/rooms/{code}"
        first_id = None
        for _ in range(job["requests"]):
            t0 = now()
            status_, page, _ = await client._get(member, room_url)
            page_times.append(now() - t0)
            assert status_ == 200, status_
            ids = [int(x) for x in MESSAGE_ID.findall(page)]
            first_id = min(ids) if ids else 0
        before = first_id
        has_earlier = "Load earlier messages" in page
        pages = 0
        for _ in range(job["requests"]):
            t0 = now()
            status_, fragment, _ = await client._get(
                member, f"{client.base}/rooms/{code}/messages?before={before}")
            earlier_times.append(now() - t0)
            assert status_ == 200, status_
            ids = [int(x) for x in MESSAGE_ID.findall(fragment)]
            pages += bool(ids)
            # follow the chain back like a reader scrolling up; start over at the top
            before = min(ids) if ids and "Load earlier messages" in fragment else first_id
        search = await _search_times(client, member, code, count, job["requests"])
        out[str(count)] = {
            **search,
            "room": code, "messages": count, "page_has_earlier": has_earlier,
            "page_p50_ms": _ms(_percentile(page_times, 0.5)),
            "page_p90_ms": _ms(_percentile(page_times, 0.9)),
            "earlier_p50_ms": _ms(_percentile(earlier_times, 0.5)),
            "earlier_p90_ms": _ms(_percentile(earlier_times, 0.9)),
            "earlier_nonempty_pages": pages, "requests": job["requests"],
        }
        status(f"{job['label']}: history {count:,}: page p50 {out[str(count)]['page_p50_ms']} ms, "
               f"earlier p50 {out[str(count)]['earlier_p50_ms']} ms, "
               f"search p50 {out[str(count)]['search_p50_ms']} ms", keep=True)
    return out


async def _search_times(client: Client, member: Member, code: str, count: int,
                        requests: int) -> dict:
    """Search as you type (the htmx request) for a word in every message, a word in one
    message (its number) and a word in none; p50 of them all and of each."""
    queries = {"common": "fox", "rare": str(count // 3), "absent": "zebra"}
    times: dict[str, list[float]] = {kind: [] for kind in queries}
    for _ in range(requests):
        for kind, word in queries.items():
            t0 = now()
            status_, body, _ = await client._get(
                member, f"{client.base}/rooms/{code}/search?q={word}", {"HX-Request": "true"})
            times[kind].append(now() - t0)
            assert status_ == 200, status_
            hits = len(MESSAGE_ID.findall(body))
            assert hits == {"common": min(count, 50), "rare": 1, "absent": 0}[kind] or count < 3
    every = [t for kind_times in times.values() for t in kind_times]
    return {"search_p50_ms": _ms(_percentile(every, 0.5)),
            **{f"search_{kind}_p50_ms": _ms(_percentile(t, 0.5)) for kind, t in times.items()}}


SCENARIOS = {"throughput": throughput, "fanout": fanout, "memory": memory, "history": history}


async def run(job: dict) -> dict:
    async with Client(job["target"], job) as client:
        result = await asyncio.wait_for(SCENARIOS[job["scenario"]](client, job), job["time_limit"])
        result["client_errors"] = client.stats.errors[:20]
        result["client_error_count"] = len(client.stats.errors)
        return result


def main() -> None:
    job = json.loads(sys.stdin.read())
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        result = runner(run(job))
    except BaseException as error:
        result = {"error": f"{type(error).__name__}: {error}"}
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()
    # Skip closing thousands of sockets politely: the runner stops the server anyway.
    os._exit(0)


if __name__ == "__main__":
    main()
