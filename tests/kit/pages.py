"""People in a real browser (Debian's Chromium through Playwright): a person (a browser
context and a page, with what its console said), the steps people take (create, join,
send) and the checks the browser tests share (shown once and in order, not reloaded,
axe-core finds nothing).

The `people` fixture (tests/e2e/conftest.py) opens people and fails a test on any
console error or uncaught page error. Waits are bounded: Playwright's `expect` retries
until its timeout.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field

import pytest
from playwright.async_api import BrowserContext, ConsoleMessage, Page, Route, expect

from tests.kit.server import PROJECT_ROOT, LiveServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update", "--no-first-run"]

TIMEOUT = 8_000  # ms, for anything that should happen at once
RECONNECT_TIMEOUT = 25_000  # ms: htmx backs off 0.5 s, 1 s, 2 s, 4 s, 8 s (±30%)
MESSAGE_ID = re.compile(r'id="message-(\d+)"')
CSRF_TOKEN = re.compile(r'name="csrf_token" value="([^"]*)"')
AXE_SCRIPT = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
# Served as if from the app's own origin, so it runs under the app's strict CSP
# (script-src 'self') and the CSP stays on for everything the test checks.
AXE_PATH = "/__tests__/axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
# What the browser itself logs while the server is deliberately down: each refused
# connection attempt, and htmx reporting the socket's error event.
OFFLINE_NOISE = (
    re.compile(r"^WebSocket connection to 'ws://[^']+' failed: "),
    re.compile(r"^htmx: htmx:ws:error: \[object Event\]"),
    # e.g. the favicon, fetched late while the server is down
    re.compile(r"^Failed to load resource: net::ERR_CONNECTION_REFUSED "),
)
# What the browser logs for a page served with a 4xx status (the home form's errors are
# 4xx by contract).
ERROR_PAGE_NOISE = (re.compile(r"^Failed to load resource: the server responded with a status "
                               r"of 4\d\d \(\) \(http://[^/]+/\)$"),)

expect.set_options(timeout=TIMEOUT)


def chromium_or_skip() -> str:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    return CHROMIUM


@dataclass
class User:
    """One person: a browser context (cookies, so a session) and a page in it."""

    name: str
    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern] = field(default_factory=list)

    def allow_offline_noise(self) -> None:
        """The test takes the server down: the browser's own connection errors are expected."""
        self.allowed.extend(OFFLINE_NOISE)

    def allow_error_pages(self) -> None:
        """The test submits forms that answer 4xx on purpose."""
        self.allowed.extend(ERROR_PAGE_NOISE)

    def unexpected_errors(self) -> list[str]:
        return [line for line in self.errors
                if not any(noise.search(line.split(": ", 1)[1]) for noise in self.allowed)]


async def new_user(context: BrowserContext, name: str) -> User:
    context.set_default_timeout(TIMEOUT)
    await context.route(f"**{AXE_PATH}", _serve_axe)
    page = await context.new_page()
    user = User(name, context, page)
    page.on("console", lambda message: _on_console(user, message))
    page.on("pageerror", lambda error: user.errors.append(f"pageerror: {error}"))
    return user


def _on_console(user: User, message: ConsoleMessage) -> None:
    if message.type == "error":
        where = message.location.get("url", "") if message.location else ""
        user.errors.append(f"console.error: {message.text} ({where})")


async def _serve_axe(route: Route) -> None:
    await route.fulfill(path=AXE_SCRIPT, content_type="text/javascript")


# Steps people take ------------------------------------------------------------------


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
    """Type into the message box and press Enter, as a person would."""
    box = page.locator("#message-input")
    await box.fill(text)
    await box.press("Enter")


async def post_form(user: User, server: LiveServer, code: str, text: str,
                    nonce: str = "") -> None:
    """Post a message the way a page without JavaScript does (with its CSRF token)."""
    page = await user.context.request.get(f"/rooms/{code}")
    token = CSRF_TOKEN.search(await page.text())
    form = {"message": text, "nonce": nonce, **({"csrf_token": token.group(1)} if token else {})}
    response = await user.context.request.post(
        f"{server.url}/rooms/{code}/messages", form=form, max_redirects=0)
    assert response.status == 303, (response.status, await response.text())


def set_hidden_script(hidden: bool) -> str:
    state = "true" if hidden else "false"
    return f"""() => {{
        Object.defineProperty(document, "hidden", {{configurable: true, get: () => {state}}});
        Object.defineProperty(document, "visibilityState",
            {{configurable: true, get: () => {state} ? "hidden" : "visible"}});
        document.dispatchEvent(new Event("visibilitychange"));
    }}"""


async def set_hidden(page: Page, hidden: bool) -> None:
    """Make the page look hidden (or visible) to its scripts, as a background tab does."""
    await page.evaluate(set_hidden_script(hidden))


def record_sent(page: Page) -> list[str]:
    """Every frame the page's WebSockets send, in order (listen before the page opens)."""
    frames: list[str] = []
    page.on("websocket", lambda socket: socket.on(
        "framesent", lambda payload: frames.append(str(payload))))
    return frames


def record_frames(page: Page) -> list[str]:
    """Every frame the page's WebSockets receive, in order."""
    frames: list[str] = []
    page.on("websocket", lambda socket: socket.on(
        "framereceived", lambda payload: frames.append(str(payload))))
    return frames


# What the page shows ------------------------------------------------------------------


def message_texts(page: Page):
    return page.locator("#messages .message .text")


def pending(page: Page):
    return page.locator("#pending .pending-message")


def message_with(page: Page, text: str):
    """The message (article) whose text contains `text`."""
    return page.locator("#messages .message", has=page.locator(".text", has_text=text))


async def open_editor(page: Page, text: str):
    """Hover the reader's own message and press its Edit; the edit box that opens."""
    message = message_with(page, text)
    await message.hover()
    await message.get_by_role("link", name="Edit").click()
    return message.get_by_role("textbox", name="Edit your message")


def notices(page: Page, text: str):
    return page.locator("#messages .notice", has_text=re.compile(f"^{re.escape(text)}$"))


async def shown_ids(page: Page) -> list[int]:
    ids = await page.locator("#messages [id^='message-']").evaluate_all(
        "elements => elements.map(element => element.id)")
    return [int(element_id.removeprefix("message-")) for element_id in ids]


async def history_ids(user: User, code: str) -> list[int]:
    """The ids the server renders on a fresh room page (no WebSocket involved)."""
    response = await user.context.request.get(f"/rooms/{code}")
    assert response.status == 200
    return [int(found) for found in MESSAGE_ID.findall(await response.text())]


async def expect_shown_once_in_order(page: Page, expected_ids: list[int]) -> None:
    ids = await shown_ids(page)
    assert len(ids) == len(set(ids)), f"a message is shown twice: {ids}"
    assert ids == expected_ids, f"shown {ids}, history {expected_ids}"


async def mark_page(page: Page) -> None:
    """Leave a marker in the page's JavaScript state: a reload would wipe it."""
    await page.evaluate("window.__sameDocument = true")


async def assert_not_reloaded(page: Page) -> None:
    assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"


async def assert_accessible(page: Page, state: str) -> None:
    """axe-core (pinned in package.json) finds no violation, best practices included."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.add_script_tag(url=AXE_PATH)
    found = await page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})"
        ".then(result => result.violations.map(v => ({id: v.id, impact: v.impact,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)})))",
        AXE_TAGS,
    )
    assert found == [], f"axe-core, {state}:\n{json.dumps(found, indent=1)}"
