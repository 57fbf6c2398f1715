"""The JSON API for bots (`/api/v1`): post into a room and read its messages with a
bot's bearer token; its OpenAPI document (`/openapi.json`, from quart-schema) and a
readable page of it (`/docs`, Swagger UI from our own origin).

No cookies, so no CSRF check or same-origin rule: the token is the credential. It is
looked up in the store on every request, so a revoked token stops working at once in
every process. A bot's message goes through the hub like a member's: the room rules,
the rate limit (per bot), stored before it is broadcast, rendered once.
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from quart import Blueprint, Quart, current_app, g, render_template, request
from quart_schema import (
    QuartSchema,
    RequestSchemaValidationError,
    document_request,
    validate_querystring,
    validate_response,
)
from quart_schema.openapi import OpenAPIProvider
from werkzeug.exceptions import BadRequest, HTTPException

from chat import bots, current, rooms, texts
from chat.hub import TooFast
from chat.store import Bot, Message, RoomGone

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")
PREFIX = "/api/"
LIMIT_MAX = 200
ID_MAX = 2**63 - 1


# Models --------------------------------------------------------------------------------

Id = Annotated[int, Field(ge=1, le=ID_MAX)]


class NewMessage(BaseModel):
    """A message to post: 1 to CHAT_MESSAGE_MAX characters once trimmed."""

    model_config = ConfigDict(extra="ignore")
    text: str = Field(description="The message, trimmed; line breaks are kept.")


class MessageOut(BaseModel):
    id: int = Field(description="Increases with every message of the room.")
    room: str = Field(description="The room's code.")
    author: str = Field(description="The display name of the member or bot that sent it.")
    text: str
    sent_at: str = Field(
        description="When the server stored it, ISO 8601 in UTC (e.g. 2030-01-02T03:04:05.678Z).",
        json_schema_extra={"format": "date-time"},
    )


class Messages(BaseModel):
    messages: list[MessageOut] = Field(description="Oldest first.")


class ListQuery(BaseModel):
    limit: Annotated[int, Field(ge=1, le=LIMIT_MAX)] | None = Field(
        None, description="At most this many (default CHAT_PAGE_SIZE)."
    )
    before: Id | None = Field(None, description="Only messages older than this id (the newest).")
    after: Id | None = Field(None, description="Only messages newer than this id (the oldest).")


class Problem(BaseModel):
    error: str = Field(description="What went wrong, in a word or two.")
    reason: str = Field(description="What went wrong, in a sentence.")


def _problem(status: int, error: str, reason: str, headers: dict | None = None):
    return {"error": error, "reason": reason}, status, headers or {}


# Authentication --------------------------------------------------------------------------


def _bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


@blueprint.before_request
async def authenticate():
    """Every API request needs the token of a bot of the room in its path."""
    challenge = {"WWW-Authenticate": "Bearer"}
    token = _bearer_token()
    if token is None:
        return _problem(401, "unauthorized", texts.API_NO_TOKEN,
                        challenge)
    bot = await current.hub().bot_by_token(bots.token_hash(token))
    if bot is None:
        return _problem(401, "unauthorized", texts.API_UNKNOWN_TOKEN, challenge)
    code = (request.view_args or {}).get("code", "")
    if rooms.normalize_code(code) != bot.room:
        return _problem(403, "forbidden", texts.API_OTHER_ROOM)
    g.bot = bot
    return None


async def _body(model: type[BaseModel]) -> BaseModel:
    """The JSON body as `model`, whatever its Content-Type (scripts often send none, or
    curl's form type). Not JSON (or not UTF-8): 400; JSON of the wrong shape: 422."""
    try:
        data = json.loads(await request.get_data())
    except ValueError:  # UnicodeDecodeError included
        raise BadRequest() from None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise RequestSchemaValidationError(error) from None


def _out(message: Message) -> MessageOut:
    iso_utc = current_app.jinja_env.filters["iso_utc"]  # exactly as pages show it
    return MessageOut(id=message.id, room=message.room, author=message.author,
                      text=message.text, sent_at=iso_utc(message.sent_at))


# Routes ----------------------------------------------------------------------------------

def _document_errors(*statuses: int):
    def decorate(func):
        for status in statuses:
            func = validate_response(Problem, status)(func)
        return func
    return decorate


@blueprint.post("/rooms/<code>/messages")
@document_request(NewMessage)
@validate_response(MessageOut, 201)
@_document_errors(400, 401, 403, 404, 422, 429)
async def post_message(code: str):
    """Post a message into the bot's room.

    Members see it at once, with the bot's name and a "bot" badge. Bots are rate
    limited like members (CHAT_MESSAGE_RATE): over the limit, 429 with Retry-After."""
    bot: Bot = g.bot
    hub = current.hub()
    data = await _body(NewMessage)
    try:
        posted = await hub.post_message(bot.room, bot.author_id, bot.name, data.text)
    except TooFast as too_fast:
        retry = await hub.retry_after(bot.author_id)
        return _problem(429, "rate_limited", str(too_fast), {"Retry-After": str(retry)})
    except rooms.RuleBroken as broken:
        return _problem(422, "invalid_text", str(broken))
    except RoomGone:
        return _problem(404, "room_gone", texts.ROOM_MISSING)
    await hub.keep_alive_without_socket(bot.room)
    return _out(posted.message), 201


@blueprint.get("/rooms/<code>/messages")
@validate_querystring(ListQuery)
@validate_response(Messages, 200)
@_document_errors(401, 403, 422)
async def list_messages(code: str, query_args: ListQuery):
    """Read the room's messages, oldest first.

    The latest page, the page before an id (paging back) or the messages after an id
    (catching up)."""
    bot: Bot = g.bot
    if query_args.before is not None and query_args.after is not None:
        return _problem(422, "invalid_query", texts.API_BEFORE_AND_AFTER)
    messages = await current.hub().list_messages(
        bot.room, query_args.before, query_args.after, query_args.limit
    )
    return Messages(messages=[_out(message) for message in messages]), 200


# Errors: JSON with a reason, whatever went wrong ------------------------------------------


@blueprint.errorhandler(RequestSchemaValidationError)
async def invalid_request(error: RequestSchemaValidationError):
    return _problem(422, "invalid_request", _describe(error.validation_error))


def _describe(validation_error: Exception) -> str:
    problems = getattr(validation_error, "errors", None)
    if not callable(problems):
        return texts.API_SCHEMA_MISMATCH
    described = [
        f"{'.'.join(str(part) for part in problem.get('loc', ())) or 'body'}: {problem.get('msg')}"
        for problem in problems()[:5]
    ]
    return "; ".join(described) or texts.API_SCHEMA_MISMATCH


@blueprint.app_errorhandler(HTTPException)
async def http_error(error: HTTPException):
    """Under /api/ every HTTP error is JSON (bad JSON, too large, unknown path, wrong
    method); elsewhere errors stay as they were."""
    if not request.path.startswith(PREFIX):
        return error
    reason = texts.API_NOT_JSON if error.code == 400 else error.description
    headers = {}
    if error.code == 405 and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    return _problem(error.code or 500, error.name.lower().replace(" ", "_"), reason, headers)


# OpenAPI and /docs ----------------------------------------------------------------------


class _ApiOnly(OpenAPIProvider):
    """The document describes the JSON API only, not the HTML pages."""

    def generate_rules(self):
        for rule in super().generate_rules():
            if rule.endpoint.startswith("api."):
                yield rule


def init_app(app: Quart) -> None:
    QuartSchema(
        app,
        swagger_ui_path=None, redoc_ui_path=None, scalar_ui_path=None,
        info={"title": "Chat rooms bot API", "version": "1",
              "description": "Bots post into a room and read its messages. A member creates "
                             "a bot on the room's Bots page and gets its token once."},
        security_schemes={"bot_token": {"type": "http", "scheme": "bearer"}},
        security=[{"bot_token": []}],
        openapi_provider_class=_ApiOnly,
    )
    app.add_url_rule("/docs", "api_docs", docs)


async def docs():
    # Swagger UI runs under the app's strict CSP as it is (scripts and styles from our
    # origin only): it sets styles through the CSSOM, which style-src 'self' allows.
    return await render_template("api_docs.html")
