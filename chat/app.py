"""The application factory: wires settings, store, broker, hub and routes into one app."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from datetime import datetime

from quart import Quart

from chat import (
    api,
    assets,
    bots,
    compression,
    direct_socket,
    edits,
    fragments,
    live,
    metrics,
    rooms,
    security,
    web,
    web_search,
)
from chat.broker import open_broker
from chat.forms import StoredId
from chat.hub import Hub
from chat.proxies import TrustedProxies
from chat.settings import PROJECT_ROOT, Settings, load_settings, resolve_secret_key
from chat.sockets import open_sockets
from chat.store import open_store

log = logging.getLogger("chat")
SIGTERM_GRACE = 0.5


# Both formatted by hand: strftime costs more than the rest of a message's header.
def _iso_utc(moment: datetime) -> str:
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
            f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z")


def _readable_utc(moment: datetime) -> str:
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} "
            f"{moment.hour:02d}:{moment.minute:02d} UTC")


def _close_sockets_on_sigterm(hub: Hub) -> None:
    """In a worker of `hypercorn --workers N`, SIGTERM reaches the worker, which hypercorn
    leaves with the default action (die at once: browsers see 1006 and wait). Close the
    live sockets with 1012 first so browsers reconnect promptly, give writes in flight
    a moment, then die as before. (`python -m chat` handles signals itself.)"""
    loop = asyncio.get_running_loop()
    parking: list[asyncio.Task] = []  # a strong reference until the process dies

    def close_then_die() -> None:
        log.info("SIGTERM: closing live connections")
        hub.close_connections()
        parking.append(loop.create_task(hub.park_members()))
        loop.remove_signal_handler(signal.SIGTERM)
        loop.call_later(SIGTERM_GRACE, os.kill, os.getpid(), signal.SIGTERM)

    loop.add_signal_handler(signal.SIGTERM, close_then_die)


def create_app(settings: Settings | None = None) -> Quart:
    settings = settings or load_settings()
    # Process-wide: what hypercorn answers to permessage-deflate offers (fails loudly
    # if hypercorn changed under the hook).
    compression.install(settings.ws_compression)
    app = Quart(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    app.config.update(
        SECRET_KEY=resolve_secret_key(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.session_interface = security.SessionCookies()
    app.url_map.converters["id"] = StoredId
    if settings.proxy_hops:
        app.asgi_app = TrustedProxies(app.asgi_app, settings.proxy_hops)
    direct_socket.install(app)  # direct sends, stoppable reads (checks Quart at start)
    api.init_app(app)  # quart-schema: validation, /openapi.json and /docs
    app.jinja_env.filters["iso_utc"] = _iso_utc
    app.jinja_env.filters["readable_utc"] = _readable_utc
    app.jinja_env.globals["message_max"] = settings.message_max
    app.jinja_env.globals["message_text"] = fragments.message_text
    app.jinja_env.globals["reaction_choices"] = rooms.REACTIONS
    app.jinja_env.filters["member_key"] = fragments.member_key
    app.jinja_env.globals["csrf_token"] = security.csrf_token
    app.after_request(security.add_security_headers)
    app.register_blueprint(assets.vendor_blueprint())
    app.register_blueprint(web.blueprint)
    app.register_blueprint(edits.blueprint)
    app.register_blueprint(web_search.blueprint)
    app.register_blueprint(bots.blueprint)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(assets.swagger_blueprint())
    app.register_blueprint(live.blueprint)
    app.register_blueprint(metrics.blueprint)

    @app.before_serving
    async def start() -> None:
        store = await open_store(settings)
        watch = metrics.Metrics(lambda: broker.healthy)
        broker = metrics.CountingBroker(await open_broker(settings), watch.counts)
        hub = Hub(settings, store, broker, fragments.Fragments(app.jinja_env))
        await hub.start()
        await watch.start()
        app.extensions["chat.settings"] = settings
        app.extensions["chat.hub"] = hub
        sockets = open_sockets(settings)
        await sockets.start()
        app.extensions["chat.sockets"] = sockets
        app.extensions["chat.metrics"] = watch
        if multiprocessing.parent_process() is not None:
            _close_sockets_on_sigterm(hub)
        log.info("serving: store=%s broker=%s", type(store).__name__, type(broker).__name__)

    @app.after_serving
    async def stop() -> None:
        await app.extensions.pop("chat.metrics").stop()
        hub: Hub = app.extensions.pop("chat.hub")
        await hub.stop()  # and the broker and the store it was given
        await app.extensions.pop("chat.sockets").stop()

    return app
