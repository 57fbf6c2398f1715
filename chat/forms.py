"""Schemas of what clients send: the two HTML forms and the WebSocket frame.

quart-schema checks shape and types here; the room rules in `chat.rooms` then check
meaning and word the messages people see.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class JoinForm(BaseModel):
    name: str = ""
    code: str = ""
    # Which submit button was pressed: browsers send only that one's name.
    join: str | None = None
    create: str | None = None


class MessageForm(BaseModel):
    message: str = ""


class MessageFrame(BaseModel):
    """A frame from `hx-ws:send`: the form fields plus the `headers` htmx adds."""

    model_config = ConfigDict(extra="ignore")

    message: str
