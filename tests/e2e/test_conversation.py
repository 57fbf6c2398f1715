"""The conversation in a real browser, two people each (issue 13): edit in place (Escape
cancels, errors in place), delete (asked once), reactions (counts and who, toggled
back), mentions highlighted for the one mentioned, the unread count in the title and
the "New messages" line, "is typing", and all of edit, delete and react without
JavaScript as plain forms. Every state is checked with axe-core; the `people` fixture
fails a test on any console error."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from playwright.async_api import expect

from tests.kit import LiveServer
from tests.kit.pages import (
    assert_accessible,
    assert_not_reloaded,
    create_room,
    join_room,
    mark_page,
    message_texts,
    message_with,
    open_editor,
    record_sent,
    send,
    set_hidden,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

# Chromium logs every 4xx answer; these tests provoke one on purpose.
REFUSED_EDIT = re.compile(r"status of 400 \(.*\) \(http://[^)]+/edit\)$")


async def until(condition, tries: int = 80) -> None:
    """Wait (bounded) for something the page reports through Playwright's events."""
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("never happened")


async def two_in_a_room(people, server: LiveServer, first: str = "Ann", second: str = "Bob"):
    ann = await people(server, first)
    bob = await people(server, second)
    code = await create_room(ann)
    await join_room(bob, code)
    return ann, bob, code


async def test_edit_in_place_escape_cancels_and_everyone_sees_edited(
    people, live_server: LiveServer
) -> None:
    ann, bob, _ = await two_in_a_room(people, live_server)
    ann.allowed.append(REFUSED_EDIT)
    page = ann.page
    await mark_page(page)
    await send(page, "helo wrold")
    await expect(message_texts(bob.page)).to_have_text(["helo wrold"])
    # Only the author is offered Edit and Delete.
    theirs = message_with(bob.page, "helo wrold")
    await theirs.hover()
    await expect(theirs.get_by_role("link", name="Edit")).to_be_hidden()
    await expect(theirs.get_by_role("button", name="Delete")).to_be_hidden()

    box = await open_editor(page, "helo wrold")
    mine = message_with(page, "helo wrold")
    await expect(box).to_be_focused()
    await expect(box).to_have_value("helo wrold")
    await expect(mine.locator(".text")).to_be_hidden()  # the form takes its place
    await assert_accessible(page, "editing a message in place")
    await box.fill("changed my mind")
    await box.press("Escape")
    await expect(mine.locator(".edit-form")).to_have_count(0)
    await expect(mine.locator(".text")).to_have_text("helo wrold")
    await expect(mine.get_by_role("link", name="Edit")).to_be_focused()

    # A refused edit shows its reason in place, and the text is kept.
    box = await open_editor(page, "helo wrold")
    await box.fill("   ")
    await box.press("Enter")
    await expect(mine.get_by_role("alert")).to_have_text("Please type a message.")
    await expect(box).to_have_attribute("aria-invalid", "true")
    await assert_accessible(page, "an edit refused, in place")

    # Enter saves in the background; everyone gets the new text and "edited".
    await box.fill("hello world")
    await box.press("Enter")
    for user in (ann, bob):
        edited = message_with(user.page, "hello world")
        await expect(edited.locator(".text")).to_have_text("hello world")
        await expect(edited.locator(".edited")).to_have_text("edited")
        await expect(user.page.locator(".edit-form")).to_have_count(0)
    await expect(message_with(page, "hello world").get_by_role("link", name="Edit")
                 ).to_be_focused()
    await assert_not_reloaded(page)
    await assert_accessible(bob.page, "an edited message")


