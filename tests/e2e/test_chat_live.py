"""Two people chat live in Chromium against `python -m chat`: messages, refresh, a server
restart, a background tab and the member list.

Each person has a browser context of their own (their own cookie jar, so their own
session); the `people` fixture fails a test on any console error.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import expect

from tests.kit import LiveServer
from tests.kit.pages import (
    RECONNECT_TIMEOUT,
    TIMEOUT,
    assert_not_reloaded,
    create_room,
    expect_shown_once_in_order,
    history_ids,
    join_room,
    mark_page,
    message_texts,
    notices,
    post_form,
    record_frames,
    send,
    set_hidden,
    shown_ids,
    wait_live,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

LEAVE_GRACE = 2  # s, for the refresh test
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


async def test_two_users_chat_live(people, live_server: LiveServer) -> None:
    ann = await people(live_server, "Ann")
    bob = await people(live_server, "Bob")
    code = await create_room(ann)
    await mark_page(ann.page)
    await join_room(bob, code)
    await mark_page(bob.page)

    for user in (ann, bob):
        await expect(user.page.locator("#presence .members li")).to_have_text(["Ann", "Bob"])
    await expect(notices(ann.page, "Bob has entered the room")).to_have_count(1)

    await send(ann.page, "Hello Bob")
    await expect(ann.page.locator("#message-input")).to_have_value("")
    for user in (ann, bob):
        await expect(message_texts(user.page)).to_have_text(["Hello Bob"])
        await expect(user.page.locator("#messages .message .author")).to_have_text(["Ann"])

    await send(bob.page, "Hi Ann, <b>not bold</b>")
    await expect(bob.page.locator("#message-input")).to_have_value("")
    for user in (ann, bob):
        await expect(message_texts(user.page)).to_have_text(
            ["Hello Bob", "Hi Ann, <b>not bold</b>"])
        await expect(user.page.locator("#messages .message .author")).to_have_text(["Ann", "Bob"])
        await expect(user.page.locator("#messages b")).to_have_count(0)

    # Every message carries the server's send time, in UTC, in a <time> element.
    before = datetime.now(UTC) - timedelta(minutes=2)
    for user in (ann, bob):
        times = user.page.locator("#messages .message time")
        await expect(times).to_have_count(2)
        for stamp in await times.evaluate_all("ts => ts.map(t => t.getAttribute('datetime'))"):
            assert ISO_UTC.match(stamp), stamp
            sent = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            assert before <= sent <= datetime.now(UTC) + timedelta(minutes=1), stamp
        await expect(times.first).not_to_be_empty()

    # The same message has the same id on both pages, and live == history.
    history = await history_ids(ann, code)
    assert len(history) == 2
    for user in (ann, bob):
        await expect_shown_once_in_order(user.page, history)
        await assert_not_reloaded(user.page)


async def test_refresh_keeps_history_without_left_entered(
    people, make_live_server
) -> None:
    server = make_live_server(env={"CHAT_LEAVE_GRACE": str(LEAVE_GRACE)})
    ann = await people(server, "Ann")
    bob = await people(server, "Bob")
    code = await create_room(ann)
    await join_room(bob, code)
    await mark_page(bob.page)

    texts = ["first from Ann", "second from Bob", "third from Ann"]
    for sender, text in zip((ann, bob, ann), texts, strict=True):
        await send(sender.page, text)
        await expect(message_texts(bob.page).last).to_have_text(text)
    await expect(message_texts(ann.page)).to_have_text(texts)
    ids_before = await shown_ids(ann.page)

    refreshed_at = time.monotonic()
    await ann.page.reload()
    await wait_live(ann.page)
    await expect(message_texts(ann.page)).to_have_text(texts)
    await expect_shown_once_in_order(ann.page, ids_before)
    await expect(ann.page.locator("#presence .members li")).to_have_text(["Ann", "Bob"])

    await send(ann.page, "after my refresh")
    await expect(message_texts(bob.page)).to_have_text([*texts, "after my refresh"])

    # Let the grace period that the refresh started run out (the one bounded sleep
    # here: nothing is supposed to happen, so there is no event to wait for).
    await asyncio.sleep(max(0.0, refreshed_at + LEAVE_GRACE + 0.75 - time.monotonic()))
    await expect(notices(bob.page, "Ann has left the room")).to_have_count(0)
    # Bob joined after Ann, so he saw no "Ann has entered" at all; a refresh shows none.
    await expect(notices(bob.page, "Ann has entered the room")).to_have_count(0)
    await expect(bob.page.locator("#presence .members li")).to_have_text(["Ann", "Bob"])
    await expect(ann.page.locator("#presence .members li")).to_have_text(["Ann", "Bob"])

    # Control: when Ann really leaves, Bob sees the notice (so the checks above can fail).
    await ann.context.close()
    await expect(notices(bob.page, "Ann has left the room")).to_have_count(
        1, timeout=TIMEOUT + LEAVE_GRACE * 1000)
    await expect(bob.page.locator("#presence .members li")).to_have_text(["Bob"])
    await assert_not_reloaded(bob.page)


async def test_server_restart_reconnects_and_catches_up(
    people, live_server: LiveServer
) -> None:
    ann = await people(live_server, "Ann")
    bob = await people(live_server, "Bob")
    code = await create_room(ann)
    await join_room(bob, code)
    for user in (ann, bob):
        await mark_page(user.page)

    await send(ann.page, "before restart (Ann)")
    await send(bob.page, "before restart (Bob)")
    for user in (ann, bob):
        await expect(message_texts(user.page)).to_have_count(2)

    for user in (ann, bob):
        user.allow_offline_noise()
    assert await live_server.astop() == 0, live_server.log_tail()
    for user in (ann, bob):
        await expect(user.page.locator(".room")).to_have_attribute("data-connection", "down")
        await expect(user.page.locator("#connection-status")).to_contain_text("Reconnecting")

    # Bob writes while the server is down: htmx queues the frame until it reconnects.
    await send(bob.page, "written while the server was down")
    await live_server.astart()
    # Right after the restart, before the pages' back-off timers fire, Bob also posts
    # through the plain form: Ann's page most likely misses it live and must catch up.
    await post_form(bob, live_server, code, "posted during reconnect")

    for user in (ann, bob):
        await wait_live(user.page, RECONNECT_TIMEOUT)
    await send(ann.page, "after restart (Ann)")
    expected = ["before restart (Ann)", "before restart (Bob)", "written while the server was down",
                "posted during reconnect", "after restart (Ann)"]
    history = await history_ids(ann, code)
    assert len(history) == len(expected)
    for user in (ann, bob):
        await expect(message_texts(user.page)).to_contain_text(expected[-1:])
        await expect(message_texts(user.page)).to_have_count(len(expected))
        assert sorted(await message_texts(user.page).all_text_contents()) == sorted(expected)
        await expect_shown_once_in_order(user.page, history)
        await assert_not_reloaded(user.page)
    await expect(bob.page.locator("#message-input")).to_have_value("")
    # Reconnecting broke no rule of the page's Content-Security-Policy (issue 9, bug 9):
    # the `people` fixture fails the test on any other console error.
    for user in (ann, bob):
        assert not [line for line in user.errors if "Content Security Policy" in line]


async def test_background_tab_keeps_receiving(people, live_server: LiveServer) -> None:
    """A hidden tab keeps its socket (pauseOnBackground is off, so that it can count what
    arrives in its title): it shows every message once, in order, when shown again."""
    ann = await people(live_server, "Ann")
    bob = await people(live_server, "Bob")
    code = await create_room(ann)
    await join_room(bob, code)
    await mark_page(ann.page)
    await send(ann.page, "one")
    await expect(message_texts(bob.page)).to_have_text(["one"])

    await set_hidden(ann.page, True)
    await send(bob.page, "two, while Ann was away")
    await send(bob.page, "three, while Ann was away")
    await expect(message_texts(bob.page)).to_have_count(3)
    await expect(message_texts(ann.page)).to_have_count(3)
    await expect(ann.page.locator(".room")).to_have_attribute("data-connection", "up")

    await set_hidden(ann.page, False)
    await expect(message_texts(ann.page)).to_have_text(
        ["one", "two, while Ann was away", "three, while Ann was away"])
    await send(ann.page, "four")
    await expect(message_texts(bob.page).last).to_have_text("four")
    await expect(message_texts(ann.page)).to_have_count(4)
    history = await history_ids(ann, code)
    for user in (ann, bob):
        await expect_shown_once_in_order(user.page, history)
    await assert_not_reloaded(ann.page)


async def test_member_list_is_kept_sorted_by_single_item_changes(
    people, make_live_server
) -> None:
    grace = 1
    server = make_live_server(env={"CHAT_LEAVE_GRACE": str(grace)})
    cy, ann, bob = [await people(server, name) for name in ("Cy", "Ann", "Bob")]
    frames = {user.name: record_frames(user.page) for user in (cy, ann, bob)}
    code = await create_room(cy)
    await expect(cy.page.locator("#members li")).to_have_text(["Cy"])
    await join_room(ann, code)  # goes in front of Cy on Cy's page
    await expect(cy.page.locator("#members li")).to_have_text(["Ann", "Cy"])
    await join_room(bob, code)  # goes between them on Cy's and Ann's pages
    for user in (cy, ann):
        await mark_page(user.page)

    for user in (cy, ann, bob):
        await expect(user.page.locator("#members li")).to_have_text(["Ann", "Bob", "Cy"])
        await expect(user.page.locator("#presence h2 #member-count")).to_have_text("(3)")
        await expect(user.page.locator("#member-count")).to_have_count(1)
        await expect(notices(user.page, "Bob has entered the room")).to_have_count(1)
    # Cy's list was built from the live single-item frames: after the whole list sent on
    # connect, no frame re-sent it.
    cy_lists = [frame for frame in frames["Cy"] if "innerHTML:#presence" in frame]
    assert len(cy_lists) == 1 and "innerHTML:#presence" in frames["Cy"][0], frames["Cy"]
    assert sum("upsert key:data-sort" in frame for frame in frames["Cy"]) == 3, frames["Cy"]

    left_at = time.monotonic()
    await bob.page.goto("/")  # Bob navigates away
    for user in (cy, ann):
        await expect(notices(user.page, "Bob has left the room")).to_have_count(
            1, timeout=TIMEOUT + grace * 1000)
        await expect(user.page.locator("#members li")).to_have_text(["Ann", "Cy"])
        await expect(user.page.locator("#presence h2 #member-count")).to_have_text("(2)")
        await assert_not_reloaded(user.page)
    assert time.monotonic() - left_at >= grace * 0.9  # only once the grace period has passed
    assert any('hx-swap-oob="delete"' in frame for frame in frames["Ann"]), frames["Ann"]

    # A fresh page shows the same list as the live updates built.
    await ann.page.reload()
    await wait_live(ann.page)
    await expect(ann.page.locator("#members li")).to_have_text(["Ann", "Cy"])
    await expect(ann.page.locator("#member-count")).to_have_text("(2)")
