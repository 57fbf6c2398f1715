"""The test kit: one scripted browser for every test, the benchmark and the scripts.

Against a real server (`python -m chat`):
- server.py: `LiveServer` starts, stops, kills and restarts one; `free_port`; `LogWatch`
  and `database_rows` read its log and its SQLite file.
- forms.py: what a browser reads from our pages and sends back, as pure functions (a
  form's hidden inputs, the join form, a room page's connect address, the frame hx-ws
  sends); `bench/client.py` uses them too.
- browser.py: `Member`, one person's cookie jar speaking HTTP (forms with their CSRF
  token, history, changes to messages), who opens pages.
- live_client.py: `LiveClient`, one page's live socket that reconnects like hx-ws and
  keeps what the page shows.
- wait.py: `wait_until`, the one way to wait.
- wire.py: `RawWebSocket`, a socket that misbehaves below the WebSocket library.
- load.py: `run_load`, many members at once, checked message by message.
- pages.py: people in Debian's Chromium (Playwright): steps and checks.
- nginx.py: the deploy site's nginx in front of app processes.
- redis.py: the shared Redis, or a `redis-server` of a test's own.
- fuzzing.py: hypothesis strategies for hostile text, and the fuzzing arena.

In-process (Quart's test client): in_process.py (forms with their CSRF token), live.py
(the room's socket), html.py (reading pages), stores.py (stores for the contract tests).

Fixtures that use these are in the conftest files; a test imports helpers from here only.
"""

from tests.kit.browser import NO_LIMITS, Member
from tests.kit.live_client import RECONNECT_CODES, LiveClient, parse_messages
from tests.kit.load import LoadReport, percentile, run_load
from tests.kit.server import (
    LiveServer,
    LogWatch,
    MakeServer,
    ServerFailed,
    count_messages,
    count_rooms,
    database_rows,
    free_port,
    server_log_text,
)
from tests.kit.wait import wait_until
from tests.kit.wire import RawWebSocket, close_code_of, markup_problems, parse_server_frames

__all__ = [
    "NO_LIMITS",
    "RECONNECT_CODES",
    "LiveClient",
    "LiveServer",
    "LoadReport",
    "LogWatch",
    "MakeServer",
    "Member",
    "RawWebSocket",
    "ServerFailed",
    "close_code_of",
    "count_messages",
    "count_rooms",
    "database_rows",
    "free_port",
    "markup_problems",
    "parse_messages",
    "parse_server_frames",
    "percentile",
    "run_load",
    "server_log_text",
    "wait_until",
]
