"""Fragments: snapshots of the HTML pieces, and proof that a message is the same bytes
on the room page, in "Load earlier messages" and in the live frame.

Snapshots live in tests/__snapshots__/; after a deliberate markup change, review and
refresh them with `pytest tests/test_fragments.py --snapshot-update`.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from html import unescape

import pytest

from chat.fragments import Fragments
from chat.store import Message, Reaction
from tests.kit.in_process import ORIGIN, csrf_token, join_room, post_form

SENT_AT = datetime(2024, 2, 29, 23, 59, 58, 987654, tzinfo=UTC)
CSRF_VALUE = re.compile(r'(name="csrf_token" value=")[^"]+(")')


def message(text: str = "Hello, world", author: str = "Ann", message_id: int = 42) -> Message:
    return Message(message_id, "ABCD", "user-1", author, text, SENT_AT)


def article(html: str, message_id: int) -> str:
    """The one `<article id="message-N">` element in `html`."""
    start = f'<article class="message" id="message-{message_id}"[^>]*>'
    found = re.findall(rf"{start}.*?</article>", html, re.S)
    assert len(found) == 1, html
    return found[0]


@pytest.fixture
def fragments(app) -> Fragments:
    return app.extensions["chat.hub"].fragments


# Snapshots of each fragment -----------------------------------------------------


def test_message_fragment(fragments, snapshot):
    html = fragments.message(message())
    assert '<time datetime="2024-02-29T23:59:58.987Z">2024-02-29 23:59 UTC</time>' in html
    assert html == snapshot


@pytest.mark.parametrize(
    "text",
    ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "{{ 7*7 }}"],
    ids=["script", "img-onerror", "template-syntax"],
)
def test_message_fragment_escapes_what_people_type(fragments, snapshot, text):
    html = fragments.message(message(text, author=text))
    assert "<script" not in html and "<img" not in html  # the raw markup never appears
    assert html.count("&lt;") == (2 * text.count("<"))  # escaped, as author and as text
    assert "49" not in html  # typed text is never evaluated as a template
    assert html == snapshot


def test_changed_messages(fragments, snapshot):
    edited = replace(message("fixed it"), edited=True, revision=3)
    deleted = replace(message("secret"), deleted=True, text="", revision=4)
    reactions = (Reaction("👍", ("Ann", "Bob")), Reaction("🎉", ("Cy",)))
    reacted = replace(message(), reactions=reactions)
    html = {
        "edited": fragments.message(edited),
        "deleted": fragments.message(deleted),
        "reactions": fragments.message(reacted),
        "changes": fragments.changes_frame([edited, deleted]),
    }
    assert '<span class="edited">edited</span>' in html["edited"]
    assert "secret" not in html["deleted"] and "This message was deleted." in html["deleted"]
    assert 'class="edited"' not in html["deleted"]
    assert '>👍 2</button>' in html["reactions"] and 'title="Ann, Bob"' in html["reactions"]
    # A change replaces the message where a page shows it, and inserts nothing elsewhere.
    assert html["changes"].count('<article hx-swap-oob="outerHTML" class="message') == 2
    assert html == snapshot


def test_links_and_mentions(fragments, snapshot):
    text = "@Ann see https://example.com/x?a=1&b=<2>. not ftp://x nor javascript:alert(1)"
    html = fragments.message(message(text), {"Ann": ["user-1"], "Bob": ["user-2"]})
    assert '<span class="mention">@Ann</span>' in html
    assert ('<a href="https://example.com/x?a=1&amp;b=" rel="noopener noreferrer nofollow"'
            ' target="_blank">https://example.com/x?a=1&amp;b=</a>&lt;2&gt;.') in html
    assert html.count("<a ") == 3  # the link, and the "Add a reaction" and Edit controls
    assert html == snapshot


def test_typing_frames(fragments, snapshot):
    frames = {
        "typing": fragments.typing_frame("user-1", "<b>Ann</b>"),
        "done": fragments.typing_done("user-1"),
    }
    assert "&lt;b&gt;Ann&lt;/b&gt; is typing…" in frames["typing"]
    assert frames == snapshot


def test_notice_fragment(fragments, snapshot):
    html = fragments.notice("<b>Ann</b> has entered the room")
    assert "<b>" not in html
    assert html == snapshot


@pytest.mark.parametrize(
    "members",
    [{}, {"user-2": "Zoë 李", "user-1": "ann", "user-3": "Bob"}],
    ids=["empty", "three"],
)
def test_member_list_fragment(fragments, snapshot, members):
    html = fragments.members(members)
    assert f'<span id="member-count" class="count">({len(members)})</span>' in html
    listed = re.findall(r'<li id="member-[0-9a-f]+" data-sort="[^"]*">([^<]*)</li>', html)
    assert listed == sorted(members.values(), key=str.casefold)  # sorted ignoring case
    assert "user-" not in html  # an element id does not reveal a user id
    assert html == snapshot


def test_live_frames_are_out_of_band_swaps(fragments, snapshot):
    frames = {
        "messages": str(fragments.messages_frame([message("first", message_id=7), message()])),
        "notice": fragments.announcement_frame(["Ann has left the room"], [], {}, 1),
        "members": str(fragments.members_frame({"user-1": "Ann"})),
        "arrival": fragments.announcement_frame([], [], {"user-1": "Ann"}, 2),
        "departure": fragments.announcement_frame([], ["user-1"], {"user-1": None}, 1),
    }
    assert frames["messages"].startswith('<div hx-swap-oob="upsert:#messages">')
    assert frames["notice"].startswith('<div hx-swap-oob="beforeend:#messages">')
    assert frames["members"].startswith('<div hx-swap-oob="innerHTML:#presence">')
    # joins and leaves change one list item and the count, not the whole list
    item = re.search(r'<li id="(member-[0-9a-f]+)"', frames["members"]).group(1)
    assert frames["arrival"] == (
        '<div hx-swap-oob="upsert key:data-sort target:#members">'
        f'<li id="{item}" data-sort="aaaagbaaaagoaaaago">Ann</li></div>'
        '<span hx-swap-oob="true" id="member-count" class="count">(2)</span>'
    )
    assert frames["departure"] == (
        f'<li id="{item}" hx-swap-oob="delete"></li>'
        '<span hx-swap-oob="true" id="member-count" class="count">(1)</span>'
    )
    assert frames == snapshot


async def test_edit_form_and_reaction_picker(client, snapshot):
    """Opened in place for htmx (the fragment alone), else a page with its own form."""
    code = await join_room(client, "Ann")
    await post_form(client, f"/rooms/{code}/messages", {"message": "Hello <b>there</b>"})
    page = await (await client.get(f"/rooms/{code}")).get_data(as_text=True)
    message_id = re.search(r'id="message-(\d+)"', page).group(1)
    base = f"/rooms/{code}/messages/{message_id}"
    htmx = {"HX-Request": "true"}
    answers = {
        "edit inline": await client.get(f"{base}/edit", headers=htmx),
        "edit inline, refused": await client.post(
            f"{base}/edit", form={"message": " ", "csrf_token": await csrf_token(client)},
            headers={"Origin": ORIGIN, **htmx}),
        "picker inline": await client.get(f"{base}/reactions", headers=htmx),
        "picker page": await client.get(f"{base}/reactions"),
    }
    html = {name: CSRF_VALUE.sub(r"\1TOKEN\2", await answer.get_data(as_text=True))
            .replace(code, "CODE").replace(f"/messages/{message_id}/", "/messages/ID/")
            .replace(f"-{message_id}", "-ID")
            for name, answer in answers.items()}
    assert [answer.status_code for answer in answers.values()] == [200, 400, 200, 200]
    assert html["edit inline"].startswith('<form class="edit-form"')
    assert 'hx-post="/rooms/CODE/messages/ID/edit"' in html["edit inline"]
    assert html["edit inline, refused"].startswith('<form class="edit-form"')  # in place
    assert 'role="alert">Please type a message.</p>' in html["edit inline, refused"]
    assert html["picker inline"].startswith('<details class="react-picker" open>')
    assert html["picker inline"].count('form="message-actions"') == 6
    picker_page = re.search(r'<main class="edit-page">.*</main>', html["picker page"], re.S)
    assert 'name="csrf_token"' in picker_page.group(0)  # its own form, for no JavaScript
    html["picker page"] = picker_page.group(0)
    assert html == snapshot


def join_form(html: str) -> str:
    """The home page's form, with the per-session CSRF token made constant."""
    (form,) = re.findall(r'<form class="card join-form".*?</form>', html, re.S)
    return CSRF_VALUE.sub(r"\1TOKEN\2", form)


