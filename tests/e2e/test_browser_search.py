"""Search, a message in context and the API docs page in a real browser (Chromium via
Playwright against `python -m chat`), with zero console errors."""

from __future__ import annotations

import re

import aiohttp
import pytest
from playwright.async_api import expect

from tests.kit import LiveServer
from tests.kit.pages import User, create_room, join_room, wait_live

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


async def make_bot(user: User, code: str, name: str) -> str:
    """Create a bot on the room's Bots page as the member would; its token."""
    page = user.page
    await page.goto(f"/rooms/{code}/bots")
    await page.get_by_label("Bot name").fill(name)
    await page.get_by_role("button", name="Create a bot").click()
    token = await page.locator("#bot-token").input_value()
    await page.get_by_role("link", name="Back to the room").click()
    await wait_live(page)
    return token


async def bot_says(server: LiveServer, code: str, token: str, text: str) -> None:
    async with aiohttp.ClientSession() as session, session.post(
        f"{server.url}/api/v1/rooms/{code}/messages", json={"text": text},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        assert response.status == 201, await response.text()


async def test_search_as_you_type_open_in_context_and_continue_live(
    people, live_server: LiveServer
) -> None:
    ann = await people(live_server, "Ann")
    bob = await people(live_server, "Bob")
    code = await create_room(ann)
    await join_room(bob, code)
    token = await make_bot(ann, code, "CI")
    page = ann.page
    for count, text in enumerate(("the deploy <b>failed</b>", "lunch at noon?",
                                  "deploy fixed, all green", "coffee first"), 1):
        await bot_says(live_server, code, token, text)
        await expect(page.locator("#messages .message")).to_have_count(count)
        await expect(bob.page.locator("#messages .message")).to_have_count(count)
    await expect(page.locator("#messages .message .bot-badge").first).to_have_text("bot")

    # Search as you type: results replace the list, newest first, words marked.
    box = page.get_by_role("searchbox", name="Search messages")
    await box.press_sequentially("Deploy", delay=40)
    hits = page.locator("#search-results .message")
    await expect(hits).to_have_count(2)
    await expect(page.locator("#messages")).to_be_hidden()
    await expect(hits.nth(0).locator(".text")).to_have_text("deploy fixed, all green")
    await expect(hits.nth(1).locator(".text")).to_have_text("the deploy <b>failed</b>")
    await expect(hits.nth(1).locator("mark")).to_have_text(["deploy"])
    await box.fill("deploy green")
    await expect(hits).to_have_count(1)

    # Escape returns to the live room, which kept receiving messages meanwhile.
    await bot_says(live_server, code, token, "deploy again tonight")
    await expect(bob.page.locator("#messages .message")).to_have_count(5)
    await box.press("Escape")
    await expect(page.locator("#search-results")).to_be_empty()
    await expect(page.locator("#messages")).to_be_visible()
    await expect(page.locator("#messages .message")).to_have_count(5)

    # Search again, close with the control, then open a result in context.
    await box.fill("lunch")
    await expect(hits).to_have_count(1)
    # (Closing empties the box, which htmx sees as one more, empty, search.)
    async with page.expect_response(lambda response: response.url.endswith("/search?q=")):
        await page.get_by_role("link", name="Close search").click()
    await expect(page.locator("#search-results")).to_be_empty()
    await expect(box).to_have_value("")
    await expect(page).to_have_url(re.compile(rf"/rooms/{code}$"))  # no navigation
    await box.fill("lunch")
    await expect(hits).to_have_count(1)
    await hits.get_by_role("link", name="Show in conversation").click()
    await expect(page).to_have_url(re.compile(rf"/rooms/{code}\?around=\d+$"))
    current = page.locator("#messages [aria-current='true']")
    await expect(current.locator(".text")).to_have_text("lunch at noon?")
    await expect(current).to_be_in_viewport()

    # ...and back to the live room, where new messages arrive again.
    await page.get_by_role("link", name="Back to the latest").click()
    await expect(page).to_have_url(re.compile(rf"/rooms/{code}$"))
    await wait_live(page)
    await bot_says(live_server, code, token, "welcome back")
    await expect(page.locator("#messages .message .text").last).to_have_text("welcome back")

    for user in (ann, bob):
        assert user.errors == [], user.errors
        await user.context.close()


async def test_search_without_javascript(people, live_server: LiveServer) -> None:
    ann = await people(live_server, "Ann")
    code = await create_room(ann)
    await bot_says(live_server, code, await make_bot(ann, code, "CI"), "plain forms still search")
    await expect(ann.page.locator("#messages .message")).to_have_count(1)
    nojs = await ann.context.browser.new_context(
        base_url=live_server.url, java_script_enabled=False,
        storage_state=await ann.context.storage_state())
    page = await nojs.new_page()
    await page.goto(f"/rooms/{code}")
    await page.get_by_role("searchbox", name="Search messages").fill("forms")
    await page.get_by_role("searchbox", name="Search messages").press("Enter")
    await expect(page).to_have_url(re.compile(rf"/rooms/{code}/search\?q=forms$"))
    await expect(page.locator("#search-results .message mark")).to_have_text(["forms"])
    await page.get_by_role("link", name="Close search").click()
    await expect(page).to_have_url(re.compile(rf"/rooms/{code}$"))
    await nojs.close()
    await ann.context.close()


async def test_api_docs_page_renders_from_our_origin_without_console_errors(
    people, live_server: LiveServer
) -> None:
    reader = await people(live_server, "Reader")
    requested: list[str] = []
    reader.page.on("request", lambda request: requested.append(request.url))
    await reader.page.goto("/docs")
    await expect(reader.page.get_by_text("Chat rooms bot API")).to_be_visible()
    await expect(reader.page.get_by_text("/api/v1/rooms/{code}/messages").first).to_be_visible()
    assert reader.errors == [], reader.errors
    assert requested and all(url.startswith(live_server.url) for url in requested), requested
    await reader.context.close()
