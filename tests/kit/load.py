"""Load: many members in many rooms, each message checked to arrive once and in order,
with the server's CPU time; used by tests/hardening/test_load.py and scripts/load_test.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.kit.browser import Member
from tests.kit.live_client import LiveClient
from tests.kit.server import LiveServer
from tests.kit.wait import wait_until


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


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
