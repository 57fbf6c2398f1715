"""Schemas of what clients send: the two HTML forms and the WebSocket frame.

quart-schema checks shape and types here; the room rules in `chat.rooms` then check
meaning and word the messages people see.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


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


class MessageFrame(BaseModel):
    """A frame from `hx-ws:send`: the form fields plus the `headers` htmx adds."""

    model_config = ConfigDict(extra="ignore")

    message: str
    nonce: Nonce = ""
