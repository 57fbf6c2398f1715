"""The app in a real browser: Debian's Chromium driven by Playwright against `python -m chat`.

Each user has a browser context of their own (their own cookie jar, so their own
session). Waits are bounded: Playwright's `expect` retries until its timeout.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, expect

from tests.e2e.conftest import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

TIMEOUT = 8_000  # ms, for anything that should happen at once
RECONNECT_TIMEOUT = 25_000  # ms: htmx backs off 0.5 s, 1 s, 2 s, 4 s, 8 s (±30%)
LEAVE_GRACE = 2  # s, for the refresh test
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
MESSAGE_ID = re.compile(r'id="message-(\d+)"')
CSRF_TOKEN = re.compile(r'name="csrf_token" value="([^"]*)"')

expect.set_options(timeout=TIMEOUT)


# Helpers -------------------------------------------------------------------------------


@dataclass
class User:
    """One person: a browser context (cookies, so a session) and a page in it."""

    name: str
    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failed_responses: list[str] = field(default_factory=list)


async def open_user(browser: Browser, server: LiveServer, name: str, *,
                    javascript: bool = True, viewport: dict | None = None) -> User:
    context = await browser.new_context(
        base_url=server.url, java_script_enabled=javascript,
        viewport=viewport or {"width": 1280, "height": 800},
    )
    context.set_default_timeout(TIMEOUT)
    page = await context.new_page()
    user = User(name, context, page)
    watch(user, page)
    return user


def watch(user: User, page: Page) -> None:
    """Record console errors and warnings, uncaught page errors and HTTP errors."""

    def on_console(message: ConsoleMessage) -> None:
        where = message.location.get("url", "") if message.location else ""
        line = f"console.{message.type}: {message.text} ({where})"
        if message.type == "error":
            user.errors.append(line)
        elif message.type == "warning":
            user.warnings.append(line)

    page.on("console", on_console)
    page.on("pageerror", lambda error: user.errors.append(f"pageerror: {error}"))
    page.on("response", lambda response: response.status >= 400 and user.failed_responses
            .append(f"{response.status} {response.request.method} {response.url}"))


async def create_room(user: User) -> str:
    page = user.page
    await page.goto("/")
    await page.get_by_label("Name").fill(user.name)
    await page.get_by_role("button", name="Create a Room").click()
    await expect(page).to_have_url(re.compile(r"/rooms/[A-Z]{4}$"))
    code = page.url.rsplit("/", 1)[1]
    await expect(page.locator("h1")).to_have_text(f"Chat Room: {code}")
    await wait_live(page)
    return code


async def join_room(user: User, code: str, *, live: bool = True) -> None:
    page = user.page
    await page.goto("/")
    await page.get_by_label("Name").fill(user.name)
    await page.get_by_label("Room code").fill(code)
    await page.get_by_role("button", name="Join a Room").click()
    await expect(page).to_have_url(re.compile(rf"/rooms/{code}$"))
    await expect(page.locator("h1")).to_have_text(f"Chat Room: {code}")
    if live:
        await wait_live(page)


async def wait_live(page: Page, within_ms: float = TIMEOUT) -> None:
    """The page's WebSocket is open (chat.js marks `.room[data-connection=up]`)."""
    await expect(page.locator(".room")).to_have_attribute("data-connection", "up",
                                                          timeout=within_ms)


async def send(page: Page, text: str) -> None:
    """Type into the message field and press Enter, as a person would."""
    field_ = page.locator("#message-input")
    await field_.fill(text)
    await field_.press("Enter")


def message_texts(page: Page):
    return page.locator("#messages .message .text")


async def shown_ids(page: Page) -> list[int]:
    ids = await page.locator("#messages [id^='message-']").evaluate_all(
        "elements => elements.map(element => element.id)")
    return [int(element_id.removeprefix("message-")) for element_id in ids]


async def history_ids(user: User, code: str) -> list[int]:
    """The ids the server renders on a fresh room page (no WebSocket involved)."""
    response = await user.context.request.get(f"/rooms/{code}")
    assert response.status == 200
    return [int(found) for found in MESSAGE_ID.findall(await response.text())]


async def post_form(user: User, code: str, text: str) -> None:
    """Post a message the way a page without JavaScript does (with its CSRF token, if any)."""
    page = await user.context.request.get(f"/rooms/{code}")
    token = CSRF_TOKEN.search(await page.text())
    form = {"message": text, **({"csrf_token": token.group(1)} if token else {})}
    response = await user.context.request.post(f"/rooms/{code}/messages", form=form,
                                               max_redirects=0)
    assert response.status == 303, (response.status, await response.text())


async def expect_shown_once_in_order(page: Page, expected_ids: list[int]) -> None:
    ids = await shown_ids(page)
    assert len(ids) == len(set(ids)), f"a message is shown twice: {ids}"
    assert ids == expected_ids, f"shown {ids}, history {expected_ids}"


