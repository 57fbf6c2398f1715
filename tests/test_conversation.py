"""Edit, delete, react, links, mentions and typing: the forms without JavaScript, what
every member receives live, and what a page that was away catches up on."""

from __future__ import annotations

import json
import re
from contextlib import AsyncExitStack

import pytest

from tests.kit.forms import connect_address
from tests.kit.in_process import csrf_token, join_room, post_form
from tests.kit.live import (
    articles,
    is_quiet,
    pair,
    receive,
    receive_until,
    say,
    socket,
    user,
)

REPLACED = re.compile(r'<article hx-swap-oob="outerHTML" class="message[^"]*" id="message-(\d+)"')


async def text(response) -> str:
    return await response.get_data(as_text=True)


async def posted(client, code: str, words: str) -> int:
    """Post `words` without JavaScript; the new message's id."""
    response = await post_form(client, f"/rooms/{code}/messages", {"message": words})
    assert response.status_code == 303
    page = await text(await client.get(f"/rooms/{code}"))
    return int(re.findall(r'id="message-(\d+)"', page)[-1])


async def room_of_two(app):
    ann, code = await user(app, "Ann")
    bob, _ = await user(app, "Bob", code)
    return code, ann, bob


# Without JavaScript ------------------------------------------------------------------


async def test_the_author_edits_and_everyone_sees_edited(app):
    code, ann, bob = await room_of_two(app)
    message_id = await posted(ann, code, "helo")
    path = f"/rooms/{code}/messages/{message_id}/edit"

    assert (await bob.get(path)).status_code == 403  # no form for someone else's message
    form_page = await text(await ann.get(path))
    assert ">helo</textarea>" in form_page

    response = await post_form(bob, path, {"message": "hijacked"})
    assert response.status_code == 403
    response = await post_form(ann, path, {"message": "hello"})
    assert response.status_code == 303 and response.headers["Location"] == f"/rooms/{code}"

    page = await text(await bob.get(f"/rooms/{code}"))
    assert '<p class="text">hello</p>' in page and "hijacked" not in page and ">helo<" not in page
    assert '<span class="edited">edited</span>' in page


async def test_an_edit_is_checked_like_a_new_message(app):
    code, ann, _ = await room_of_two(app)
    message_id = await posted(ann, code, "keep me")
    path = f"/rooms/{code}/messages/{message_id}/edit"
    response = await post_form(ann, path, {"message": "   "})
    assert response.status_code == 400
    assert "Please type a message." in await text(response)
    assert (await post_form(ann, f"/rooms/{code}/messages/999999/edit",
                            {"message": "x"})).status_code == 404
    assert '<p class="text">keep me</p>' in await text(await ann.get(f"/rooms/{code}"))


@pytest.mark.parametrize("message_id", ["0", str(2**63), "1" + "0" * 30])
async def test_a_number_no_message_can_have_is_no_address(app, message_id):
    code, ann, _ = await room_of_two(app)
    base = f"/rooms/{code}/messages/{message_id}"
    for action in ("edit", "delete", "reactions"):
        response = await post_form(ann, f"{base}/{action}", {"message": "x", "emoji": "👍"})
        assert response.status_code == 404, (action, response.status_code)
    assert (await ann.get(f"{base}/edit")).status_code == 404
    response = await post_form(ann, f"/rooms/{code}/bots/{message_id}/delete", {})
    assert response.status_code == 404


async def test_the_author_deletes_and_the_text_is_gone_for_everyone(app):
    code, ann, bob = await room_of_two(app)
    message_id = await posted(ann, code, "oops, wrong room")
    path = f"/rooms/{code}/messages/{message_id}/delete"

    assert (await post_form(bob, path, {})).status_code == 403
    assert "oops, wrong room" in await text(await bob.get(f"/rooms/{code}"))
    response = await post_form(ann, path, {})
    assert response.status_code == 303

    page = await text(await bob.get(f"/rooms/{code}"))
    assert "oops, wrong room" not in page
    assert f'id="message-{message_id}"' in page and "This message was deleted." in page
    assert (await post_form(ann, path, {})).status_code == 404  # gone already
    earlier = await text(await bob.get(f"/rooms/{code}/messages?before={message_id + 1}"))
    assert "This message was deleted." in earlier and "wrong room" not in earlier


