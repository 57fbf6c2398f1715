"""Web routes: the home form, the room page, posting without JavaScript, earlier
messages and the health check. Thin: rules live in `chat.rooms`, work in the hub."""

from __future__ import annotations

import secrets

from markupsafe import Markup
from quart import (
    Blueprint,
    current_app,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from quart.typing import ResponseReturnValue
from quart_schema import DataSource, RequestSchemaValidationError, validate_request

from chat import rooms, security
from chat.forms import JoinForm, MessageForm
from chat.fragments import member_list
from chat.hub import Hub, TooManyLookups
from chat.store import RoomGone

blueprint = Blueprint("web", __name__)

FORM_EXPIRED = "This form has expired. Please try again."
TOO_MANY_JOINS = "Too many attempts to join. Please wait a minute and try again."
TOO_MANY_ROOMS = "You have created many rooms in a short time. Please wait a minute."


def _hub() -> Hub:
    return current_app.extensions["chat.hub"]


async def _home(
    status: int = 200, *, name: str | None = None, code: str = "", error: str | None = None
):
    """The home page; `name` is what was typed, None to offer the session's name."""
    errors = [error] if error else get_flashed_messages()
    if name is None:
        name = session.get("name", "")
    page = await render_template("home.html", name=name, code=code, errors=errors)
    return page, status


@blueprint.get("/")
async def home():
    return await _home(code=rooms.normalize_code(request.args.get("code", ""))[:32])


def _client_address() -> str:
    return request.remote_addr or "unknown"


@blueprint.before_request
async def check_csrf():
    if request.method != "POST" or await security.csrf_is_valid():
        return None
    if request.path == "/":
        form = await request.form
        return await _home(
            403, error=FORM_EXPIRED, name=form.get("name", ""), code=form.get("code", "")
        )
    return FORM_EXPIRED, 403


@blueprint.post("/")
@validate_request(JoinForm, source=DataSource.FORM)
async def join(data: JoinForm):
    hub = _hub()
    limits = hub.rate_limits
    address = _client_address()
    typed = {"name": data.name, "code": data.code}
    try:
        name = rooms.clean_name(data.name)
    except rooms.RuleBroken as broken:
        return await _home(400, error=str(broken), **typed)
    if data.create is not None:
        if not await limits.creations.hit(address):
            return await _home(429, error=TOO_MANY_ROOMS, **typed)
        code = await hub.create_room()
    else:
        code = rooms.normalize_code(data.code)
        if not code:
            return await _home(400, error=rooms.CODE_MISSING, **typed)
        try:
            if not await hub.find_room(code, address):
                return await _home(404, error=rooms.ROOM_MISSING, **typed)
        except TooManyLookups:
            return await _home(429, error=TOO_MANY_JOINS, **typed)
        if await hub.is_full_for(code, session.get("user_id", "")):
            return await _home(409, error=rooms.ROOM_FULL, **typed)
    session["name"] = name
    session.setdefault("user_id", secrets.token_urlsafe(16))
    return redirect(url_for("web.room", code=code), 303)


@blueprint.errorhandler(RequestSchemaValidationError)
async def unreadable_form(_: RequestSchemaValidationError):
    return await _home(400, error="The form could not be read. Please try again.")


def _before_id(name: str = "before") -> int | None:
    raw = request.args.get(name, "")
    return int(raw) if raw.isascii() and raw.isdecimal() and len(raw) < 19 else None


async def _room_or_redirect(code: str) -> tuple[str, ResponseReturnValue | None]:
    """The normalized code, or the redirect for a visitor who cannot be in the room."""
    if code != rooms.normalize_code(code):
        return code, redirect(url_for("web.room", code=rooms.normalize_code(code)), 303)
    if not session.get("name"):
        return code, redirect(url_for("web.home", code=code), 303)
    try:
        found = await _hub().find_room(code, _client_address())
    except TooManyLookups:
        return code, await _home(429, error=TOO_MANY_JOINS, code=code)
    if not found:
        await flash(rooms.ROOM_MISSING)
        return code, redirect(url_for("web.home"), 303)
    return code, None


async def _room_page(
    code: str,
    status: int = 200,
    value: str = "",
    error: str | None = None,
    nonce: str | None = None,
):
    hub = _hub()
    before_id, around_id = _before_id(), _before_id("around")
    if around_id is not None:  # a search result in context
        page = await hub.page_around(code, around_id)
    else:
        page = await hub.latest_page(code, before_id)
    invite = url_for("web.home", code=code, _external=True)
    html = await render_template(
        "room.html",
        code=code,
        page=page,
        history=Markup(hub.fragments.page(code, page, around_id)),
        live=before_id is None and around_id is None,
        invite=invite,
        members=member_list(await hub.presence.members(code)),
        value=value,
        error=error,
        # A failed message keeps its nonce, so sending it again stays safe.
        nonce=nonce or secrets.token_urlsafe(12),
    )
    return html, status


@blueprint.get("/rooms/<code>")
async def room(code: str):
    code, refusal = await _room_or_redirect(code)
    return refusal or await _room_page(code)


@blueprint.post("/rooms/<code>/messages")
@validate_request(MessageForm, source=DataSource.FORM)
async def post_message(code: str, data: MessageForm):
    code, refusal = await _room_or_redirect(code)
    if refusal:
        return refusal
    hub = _hub()
    try:
        await hub.post_message(
            code, session["user_id"], session["name"], data.message, data.nonce or None
        )
        await hub.keep_alive_without_socket(code)
    except rooms.RuleBroken as broken:
        error = str(broken)
        return await _room_page(code, 400, value=data.message, error=error, nonce=data.nonce)
    except RoomGone:
        await flash(rooms.ROOM_MISSING)
        return redirect(url_for("web.home"), 303)
    return redirect(url_for("web.room", code=code), 303)


@blueprint.get("/rooms/<code>/messages")
async def earlier_messages(code: str):
    code, refusal = await _room_or_redirect(code)
    if refusal:
        return refusal
    page = await _hub().latest_page(code, _before_id())
    return _hub().fragments.page(code, page)


@blueprint.get("/healthz")
async def healthz():
    hub = _hub()
    if not await hub.store.ping():
        return {"status": "unavailable", "reason": "database does not answer"}, 503
    if not hub.broker.healthy:
        # Still serving: pages, history and posting work; live delivery across
        # processes resumes by itself.
        return {"status": "degraded", "reason": "fan-out broker unreachable"}, 200
    return {"status": "ok"}, 200
