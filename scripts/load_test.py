#!/usr/bin/env python3
"""Load test: 200 WebSocket clients in 20 rooms chat for 30 s; then every member's
arrivals are checked against its room's history (zero lost, none duplicated, one order).

    .venv/bin/python scripts/load_test.py                 # starts its own server
    .venv/bin/python scripts/load_test.py --url http://127.0.0.1:5000   # a running one

Bounded on purpose: at most 1,000 clients and 300 s, and only a server on this machine
(127.0.0.1 / localhost). A server it starts itself runs with rate limits off, on a fresh
database in a temporary folder, and is stopped at the end. Exit status 0 when nothing was
lost, doubled or reordered.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from tests.kit import NO_LIMITS, LiveServer, run_load  # noqa: E402

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=0.5, help="messages/s per client")
    parser.add_argument("--url", help="an already running server on this machine")
    args = parser.parse_args(argv)
    if not 1 <= args.rooms <= args.clients <= 1000:
        parser.error("need 1 <= rooms <= clients <= 1000")
    if not 0 < args.seconds <= 300:
        parser.error("seconds must be in (0, 300]")
    if not 0 < args.rate <= 20:
        parser.error("rate must be in (0, 20] messages/s per client")
    if args.url and urlsplit(args.url).hostname not in LOOPBACK:
        parser.error("only a server on 127.0.0.1 / localhost may be loaded")
    return args


class _External(LiveServer):
    """A server someone else runs: only its address is used."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        super().__init__(Path(tempfile.gettempdir()), host=parts.hostname or "127.0.0.1",
                         port=parts.port or 80, name="external")


async def _main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="chat-load-") as folder:
        if args.url:
            server: LiveServer = _External(args.url)
            pid = None
        else:
            server = LiveServer(Path(folder), env=NO_LIMITS, name="load")
            await server.astart()
            pid = server.process.pid
            print(f"server: {server.url} (log {server.log_path})", flush=True)
        try:
            report = await run_load(
                server, clients=args.clients, rooms=args.rooms, seconds=args.seconds,
                rate=args.rate, pid=pid, progress=lambda text: print(text, flush=True),
            )
        finally:
            if not args.url:
                await server.astop()
        print(report.summary())
        print("OK" if report.ok else "FAILED")
        return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(_main(_arguments(argv)))


if __name__ == "__main__":
    sys.exit(main())