async def test_an_edit_in_progress_survives_a_reaction_to_its_message(
    people, live_server: LiveServer
) -> None:
    ann, bob, _ = await two_in_a_room(people, live_server)
    await send(ann.page, "draft")
    box = await open_editor(ann.page, "draft")
    await box.fill("draft, half rewritten")
    await react(bob.page, "draft", "🎉")
    # Bob's reaction replaced the message on Ann's page: her edit is still open.
    await expect(message_with(ann.page, "draft").locator(".reaction")).to_have_text(["🎉 1"])
    box = message_with(ann.page, "draft").get_by_role("textbox", name="Edit your message")
    await expect(box).to_have_value("draft, half rewritten")
    await expect(box).to_be_focused()
    await message_with(ann.page, "draft").get_by_role("button", name="Save").click()
    await expect(message_texts(bob.page)).to_have_text(["draft, half rewritten"])


async def test_delete_asks_once_and_everyone_sees_it_deleted(
    people, live_server: LiveServer
) -> None:
    ann, bob, _ = await two_in_a_room(people, live_server)
    await send(ann.page, "wrong room, sorry")
    await send(ann.page, "this one stays")
    await expect(message_texts(bob.page)).to_have_count(2)
    asked: list[str] = []
    message = message_with(ann.page, "wrong room")

    async def answer(dialog, accept: bool) -> None:
        asked.append(dialog.message)
        await (dialog.accept() if accept else dialog.dismiss())

    ann.page.once("dialog", lambda dialog: answer(dialog, False))
    await message.hover()
    await message.get_by_role("button", name="Delete").click()
    await expect(message_texts(bob.page)).to_have_text(["wrong room, sorry", "this one stays"])
    ann.page.once("dialog", lambda dialog: answer(dialog, True))
    await message.get_by_role("button", name="Delete").click()
    for user in (ann, bob):
        await expect(message_texts(user.page)).to_have_text(
            ["This message was deleted.", "this one stays"])
        await expect(user.page.get_by_text("wrong room, sorry")).to_have_count(0)
    assert asked == ["Delete this message?", "Delete this message?"], asked
    # The focus stays with the message rather than falling back to the page.
    await expect(ann.page.locator("#messages .message.deleted")).to_be_focused()
    await assert_accessible(bob.page, "a deleted message")


async def react(page, text: str, emoji: str) -> None:
    """Open the message's reaction picker and pick `emoji`."""
    message = message_with(page, text)
    await message.hover()
    await message.get_by_role("link", name="Add a reaction").click()
    choice = message.locator(".react-picker").get_by_role("button", name=emoji, exact=True)
    await choice.click()


async def test_reactions_toggle_with_counts_and_who(people, live_server: LiveServer) -> None:
    ann, bob, _ = await two_in_a_room(people, live_server)
    await send(ann.page, "lunch at noon?")
    await expect(message_texts(bob.page)).to_have_count(1)

    message = message_with(bob.page, "lunch")
    await message.hover()
    await message.get_by_role("link", name="Add a reaction").click()
    picker = message.locator(".react-picker")
    await expect(picker.get_by_role("button")).to_have_text(["👍", "❤️", "😂", "🎉", "😮", "🙏"])
    await expect(picker.get_by_role("button", name="👍")).to_be_focused()
    await assert_accessible(bob.page, "reaction picker open")
    await picker.get_by_role("button", name="👍").press("Enter")  # the keyboard works too

    thumbs = message_with(ann.page, "lunch").locator(".reaction")
    await expect(thumbs).to_have_text([re.compile(r"^👍 1")])
    await expect(thumbs).to_have_attribute("title", "Bob")
    await expect(thumbs).to_have_accessible_name("👍 1: Bob")
    # Bob's focus stays on his reaction (the message was replaced under it).
    await expect(message_with(bob.page, "lunch").locator(".reaction")).to_be_focused()

    await thumbs.click()  # Ann adds hers by tapping the reaction
    for user in (ann, bob):
        reaction = message_with(user.page, "lunch").locator(".reaction")
        await expect(reaction).to_have_accessible_name(re.compile(r"^👍 2: (Bob, Ann|Ann, Bob)$"))
        who = await reaction.evaluate("r => getComputedStyle(r, '::after').content")
        assert who in ('"Bob, Ann"', '"Ann, Bob"'), who  # who reacted, on screen too
    await assert_accessible(ann.page, "a message with reactions")

    await message_with(bob.page, "lunch").locator(".reaction").click()  # Bob takes his back
    for user in (ann, bob):
        reaction = message_with(user.page, "lunch").locator(".reaction")
        await expect(reaction).to_have_accessible_name("👍 1: Ann")
    await message_with(ann.page, "lunch").locator(".reaction").click()
    for user in (ann, bob):
        await expect(message_with(user.page, "lunch").locator(".reaction")).to_have_count(0)


