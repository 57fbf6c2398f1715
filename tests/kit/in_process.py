"""The app in-process, driven as a browser drives it through Quart's test client: the
session's CSRF token from the home form, forms posted with it and our Origin, joining or
creating a room. (Its live socket: tests/kit/live.py.)"""

from __future__ import annotations

from quart.typing import TestClientProtocol

from tests.kit.forms import hidden_inputs, join_form, room_code

ORIGIN = "http://localhost"  # the test client's own origin


async def csrf_token(client: TestClientProtocol) -> str:
    """The session's CSRF token, as the home form carries it (creates the session)."""
    page = await (await client.get("/")).get_data(as_text=True)
    return hidden_inputs(page, "/")["csrf_token"]


async def post_form(client: TestClientProtocol, path: str, form: dict[str, str]):
    """POST a form the way a browser on our page does: with the token and our Origin."""
    token = await csrf_token(client)
    return await client.post(path, form={**form, "csrf_token": token}, headers={"Origin": ORIGIN})


async def join_room(client: TestClientProtocol, name: str, code: str | None = None) -> str:
    """Join `code` (or create a room when None) as `name`; the room's code."""
    home = await (await client.get("/")).get_data(as_text=True)
    response = await client.post("/", form=join_form(home, name, code), headers={"Origin": ORIGIN})
    assert response.status_code == 303, await response.get_data(as_text=True)
    return room_code(response.headers["Location"])
