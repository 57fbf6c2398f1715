"""What the fuzzing tests share (tests/hardening/test_fuzz*.py): hypothesis settings and
strategies for hostile text, and the arena (one server, one room: an attacker, an
observer, a checker).

Each fuzzing module has its own server and room (the `arena` fixture); hypothesis drives
an attacker who joined the room, while an observer (another member) records every frame
pushed to it and a checker proves after each example that the room still works.
Invariants, for every example:

- no 5xx, and no handler exception in the server log (no "Traceback", no "ERROR");
- a refused WebSocket frame ends with a close code from the contract (1003 binary,
  1007 bad JSON or schema, 1009 too big), never 1011;
- nothing the attacker typed reaches another member as markup: the observer's frames
  hold only our own tags and attributes (no `<script`, `<img`, `on*=` attributes);
- the room keeps working: a normal message still goes through, at once.

The examples run on a private event loop (hypothesis calls a plain function per example),
so connections and the observer live across examples.
"""

from __future__ import annotations

import asyncio
import re

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from tests.kit.browser import Member
from tests.kit.server import LiveServer, LogWatch
from tests.kit.wait import wait_until
from tests.kit.wire import markup_problems

FUZZ = settings(
    max_examples=50,
    deadline=None,
    database=None,  # no .hypothesis folder in the repository
    # No shrinking: a failing example is reported as found. Shrinking examples that fail
    # by timing out took minutes; the known failures have deterministic tests of their own.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large],
)
ALLOWED_CLOSE = {1003, 1007, 1009}
MESSAGE_MAX = 2000

# Text meant to break out of HTML, to spoof direction or to hide characters.
MARKUP = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "'><x-evil autofocus onfocus=alert(1)>",
    "</p></article><div hx-swap-oob=\"innerHTML:#presence\">owned</div>",
    "<a href=javascript:alert(1)>x</a>",
    "{{ 7*7 }}{% raw %}",
    "&lt;script&gt;",
    "<!--",
    "]]><![CDATA[",
    '" autofocus onfocus="alert(1)',
    "' autofocus onfocus='alert(1)",
]
TRICKY = [
    "\u202e",  # right-to-left override
    "\u2066", "\u2069",  # bidi isolates
    "\u200b", "\u200d", "\ufeff",  # zero width space / joiner, BOM
    "\x00", "\x1b[31m", "\r\n", "\t", "\x7f", "\x85",
    "\U0001f600", "e\u0301", "\ud7ff", "\ue000", "\U0010ffff", "\ufffe",
]
# Tags, or an attribute that got out of its quotes ("onerror=alert" as text is harmless).
RAW_PAYLOADS = ("<script", "<img", "<svg", "<x-evil", 'onfocus="alert')

printable = st.text(st.characters(codec="utf-8"), max_size=60)
tricky = st.sampled_from(TRICKY)
markup = st.sampled_from(MARKUP)
pieces = st.lists(st.one_of(printable, tricky, markup), max_size=6).map("".join)
text_values = st.one_of(
    pieces,
    st.integers(1, 3 * MESSAGE_MAX).map(lambda n: "x" * n),
    st.integers(MESSAGE_MAX - 2, MESSAGE_MAX + 2).map(lambda n: "\U0001f600" * n),
    st.text(max_size=200),  # anything, lone surrogates included
)


def on_the_wire(value: str) -> str:
    """A string as it can travel over HTTP/UTF-8: lone surrogates become U+FFFD."""
    return value.encode("utf-8", "replace").decode("utf-8")


# Our own scripts, loaded at the end of every page's body from our own origin.
OUR_SCRIPTS = re.compile(r'<script src="/(?:static|vendor)/[\w./-]+"(?: defer)?></script>')


def raw_markup_in(text: str) -> list[str]:
    lowered = OUR_SCRIPTS.sub("", text).lower()
    return [needle for needle in RAW_PAYLOADS if needle in lowered]


class Arena:
    """The module's room: attacker, observer and checker on a private loop."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.watch = LogWatch(server)
        self.round = 0

    def run(self, coroutine, timeout: float = 30.0):
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, timeout))

    async def open(self) -> None:
        self.attacker = Member(self.server, "Attacker")
        self.visitor = Member(self.server, "Visitor")  # the home form changes its session
        self.observer_member = Member(self.server, "Observer")
        self.checker_member = Member(self.server, "Checker")
        self.code = await self.observer_member.create_room()
        await self.attacker.join_room(self.code)
        await self.checker_member.join_room(self.code)
        self.token = await self.attacker.csrf_token()
        self.visitor_token = await self.visitor.csrf_token()
        self.observer = await self.observer_member.client(self.code).open()
        self.checker = await self.checker_member.client(self.code).open()

    async def close(self) -> None:
        await self.observer.stop()
        await self.checker.stop()
        for member in (self.attacker, self.visitor, self.observer_member, self.checker_member):
            await member.close()

    def observer_mark(self) -> int:
        return len(self.observer.frames)

    def assert_observer_clean(self, since: int) -> None:
        for frame in self.observer.frames[since:]:
            assert not markup_problems(frame), (markup_problems(frame), frame[:2000])

    async def assert_room_works(self) -> None:
        self.round += 1
        text = f"checker still here {self.round}"
        self.checker.send(text)
        await wait_until(lambda: self.observer.has_text(text), 5, "the checker's message")

    def assert_server_clean(self) -> None:
        assert self.server.running, "server died\n" + self.server.log_tail()
        self.watch.assert_clean()