async def mark_page(page: Page) -> None:
    """Leave a marker in the page's JavaScript state: a reload would wipe it."""
    await page.evaluate("window.__sameDocument = true")


async def assert_not_reloaded(page: Page) -> None:
    assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"


def notices(page: Page, text: str):
    return page.locator("#messages .notice", has_text=re.compile(f"^{re.escape(text)}$"))


# (a) two people chat live ----------------------------------------------------------------


async def test_two_users_chat_live(browser: Browser, live_server: LiveServer) -> None:
    ann = await open_user(browser, live_server, "Ann")
    bob = await open_user(browser, live_server, "Bob")
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


# (b) a refresh keeps the history and does not flash left/entered ------------------------


async def test_refresh_keeps_history_without_left_entered(
    browser: Browser, make_live_server
) -> None:
    server = make_live_server(env={"CHAT_LEAVE_GRACE": str(LEAVE_GRACE)})
    ann = await open_user(browser, server, "Ann")
    bob = await open_user(browser, server, "Bob")
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


# (c) a server restart: history kept, pages reconnect and catch up ------------------------


async def test_server_restart_reconnects_and_catches_up(
    browser: Browser, live_server: LiveServer
) -> None:
    ann = await open_user(browser, live_server, "Ann")
    bob = await open_user(browser, live_server, "Bob")
    code = await create_room(ann)
    await join_room(bob, code)
    for user in (ann, bob):
        await mark_page(user.page)

    await send(ann.page, "before restart (Ann)")
    await send(bob.page, "before restart (Bob)")
    for user in (ann, bob):
        await expect(message_texts(user.page)).to_have_count(2)

    assert await live_server.astop() == 0, live_server.log_tail()
    for user in (ann, bob):
        await expect(user.page.locator(".room")).to_have_attribute("data-connection", "down")
        await expect(user.page.locator("#connection-status")).to_contain_text("Reconnecting")

    # Bob writes while the server is down: htmx queues the frame until it reconnects.
    await send(bob.page, "written while the server was down")
    await live_server.astart()
    # Right after the restart, before the pages' back-off timers fire, Bob also posts
    # through the plain form: Ann's page most likely misses it live and must catch up.
    await post_form(bob, code, "posted during reconnect")

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


async def test_background_tab_catches_up_on_what_it_missed(browser: Browser,
                                                           live_server: LiveServer) -> None:
    """htmx closes a hidden tab's socket (pauseOnBackground): on return it must catch up."""
    ann = await open_user(browser, live_server, "Ann")
    bob = await open_user(browser, live_server, "Bob")
    code = await create_room(ann)
    await join_room(bob, code)
    await mark_page(ann.page)
    await send(ann.page, "one")
    await expect(message_texts(bob.page)).to_have_text(["one"])

    await set_hidden(ann.page, True)
    await expect(ann.page.locator(".room")).not_to_have_attribute("data-connection", "up")
    await send(bob.page, "two, while Ann was away")
    await send(bob.page, "three, while Ann was away")
    await expect(message_texts(bob.page)).to_have_count(3)
    await expect(message_texts(ann.page)).to_have_count(1)

    await set_hidden(ann.page, False)
    await wait_live(ann.page)
    await expect(message_texts(ann.page)).to_have_text(
        ["one", "two, while Ann was away", "three, while Ann was away"])
    await send(ann.page, "four")
    await expect(message_texts(bob.page).last).to_have_text("four")
    await expect(message_texts(ann.page)).to_have_count(4)
    history = await history_ids(ann, code)
    for user in (ann, bob):
        await expect_shown_once_in_order(user.page, history)
    await assert_not_reloaded(ann.page)


