"""The room with JavaScript off (issue 9, bug 8): join, read, post, and a page that says
who is here (you included) and that it will not update by itself."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.kit import LiveServer
from tests.kit.pages import (
    create_room,
    expect_shown_once_in_order,
    history_ids,
    join_room,
    message_texts,
    send,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


async def test_without_javascript_join_read_and_post(people, live_server: LiveServer) -> None:
    ann = await people(live_server, "Ann")
    code = await create_room(ann)
    await send(ann.page, "Hello from Ann")
    await expect(message_texts(ann.page)).to_have_text(["Hello from Ann"])

    carol = await people(live_server, "Carol", javascript=False)
    await join_room(carol, code, live=False)
    page = carol.page
    await expect(message_texts(page)).to_have_text(["Hello from Ann"])
    # Without JavaScript the time stays as the server rendered it: UTC.
    time = page.locator("#messages .message time").first
    assert ISO_UTC.match(await time.get_attribute("datetime") or "")
    await expect(time).to_have_text(re.compile(r"UTC"))

    # Bug 8: Carol is here (she has no live connection, yet she counts), and the page
    # says it will not update by itself.
    await expect(page.locator("#presence h2")).to_have_text("Here now (2)")
    await expect(page.locator("#presence .members li")).to_have_text(["Ann", "Carol"])
    await expect(page.get_by_text("does not update by itself")).to_be_visible()
    await expect(ann.page.get_by_text("does not update by itself")).to_be_hidden()

    posts: list[tuple[str, int]] = []
    page.on("response", lambda r: r.request.method == "POST" and posts.append((r.url, r.status)))
    await page.locator("#message-input").fill("Hello from Carol, no script")
    await page.get_by_role("button", name="Send").click()
    await expect(page).to_have_url(re.compile(rf"/rooms/{code}$"))
    both = ["Hello from Ann", "Hello from Carol, no script"]
    await expect(message_texts(page)).to_have_text(both)
    assert posts == [(f"{live_server.url}/rooms/{code}/messages", 303)], posts
    # Ann, live, gets Carol's message too.
    await expect(message_texts(ann.page)).to_have_text(both)
    await expect_shown_once_in_order(page, await history_ids(carol, code))


async def test_without_javascript_a_line_break_is_kept(people, live_server: LiveServer) -> None:
    carol = await people(live_server, "Carol", javascript=False)
    await carol.page.goto("/")
    await carol.page.get_by_label("Name").fill("Carol")
    # Enter in the name field with no code starts a room, without script too (bug 6).
    await carol.page.get_by_label("Name").press("Enter")
    await expect(carol.page).to_have_url(re.compile(r"/rooms/[A-Z]{4}$"))
    box = carol.page.locator("#message-input")
    await box.press_sequentially("line one")
    await box.press("Enter")  # without script, Enter is a new line; Send sends
    await box.press_sequentially("line two")
    await carol.page.get_by_role("button", name="Send").click()
    await expect(message_texts(carol.page)).to_have_text(["line one\nline two"])
