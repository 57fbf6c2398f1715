"""`/metrics` scraped from a real server after some chatting, and
`python -m chat --workers N`: N processes on one port (SO_REUSEPORT), connections on
every one of them, SIGTERM to the parent closing every live socket with 1012."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import urllib.request

import aiohttp
import pytest

from tests.kit import Member, wait_until
from tests.kit.forms import message_frame
from tests.kit.redis import RedisServer
from tests.kit.server import PROJECT_ROOT, MakeServer

pytestmark = pytest.mark.e2e

SAMPLE = re.compile(r"^(\w+)(?:\{([^}]*)\})? (\S+)$", re.M)
TIMEOUT = 15.0


def scrape(base: str) -> dict[str, dict[str, float]]:
    """metric name -> {labels: value}, from the Prometheus text format."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: dict[str, dict[str, float]] = {}
    for name, labels, value in SAMPLE.findall(text):
        samples.setdefault(name, {})[labels or ""] = float(value)
    return samples


def total(samples: dict[str, dict[str, float]], name: str) -> float:
    return sum(samples.get(name, {}).values())


async def _until(ws: aiohttp.ClientWebSocketResponse, text: str) -> None:
    while True:
        frame = await asyncio.wait_for(ws.receive(), TIMEOUT)
        assert frame.type == aiohttp.WSMsgType.TEXT, frame
        if text in frame.data:
            return


async def _close_code_sent(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """The code in the server's close frame (aiohttp's `close_code` turns into 1006 when
    its own close reply finds the connection already gone)."""
    while True:
        frame = await asyncio.wait_for(ws.receive(), TIMEOUT)
        if frame.type == aiohttp.WSMsgType.CLOSE:
            return frame.data
        if frame.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return None


async def test_metrics_move_as_people_chat(make_live_server: MakeServer) -> None:
    server = make_live_server(env={"CHAT_MESSAGE_RATE": "off"})
    before = scrape(server.url)
    assert total(before, "chat_messages_stored_total") == 0
    assert total(before, "chat_broker_up") == 1
    ada, bob = Member(server, "Ada"), Member(server, "Bob")
    sockets = []
    try:
        code = await ada.create_room()
        await bob.join_room(code)
        ada_ws, bob_ws = await ada.socket(code, compress=15), await bob.socket(code, compress=15)
        sockets += [ada_ws, bob_ws]
        for n in range(3):
            await ada_ws.send_str(message_frame(f"hello {n}"))
            await _until(bob_ws, f"hello {n}")
        caught_up = total(scrape(server.url), "chat_catch_ups_total")
        sockets.append(await bob.socket(code, compress=15))  # a page that missed everything
        await _until(sockets[-1], "hello 2")
        now = scrape(server.url)
        assert total(now, "chat_messages_stored_total") == 3
        assert total(now, "chat_open_connections") == 3
        assert total(now, "chat_rooms_open") == 1
        assert total(now, "chat_catch_ups_total") == caught_up + 1
        # at least: each socket's member list, 3 messages to each of two sockets, a catch-up
        assert total(now, "chat_frames_delivered_total") >= 3 + 6 + 1
        assert total(now, "chat_slow_client_closes_total") == 0
    finally:
        for ws in sockets:
            await ws.close()
        await ada.close()
        await bob.close()
    await wait_until(lambda: total(scrape(server.url), "chat_open_connections") == 0, 15,
                     "the connections closed to be counted")


def test_several_workers_refuse_to_start_without_a_broker(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chat", "--workers", "2", "--bind", "127.0.0.1:0"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30, check=False,
        env={"PATH": os.environ["PATH"], "CHAT_DATABASE_URL": f"sqlite:///{tmp_path}/c.db"},
    )
    assert done.returncode != 0
    assert "CHAT_BROKER_URL" in done.stderr


async def test_workers_share_the_port_and_stop_together(tmp_path, make_live_server) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        server = make_live_server(
            env={"CHAT_BROKER_URL": redis.url, "CHAT_MESSAGE_RATE": "off",
                 "CHAT_JOIN_FAIL_RATE": "off", "CHAT_CREATE_RATE": "off"},
            args=["--workers", "2"])
        # /healthz answers as soon as one worker listens: wait for the second one too
        # (the kernel spreads connections over the sockets that listen at the time).
        await wait_until(lambda: server.log_path.read_text().count("Running on") == 2, 15,
                         "both workers listening")
        members = [Member(server, name) for name in ("host", "guest0", "guest1", "guest2")]
        code = await members[0].create_room()
        for member in members[1:]:
            await member.join_room(code)
        sockets = [await m.socket(code, compress=15) for m in members for _ in range(5)]

        def per_worker() -> dict[str, float]:
            return scrape(server.url).get("chat_open_connections", {})

        # The kernel spreads 20 connections over both workers (each has its own pid).
        await wait_until(lambda: sum(per_worker().values()) == 20, 15, "20 connections counted")
        spread = per_worker()
        assert len([n for n in spread.values() if n > 0]) == 2, spread
        # Across workers a message still reaches everyone in the room.
        await sockets[0].send_str(message_frame("to all workers"))
        await asyncio.gather(*(_until(ws, "to all workers") for ws in sockets))

        server.process.send_signal(signal.SIGTERM)  # the parent only
        codes = [await _close_code_sent(ws) for ws in sockets]
        assert set(codes) == {1012}
        assert server.process.wait(TIMEOUT) == 0
        for ws in sockets:
            await ws.close()
        for member in members:
            await member.close()
    finally:
        redis.stop()
