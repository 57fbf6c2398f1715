"""Sending in a real browser (issue 9): a message goes out exactly once, shows as
"Sending…" until the server has it, says so with Retry when it could not be sent; Enter
sends and Shift+Enter breaks lines; your own messages look like yours and come into view.
"""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.kit import LiveServer
from tests.kit.pages import (
    RECONNECT_TIMEOUT,
    assert_accessible,
    create_room,
    expect_shown_once_in_order,
    history_ids,
    join_room,
    message_texts,
    pending,
    send,
    wait_live,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


async def test_enter_three_times_while_the_server_is_down_posts_once(
    people, live_server: LiveServer
) -> None:
    """Bug 1: the box clears as the message leaves and shows it as "Sending…"; pressing
    Enter again sends nothing; once the server is back both people see it once."""
    ann = await people(live_server, "Ann")
    bob = await people(live_server, "Bob")
    code = await create_room(ann)
    await join_room(bob, code)
    for user in (ann, bob):
        user.allow_offline_noise()
    assert await live_server.astop() == 0, live_server.log_tail()
    await expect(ann.page.locator(".room")).to_have_attribute("data-connection", "down")

    box = ann.page.locator("#message-input")
    await box.fill("Are you there?")
    for _ in range(3):
        await box.press("Enter")
    await expect(box).to_have_value("")
    await expect(pending(ann.page)).to_have_count(1)
    await expect(pending(ann.page)).to_contain_text(["Are you there?"])
    await expect(pending(ann.page).locator(".state")).to_have_text("Sending…")
    await expect(message_texts(ann.page)).to_have_count(0)
    await assert_accessible(ann.page, "disconnected, a message waiting")

    await live_server.astart()
    for user in (ann, bob):
        await wait_live(user.page, RECONNECT_TIMEOUT)
        await expect(message_texts(user.page)).to_have_text(["Are you there?"])
    await expect(pending(ann.page)).to_have_count(0)
    history = await history_ids(ann, code)
    assert len(history) == 1
    for user in (ann, bob):
        await expect_shown_once_in_order(user.page, history)


async def test_a_lost_confirmation_is_retried_under_the_same_nonce(
    people, live_server: LiveServer
) -> None:
    """The frame reached the server but its answer was lost: after a while the page says
    "Not sent" with Retry; Retry sends the same nonce, so the message still shows once."""
    ann = await people(live_server, "Ann")
    bob = await people(live_server, "Bob")
    await ann.page.clock.install()
    dropped: list[str] = []

    async def drop_first_echo(route) -> None:
        server = route.connect_to_server()

        def to_page(frame) -> None:
            if "data-nonce" in str(frame) and not dropped:
                dropped.append(str(frame))  # lost on the way back
                return
            route.send(frame)

        server.on_message(to_page)

    await ann.page.route_web_socket("**/ws*", drop_first_echo)
    code = await create_room(ann)
    await join_room(bob, code)
    await send(ann.page, "Did this arrive?")
    await expect(message_texts(bob.page)).to_have_text(["Did this arrive?"])
    await expect(pending(ann.page).locator(".state")).to_have_text("Sending…")
    assert dropped

    await ann.page.clock.fast_forward(11_000)
    item = pending(ann.page)
    await expect(item.locator(".state")).to_contain_text("Not sent")
    await assert_accessible(ann.page, "a message not confirmed")
    await item.get_by_role("button", name="Retry").click()
    await expect(message_texts(ann.page)).to_have_text(["Did this arrive?"])
    await expect(pending(ann.page)).to_have_count(0)
    history = await history_ids(ann, code)
    assert len(history) == 1
    for user in (ann, bob):
        await expect_shown_once_in_order(user.page, history)


async def test_a_refused_message_says_why_and_gives_the_text_back(
    people, make_live_server
) -> None:
    server = make_live_server(env={"CHAT_MESSAGE_RATE": "2/60"})
    ann = await people(server, "Ann")
    await create_room(ann)
    for text in ("one", "two"):
        await send(ann.page, text)
    await expect(message_texts(ann.page)).to_have_text(["one", "two"])
    await send(ann.page, "three, too fast")
    item = pending(ann.page)
    await expect(item.locator(".state")).to_contain_text("Not sent: You are sending messages")
    await expect(item.get_by_role("button", name="Retry")).to_be_visible()
    box = ann.page.locator("#message-input")
    await expect(box).to_have_value("three, too fast")
    await expect(box).to_have_attribute("aria-invalid", "true")
    await expect(box).to_be_focused()
    await assert_accessible(ann.page, "a message refused")
    await expect(message_texts(ann.page)).to_have_count(2)


async def test_enter_sends_shift_enter_breaks_the_line_and_empty_sends_nothing(
    people, live_server: LiveServer
) -> None:
    ann = await people(live_server, "Ann")
    bob = await people(live_server, "Bob")
    code = await create_room(ann)
    await join_room(bob, code)
    frames: list[str] = []
    ann.page.on("websocket", lambda socket: socket.on(
        "framesent", lambda payload: frames.append(str(payload))))
    await ann.page.reload()
    await wait_live(ann.page)

    box = ann.page.locator("#message-input")
    await box.press("Enter")
    await box.fill("   ")
    await box.press("Enter")
    await box.fill("")
    await box.press_sequentially("first line")
    await box.press("Shift+Enter")
    await box.press_sequentially("second line")
    await expect(box).to_have_value("first line\nsecond line")
    await box.press("Enter")
    for user in (ann, bob):
        await expect(message_texts(user.page)).to_have_text(["first line\nsecond line"])
        # Shown on two lines, not run together.
        height = await message_texts(user.page).first.evaluate(
            "p => p.getBoundingClientRect().height / parseFloat(getComputedStyle(p).lineHeight)")
        assert round(height) == 2, height
    # The empty and blank Enters sent nothing (typing the text also said "typing").
    sent_messages = [frame for frame in frames if '"message"' in frame]
    assert len(sent_messages) == 1, frames


async def test_own_messages_look_like_yours_and_come_into_view(
    people, live_server: LiveServer
) -> None:
    """Bug 7: scrolled up, your own message still comes into view; others' messages
    offer "New messages ↓" instead of moving what you are reading."""
    ann = await people(live_server, "Ann", viewport={"width": 800, "height": 500})
    bob = await people(live_server, "Bob")
    code = await create_room(ann)
    await join_room(bob, code)
    for number in range(1, 16):
        await send(bob.page, f"Bob says {number}\nwith a second line")
    await expect(message_texts(ann.page)).to_have_count(15)
    await expect(ann.page.locator("#messages .message.mine")).to_have_count(0)
    await expect(bob.page.locator("#messages .message.mine")).to_have_count(15)

    scroller = ann.page.locator(".scroller")
    await scroller.evaluate("s => { s.scrollTop = -100000; }")  # to the oldest
    await expect(ann.page.get_by_text("Bob says 1", exact=False).first).to_be_in_viewport()
    await send(bob.page, "Bob again")
    await expect(message_texts(ann.page).last).to_have_text("Bob again")
    jump = ann.page.get_by_role("button", name="New messages ↓")
    await expect(jump).to_be_visible()
    await expect(message_texts(ann.page).last).not_to_be_in_viewport()
    await assert_accessible(ann.page, "scrolled up, new messages below")
    await jump.click()
    await expect(message_texts(ann.page).last).to_be_in_viewport()
    await expect(jump).to_be_hidden()

    await scroller.evaluate("s => { s.scrollTop = -100000; }")
    await send(ann.page, "Ann writes while scrolled up")
    mine = ann.page.locator("#messages .message.mine")
    await expect(mine).to_have_count(1)
    await expect(mine.locator(".text")).to_have_text("Ann writes while scrolled up")
    await expect(mine).to_be_in_viewport()
    await expect(jump).to_be_hidden()
    await expect(bob.page.locator("#messages .message").last).not_to_have_class("message mine")
