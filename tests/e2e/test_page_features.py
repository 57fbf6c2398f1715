"""The home form and the room page in a real browser (issue 9): Enter on the home form,
the field at fault, the name length, "Load earlier messages" and focus, the invite
link and its Copy button, the rooms you were in, short times with a line per day, the
note on empty rooms, and axe-core on each page and state."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from playwright.async_api import expect

from tests.kit import LiveServer
from tests.kit.pages import (
    assert_accessible,
    create_room,
    history_ids,
    message_texts,
    post_form,
    send,
    shown_ids,
    wait_live,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


# Home form ----------------------------------------------------------------------------


async def test_home_form_enter_errors_and_name_length(people, live_server: LiveServer) -> None:
    ann = await people(live_server, "Ann")
    ann.allow_error_pages()
    page = ann.page
    await page.goto("/")
    await assert_accessible(page, "home")
    name = page.get_by_label("Name")
    code_field = page.get_by_label("Room code")
    # Bug 5: the box takes no more than a name may have (32).
    await name.press_sequentially("x" * 40)
    await expect(name).to_have_value("x" * 32)

    # Bug 6: after an error, focus is on the field at fault, which is aria-invalid.
    await name.fill("")
    await code_field.fill("ABCD")
    await code_field.press("Enter")
    await expect(page.get_by_role("alert")).to_have_text("Please enter a name.")
    await expect(name).to_be_focused()
    await expect(name).to_have_attribute("aria-invalid", "true")
    await expect(code_field).not_to_have_attribute("aria-invalid", "true")
    await assert_accessible(page, "home with an error")

    await name.fill("Ann")
    await code_field.fill("QQQQ")
    await code_field.press("Enter")  # with a code, Enter joins
    await expect(page.get_by_role("alert")).to_have_text("Room does not exist.")
    await expect(code_field).to_be_focused()
    await expect(code_field).to_have_attribute("aria-invalid", "true")
    await expect(name).not_to_have_attribute("aria-invalid", "true")

    # Bug 6: a name and no code, then Enter, starts a room (it used to mean Join).
    await code_field.fill("")
    await name.press("Enter")
    await expect(page).to_have_url(re.compile(r"/rooms/[A-Z]{4}$"))
    await wait_live(page)
    await assert_accessible(page, "room, empty")


async def test_leave_lists_the_rooms_you_were_in(people, live_server: LiveServer) -> None:
    ann = await people(live_server, "Ann")
    first = await create_room(ann)
    second = await create_room(ann)
    await ann.page.get_by_role("link", name="Leave room").click()
    await expect(ann.page).to_have_url(f"{live_server.url}/")
    rooms = ann.page.get_by_role("region", name="Rooms you were in").get_by_role("link")
    await expect(rooms).to_have_text([f"Back to room {second}", f"Back to room {first}"])
    await assert_accessible(ann.page, "home with rooms to go back to")
    await rooms.last.click()
    await expect(ann.page).to_have_url(re.compile(rf"/rooms/{first}$"))
    await wait_live(ann.page)


# Room page ------------------------------------------------------------------------------


async def test_invite_link_copy_button_and_empty_room_note(
    people, make_live_server
) -> None:
    server = make_live_server(env={"CHAT_EMPTY_ROOM_TTL": "600"})
    ann = await people(server, "Ann", permissions=["clipboard-read", "clipboard-write"])
    code = await create_room(ann)
    invite = await ann.page.locator("#invite-link").input_value()
    assert invite == f"{server.url}/?code={code}", invite
    await expect(ann.page.get_by_text("Rooms are deleted 10 minutes after everyone has left.")
                 ).to_be_visible()
    copy = ann.page.get_by_role("button", name="Copy")
    await copy.click()
    await expect(ann.page.get_by_role("button", name="Copied")).to_be_visible()
    assert await ann.page.evaluate("navigator.clipboard.readText()") == invite

    dan = await people(server, "Dan")
    await dan.page.goto(invite)
    await expect(dan.page.get_by_label("Room code")).to_have_value(code)
    await dan.page.get_by_label("Name").fill("Dan")
    await dan.page.get_by_role("button", name="Join a Room").click()
    await expect(dan.page).to_have_url(re.compile(rf"/rooms/{code}$"))
    await wait_live(dan.page)
    await expect(ann.page.locator("#presence .members li")).to_have_text(["Ann", "Dan"])

    # Opening the room's address without a session also leads to the filled-in form.
    eve = await people(server, "Eve")
    await eve.page.goto(f"/rooms/{code}")
    await expect(eve.page).to_have_url(re.compile(rf"/\?code={code}$"))
    await expect(eve.page.get_by_label("Room code")).to_have_value(code)


async def test_load_earlier_messages_keeps_the_focus(people, make_live_server) -> None:
    """Bug 4: after "Load earlier messages" focus is on the first message it brought."""
    server = make_live_server(env={"CHAT_PAGE_SIZE": "5"})
    ann = await people(server, "Ann")
    code = await create_room(ann)
    texts = [f"message {number:02d}" for number in range(1, 13)]
    for text in texts:
        await post_form(ann, server, code, text)
    history_page = await history_ids(ann, code)

    page = ann.page
    await page.reload()
    await wait_live(page)
    await expect(message_texts(page)).to_have_text(texts[-5:])
    assert await shown_ids(page) == history_page
    earlier = page.get_by_role("link", name="Load earlier messages")
    await earlier.focus()
    await earlier.press("Enter")
    await expect(message_texts(page)).to_have_text(texts[-10:])
    focused = page.locator(":focus")
    await expect(focused.locator(".text")).to_have_text("message 03")
    # The next control is one Shift+Tab away.
    await page.keyboard.press("Shift+Tab")
    await expect(page.get_by_role("link", name="Load earlier messages")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(message_texts(page)).to_have_text(texts)
    await expect(focused.locator(".text")).to_have_text("message 01")
    await expect(page.get_by_role("link", name="Load earlier messages")).to_have_count(0)
    ids = await shown_ids(page)
    assert len(ids) == len(set(ids)) == 12 and ids == sorted(ids), ids
    assert ids[-5:] == history_page
    await assert_accessible(page, "room after loading earlier messages")

    # A live message still lands at the end.
    await send(page, "message 13")
    await expect(message_texts(page)).to_have_text([*texts, "message 13"])

    # The history view of the page without live updates.
    await page.goto(f"/rooms/{code}?before={ids[5]}")
    await expect(page.get_by_text("You are reading older messages.")).to_be_visible()
    await assert_accessible(page, "history view")


async def test_short_times_with_a_line_per_day(people, live_server: LiveServer) -> None:
    ann = await people(live_server, "Ann", locale="en-GB", timezone_id="Asia/Tokyo")
    await create_room(ann)
    await send(ann.page, "Hello 👋 with an emoji")
    time = ann.page.locator("#messages .message time").first
    await expect(time).to_have_text(re.compile(r"^\d{2}:\d{2}$"))  # "12:25"
    stamp = datetime.fromisoformat((await time.get_attribute("datetime")).replace("Z", "+00:00"))
    title = await time.get_attribute("title")
    assert str(stamp.year) in title and "GMT+9" in title, title  # the full date, local zone
    first = ann.page.locator("#messages .message").first
    await expect(first).to_have_attribute("data-day", "Today")
    day_line = await first.evaluate("m => getComputedStyle(m, '::before').content")
    assert day_line == '"Today"', day_line
    # A message from two days before, the way the page sees it after "Load earlier".
    await ann.page.evaluate("""() => {
        const old = document.querySelector('#messages .message').cloneNode(true);
        old.id = 'message-0';
        const time = old.querySelector('time');
        time.removeAttribute('data-local');
        time.dateTime = new Date(Date.now() - 2 * 86400000).toISOString();
        document.querySelector('#messages').prepend(old);
    }""")
    messages = ann.page.locator("#messages .message")
    two_days_ago = re.compile(r"^\w+day, \d+ \w+ \d{4}$")  # "Tuesday, 1 December 2026"
    await expect(messages.first).to_have_attribute("data-day", two_days_ago)
    await expect(messages.nth(1)).to_have_attribute("data-day", "Today")
    await assert_accessible(ann.page, "room with day lines")