async def set_hidden(page: Page, hidden: bool) -> None:
    """Make the page look hidden (or visible) to its scripts, as a background tab does."""
    await page.evaluate(
        """hidden => {
            Object.defineProperty(document, "hidden", {configurable: true, get: () => hidden});
            Object.defineProperty(document, "visibilityState",
                {configurable: true, get: () => hidden ? "hidden" : "visible"});
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        hidden,
    )


# (d) without JavaScript -------------------------------------------------------------------


async def test_without_javascript_join_read_and_post(
    browser: Browser, live_server: LiveServer
) -> None:
    ann = await open_user(browser, live_server, "Ann")
    code = await create_room(ann)
    await send(ann.page, "Hello from Ann")
    await expect(message_texts(ann.page)).to_have_text(["Hello from Ann"])

    carol = await open_user(browser, live_server, "Carol", javascript=False)
    await join_room(carol, code, live=False)
    page = carol.page
    await expect(message_texts(page)).to_have_text(["Hello from Ann"])
    # Without JavaScript the time stays as the server rendered it: UTC.
    time = page.locator("#messages .message time").first
    assert ISO_UTC.match(await time.get_attribute("datetime") or "")
    await expect(time).to_have_text(re.compile(r"UTC"))

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


# (e) Load earlier messages ------------------------------------------------------------------


async def test_load_earlier_messages(browser: Browser, make_live_server) -> None:
    server = make_live_server(env={"CHAT_PAGE_SIZE": "5"})
    ann = await open_user(browser, server, "Ann")
    code = await create_room(ann)
    texts = [f"message {number:02d}" for number in range(1, 13)]
    for text in texts:
        await post_form(ann, code, text)
    history_page = await history_ids(ann, code)

    page = ann.page
    await page.reload()
    await wait_live(page)
    await expect(message_texts(page)).to_have_text(texts[-5:])
    assert await shown_ids(page) == history_page
    earlier = page.get_by_role("link", name="Load earlier messages")

    await earlier.click()
    await expect(message_texts(page)).to_have_text(texts[-10:])
    await page.get_by_role("link", name="Load earlier messages").click()
    await expect(message_texts(page)).to_have_text(texts)
    await expect(page.get_by_role("link", name="Load earlier messages")).to_have_count(0)
    ids = await shown_ids(page)
    assert len(ids) == len(set(ids)) == 12 and ids == sorted(ids), ids
    assert ids[-5:] == history_page

    # A live message still lands at the end.
    await send(page, "message 13")
    await expect(message_texts(page)).to_have_text([*texts, "message 13"])


# (f) invite link ----------------------------------------------------------------------------


async def test_invite_link_fills_in_the_code(browser: Browser, live_server: LiveServer) -> None:
    ann = await open_user(browser, live_server, "Ann")
    code = await create_room(ann)
    invite = await ann.page.locator("#invite-link").input_value()
    assert invite == f"{live_server.url}/?code={code}", invite

    dan = await open_user(browser, live_server, "Dan")
    await dan.page.goto(invite)
    await expect(dan.page.get_by_label("Room code")).to_have_value(code)
    await dan.page.get_by_label("Name").fill("Dan")
    await dan.page.get_by_role("button", name="Join a Room").click()
    await expect(dan.page).to_have_url(re.compile(rf"/rooms/{code}$"))
    await wait_live(dan.page)
    await expect(ann.page.locator("#presence .members li")).to_have_text(["Ann", "Dan"])

    # Opening the room's address without a session also leads to the filled-in form.
    eve = await open_user(browser, live_server, "Eve")
    await eve.page.goto(f"/rooms/{code}")
    await expect(eve.page).to_have_url(re.compile(rf"/\?code={code}$"))
    await expect(eve.page.get_by_label("Room code")).to_have_value(code)


# (f2) the member list: one item added or deleted per arrival or departure, kept sorted --


def record_frames(page: Page) -> list[str]:
    """Every frame the page's WebSockets receive, in order."""
    frames: list[str] = []
    page.on("websocket", lambda socket: socket.on(
        "framereceived", lambda payload: frames.append(str(payload))))
    return frames


async def test_member_list_is_kept_sorted_by_single_item_changes(
    browser: Browser, make_live_server
) -> None:
    grace = 1
    server = make_live_server(env={"CHAT_LEAVE_GRACE": str(grace)})
    cy, ann, bob = [await open_user(browser, server, name) for name in ("Cy", "Ann", "Bob")]
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
    for user in (cy, ann, bob):
        assert without_favicon(user.errors) == [], user.errors


# (g) a clean console ----------------------------------------------------------------------------


def without_favicon(lines: list[str]) -> list[str]:
    return [line for line in lines if "/favicon.ico" not in line]


async def test_no_console_or_page_errors_during_a_chat(
    browser: Browser, live_server: LiveServer
) -> None:
    ann = await open_user(browser, live_server, "Ann")
    bob = await open_user(browser, live_server, "Bob")
    code = await create_room(ann)
    await join_room(bob, code)
    await send(ann.page, "hello")
    await send(bob.page, "hello, <i>Ann</i> & co")
    for user in (ann, bob):
        await expect(message_texts(user.page)).to_have_count(2)
    await ann.page.reload()
    await wait_live(ann.page)
    await send(ann.page, "back again")
    await expect(message_texts(bob.page)).to_have_count(3)
    await bob.page.get_by_role("link", name="Leave room").click()
    await expect(bob.page).to_have_url(f"{live_server.url}/")

    for user in (ann, bob):
        assert without_favicon(user.errors) == [], user.errors
        assert without_favicon(user.failed_responses) == [], user.failed_responses
    favicon = [line for user in (ann, bob) for line in user.failed_responses if "favicon" in line]
    if favicon:
        print(f"note: the app has no favicon: {favicon[0]}")
    warnings = ann.warnings + bob.warnings
    if warnings:
        print("console warnings:", *warnings, sep="\n  ")
