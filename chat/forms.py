"""Schemas of what clients send: the two HTML forms, the WebSocket frame, and the ids
in addresses.

quart-schema checks shape and types here; the room rules in `chat.rooms` then check
meaning and word the messages people see.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from werkzeug.routing import BaseConverter


class JoinForm(BaseModel):
    name: str = ""
    code: str = ""
    # Which submit button was pressed: browsers send only that one's name.
    join: str | None = None
    create: str | None = None


# What the page calls a message, so that sending it again posts nothing new; empty
# means none (never deduplicated).
Nonce = Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")]


class MessageForm(BaseModel):
    message: str = ""
    nonce: Nonce = ""


class ReactionForm(BaseModel):
    emoji: str = ""


class MessageFrame(BaseModel):
    """A frame from `hx-ws:send`: the form fields plus the `headers` htmx adds; or
    `{"typing": "1"}` while its user types."""

    model_config = ConfigDict(extra="ignore")

    message: str | None = None
    nonce: Nonce = ""
    typing: Literal["1"] | None = None

    @model_validator(mode="after")
    def _says_something(self) -> MessageFrame:
        if self.message is None and self.typing is None:
            raise ValueError("a frame carries a message or says its user is typing")
        return self


class StoredId(BaseConverter):
    """`<id:...>` in a route: a number the stores can hold as an id (they are 64-bit
    integers, so at most 18 digits here); a longer one is no address at all (404)
    rather than an error deep in the store."""

    regex = r"\d{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)
