"""Property-based attacks (hypothesis) on the real server: the two forms and the socket.

One server and one room serve the whole module; hypothesis drives an attacker who joined
the room, while an observer (another member) records every frame pushed to it and a
checker proves after each example that the room still works. Invariants, for every
example:

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
import json
import re

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.kit import (
    Member,
    RawWebSocket,
    close_code_of,
    parse_server_frames,
    wait_until,
)
from tests.kit.fuzzing import (
    ALLOWED_CLOSE,
    FUZZ,
    MESSAGE_MAX,
    Arena,
    markup,
    on_the_wire,
    pieces,
    raw_markup_in,
    text_values,
)

pytestmark = pytest.mark.e2e

@pytest.fixture(autouse=True)
def _own_log_section(arena: Arena) -> None:
    """Each test answers for the server log written while it runs, not before."""
    arena.watch.mark()


# The home form ---------------------------------------------------------------------------

form_keys = st.sampled_from(["name", "code", "join", "create", "csrf_token", "extra", ""])
form_values = st.one_of(text_values, st.just(""))


@FUZZ
@given(
    fields=st.lists(st.tuples(form_keys, form_values), max_size=6),
    action=st.sampled_from(["join", "create", None]),
    keep_token=st.booleans(),
    encoding=st.sampled_from(["urlencoded", "multipart", "file", "json", "raw-bytes"]),
)
def test_home_form_never_fails_or_reflects_markup(arena: Arena, fields, action, keep_token,
                                                  encoding) -> None:
    fields = [(k, on_the_wire(v)) for k, v in fields]
    if action:
        fields.append((action, "1"))
    if keep_token:
        fields = [(k, v) for k, v in fields if k != "csrf_token"] + [
            ("csrf_token", arena.visitor_token)]

    async def attack() -> None:
        member = arena.visitor
        headers = {}
        if encoding == "urlencoded":
            data = fields
        elif encoding == "multipart":
            data = aiohttp.FormData(quote_fields=False)
            for key, value in fields:
                data.add_field(key, value)
        elif encoding == "file":  # every field as an uploaded file
            data = aiohttp.FormData()
            for key, value in fields:
                data.add_field(key, value.encode(), filename="x.txt",
                               content_type="text/plain")
        elif encoding == "json":
            data = json.dumps(dict(fields))
            headers["Content-Type"] = "application/json"
        else:
            data = "&".join(f"{k}={v}" for k, v in fields).encode("utf-8", "replace") + b"\xff%zz"
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        reply = await member.post("/", data, headers=headers)
        assert reply.status < 500, (reply.status, reply.text[-2000:])
        assert reply.status in {303, 400, 403, 404, 409, 413}, reply.status
        assert not raw_markup_in(reply.text.split("<body>", 1)[-1]), reply.text[-3000:]
        if reply.status == 303:
            page = await member.get(reply.location)
            assert page.status < 500
            assert not raw_markup_in(page.text.split("<body>", 1)[-1]), page.text[-3000:]

    arena.run(attack())
    arena.assert_server_clean()


# Posting a message without JavaScript ------------------------------------------------------


@FUZZ
@given(
    values=st.lists(text_values, min_size=0, max_size=3),
    keep_token=st.booleans(),
    big=st.sampled_from([0, 0, 0, 70_000]),
)
def test_message_form_never_fails_and_reaches_others_escaped(arena: Arena, values, keep_token,
                                                             big) -> None:
    fields = [("message", on_the_wire(v)) for v in values]
    if big:
        fields.append(("padding", "p" * big))
    if keep_token:
        fields.append(("csrf_token", arena.token))
    mark = arena.observer_mark()

    async def attack() -> None:
        before = len(arena.observer.messages)
        reply = await arena.attacker.post(f"/rooms/{arena.code}/messages", fields)
        assert reply.status < 500, (reply.status, reply.text[-2000:])
        assert not raw_markup_in(reply.text.split("<body>", 1)[-1]), reply.text[-3000:]
        if reply.status == 303:  # stored: the observer gets it, escaped
            await wait_until(lambda: len(arena.observer.messages) > before, 5, "the broadcast")
            newest = arena.observer.messages[max(arena.observer.messages)]
            assert newest[0] == "Attacker"
            assert newest[1] == fields[0][1].replace("\r\n", "\n").strip()
        await arena.assert_room_works()

    arena.run(attack())
    arena.assert_observer_clean(mark)
    arena.assert_server_clean()


# The WebSocket ----------------------------------------------------------------------------

# Kept small: frames over the frame limit are the test_too_big_frame_* tests' business.
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                         pieces, st.text(max_size=40))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


def _nested(depth: int, opener: str) -> str:
    closer = {"[": "]", "{\"a\":": "}"}[opener]
    return opener * depth + "0" + closer * depth


class Frame:
    """One frame to send; its repr stays short so hypothesis reports stay readable."""

    def __init__(self, kind: str, data: str | bytes) -> None:
        self.kind, self.data = kind, data

    def __repr__(self) -> str:
        shown = self.data if len(self.data) <= 120 else self.data[:100]
        more = "" if len(self.data) <= 120 else f"... ({len(self.data)} long)"
        return f"Frame({self.kind!r}, {shown!r}{more})"


@st.composite
def frames(draw) -> Frame:
    kind = draw(st.sampled_from([
        "message", "message", "message", "wrong-type", "missing", "top-level", "not-json",
        "surrogate", "nested", "huge", "binary", "extra-fields", "duplicate-keys",
    ]))
    return Frame(kind, draw(_frame_data(kind)))


@st.composite
def _frame_data(draw, kind: str) -> str | bytes:
    if kind == "message":
        return json.dumps({"message": draw(text_values)}, ensure_ascii=draw(st.booleans()))
    if kind == "wrong-type":
        value = draw(json_values.filter(lambda v: not isinstance(v, str)))
        return json.dumps({"message": value})
    if kind == "missing":
        return json.dumps(draw(st.dictionaries(st.text(max_size=10).filter(
            lambda k: k != "message"), json_values, max_size=3)))
    if kind == "top-level":
        return json.dumps(draw(json_values))
    if kind == "not-json":
        return draw(st.one_of(st.text(max_size=100), st.sampled_from(
            ["", "{", '{"message": "x"', "null", '{"message": "x"}}', "\x00", "NaN"])))
    if kind == "surrogate":  # lone surrogates as JSON escapes, as a buggy client sends them
        escape = draw(st.sampled_from(["\\ud800", "\\udfff", "\\udc00\\ud800", "\\ud83d"]))
        return '{"message": "a' + escape + 'b"}'
    if kind == "nested":
        depth = draw(st.sampled_from([50, 200, 256, 1000, 3000]))
        nest = _nested(depth, draw(st.sampled_from(["[", "{\"a\":"])))
        where = draw(st.sampled_from(["headers", "message"]))
        if where == "headers":
            return '{"message": "deep", "headers": ' + nest + "}"
        return '{"message": ' + nest + "}"
    if kind == "huge":
        # Over the message limit, up to the frame limit (the app refuses with a form).
        # Frames over the frame limit: the test_too_big_frame_* tests below.
        size = draw(st.sampled_from([MESSAGE_MAX + 1, 12_000, 27_000, 28_000]))
        return json.dumps({"message": "y" * size})
    if kind == "binary":
        return draw(st.one_of(st.binary(max_size=64), st.just(b'{"message": "binary"}')))
    if kind == "extra-fields":
        return json.dumps({"message": draw(pieces) or "x", "headers": draw(json_values),
                           draw(st.text(max_size=5)): draw(json_values)})
    # duplicate keys: which one wins must not matter for safety
    return '{"message": "first", "message": ' + json.dumps(draw(text_values)) + "}"


@FUZZ
@given(batch=st.lists(frames(), min_size=1, max_size=4))
def test_socket_frames_never_crash_or_reach_others_as_markup(arena: Arena, batch) -> None:
    mark = arena.observer_mark()

    async def attack() -> None:
        ws = arena.attacker.client(arena.code, reconnect=False, after=arena.observer.newest)
        await ws.open()
        answers_before = ws.answers
        sent = 0
        try:
            for frame in batch:
                if ws.finished.is_set():
                    break
                try:
                    await ws.send_raw(frame.data)
                except Exception:  # the server closed it already: frames after close
                    break
                sent += 1
            # Each frame is answered by its message or the form with the reason, or the
            # socket is closed.
            await wait_until(lambda: ws.answers >= answers_before + sent or ws.finished.is_set(),
                             5, "an answer to every frame")
            if ws.finished.is_set():
                allowed = set(ALLOWED_CLOSE)
                if sent > 1:
                    # Frames still arriving after the refusal: the server may close the
                    # TCP connection with unread data, which resets it and can destroy
                    # the close frame in flight (the client sees 1006, htmx reconnects).
                    allowed.add(1006)
                assert ws.close_code in allowed, (ws.close_code, batch)
        finally:
            await ws.stop()
        await arena.assert_room_works()

    arena.run(attack())
    arena.assert_observer_clean(mark)
    arena.assert_server_clean()


@FUZZ
@given(name=st.one_of(pieces, markup).map(on_the_wire), text=st.one_of(pieces, markup))
def test_names_and_texts_reach_others_escaped(arena: Arena, name, text) -> None:
    """Another member sees the attacker's name (notices, member list, author) and text
    exactly as typed, as text."""
    mark = arena.observer_mark()

    async def attack() -> None:
        async with Member(arena.server, "named") as member:
            token = await member.csrf_token()
            reply = await member.post("/", {"name": name, "code": arena.code, "join": "1",
                                            "csrf_token": token})
            assert reply.status in {303, 400}, reply.status
            if reply.status == 400:
                return
            ws = await member.client(arena.code, reconnect=False,
                                     after=arena.observer.newest).open()
            try:
                shown = name.strip()
                await wait_until(lambda: shown in (arena.observer.members or []), 5, "the name")
                newest = max(arena.observer.messages, default=0)
                ws.send(text)
                await wait_until(lambda: ws.answers >= 1 or ws.finished.is_set(), 5, "an answer")
                assert not ws.finished.is_set()
                if not ws.form_errors:
                    cleaned = text.replace("\r\n", "\n").strip()
                    await wait_until(lambda: max(arena.observer.messages) > newest, 5, "the text")
                    assert arena.observer.messages[max(arena.observer.messages)] == (shown, cleaned)
            finally:
                await ws.stop()

    arena.run(attack())
    arena.assert_observer_clean(mark)
    arena.assert_server_clean()


# Below the WebSocket library: malformed frames, and frames after the close -------------------

raw_frames = st.one_of(
    st.tuples(st.just(0x1), st.binary(max_size=40)),  # text frames, invalid UTF-8 included
    st.tuples(st.just(0x2), st.binary(max_size=40)),  # binary
    st.tuples(st.sampled_from([0x3, 0x4, 0x7, 0xB, 0xF]), st.binary(max_size=10)),  # reserved
    st.tuples(st.just(0x0), st.binary(max_size=10)),  # continuation with nothing to continue
    st.tuples(st.just(0x9), st.binary(min_size=126, max_size=200)),  # ping too big
    st.tuples(st.just(0x8),
              st.sampled_from([b"", b"\x03", b"\x03\xe8", b"\x00\x00", b"\x03\xe8\xff"])),
    st.tuples(st.just(0x1), st.just(b'{"message": "after the close?"}')),
)


@settings(FUZZ, max_examples=40)
@given(junk=st.lists(st.tuples(raw_frames, st.booleans()), min_size=1, max_size=5),
       trigger=st.sampled_from(["none", "bad-json", "binary", "close"]))
def test_malformed_frames_and_frames_after_close(arena: Arena, junk, trigger) -> None:
    mark = arena.observer_mark()

    def attack() -> None:
        raw = RawWebSocket(arena.server, f"/rooms/{arena.code}/ws",
                           cookie=arena.attacker.cookie_header())
        try:
            if trigger == "bad-json":
                raw.send_text("{not json")
            elif trigger == "binary":
                raw.send(0x2, b"\x00\x01")
            elif trigger == "close":
                raw.send(0x8, b"\x03\xe8")
            for (opcode, payload), masked in junk:  # the server may have closed by now
                raw.send(opcode, payload, mask=masked)
            raw.drain(3)
        finally:
            raw.close()

    arena.run(asyncio.to_thread(attack))
    arena.run(arena.assert_room_works())
    arena.assert_observer_clean(mark)
    for frame in arena.observer.frames[mark:]:
        assert "after the close?" not in frame or trigger == "none", frame
    arena.assert_server_clean()


def test_fuzzing_left_the_room_usable(arena: Arena) -> None:
    """After everything above: a fresh member joins, talks, and is heard."""

    async def check() -> None:
        async with Member(arena.server, "Latecomer") as late:
            await late.join_room(arena.code)
            ws = await late.client(arena.code).open()
            try:
                ws.send("hello after the storm")
                await wait_until(lambda: arena.observer.has_text("hello after the storm"), 5)
                history = await late.history(arena.code)
                assert history[-1][1:] == ("Latecomer", "hello after the storm")
                assert len({m[0] for m in history}) == len(history)
            finally:
                await ws.stop()
        reply = await arena.attacker.get("/healthz")
        assert reply.status == 200

    arena.run(check())
    arena.assert_server_clean()
    assert re.search(r"connection fell behind", arena.watch.text()) is None


# Over the app's frame limit (the app closes 1009) and over hypercorn's own bound (hypercorn
# closes 1009 itself and the app is never told).
HYPERCORN_LIMIT = pytest.mark.xfail(
    strict=True,
    reason="hypercorn 0.18 refuses a frame over its websocket_max_message_size (4 MiB "
    "here) itself and never tells the app, so the socket lingers until the client hangs "
    "up; frames up to that bound are refused by the app, which closes and leaves",
)
TOO_BIG = [30_000, 1_000_000, pytest.param(5_000_000, marks=HYPERCORN_LIMIT)]


@pytest.mark.parametrize("size", TOO_BIG)
def test_too_big_frame_leaves_no_ghost_member(arena: Arena, size: int) -> None:
    """A frame over the frame limit is answered with 1009 by hypercorn. A client that
    then neither answers the close nor hangs up must not stay in the room: the others
    must see it leave, as with any other refused frame."""
    async def attack() -> None:
        async with Member(arena.server, "Ghost") as ghost:
            await ghost.join_room(arena.code)
            raw = RawWebSocket(arena.server, f"/rooms/{arena.code}/ws",
                               cookie=ghost.cookie_header())
            try:
                await wait_until(lambda: "Ghost" in (arena.observer.members or []), 5, "Ghost in")
                raw.send_text(json.dumps({"message": "y" * size}))
                data, _ = await asyncio.to_thread(raw.drain, 1)
                assert close_code_of(parse_server_frames(data)) == 1009
                # Leave grace is 0.3 s here; give the server ten times that and more.
                await wait_until(lambda: "Ghost" not in (arena.observer.members or []), 6,
                                 "the ghost to be dropped from the member list "
                                 f"(members now: {arena.observer.members})")
            finally:
                raw.close()

    arena.run(attack())
    arena.assert_server_clean()


@pytest.mark.parametrize("size", TOO_BIG)
def test_too_big_frame_then_more_frames_still_closes(arena: Arena, size: int) -> None:
    """A well-behaved client (the websockets library answers the close) that sent one
    more frame after a too-big one must still see the 1009 close, and soon."""
    async def attack() -> None:
        ws = arena.attacker.client(arena.code, reconnect=False, after=arena.observer.newest)
        await ws.open()
        try:
            await ws.send_raw(json.dumps({"message": "y" * size}))
            await ws.send_raw(json.dumps({"message": "one more"}))
            await wait_until(ws.finished.is_set, 6, "the socket to close after a too-big frame")
            assert ws.close_codes == [1009]
        finally:
            await ws.stop()
        await arena.assert_room_works()

    arena.run(attack())
    arena.assert_server_clean()


def test_empty_binary_frame_closes_with_1003(arena: Arena) -> None:
    """Found by the fuzzer: Quart hands an empty binary frame to the handler as None
    (`event.get("bytes") or event["text"]`), which is neither bytes nor str."""
    async def attack() -> None:
        ws = arena.attacker.client(arena.code, reconnect=False, after=arena.observer.newest)
        await ws.open()
        try:
            await ws.send_raw(b"")
            await wait_until(ws.finished.is_set, 5, "the close")
            assert ws.close_codes == [1003]
        finally:
            await ws.stop()

    arena.run(attack())
    arena.assert_server_clean()


def test_too_big_text_then_binary_frame_logs_no_error(arena: Arena) -> None:
    """Seen once while fuzzing (before hypercorn's bound was raised above the app's): after
    hypercorn refused a text frame over its bound it kept the text buffer, and a later
    frame crashed its connection task (`TypeError: string argument expected, got 'bytes'`
    in `ws_stream.py::WebsocketBuffer.extend`, logged as ERROR). The simplest replay."""
    def attack() -> None:
        raw = RawWebSocket(arena.server, f"/rooms/{arena.code}/ws",
                           cookie=arena.attacker.cookie_header())
        try:
            raw.send_text(json.dumps({"message": "y" * 1_000_000}))
            raw.send(0x2, b"\x00\x01binary")
            raw.drain(2)
        finally:
            raw.close()

    arena.run(asyncio.to_thread(attack))
    arena.run(arena.assert_room_works())
    arena.assert_server_clean()
