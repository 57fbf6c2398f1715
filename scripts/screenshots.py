#!/usr/bin/env python3
"""Screenshots for the docs: the home page and a room, wide and narrow.

Starts `python -m chat` on a free port with a throwaway database, lets two people chat
in Debian's Chromium (headless) — with an edited message, a deleted one, reactions, a
link, a mention and someone typing — and saves:

    docs/screenshots/home.png         1280x800
    docs/screenshots/room-wide.png    1280x800
    docs/screenshots/room-narrow.png  390x844, a touch screen

Usage: .venv/bin/python scripts/screenshots.py [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from playwright.async_api import Page, async_playwright, expect  # noqa: E402

from tests.e2e.browsing import message_with, open_editor  # noqa: E402
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, LiveServer  # noqa: E402

WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 390, "height": 844}
CONVERSATION = [
    ("Ann", "Hi Bob! Welcome to the room. 👋"),
    ("Bob", "Hello Ann. Is this really live, no reload?\nAnd can I write on two lines? 🎉"),
    ("Ann", "It is. Markup stays text, too: <b>not bold</b>"),
    ("Bob", "Oops, that was meant for another room"),
    ("Bob", "@Ann the plan for Friday is here: https://example.org/plans/launch"),
    ("Ann", "Looks good, lets ship it"),
]
EDITED = ("Looks good, lets ship it", "Looks good, let's ship it on Friday 🚀")
DELETED = "Oops, that was meant for another room"
# (who, on whose message, emoji)
REACTIONS = [
    ("Bob", "Hi Bob!", "👍"),
    ("Ann", "two lines", "❤️"),
    ("Bob", "two lines", "❤️"),
    ("Ann", "the plan for Friday", "🎉"),
    ("Bob", "ship it", "🙏"),
]


async def join(page: Page, name: str, code: str | None) -> str:
    await page.goto("/")
    await page.get_by_label("Name").fill(name)
    if code is None:
        await page.get_by_role("button", name="Create a Room").click()
    else:
        await page.get_by_label("Room code").fill(code)
        await page.get_by_role("button", name="Join a Room").click()
    await expect(page).to_have_url(re.compile(r"/rooms/[A-Z]+$"))
    await expect(page.locator(".room")).to_have_attribute("data-connection", "up")
    return page.url.rsplit("/", 1)[1]


async def change_messages(pages: dict[str, Page]) -> None:
    """An edit, a deletion and reactions, done the way people do them."""
    ann, bob = pages["Ann"], pages["Bob"]
    box = await open_editor(ann, EDITED[0])
    await box.fill(EDITED[1])
    await box.press("Enter")
    bob.once("dialog", lambda dialog: dialog.accept())
    gone = message_with(bob, DELETED)
    await gone.hover()
    await gone.get_by_role("button", name="Delete").click()
    for who, text, emoji in REACTIONS:
        message = message_with(pages[who], text)
        await message.hover()
        await message.get_by_role("link", name="Add a reaction").click()
        await message.locator(".react-picker").get_by_role("button", name=emoji).click()
        await expect(message.locator(".reaction", has_text=emoji)).to_be_visible()
    for page in pages.values():
        await expect(page.get_by_text("This message was deleted.")).to_be_visible()
        await expect(page.locator(".message .edited")).to_have_count(1)
        await expect(page.locator(".message .reaction")).to_have_count(len(REACTIONS) - 1)
        await page.locator("#message-input").focus()


async def take(server: LiveServer, out: Path) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        options = {"base_url": server.url, "locale": "en-US", "timezone_id": "Europe/Berlin"}
        home = await browser.new_page(viewport=WIDE, **options)
        await home.goto("/")
        await home.screenshot(path=out / "home.png")

        ann = await browser.new_page(viewport=WIDE, **options)
        # Bob is on a phone: a touch screen, where each message shows its tools.
        bob = await browser.new_page(viewport=NARROW, has_touch=True, is_mobile=True, **options)
        code = await join(ann, "Ann", None)
        await join(bob, "Bob", code)
        pages = {"Ann": ann, "Bob": bob}
        for count, (author, text) in enumerate(CONVERSATION, start=1):
            field = pages[author].locator("#message-input")
            await field.fill(text)
            await field.press("Enter")
            for page in pages.values():
                await expect(page.locator("#messages .message")).to_have_count(count)
        await change_messages(pages)
        for page in pages.values():
            await expect(page.locator("#messages time:not([data-local])")).to_have_count(0)
            await page.mouse.move(0, 0)  # no message hovered: their tools stay out of the way
        # Each sees the other typing a reply (pages say so at most every 2 s).
        await asyncio.sleep(2.1)
        await ann.locator("#message-input").fill("Typing a reply…")
        await expect(bob.locator("#typing")).to_have_text("Ann is typing…")
        await bob.screenshot(path=out / "room-narrow.png")
        await bob.locator("#message-input").press_sequentially("On it")
        await expect(ann.locator("#typing")).to_have_text("Bob is typing…")
        await ann.screenshot(path=out / "room-wide.png")
        await browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chat-screenshots-") as workdir:
        server = LiveServer(Path(workdir), env={"CHAT_LEAVE_GRACE": "1"})
        with server:
            asyncio.run(take(server, args.out))
    for name in ("home.png", "room-wide.png", "room-narrow.png"):
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
