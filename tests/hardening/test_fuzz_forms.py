"""Fuzzing the HTTP forms and the names joined with: no 5xx, no markup reflected or relayed."""

from __future__ import annotations

import json

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.kit import Member, wait_until
from tests.kit.fuzzing import FUZZ, Arena, markup, on_the_wire, pieces, raw_markup_in, text_values

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


# A hostile name, and a text sent under it -------------------------------------------------


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
