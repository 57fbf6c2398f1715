"""The test kit: one scripted browser for every test, benchmark and script.

`Member` is one person's cookie jar speaking HTTP (forms with their CSRF token),
`LiveClient` one live socket that reconnects like htmx's `hx-ws`, `RawWebSocket` a
socket that misbehaves below the WebSocket library, `wait_until` the one way to wait,
`run_load` many members at once; `LiveServer` starts a real `python -m chat`.
"""

from tests.e2e.conftest import LiveServer, MakeServer, free_port
from tests.kit.browser import (
    NO_LIMITS,
    RECONNECT_CODES,
    LiveClient,
    LogWatch,
    Member,
    count_messages,
    count_rooms,
    database_rows,
    parse_messages,
    percentile,
    server_log_text,
    wait_until,
)
from tests.kit.load import LoadReport, run_load
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
