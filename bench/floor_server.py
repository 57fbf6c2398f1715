"""The floor: a minimal room broadcast on the `websockets` library.

No storage, no templates, no sessions, no compression: it declines permessage-deflate
(`compression=None`), so it is the cheapest server the clients can get whatever they offer.
`/rooms/<CODE>/ws`: every text frame's "message"
goes, as a small HTML string holding the text, to every connection in that room (the
sender's included). Message ids are one counter for all rooms, like the app's.

    python -m bench.floor_server --bind 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from html import escape

from websockets.asyncio.server import ServerConnection, broadcast, serve

rooms: dict[str, set[ServerConnection]] = {}
last_id = 0


def _room_code(path: str) -> str | None:
    parts = path.split("?", 1)[0].strip("/").split("/")
    if len(parts) == 3 and parts[0] == "rooms" and parts[2] == "ws":
        return parts[1].upper()
    return None


async def handler(connection: ServerConnection) -> None:
    global last_id
    code = _room_code(connection.request.path)
    if code is None:
        await connection.close(1008)
        return
    members = rooms.setdefault(code, set())
    members.add(connection)
    try:
        async for data in connection:
            if isinstance(data, bytes):
                continue
            try:
                text = json.loads(data)["message"]
            except (ValueError, KeyError, TypeError):
                continue
            last_id += 1
            broadcast(
                members,
                f'<div hx-swap-oob="beforeend:#messages"><article id="message-{last_id}">'
                f"<p>{escape(str(text))}</p></article></div>",
            )
    finally:
        members.discard(connection)
        if not members:
            rooms.pop(code, None)


async def main(host: str, port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    async with serve(handler, host, port, max_size=1 << 20, backlog=4096,
                     compression=None):
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", default="127.0.0.1:8765")
    args = parser.parse_args()
    host, _, port = args.bind.rpartition(":")
    try:
        import uvloop
    except ImportError:
        run = asyncio.run
    else:
        run = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        run(main(host, int(port)))
