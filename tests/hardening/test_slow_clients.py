"""A stuck client never holds up the room.

50 scripted members chat in one room. Then a raw socket joins the room (handshake by
hand, a small receive buffer) and never reads. Every message must still reach all 50
members, their delivery latency must stay low (compared with the same load before the
stuck client came), and the stuck client must be dropped once its bounded queue
(CHAT_SEND_QUEUE=16) is full: the server logs it ("fell behind" / "asked to catch up"),
the others see it leave, and the raw socket ends with close 1013 or EOF.

Messages are 1,900 emoji: 1,900 characters, about 7.6 KB on the wire each, so the
kernel's buffers towards the stuck client fill within seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time

import pytest

from tests.kit import (
    NO_LIMITS,
    LiveClient,
    LogWatch,
    MakeServer,
    Member,
    RawWebSocket,
    close_code_of,
    parse_server_frames,
    percentile,
    wait_until,
)

pytestmark = pytest.mark.e2e

MEMBERS = 50
QUEUE = 16
RATE = 80.0  # messages per second, the whole room together
PHASE = 3.0  # seconds of load per phase
PAD = "\U0001f4ac" * 1900  # 1,900 characters, 4 bytes each in UTF-8


def _dropped(log: str, code: str, user_id: str) -> bool:
    """The server logged closing this user's connection for falling behind (the wording
    has been "connection fell behind, closing" and "connection asked to catch up")."""
    return any(f"room={code} user={user_id}" in line
               and ("fell behind" in line or "catch up" in line)
               for line in log.splitlines())


def session_data(cookie: str) -> dict:
    """The (signed, not encrypted) payload of a Quart session cookie."""
    payload = cookie.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def _chat(clients: list[LiveClient], seconds: float, tag: str,
                sent_at: dict[str, float]) -> None:
    """Members take turns at random at about RATE messages/s for `seconds`."""
    end = time.monotonic() + seconds
    n = len(sent_at)
    while time.monotonic() < end:
        client = random.choice(clients)
        token = f"{tag}-{n:05d}"
        sent_at[token] = time.monotonic()
        client.send(f"{token} {PAD}")
        n += 1
        await asyncio.sleep(random.expovariate(RATE))


def _latencies(clients: list[LiveClient], sent_at: dict[str, float], tag: str) -> list[float]:
    """Send→arrival at every member, for each message of the phase."""
    result = []
    for client in clients:
        for message_id, (_, text) in client.messages.items():
            token = text.split(" ", 1)[0]
            if token.startswith(tag + "-"):
                result.append(client.first_seen[message_id] - sent_at[token])
    return result


def _delivered_everywhere(clients: list[LiveClient], tokens: set[str]) -> bool:
    return all(
        tokens <= {text.split(" ", 1)[0] for _, text in client.messages.values()}
        for client in clients
    )


async def test_stuck_client_is_dropped_and_others_keep_their_latency(
    make_live_server: MakeServer, clients: list[LiveClient]
) -> None:
    server = make_live_server(env={**NO_LIMITS, "CHAT_SEND_QUEUE": str(QUEUE),
                                   "CHAT_LEAVE_GRACE": "0.5"})
    watch = LogWatch(server)
    members = [Member(server, f"m{i:02d}") for i in range(MEMBERS)]
    stuck_member = Member(server, "Stuck")
    raw: RawWebSocket | None = None
    try:
        code = await members[0].create_room()
        await asyncio.gather(*(m.join_room(code) for m in members[1:]),
                             stuck_member.join_room(code))
        live = [m.client(code, record_frames=False) for m in members]
        clients += live
        # A few at a time: each arrival sends every member a notice and a member list,
        # and a burst of 50 would overflow queues of 16 before they drain.
        for first in range(0, MEMBERS, 5):
            await asyncio.gather(*(c.open() for c in live[first:first + 5]))
            await wait_until(lambda n=first + 5: all(len(c.members or []) == n
                                                     for c in live[:n]), 10, "arrivals")
        await wait_until(lambda: all(len(c.members or []) == MEMBERS for c in live), 15,
                         "everyone to see everyone")

        # Phase 1: the room as it should be.
        sent_at: dict[str, float] = {}
        await _chat(live, PHASE, "before", sent_at)
        before_tokens = {t for t in sent_at if t.startswith("before")}
        await wait_until(lambda: _delivered_everywhere(live, before_tokens), 15,
                         "phase 1 delivered everywhere")

        # Phase 2: a member that never reads its socket.
        raw = await asyncio.to_thread(RawWebSocket, server, f"/rooms/{code}/ws",
                                      cookie=stuck_member.cookie_header(), rcvbuf=4096)
        await wait_until(lambda: "Stuck" in (live[0].members or []), 5, "the stuck client in")
        stuck_id = session_data(stuck_member.session_cookie())["user_id"]
        started = time.monotonic()
        dropped_after = None
        phase_end = time.monotonic() + 3 * PHASE
        n_before = len(sent_at)
        while time.monotonic() < phase_end:
            await _chat(live, 1.0, "with", sent_at)
            if dropped_after is None and _dropped(watch.text(), code, stuck_id):
                dropped_after = time.monotonic() - started
                phase_end = min(phase_end, time.monotonic() + 1.5)
        with_tokens = {t for t in sent_at if t.startswith("with")}
        await wait_until(lambda: _delivered_everywhere(live, with_tokens), 15,
                         "phase 2 delivered everywhere")

        # The stuck client is gone: the others see it leave.
        await wait_until(lambda: "Stuck" not in (live[0].members or []), 10,
                         "the stuck client to be dropped")
        data, eof = await asyncio.to_thread(raw.drain, 3)
        close = close_code_of(parse_server_frames(data))

        before = _latencies(live, sent_at, "before")
        with_stuck = _latencies(live, sent_at, "with")
        report = (
            f"\nslow client: {MEMBERS} members, queue {QUEUE}, ~{RATE:.0f} msg/s of 7.6 KB\n"
            f"  before: {len(before_tokens)} messages, {len(before)} deliveries, "
            f"p50 {percentile(before, .5) * 1000:.1f} ms, "
            f"p95 {percentile(before, .95) * 1000:.1f} ms, "
            f"max {max(before) * 1000:.1f} ms\n"
            f"  with the stuck client: {len(sent_at) - n_before} messages, {len(with_stuck)} "
            f"deliveries, p50 {percentile(with_stuck, .5) * 1000:.1f} ms, "
            f"p95 {percentile(with_stuck, .95) * 1000:.1f} ms, "
            f"max {max(with_stuck) * 1000:.1f} ms\n"
            f"  stuck client dropped after {dropped_after and round(dropped_after, 2)} s; "
            f"raw socket read {len(data)} bytes at the end, close frame {close}, EOF {eof}"
        )
        print(report)

        assert len(before) == len(before_tokens) * MEMBERS
        assert len(with_stuck) == len(with_tokens) * MEMBERS
        assert percentile(before, 0.95) < 1.0, report
        assert percentile(with_stuck, 0.95) < 1.0, report
        assert dropped_after is not None, "the server never logged dropping it\n" + report
        assert close == 1013 or eof, report
        # Nobody else was dropped or reconnected.
        assert all(c.connects == 1 and not c.close_codes for c in live)
        watch.assert_clean()
    finally:
        if raw is not None:
            raw.close()
        for member in [*members, stuck_member]:
            await member.close()
