"""What the running app holds, for routes and sockets: its settings, its hub, its socket
limits and its metrics (set up in `chat.app` before serving)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quart import current_app

if TYPE_CHECKING:
    from chat.hub import Hub
    from chat.metrics import Metrics
    from chat.settings import Settings
    from chat.sockets import Sockets


def settings() -> Settings:
    return current_app.extensions["chat.settings"]


def hub() -> Hub:
    return current_app.extensions["chat.hub"]


def sockets() -> Sockets:
    return current_app.extensions["chat.sockets"]


def metrics() -> Metrics:
    return current_app.extensions["chat.metrics"]