async def test_a_mention_is_highlighted_for_the_one_mentioned_only(
    people, live_server: LiveServer
) -> None:
    ann, bob, code = await two_in_a_room(people, live_server)
    cy = await people(live_server, "Cy")
    await join_room(cy, code)
    await send(bob.page, "@Ann can you look at https://example.com/plan?")
    await send(bob.page, "no mention here")
    highlight = "m => getComputedStyle(m).boxShadow"
    for user in (ann, bob, cy):
        mention = message_with(user.page, "can you look")
        await expect(mention.locator(".mention")).to_have_text("@Ann")
        await expect(mention.get_by_role("link", name="https://example.com/plan")
                     ).to_have_attribute("target", "_blank")
        plain = message_with(user.page, "no mention here")
        marked = await mention.evaluate(highlight) != await plain.evaluate(highlight)
        assert marked == (user is ann), (user.name, await mention.evaluate(highlight))
    await assert_accessible(ann.page, "a message mentioning the reader")


async def test_unread_messages_counted_in_the_title_and_marked_on_return(
    people, live_server: LiveServer
) -> None:
    ann, bob, code = await two_in_a_room(people, live_server)
    await send(bob.page, "read before leaving")
    await expect(message_texts(ann.page)).to_have_count(1)
    title = f"Chat Room: {code}"
    await expect(ann.page).to_have_title(title)

    await set_hidden(ann.page, True)
    await send(bob.page, "first while away")
    await expect(ann.page).to_have_title(f"(1) {title}")
    await send(ann.page, "from Ann's other eye")  # her own: not counted
    await send(bob.page, "@Ann second while away")
    await expect(ann.page).to_have_title(f"(2 @) {title}")
    await expect(ann.page.locator(".unread-line")).to_have_count(0)

    await set_hidden(ann.page, False)
    await expect(ann.page).to_have_title(title)
    line = ann.page.locator("#messages .unread-line")
    await expect(line).to_have_text("New messages")
    following = line.locator("xpath=following-sibling::article[1]")
    await expect(following.locator(".text")).to_have_text("first while away")
    await assert_accessible(ann.page, "back on the tab, unread marked")

    # Away again: the line moves to where the new unread ones start.
    await set_hidden(ann.page, True)
    await send(bob.page, "third")
    await expect(ann.page).to_have_title(f"(1) {title}")
    await set_hidden(ann.page, False)
    await expect(line).to_have_count(1)
    await expect(following.locator(".text")).to_have_text("third")


async def test_typing_shows_for_the_others_until_the_message_lands(
    people, live_server: LiveServer
) -> None:
    ann = await people(live_server, "Ann")
    bob = await people(live_server, "Bob")
    sent = record_sent(ann.page)
    code = await create_room(ann)
    await join_room(bob, code)
    await ann.page.clock.install()
    box = ann.page.locator("#message-input")

    await box.press_sequentially("   ")  # nothing but spaces: not typing
    await box.fill("")
    await ann.page.clock.run_for(2_100)  # had it said so, it could say so again now
    await box.press_sequentially("Hello the")
    note = bob.page.locator("#typing .typing-note")
    await expect(note).to_have_text("Ann is typing…")
    await expect(ann.page.locator("#typing .typing-note")).to_have_count(0)
    await assert_accessible(bob.page, "someone typing")
    await box.press_sequentially("re, Bob")
    typing = [frame for frame in sent if json.loads(frame).get("typing")]
    assert len(typing) == 1, typing  # at most once every 2 seconds
    await ann.page.clock.run_for(2_100)
    await box.press_sequentially("!")
    await until(lambda: sum('"typing"' in frame for frame in sent) == 2)
    assert all(json.loads(frame)["typing"] == "1" for frame in sent if '"typing"' in frame)

    await box.press("Enter")
    await expect(message_texts(bob.page)).to_have_text(["Hello there, Bob!"])
    await expect(note).to_have_count(0)  # gone when the message landed