async def test_home_form(client, snapshot):
    assert join_form(await (await client.get("/?code=abcd")).get_data(as_text=True)) == snapshot


@pytest.mark.parametrize(
    "form",
    [
        {"name": "", "code": "ABCD", "join": "1"},
        {"name": "Ann", "code": "", "join": "1"},
        {"name": "Ann", "code": "QQQQ", "join": "1"},
        {"name": "N" * 33, "code": "ABCD", "join": "1"},
    ],
    ids=["no-name", "join-without-code", "unknown-code", "name-too-long"],
)
async def test_home_form_with_error(client, snapshot, form):
    response = await post_form(client, "/", form)
    assert 400 <= response.status_code < 500
    assert join_form(await response.get_data(as_text=True)) == snapshot


# One message, one rendering ---------------------------------------------------


async def test_message_is_the_same_html_on_the_page_in_earlier_messages_and_live(client):
    code = await join_room(client, "Zoë <李>")
    async with client.websocket(f"/rooms/{code}/ws", headers={"Origin": ORIGIN}) as ws:

        async def sent(text: str) -> str:
            """The live frame of `text`, which must end in a plain word."""
            await ws.send(json.dumps({"message": text}))
            marker = text.split()[-1]
            while marker not in (frame := await asyncio.wait_for(ws.receive(), 2)):
                pass
            return frame

        live_frame = await sent("Same <everywhere> & \"quoted\"\nline two")
        message_id = int(re.search(r'id="message-(\d+)"', live_frame).group(1))
        newer_frame = await sent("a newer one")
        newer_id = int(re.search(r'id="message-(\d+)"', newer_frame).group(1))

    page = await (await client.get(f"/rooms/{code}")).get_data(as_text=True)
    earlier = await client.get(f"/rooms/{code}/messages?before={newer_id}")
    assert earlier.status_code == 200
    earlier = await earlier.get_data(as_text=True)

    live = article(live_frame, message_id)
    assert article(page, message_id) == live
    assert article(earlier, message_id) == live
    assert "a newer one" not in earlier
    assert "&lt;everywhere&gt;" in live and "Zoë &lt;李&gt;" in live


def test_member_sort_keys_order_like_the_page_whatever_the_letters(fragments):
    # Browsers insert live arrivals by comparing data-sort with localeCompare; keys made
    # of the letters a-p only compare the same there as in Python.
    names = ["Zed", "Émile", "ann", "bob10", "bob2", "李", "O'Neil"]
    html = fragments.members({f"user-{i}": name for i, name in enumerate(names)})
    listed = re.findall(r'data-sort="([^"]*)">([^<]*)</li>', html)
    assert [unescape(name) for _, name in listed] == sorted(names, key=str.casefold)
    assert all(set(key) <= set("abcdefghijklmnop") for key, _ in listed)
    assert [key for key, _ in listed] == sorted(key for key, _ in listed)
