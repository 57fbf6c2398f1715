"""Web routes: the home form, the room page, posting without JavaScript, earlier
messages and the health check. Thin: rules live in `chat.rooms`, work in the hub."""

from __future__ import annotations

import secrets

from markupsafe import Markup
from quart import (
    Blueprint,
    flash,
    get_flashed_messages,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from quart.typing import ResponseReturnValue
from quart_schema import DataSource, RequestSchemaValidationError, validate_request

from chat import current, rooms, security, texts
from chat.current import hub as current_hub
from chat.forms import JoinForm, MessageForm
from chat.fragments import member_key
from chat.hub import TooManyLookups, TooManyRooms
from chat.store import RoomGone

blueprint = Blueprint("web", __name__)

# Rooms this session visited, newest first, listed on the home page to go back to.
RECENT_ROOMS = 5


async def _home(
    status: int = 200,
    *,
    name: str | None = None,
    code: str = "",
    error: str | None = None,
    fault: str | None = None,
):
    """The home page; `name` is what was typed, None to offer the session's name;
    `fault` names the field the error is about ("name" or "code"), to focus and mark."""
    errors = [error] if error else get_flashed_messages()
    if name is None:
        name = session.get("name", "")
    page = await render_template(
        "home.html",
        name=name,
        code=code,
        errors=errors,
        fault=fault if errors else None,
        name_max=texts.NAME_MAX,
        recent_rooms=session.get("rooms", []),
    )
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
            403, error=texts.FORM_EXPIRED, name=form.get("name", ""), code=form.get("code", "")
        )
    return texts.FORM_EXPIRED, 403


@blueprint.post("/")
@validate_request(JoinForm, source=DataSource.FORM)
async def join(data: JoinForm):
    hub = current_hub()
    address = _client_address()
    typed = {"name": data.name, "code": data.code}
    try:
        name = rooms.clean_name(data.name)
    except rooms.RuleBroken as broken:
        return await _home(400, error=str(broken), fault="name", **typed)
    # Enter in a field presses neither button (the form's hidden default one): a code
    # means join, no code means start a room.
    create = data.create is not None or (data.join is None and not rooms.normalize_code(data.code))
    if create:
        try:
            code = await hub.create_room(address)
        except TooManyRooms:
            return await _home(429, error=texts.TOO_MANY_ROOMS, **typed)
    else:
        code = rooms.normalize_code(data.code)
        if not code:
            return await _home(400, error=texts.CODE_MISSING, fault="code", **typed)
        try:
            if not await hub.find_room(code, address):
                return await _home(404, error=texts.ROOM_MISSING, fault="code", **typed)
        except TooManyLookups:
            return await _home(429, error=texts.TOO_MANY_JOINS, **typed)
        if await hub.is_full_for(code, session.get("user_id", "")):
            return await _home(409, error=texts.ROOM_FULL, fault="code", **typed)
    session["name"] = name
    session.setdefault("user_id", secrets.token_urlsafe(16))
    await hub.note_name(code, session["user_id"], name)
    return redirect(url_for("web.room", code=code), 303)


@blueprint.errorhandler(RequestSchemaValidationError)
async def unreadable_form(_: RequestSchemaValidationError):
    return await _home(400, error=texts.FORM_UNREADABLE)


def _before_id(name: str = "before") -> int | None:
    raw = request.args.get(name, "")
    return int(raw) if raw.isascii() and raw.isdecimal() and len(raw) < 19 else None


async def admit_to_room(code: str) -> tuple[str, ResponseReturnValue | None]:
    """The normalized code, and the redirect for a visitor who cannot be in the room
    (None for a member)."""
    if code != rooms.normalize_code(code):
        return code, redirect(url_for("web.room", code=rooms.normalize_code(code)), 303)
    if not session.get("name"):
        return code, redirect(url_for("web.home", code=code), 303)
    try:
        found = await current_hub().find_room(code, _client_address())
    except TooManyLookups:
        return code, await _home(429, error=texts.TOO_MANY_JOINS, code=code)
    if not found:
        _forget_room(code)
        await flash(texts.ROOM_MISSING)
        return code, redirect(url_for("web.home"), 303)
    return code, None


def _remember_room(code: str) -> None:
    recent = [code, *(room for room in session.get("rooms", []) if room != code)]
    session["rooms"] = recent[:RECENT_ROOMS]


def _forget_room(code: str) -> None:
    if code in session.get("rooms", []):
        session["rooms"] = [room for room in session["rooms"] if room != code]


async def _room_page(
    code: str,
    status: int = 200,
    value: str = "",
    error: str | None = None,
    nonce: str | None = None,
):
    hub = current_hub()
    before_id, around_id = _before_id(), _before_id("around")
    page, history, revision = await hub.history_page(code, before_id, around_id)
    invite = url_for("web.home", code=code, _external=True)
    members = await hub.member_list(code, session["user_id"], session["name"])
    html = await render_template(
        "room.html",
        code=code,
        page=page,
        history=Markup(history),
        revision=revision,
        live=before_id is None and around_id is None,
        invite=invite,
        members=Markup(members),
        me=member_key(session["user_id"]),
        lifetime=texts.room_lifetime(current.settings().empty_room_ttl),
        value=value,
        error=error,
        # A failed message keeps its nonce, so sending it again stays safe.
        nonce=nonce or secrets.token_urlsafe(12),
    )
    return html, status


@blueprint.get("/rooms/<code>")
async def room(code: str):
    code, refusal = await admit_to_room(code)
    if refusal:
        return refusal
    _remember_room(code)
    return await _room_page(code)


@blueprint.post("/rooms/<code>/messages")
@validate_request(MessageForm, source=DataSource.FORM)
async def post_message(code: str, data: MessageForm):
    code, refusal = await admit_to_room(code)
    if refusal:
        return refusal
    hub = current_hub()
    try:
        await hub.post_message(
            code, session["user_id"], session["name"], data.message, data.nonce or None
        )
        await hub.keep_alive_without_socket(code)
    except rooms.RuleBroken as broken:
        error = str(broken)
        return await _room_page(code, 400, value=data.message, error=error, nonce=data.nonce)
    except RoomGone:
        await flash(texts.ROOM_MISSING)
        return redirect(url_for("web.home"), 303)
    return redirect(url_for("web.room", code=code), 303)


@blueprint.get("/rooms/<code>/messages")
async def earlier_messages(code: str):
    code, refusal = await admit_to_room(code)
    if refusal:
        return refusal
    return await current_hub().earlier_html(code, _before_id())


@blueprint.get("/me.css")
async def my_stylesheet():
    """The reader's own rules: their messages look like theirs and offer Edit and
    Delete, messages that mention them stand out. A stylesheet, so it works without
    JavaScript while every message stays the same bytes for everyone."""
    key = member_key(session.get("user_id", ""))
    css = await render_template("me.css", key=key) if session.get("user_id") else ""
    response = await make_response(css)
    response.headers["Content-Type"] = "text/css; charset=utf-8"
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@blueprint.get("/healthz")
async def healthz():
    database_answers, fan_out_works = await current_hub().health()
    if not database_answers:
        return {"status": "unavailable", "reason": "database does not answer"}, 503
    if not fan_out_works:
        # Still serving: pages, history and posting work; live delivery across
        # processes resumes by itself.
        return {"status": "degraded", "reason": "fan-out broker unreachable"}, 200
    return {"status": "ok"}, 200
