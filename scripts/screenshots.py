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
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from playwright.async_api import Page, async_playwright, expect  # noqa: E402

from tests.kit import LiveServer  # noqa: E402
from tests.kit.pages import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    create_room,
    join_room,
    message_with,
    new_user,
    open_editor,
    send,
)

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

        ann = await new_user(await browser.new_context(viewport=WIDE, **options), "Ann")
        # Bob is on a phone: a touch screen, where each message shows its tools.
        bob = await new_user(await browser.new_context(
            viewport=NARROW, has_touch=True, is_mobile=True, **options), "Bob")
        code = await create_room(ann)
        await join_room(bob, code)
        pages = {"Ann": ann.page, "Bob": bob.page}
        ann, bob = ann.page, bob.page
        for count, (author, text) in enumerate(CONVERSATION, start=1):
            await send(pages[author], text)
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
