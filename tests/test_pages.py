"""What the pages render for people (issue 9), through Quart's test client: which field
an error is about, what Enter does on the home form, the member list without JavaScript,
the rooms you were in, how long an empty room lives, and the marks the page script uses
(your own messages, nonces)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from chat import texts
from tests.kit.in_process import ORIGIN, csrf_token, join_room, post_form

EXPIRED_ROOM = re.compile(r'<a href="/rooms/([A-Z]+)">')


async def page_text(client, path: str) -> str:
    return await (await client.get(path)).get_data(as_text=True)


def tag(html: str, element_id: str) -> str:
    """The start tag of the element with `id`."""
    (found,) = re.findall(rf'<[a-z]+ id="{element_id}"[^>]*>', html)
    return found


# Home form ----------------------------------------------------------------------


async def test_the_name_field_takes_no_more_than_a_name_may_have(client):
    html = await page_text(client, "/")
    assert f'maxlength="{texts.NAME_MAX}"' in tag(html, "name")


@pytest.mark.parametrize(
    ("form", "fault"),
    [
        ({"name": "", "code": "ABCD", "join": "1"}, "name"),
        ({"name": "n" * 33, "create": "1"}, "name"),
        ({"name": "Ann", "code": "", "join": "1"}, "code"),
        ({"name": "Ann", "code": "QQQQ", "join": "1"}, "code"),
    ],
    ids=["no-name", "long-name", "no-code", "unknown-code"],
)
async def test_an_error_marks_and_focuses_the_field_at_fault(client, form, fault):
    html = await (await post_form(client, "/", form)).get_data(as_text=True)
    other = {"name": "code", "code": "name"}[fault]
    at_fault, fine = tag(html, fault), tag(html, other)
    assert 'aria-invalid="true"' in at_fault and "autofocus" in at_fault
    assert 'aria-describedby="join-errors"' in at_fault
    assert "aria-invalid" not in fine and "autofocus" not in fine


async def test_enter_with_a_name_and_no_code_starts_a_room(app, client):
    # Enter presses the form's first (hidden, nameless) button: neither join nor create.
    response = await post_form(client, "/", {"name": "Ann", "code": "  "})
    assert response.status_code == 303
    code = response.headers["Location"].rsplit("/", 1)[1]
    assert await app.extensions["chat.hub"].store.room_exists(code)


async def test_enter_with_a_code_joins_it(app):
    ann, bob = app.test_client(), app.test_client()
    code = await join_room(ann, "Ann")
    response = await post_form(bob, "/", {"name": "Bob", "code": code.lower()})
    assert (response.status_code, response.headers["Location"]) == (303, f"/rooms/{code}")
    unknown = await post_form(bob, "/", {"name": "Bob", "code": "QQQQ"})
    assert unknown.status_code == 404  # a code that exists nowhere is not a new room


async def test_the_buttons_still_mean_what_they_say(client):
    # Pressing "Join a Room" without a code is still the contract's error.
    response = await post_form(client, "/", {"name": "Ann", "code": "", "join": "1"})
    assert response.status_code == 400
    assert texts.CODE_MISSING in await response.get_data(as_text=True)


# Rooms you were in -------------------------------------------------------------------


async def test_home_lists_the_rooms_you_were_in_newest_first(app, client):
    first = await join_room(client, "Ann")
    second = await join_room(client, "Ann")
    for code in (first, second):
        assert (await client.get(f"/rooms/{code}")).status_code == 200
    assert EXPIRED_ROOM.findall(await page_text(client, "/")) == [second, first]
    # Opening the room again moves it to the top.
    await client.get(f"/rooms/{first}")
    assert EXPIRED_ROOM.findall(await page_text(client, "/")) == [first, second]


async def test_a_room_that_is_gone_leaves_the_list(make_app):
    app = await make_app(empty_room_ttl=0)
    client = app.test_client()
    code = await join_room(client, "Ann")
    await client.get(f"/rooms/{code}")
    store = app.extensions["chat.hub"].store
    await store.set_room_empty(code, datetime.now(UTC) - timedelta(hours=1))
    assert await store.delete_rooms_empty_since(datetime.now(UTC)) == [code]
    response = await client.get(f"/rooms/{code}")
    assert response.status_code == 303
    assert EXPIRED_ROOM.findall(await page_text(client, "/")) == []


async def test_nobody_new_sees_a_list(client):
    assert "Rooms you were in" not in await page_text(client, "/")


# Room page -----------------------------------------------------------------------------


async def test_without_a_live_connection_you_are_in_the_member_list(client):
    code = await join_room(client, "Zoë")
    html = await page_text(client, f"/rooms/{code}")
    assert '<span id="member-count" class="count">(1)</span>' in html
    assert re.findall(r'<li id="member-[0-9a-f]+" data-sort="[^"]*">([^<]*)</li>', html) == ["Zoë"]
    note = re.search(r'<p class="note" id="no-script-note">(.*?)</p>', html, re.S).group(1)
    assert "does not update by itself" in note


@pytest.mark.parametrize(
    ("ttl", "said"),
    [(900, "15 minutes"), (60, "1 minute"), (7200, "2 hours"), (30, "30 seconds")],
)
async def test_the_room_says_when_an_empty_room_is_deleted(make_app, ttl, said):
    app = await make_app(empty_room_ttl=ttl)
    client = app.test_client()
    code = await join_room(client, "Ann")
    html = await page_text(client, f"/rooms/{code}")
    assert f"Rooms are deleted {said} after everyone has left." in html


async def test_at_once_when_the_ttl_is_zero(make_app):
    app = await make_app(empty_room_ttl=0)
    client = app.test_client()
    code = await join_room(client, "Ann")
    html = await page_text(client, f"/rooms/{code}")
    assert "Rooms are deleted as soon as everyone has left." in html


async def test_messages_carry_their_author_key_and_the_page_knows_its_reader(app):
    ann, bob = app.test_client(), app.test_client()
    code = await join_room(ann, "Ann")
    await join_room(bob, "Bob", code)
    token = await csrf_token(ann)
    await ann.post(f"/rooms/{code}/messages", headers={"Origin": ORIGIN},
                   form={"message": "hi", "nonce": "n-1", "csrf_token": token})
    reader = re.compile(r'<body data-me="([0-9a-f]+)">')
    ann_page = await page_text(ann, f"/rooms/{code}")
    bob_page = await page_text(bob, f"/rooms/{code}")
    ann_key, bob_key = reader.search(ann_page).group(1), reader.search(bob_page).group(1)
    assert ann_key != bob_key
    # Everyone gets the same message: marked with its author's key and its nonce.
    for page in (ann_page, bob_page):
        (article,) = re.findall(r'<article class="message" id="message-\d+"[^>]*>', page)
        assert f'data-author="{ann_key}"' in article and 'data-nonce="n-1"' in article
    # The key is the member list's, never the session's user id.
    assert f'id="member-{ann_key}"' in ann_page
