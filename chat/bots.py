"""Bots: their tokens (drawn with `secrets`, stored only as a hash) and the members'
page that creates, lists and revokes a room's bots (`/rooms/<CODE>/bots`)."""

from __future__ import annotations

import hashlib
import secrets

from pydantic import BaseModel
from quart import Blueprint, redirect, render_template, request, session, url_for
from quart_schema import DataSource, RequestSchemaValidationError, validate_request

from chat import current, rooms, security, texts, web
from chat.store import RoomGone

blueprint = Blueprint("bots", __name__)

TOKEN_PREFIX = "chatbot_"
_ID_MAX = 2**63 - 1


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the store keeps. A token has 256 random bits, so a plain SHA-256 is enough:
    nobody can guess one from its hash."""
    return hashlib.sha256(token.encode()).hexdigest()


class BotForm(BaseModel):
    name: str = ""


@blueprint.before_request
async def check_csrf():
    if request.method == "POST" and not await security.csrf_is_valid():
        return texts.FORM_EXPIRED, 403
    return None


@blueprint.errorhandler(RequestSchemaValidationError)
async def unreadable_form(_: RequestSchemaValidationError):
    return texts.FORM_UNREADABLE, 400


async def _page(code: str, status: int = 200, **shown: object):
    bots = await current.hub().bots(code)
    api_url = url_for("api.post_message", code=code, _external=True)
    html = await render_template("bots.html", code=code, bots=bots, api_url=api_url, **shown)
    # A page that shows a token once must not be kept by a cache or the history.
    return html, status, {"Cache-Control": "no-store"}


@blueprint.get("/rooms/<code>/bots")
async def list_bots(code: str):
    code, refusal = await web.admit_to_room(code)
    return refusal or await _page(code)


@blueprint.post("/rooms/<code>/bots")
@validate_request(BotForm, source=DataSource.FORM)
async def create_bot(code: str, data: BotForm):
    code, refusal = await web.admit_to_room(code)
    if refusal:
        return refusal
    try:
        name = rooms.clean_name(data.name)
    except rooms.RuleBroken as broken:
        return await _page(code, 400, error=str(broken), name=data.name)
    hub = current.hub()
    if len(await hub.bots(code)) >= texts.BOTS_PER_ROOM:
        return await _page(code, 409, error=texts.TOO_MANY_BOTS, name=data.name)
    token = new_token()
    try:
        bot = await hub.add_bot(code, name, token_hash(token), session["user_id"])
    except RoomGone:
        return redirect(url_for("web.home"), 303)
    return await _page(code, 201, created=bot, token=token)


@blueprint.post("/rooms/<code>/bots/<id:bot_id>/delete")
async def revoke_bot(code: str, bot_id: int):
    code, refusal = await web.admit_to_room(code)
    if refusal:
        return refusal
    if bot_id > _ID_MAX or not await current.hub().delete_bot(code, bot_id):
        return await _page(code, 404, error=texts.NO_SUCH_BOT)
    return redirect(url_for("bots.list_bots", code=code), 303)
