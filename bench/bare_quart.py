"""A bare Quart room broadcast under hypercorn: the floor's behaviour on our stack.

Same protocol as `bench.floor_server`, no storage, templates or sessions; each
connection has a queue and a writer task (Quart sends from the handler's context), and
it answers permessage-deflate offers as the app does (`CHAT_WS_COMPRESSION`).
It shows how much of the app's cost is Quart + hypercorn themselves.

    python -m bench.bare_quart --bind 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from html import escape

from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart, websocket

from chat import compression
from chat.settings import load_settings

app = Quart(__name__)
rooms: dict[str, set[asyncio.Queue[str]]] = {}
last_id = 0


async def _write(queue: asyncio.Queue[str]) -> None:
    while True:
        await websocket.send(await queue.get())


@app.websocket("/rooms/<code>/ws")
async def room_socket(code: str) -> None:
    global last_id
    await websocket.accept()
    code = code.upper()
    queue: asyncio.Queue[str] = asyncio.Queue()
    members = rooms.setdefault(code, set())
    members.add(queue)
    writer = asyncio.create_task(_write(queue))
    try:
        while True:
            data = await websocket.receive()
            if isinstance(data, bytes):
                continue
            try:
                text = json.loads(data)["message"]
            except (ValueError, KeyError, TypeError):
                continue
            last_id += 1
            html = (
                f'<div hx-swap-oob="beforeend:#messages"><article id="message-{last_id}">'
                f"<p>{escape(str(text))}</p></article></div>"
            )
            for member in members:
                member.put_nowait(html)
    finally:
        writer.cancel()
        members.discard(queue)
        if not members:
            rooms.pop(code, None)


async def _until_stopped() -> None:
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", default="127.0.0.1:8766")
    args = parser.parse_args()
    # The same answer to permessage-deflate offers as the app (CHAT_WS_COMPRESSION).
    compression.install(load_settings().ws_compression)
    config = Config()
    config.bind = [args.bind]
    config.accesslog = None
    config.graceful_timeout = 1.0
    config.backlog = 4096
    try:
        import uvloop
    except ImportError:
        run = asyncio.run
    else:
        run = uvloop.run
    run(serve(app, config, shutdown_trigger=_until_stopped))


if __name__ == "__main__":
    main()
