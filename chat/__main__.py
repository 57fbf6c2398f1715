"""`python -m chat` (or `chat-server`): serve the app with hypercorn on this process.

Refuses to start, with a message naming the problem and a non-zero exit, when a setting
is bad or the htmx assets are missing. On SIGTERM or Ctrl-C it closes live connections
with 1012 (browsers reconnect by themselves) before hypercorn stops.

`--workers N` (N > 1) runs N such processes, each binding its own socket with
SO_REUSEPORT so that the kernel spreads new connections over them (hypercorn's own
`--workers` shares one socket, and long-lived sockets pile onto one worker). They share
rooms through the Redis broker, so `CHAT_BROKER_URL` is required. This process only
supervises: SIGTERM or Ctrl-C is passed on to every worker, and if one worker exits the
others are stopped too and the exit status is the failed worker's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.utils import LifespanFailureError
from quart import Quart

from chat.app import create_app
from chat.assets import AssetsMissing
from chat.compression import CompressionHookError
from chat.direct_socket import SocketHookError
from chat.metrics import MULTIPROCESS_ENV
from chat.settings import SettingsError, load_settings

log = logging.getLogger("chat")
GRACEFUL_TIMEOUT = 5.0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chat", description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1:5000", help="host:port (default %(default)s)")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes, each with its own SO_REUSEPORT socket; more than 1 "
                             "needs CHAT_BROKER_URL (default %(default)s)")
    parser.add_argument("--reuse-port", action="store_true",
                        help="bind with SO_REUSEPORT, so that other processes can bind the "
                             "same address (what each of --workers does)")
    return parser.parse_args(argv)


def _reuse_port_socket(bind: str) -> socket.socket:
    """A listening-ready TCP socket bound with SO_REUSEPORT (hypercorn takes it as fd://)."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    # Accepted sockets inherit it: hypercorn sets it only on sockets it binds itself.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, int(port)))
    return sock


def _supervise(args: argparse.Namespace) -> int:
    """Run `args.workers` processes of `python -m chat --reuse-port`; their exit status."""
    shared_metrics = tempfile.mkdtemp(prefix="chat-metrics-")
    env = {**os.environ, MULTIPROCESS_ENV: shared_metrics}
    command = [sys.executable, "-m", "chat", "--bind", args.bind, "--reuse-port"]
    if args.access_log:
        command.append("--access-log")
    stopping = False

    def stop_all(signum: int = signal.SIGTERM, _frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)

    workers: list[subprocess.Popen] = []
    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    status = 0
    try:
        workers = [subprocess.Popen(command, env=env) for _ in range(args.workers)]
        log.info("supervising %d workers on %s: %s", len(workers), args.bind,
                 " ".join(str(w.pid) for w in workers))
        while not stopping:
            ended = [w for w in workers if w.poll() is not None]
            if ended:
                status = ended[0].returncode or 1
                log.error("worker %d exited with %s: stopping the others",
                          ended[0].pid, ended[0].returncode)
                stop_all()
                break
            time.sleep(0.1)
        for worker in workers:
            try:
                worker.wait(GRACEFUL_TIMEOUT + 5)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    finally:
        shutil.rmtree(shared_metrics, ignore_errors=True)
    return status


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
    if args.workers > 1:
        try:
            settings = load_settings()
        except SettingsError as error:
            print(f"chat: cannot start: {error}", file=sys.stderr)
            return 2
        if not settings.broker_url:
            print(f"chat: cannot start: --workers {args.workers} needs CHAT_BROKER_URL="
                  "redis://host:port/db: workers share rooms through the Redis broker "
                  "(the in-process broker serves one process)", file=sys.stderr)
            return 2
        return _supervise(args)
    if args.workers < 1:
        print("chat: cannot start: --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
        app = create_app(settings)
    except (SettingsError, AssetsMissing, CompressionHookError, SocketHookError) as error:
        print(f"chat: cannot start: {error}", file=sys.stderr)
        return 2
    config = Config()
    config.bind = [args.bind]
    if args.reuse_port:
        try:
            listener = _reuse_port_socket(args.bind)
        except (OSError, ValueError) as error:
            print(f"chat: cannot start: cannot bind {args.bind}: {error}", file=sys.stderr)
            return 2
        config.bind = [f"fd://{listener.fileno()}"]
    config.accesslog = "-" if args.access_log else None
    config.errorlog = logging.getLogger("hypercorn.error")
    # Generous: the app refuses frames over ws_frame_max itself (closing 1009 and
    # leaving the room); hypercorn's own refusal above this bound does neither.
    config.websocket_max_message_size = 4 * 1024 * 1024
    config.graceful_timeout = GRACEFUL_TIMEOUT
    # What starting made lives as long as the process: out of the collector's sight, a
    # full collection no longer stops every socket for tens of milliseconds.
    gc.collect()
    gc.freeze()
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