async def test_reactions_toggle_and_show_counts_and_who(app):
    code, ann, bob = await room_of_two(app)
    message_id = await posted(ann, code, "lunch?")
    path = f"/rooms/{code}/messages/{message_id}/reactions"

    for client in (ann, bob):
        assert (await post_form(client, path, {"emoji": "👍"})).status_code == 303
    page = await text(await ann.get(f"/rooms/{code}"))
    assert re.search(r'title="Ann, Bob"[^>]*>👍 2</button>', page)

    await post_form(ann, path, {"emoji": "👍"})  # Ann takes hers back
    page = await text(await ann.get(f"/rooms/{code}"))
    assert re.search(r'title="Bob"[^>]*>👍 1</button>', page)


@pytest.mark.parametrize("emoji", ["👎", "", "👍👍", "<b>", "x" * 500])
async def test_only_the_six_reactions_are_accepted(app, emoji):
    code, ann, _ = await room_of_two(app)
    message_id = await posted(ann, code, "react to me")
    response = await post_form(ann, f"/rooms/{code}/messages/{message_id}/reactions",
                               {"emoji": emoji})
    assert 400 <= response.status_code < 500
    assert 'class="reaction"' not in await text(await ann.get(f"/rooms/{code}"))


@pytest.mark.parametrize("action", ["edit", "delete", "reactions"])
async def test_changes_need_the_form_token_and_a_member(app, action):
    code, ann, _ = await room_of_two(app)
    message_id = await posted(ann, code, "guarded")
    path = f"/rooms/{code}/messages/{message_id}/{action}"
    forged = await ann.post(path, form={"message": "forged", "emoji": "👍"},
                            headers={"Origin": "http://localhost"})
    assert forged.status_code == 403
    stranger = await app.test_client().post(path, form={"message": "x", "emoji": "👍"})
    assert stranger.status_code in (303, 403)
    page = await text(await ann.get(f"/rooms/{code}"))
    assert '<p class="text">guarded</p>' in page and 'class="reaction"' not in page


async def test_links_are_made_for_http_only_and_text_is_escaped_once(app):
    code, ann, _ = await room_of_two(app)
    await posted(ann, code, 'see https://example.com/a?b=1&c=2. or javascript:alert(1) <b>"x"</b>')
    page = await text(await ann.get(f"/rooms/{code}"))
    assert ('<a href="https://example.com/a?b=1&amp;c=2" rel="noopener noreferrer nofollow"'
            ' target="_blank">https://example.com/a?b=1&amp;c=2</a>.') in page
    assert "javascript:alert(1) &lt;b&gt;&#34;x&#34;&lt;/b&gt;" in page
    assert 'href="javascript' not in page and "&amp;lt;" not in page


async def test_mentions_of_people_who_have_been_in_the_room(app):
    code, ann, bob = await room_of_two(app)
    await posted(bob, code, "@Ann have you seen @Zed? mail me at bob@Ann")
    page = await text(await ann.get(f"/rooms/{code}"))
    assert '<span class="mention">@Ann</span> have you seen @Zed?' in page
    assert "bob@Ann" in page  # inside a word: not a mention
    (mentioned,) = re.findall(r'data-mentions="([0-9a-f ]+)"', page)
    ann_css = await text(await ann.get("/me.css"))
    bob_css = await text(await bob.get("/me.css"))
    # Ann's own stylesheet highlights messages that mention her; Bob's does not.
    assert f'[data-mentions~="{mentioned}"]' in ann_css
    assert f'[data-mentions~="{mentioned}"]' not in bob_css


# Live ----------------------------------------------------------------------------------


async def test_an_edit_reaches_every_member_in_place(app):
    async with AsyncExitStack() as stack:
        code, ann_ws, bob_ws, ann, _ = await pair(app, stack)
        await ann_ws.send(say("first draft"))
        (message_id,) = [int(i) for i in re.findall(r'id="message-(\d+)"',
                                                     (await receive_until(bob_ws, "draft"))[-1])]
        await receive_until(ann_ws, "first draft")

        path = f"/rooms/{code}/messages/{message_id}/edit"
        form = {"message": "final", "csrf_token": await csrf_token(ann)}
        response = await ann.post(path, form=form,
                                  headers={"Origin": "http://localhost", "HX-Request": "true"})
        assert response.status_code == 204
        to_bob = (await receive_until(bob_ws, "final"))[-1]
        to_ann = (await receive_until(ann_ws, "final"))[-1]
        assert to_ann == to_bob  # rendered once
        assert REPLACED.findall(to_bob) == [str(message_id)]
        assert '<span class="edited">edited</span>' in to_bob