async def test_without_javascript_edit_delete_and_react_are_plain_forms(
    people, live_server: LiveServer
) -> None:
    ann = await people(live_server, "Ann")
    code = await create_room(ann)
    await send(ann.page, "Hello from Ann")
    carol = await people(live_server, "Carol", javascript=False)
    await join_room(carol, code, live=False)
    page = carol.page
    posts: list[tuple[str, int]] = []
    page.on("response", lambda r: r.request.method == "POST" and posts.append(
        (r.url.rsplit("/", 1)[1], r.status)))
    await page.locator("#message-input").fill("Helo from Carol")
    await page.get_by_role("button", name="Send").click()

    # Edit: a page with the form, 303 back to the room.
    mine = message_with(page, "Helo from Carol")
    await mine.hover()
    await mine.get_by_role("link", name="Edit").click()
    await expect(page).to_have_title(f"Edit your message · Chat Room: {code}")
    await page.get_by_label("Edit your message").fill("Hello from Carol")
    await page.get_by_role("button", name="Save").click()
    await expect(page).to_have_url(re.compile(rf"/rooms/{code}$"))
    await expect(message_with(page, "Hello from Carol").locator(".edited")).to_be_visible()

    # React: the picker is a page of its own.
    theirs = message_with(page, "Hello from Ann")
    await theirs.hover()
    await theirs.get_by_role("link", name="Add a reaction").click()
    await expect(page.get_by_role("heading")).to_have_text("React to Ann's message")
    await page.get_by_role("button", name="🎉").click()
    await expect(page).to_have_url(re.compile(rf"/rooms/{code}$"))
    await expect(message_with(page, "Hello from Ann").locator(".reaction")
                 ).to_have_accessible_name("🎉 1: Carol")

    # Delete: no script to ask, the button posts.
    mine = message_with(page, "Hello from Carol")
    await mine.hover()
    await mine.get_by_role("button", name="Delete").click()
    await expect(page).to_have_url(re.compile(rf"/rooms/{code}$"))
    await expect(message_texts(page)).to_have_text(["Hello from Ann", "This message was deleted."])
    assert posts == [("messages", 303), ("edit", 303), ("reactions", 303), ("delete", 303)], posts

    # Ann, live, saw each change.
    after = ["Hello from Ann", "This message was deleted."]
    await expect(message_texts(ann.page)).to_have_text(after)
    await expect(message_with(ann.page, "Hello from Ann").locator(".reaction")).to_have_text(
        [re.compile(r"^🎉 1")])

    # The same pages, checked by axe-core (it needs script, so in Ann's browser).
    ann_id = (await message_with(ann.page, "Hello from Ann").get_attribute("id")).split("-")[1]
    other_tab = await ann.context.new_page()
    for path, state in (("edit", "the edit page"), ("reactions", "the reaction page")):
        await other_tab.goto(f"/rooms/{code}/messages/{ann_id}/{path}")
        await expect(other_tab.get_by_role("button").first).to_be_visible()
        await assert_accessible(other_tab, state)
    await other_tab.goto(f"/rooms/{code}?before={int(ann_id) + 10}")  # the room, not live
    await assert_accessible(other_tab, "the room with changed messages, not live")
