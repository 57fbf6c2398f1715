"""HTTP routes that change a posted message: edit, delete and react.

They are the no-JavaScript path (each answers 303 back to the room) and what the page's
script posts in the background (`HX-Request: true` gets 204: the change reaches every
page, this one included, over the room's WebSocket). Only a message's author may edit
or delete it; rules live in `chat.rooms`, texts in `chat.texts`, the work in the hub.
"""

from __future__ import annotations

from quart import Blueprint, redirect, render_template, request, session, url_for
from quart_schema import DataSource, validate_request

from chat import current, rooms, texts, web
from chat.forms import MessageForm, ReactionForm
from chat.store import Message, MessageMissing, NotYours, RoomGone

blueprint = Blueprint("edits", __name__)
blueprint.before_request(web.check_csrf)


def _done(code: str):
    if request.headers.get("HX-Request") == "true":
        return "", 204
    return redirect(url_for("web.room", code=code), 303)


def _inline() -> bool:
    """An htmx request: the page opens the answer in place, so it gets the fragment."""
    return request.headers.get("HX-Request") == "true"


async def _edit_page(code: str, message_id: int, value: str, status: int, error: str | None):
    """The edit form: alone for htmx (it opens in place of the text), else a page."""
    inline = _inline()
    template = "fragments/edit_form.html" if inline else "edit.html"
    html = await render_template(
        template, code=code, message_id=message_id, value=value, error=error, inline=inline
    )
    return html, status


async def _existing_message(code: str, message_id: int) -> Message:
    """The room's message, or `MessageMissing` (404, answered below)."""
    message = await current.hub().message(code, message_id)
    if message is None:
        raise MessageMissing(message_id)
    return message


@blueprint.get("/rooms/<code>/messages/<id:message_id>/edit")
async def edit_form(code: str, message_id: int):
    code, refusal = await web.admit_to_room(code)
    if refusal:
        return refusal
    message = await _existing_message(code, message_id)
    if message.author_id != session["user_id"]:
        raise NotYours(message_id)
    return await _edit_page(code, message_id, message.text, 200, None)


@blueprint.post("/rooms/<code>/messages/<id:message_id>/edit")
@validate_request(MessageForm, source=DataSource.FORM)
async def edit(code: str, message_id: int, data: MessageForm):
    code, refusal = await web.admit_to_room(code)
    if refusal:
        return refusal
    try:
        await current.hub().edit_message(code, message_id, session["user_id"], data.message)
    except rooms.RuleBroken as broken:
        return await _edit_page(code, message_id, data.message, 400, str(broken))
    return _done(code)


@blueprint.post("/rooms/<code>/messages/<id:message_id>/delete")
async def delete(code: str, message_id: int):
    code, refusal = await web.admit_to_room(code)
    if refusal:
        return refusal
    await current.hub().delete_message(code, message_id, session["user_id"])
    return _done(code)


@blueprint.get("/rooms/<code>/messages/<id:message_id>/reactions")
async def reaction_picker(code: str, message_id: int):
    """The six reactions to choose from: opened in place for htmx, else a page with its
    own form. Served on demand, so that messages need not each carry them."""
    code, refusal = await web.admit_to_room(code)
    if refusal:
        return refusal
    message = await _existing_message(code, message_id)
    template = "fragments/react_picker.html" if _inline() else "react.html"
    return await render_template(template, code=code, message=message)


@blueprint.post("/rooms/<code>/messages/<id:message_id>/reactions")
@validate_request(ReactionForm, source=DataSource.FORM)
async def react(code: str, message_id: int, data: ReactionForm):
    code, refusal = await web.admit_to_room(code)
    if refusal:
        return refusal
    try:
        rooms.check_reaction(data.emoji)
    except rooms.RuleBroken as broken:
        return str(broken), 400
    hub = current.hub()
    try:
        await hub.react(code, message_id, session["user_id"], session["name"], data.emoji)
    except rooms.RuleBroken as broken:  # reacting too fast
        return str(broken), 429
    return _done(code)


# Someone else's message, or none (any more): the same answer from every route here.
@blueprint.errorhandler(NotYours)
async def not_yours(_: NotYours):
    return texts.NOT_YOURS, 403


@blueprint.errorhandler(MessageMissing)
@blueprint.errorhandler(RoomGone)
async def missing(_: LookupError):
    return texts.MESSAGE_MISSING, 404
