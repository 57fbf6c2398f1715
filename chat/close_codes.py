"""WebSocket close codes: every code a live connection is closed with, and what the
page does after it (htmx reconnects after any close but a clean one)."""

from __future__ import annotations

UNSUPPORTED_DATA = 1003  # a binary frame
INVALID_PAYLOAD = 1007  # not the JSON hx-ws sends
POLICY_VIOLATION = 1008  # no session, foreign origin, unknown or full room, too many sockets
TOO_BIG = 1009  # a frame over CHAT_WS_FRAME_MAX
INTERNAL_ERROR = 1011  # our fault: htmx reconnects and catches up
# After these two htmx reconnects by itself and the page catches up from the store.
RESTARTING = 1012  # the server is shutting down (or restarting)
CATCH_UP = 1013  # the connection fell behind, or fan-out recovered from a fault
