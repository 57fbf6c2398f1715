"""`python -m chat` (or `chat-server`): serve the app with hypercorn on this process.

Refuses to start, with a message naming the problem and a non-zero exit, when a setting
is bad or the htmx assets are missing. On SIGTERM or Ctrl-C it closes live connections
with 1012 (browsers reconnect by themselves) before hypercorn stops.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.utils import LifespanFailureError
from quart import Quart

from chat.app import create_app
from chat.assets import AssetsMissing
from chat.compression import CompressionHookError
from chat.settings import SettingsError, load_settings
from chat.sockets import SocketHookError

log = logging.getLogger("chat")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chat", description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1:5000", help="host:port (default %(default)s)")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    return parser.parse_args(argv)


async def _until_stopped(app: Quart) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("shutting down: closing live connections")
    hub = app.extensions.get("chat.hub")
    if hub is not None:
        hub.close_connections()


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings()
        app = create_app(settings)
    except (SettingsError, AssetsMissing, CompressionHookError, SocketHookError) as error:
        print(f"chat: cannot start: {error}", file=sys.stderr)
        return 2
    config = Config()
    config.bind = [args.bind]
    config.accesslog = "-" if args.access_log else None
    config.errorlog = logging.getLogger("hypercorn.error")
    # Generous: the app refuses frames over ws_frame_max itself (closing 1009 and
    # leaving the room); hypercorn's own refusal above this bound does neither.
    config.websocket_max_message_size = 4 * 1024 * 1024
    config.graceful_timeout = 5.0
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serve(app, config, shutdown_trigger=lambda: _until_stopped(app)))
    except LifespanFailureError as error:  # startup refused (e.g. a second worker without
        # CHAT_BROKER_URL): the app logged the details, say why in one line
        print(f"chat: cannot start: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # startup failed: say why and exit non-zero
        log.exception("chat: server stopped: %s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
