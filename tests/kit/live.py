"""The test kit for the app in-process: a scripted browser on Quart's test client.

The room's live socket as hx-ws drives it (its forms: tests/kit/in_process.py): frames
as htmx sends them, waits that time out instead of hanging, and readers of what the
frames show.
"""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import AsyncExitStack

import pytest
from quart import Quart
from quart.testing.connections import WebsocketDisconnectError

from tests.kit.in_process import ORIGIN, join_room

TIMEOUT = 2.0
QUIET = 0.2  # how long "nothing arrives" is watched for
ARTICLE = re.compile(r'<article class="message[^"]*" id="message-(\d+)"[^>]*>.*?</article>', re.S)
MEMBER = re.compile(r'<li id="(member-[0-9a-f]+)" data-sort="[^"]*">([^<]*)</li>')
MEMBER_LIST = '<div hx-swap-oob="innerHTML:#presence">'
ADD_MEMBER = '<div hx-swap-oob="upsert key:data-sort target:#members">'


# Helpers ----------------------------------------------------------------------


def say(text: object, **extra: object) -> str:
    """A frame as hx-ws sends it."""
    return json.dumps({"message": text, **extra})


def socket(client, code: str, *, after: int | None = None, since: int | None = None,
           origin: str | None = ORIGIN):
    query = "&".join(f"{name}={value}" for name, value in (("after", after), ("since", since))
                     if value is not None)
    path = f"/rooms/{code}/ws" + (f"?{query}" if query else "")
    return client.websocket(path, headers={} if origin is None else {"Origin": origin})


async def receive(ws) -> str:
    return await asyncio.wait_for(ws.receive(), TIMEOUT)


async def receive_until(ws, text: str) -> list[str]:
    """Frames up to and including the first that contains `text`."""
    frames = []
    while not frames or text not in frames[-1]:
        frames.append(await receive(ws))
    return frames


async def is_quiet(ws, wait: float = QUIET) -> bool:
    try:
        frame = await asyncio.wait_for(ws.receive(), wait)
    except TimeoutError:
        return True
    pytest.fail(f"expected no frame, got {frame!r}")


async def close_code(ws) -> int:
    """The code the server closes `ws` with (frames before the close are skipped)."""
    with pytest.raises(WebsocketDisconnectError) as closed:
        for _ in range(20):
            await receive(ws)
    return closed.value.args[0]


def message_ids(frames: list[str]) -> list[int]:
    return [int(match.group(1)) for frame in frames for match in ARTICLE.finditer(frame)]


def articles(frames: list[str]) -> list[str]:
    return [match.group(0) for frame in frames for match in ARTICLE.finditer(frame)]


def listed(frame: str) -> list[str]:
    """The names of the member-list items in `frame`, in order."""
    return [match.group(2) for match in MEMBER.finditer(frame)]


def member_ids(frame: str) -> dict[str, str]:
    """name -> the id of their member-list item, for the items in `frame`."""
    return {match.group(2): match.group(1) for match in MEMBER.finditer(frame)}


def counted(frame: str) -> str:
    """The "(N)" the frame puts in the member count, e.g. "(2)"."""
    (count,) = re.findall(r'id="member-count" class="count">(\(\d+\))</span>', frame)
    return count


async def user(app: Quart, name: str, code: str | None = None):
    """A new browser (its own cookie jar) that joined `code`, or created a room."""
    client = app.test_client()
    return client, await join_room(client, name, code)


async def arrive(stack: AsyncExitStack, client, code: str, name: str, *present, **kwargs):
    """Open `name`'s socket and read past their entrance, on their socket and on the
    sockets of those `present`."""
    ws = await stack.enter_async_context(socket(client, code, **kwargs))
    for other in (ws, *present):
        await receive_until(other, f"{name} has entered the room")
    return ws


async def pair(app: Quart, stack: AsyncExitStack, code: str | None = None):
    """Ann and Bob, both connected to one room: (code, ann_ws, bob_ws, ann, bob)."""
    ann, code = await user(app, "Ann", code)
    bob, _ = await user(app, "Bob", code)
    ann_ws = await arrive(stack, ann, code, "Ann")
    bob_ws = await arrive(stack, bob, code, "Bob", ann_ws)
    return code, ann_ws, bob_ws, ann, bob


def hub(app: Quart):
    return app.extensions["chat.hub"]