async def test_a_page_that_was_away_catches_up_on_edits_and_deletions(app):
    code, ann, bob = await room_of_two(app)
    kept, edited, deleted = [await posted(ann, code, f"m{i}") for i in range(3)]
    page = await text(await bob.get(f"/rooms/{code}"))
    since = int(re.search(r"since=(\d+)", connect_address(page)).group(1))

    await post_form(ann, f"/rooms/{code}/messages/{edited}/edit", {"message": "m1 again"})
    await post_form(ann, f"/rooms/{code}/messages/{deleted}/delete", {})
    newer = await posted(ann, code, "newer")

    # The URL the page was served with brings everything since it was rendered.
    async with socket(bob, code, after=deleted, since=since) as bob_ws:
        frames = await receive_until(bob_ws, "This message was deleted.")
        joined = "".join(frames)
        assert [int(i) for i in REPLACED.findall(joined)] == [edited, deleted]
        assert "m1 again" in joined and f'id="message-{newer}"' in joined
        assert f'id="message-{kept}"' not in joined


async def test_typing_reaches_the_others_only_and_at_most_every_two_seconds(app):
    async with AsyncExitStack() as stack:
        code, ann_ws, bob_ws, _, bob = await pair(app, stack)
        await ann_ws.send(json.dumps({"typing": "1", "headers": {"HX-Request": "true"}}))
        frame = await receive(bob_ws)
        assert 'hx-swap-oob="upsert:#typing"' in frame and "Ann is typing…" in frame
        await ann_ws.send(json.dumps({"typing": "1"}))  # again at once: not passed on
        assert await is_quiet(bob_ws)
        assert await is_quiet(ann_ws)  # never to the one typing

        await ann_ws.send(say("done typing"))
        frame = (await receive_until(bob_ws, "done typing"))[-1]
        assert re.search(r'<span id="typing-[0-9a-f]+" hx-swap-oob="delete"></span>$', frame)
        assert len(articles([frame])) == 1
        page = await text(await bob.get(f"/rooms/{code}"))  # typing is never history
        assert "is typing" not in page


async def test_messages_of_another_room_cannot_be_changed_from_this_one(app):
    ann, code = await user(app, "Ann")
    message_id = await posted(ann, code, "in my room")
    other = await join_room(ann, "Ann")  # a second room of Ann's
    response = await post_form(ann, f"/rooms/{other}/messages/{message_id}/delete", {})
    assert response.status_code == 404
    assert "in my room" in await text(await ann.get(f"/rooms/{code}"))


async def test_the_reaction_picker_is_served_to_members_for_messages_that_exist(app):
    code, ann, bob = await room_of_two(app)
    message_id = await posted(ann, code, "pick one")
    path = f"/rooms/{code}/messages/{message_id}/reactions"
    inline = await bob.get(path, headers={"HX-Request": "true"})
    assert inline.status_code == 200
    assert (await text(inline)).count('name="emoji"') == 6
    page = await text(await bob.get(path))  # without JavaScript: a page with its own form
    assert f'<form class="react-form" method="post" action="{path}">' in page
    assert 'name="csrf_token"' in page

    stranger = await app.test_client().get(path)
    assert stranger.status_code in (302, 303) and "pick one" not in await text(stranger)
    assert (await bob.get(f"/rooms/{code}/messages/999999/reactions")).status_code == 404
    other = await join_room(bob, "Bob")  # a room of Bob's own: Ann's message is not in it
    assert (await bob.get(f"/rooms/{other}/messages/{message_id}/reactions")).status_code == 404
    await post_form(ann, f"/rooms/{code}/messages/{message_id}/delete", {})
    assert (await bob.get(path)).status_code == 404  # deleted: nothing to react to
