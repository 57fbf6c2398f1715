"""The bots' JSON API against a real server (`python -m chat` under hypercorn).

A member creates a bot on the room's Bots page (the browser's flow: session, CSRF token,
Origin) and the script uses its token: posting, reading (before/after/limit), every
error as JSON with a reason, revoking, the per-bot rate limit, hypothesis fuzzing of
bodies and query strings (never a 5xx), the OpenAPI document checked by a validator,
and two processes on Redis.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import aiohttp
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from tests.kit import LiveServer, MakeServer, Member, wait_until

pytestmark = pytest.mark.e2e

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
BOT_TOKEN = re.compile(r'id="bot-token" type="text" readonly value="([^"]+)"')
BOT_ID = re.compile(r'<li id="bot-(\d+)">')
BASE_ENV = {"CHAT_JOIN_FAIL_RATE": "off", "CHAT_CREATE_RATE": "off"}


async def create_bot(member: Member, code: str, name: str) -> tuple[str, int]:
    """As a member on the Bots page: (token, bot id)."""
    token = await member.csrf_token(f"/rooms/{code}/bots")
    reply = await member.post(f"/rooms/{code}/bots", {"name": name, "csrf_token": token})
    assert reply.status == 201, reply.text
    return BOT_TOKEN.search(reply.text).group(1), int(BOT_ID.findall(reply.text)[-1])


async def revoke_bot(member: Member, code: str, bot_id: int) -> None:
    token = await member.csrf_token(f"/rooms/{code}/bots")
    reply = await member.post(f"/rooms/{code}/bots/{bot_id}/delete", {"csrf_token": token})
    assert reply.status == 303, reply.text


class Script:
    """A script with a token: no cookies, no Origin, just the bearer token."""

    def __init__(self, server: LiveServer, code: str, token: str | None) -> None:
        self.url = f"{server.url}/api/v1/rooms/{code}/messages"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.session = aiohttp.ClientSession()

    async def post(self, body: object = None, *, raw: bytes | None = None,
                   headers: dict | None = None) -> tuple[int, dict, object]:
        data = raw if raw is not None else json.dumps(body).encode()
        async with self.session.post(self.url, data=data,
                                     headers={**self.headers, **(headers or {})}) as response:
            return response.status, dict(response.headers), await _json(response)

    async def get(self, query: str = "") -> tuple[int, dict, object]:
        async with self.session.get(self.url + query, headers=self.headers) as response:
            return response.status, dict(response.headers), await _json(response)

    async def close(self) -> None:
        await self.session.close()


async def _json(response: aiohttp.ClientResponse) -> object:
    assert response.content_type == "application/json", (response.status, await response.text())
    return await response.json()


@pytest.fixture
async def room(make_live_server: MakeServer):
    """A server, a member (Alice) in a room with her page open, and a bot's script."""
    server = make_live_server(env={**BASE_ENV, "CHAT_MESSAGE_RATE": "off"})
    alice = Member(server, "Alice")
    code = await alice.create_room()
    page = await alice.open(code)
    token, bot_id = await create_bot(alice, code, "CI")
    script = Script(server, code, token)
    yield server, alice, code, page, script, bot_id
    await script.close()
    await alice.close()


def assert_problem(status: int, body: object, expected: int | tuple[int, ...]) -> None:
    assert status in (expected if isinstance(expected, tuple) else (expected,)), (status, body)
    assert isinstance(body, dict) and body.get("reason") and body.get("error"), body


async def test_a_bot_posts_members_see_it_live_and_it_reads_the_room(room):
    _, alice, code, page, script, _ = room
    page.send("hello bot")
    await wait_until(lambda: len(page.messages) == 1, 15, "Alice's message")

    status, _, posted = await script.post({"text": "  build #42 is green  "})
    assert status == 201, posted
    assert set(posted) == {"id", "room", "author", "text", "sent_at"}
    assert (posted["room"], posted["author"], posted["text"]) == (code, "CI", "build #42 is green")
    assert ISO_UTC.match(posted["sent_at"])

    # Alice sees it at once: same fragment as any message, with the bot's name and badge.
    await wait_until(lambda: posted["id"] in page.messages, 15, "the bot's message, live")
    article = page.articles[posted["id"]]
    assert '<span class="author">CI</span> <span class="badge bot-badge">bot</span>' in article
    assert f'<time datetime="{posted["sent_at"]}">' in article
    # ...and so does the room page, after a reload.
    assert f'id="message-{posted["id"]}"' in (await alice.get(f"/rooms/{code}")).text

    ids = []
    for n in range(4):
        ids.append((await script.post({"text": f"step {n}"}))[2]["id"])
    status, _, listed = await script.get()
    assert status == 200
    texts = [message["text"] for message in listed["messages"]]
    assert texts == ["hello bot", "build #42 is green", "step 0", "step 1", "step 2", "step 3"]
    assert listed["messages"][0]["author"] == "Alice"
    assert listed["messages"][1] == posted
    _, _, latest = await script.get("?limit=2")
    assert [m["id"] for m in latest["messages"]] == ids[2:]
    _, _, older = await script.get(f"?limit=2&before={ids[2]}")
    assert [m["id"] for m in older["messages"]] == ids[:2]
    _, _, newer = await script.get(f"?after={posted['id']}&limit=3")
    assert [m["id"] for m in newer["messages"]] == ids[:3]
    _, _, none = await script.get(f"?after={ids[-1]}")
    assert none == {"messages": []}


async def test_every_error_is_json_with_a_reason(room, make_live_server: MakeServer):
    server, alice, code, _, script, _ = room
    anonymous = Script(server, code, None)
    stranger = Script(server, code, "chatbot_" + "x" * 43)
    basic = Script(server, code, None)
    basic.headers = {"Authorization": "Basic QWxhZGRpbjpvcGVu"}
    other_code = await alice.create_room()
    other_token, _ = await create_bot(alice, other_code, "Elsewhere")
    other_room = Script(server, code, other_token)
    try:
        for client in (anonymous, stranger, basic):
            status, headers, body = await client.post({"text": "hi"})
            assert_problem(status, body, 401)
            assert headers["WWW-Authenticate"] == "Bearer"
            assert_problem(*(await client.get())[::2], 401)
        status, _, body = await other_room.post({"text": "hi"})
        assert_problem(status, body, 403)
        assert_problem(*(await other_room.get())[::2], 403)

        for raw in (b"", b"{", b"not json", b"\xff\xfe", b'{"text": "hi"'):
            status, _, body = await script.post(raw=raw)
            assert_problem(status, body, 400)
        for bad in ({}, {"text": ""}, {"text": "   "}, {"text": "x" * 2001}, {"text": 5},
                    {"text": None}, [], "text", None, 7, {"text": "a\u0000b"},
                    {"text": ["a"]}, {"message": "hi"}):
            status, _, body = await script.post(bad)
            assert_problem(status, body, (400, 422))
        for query in ("?limit=0", "?limit=201", "?limit=x", "?before=abc", "?after=-1",
                      f"?before={2**64}", "?before=1&after=1", "?limit=1&limit=2"):
            status, _, body = await script.get(query)
            assert_problem(status, body, (400, 422))
        async with script.session.put(script.url, headers=script.headers) as response:
            assert_problem(response.status, await _json(response), 405)
        async with script.session.get(f"{server.url}/api/v1/nothing") as response:
            assert_problem(response.status, await _json(response), 404)
        async with script.session.post(script.url, data=b"x" * 100_000,
                                       headers=script.headers) as response:
            assert_problem(response.status, await _json(response), 413)
        # Without a Content-Type (curl -d sends a form type) JSON is still read.
        form_type = {"Content-Type": "application/x-www-form-urlencoded"}
        status, _, body = await script.post({"text": "typed by curl"}, headers=form_type)
        assert status == 201 and body["text"] == "typed by curl"
    finally:
        for client in (anonymous, stranger, basic, other_room):
            await client.close()
    assert "Traceback" not in server.log_tail(400)


async def test_a_revoked_token_stops_working_at_once(room):
    _, alice, code, _, script, bot_id = room
    assert (await script.post({"text": "still here"}))[0] == 201
    await revoke_bot(alice, code, bot_id)
    status, _, body = await script.post({"text": "gone?"})
    assert_problem(status, body, 401)
    assert_problem(*(await script.get())[::2], 401)
    assert "No bots yet." in (await alice.get(f"/rooms/{code}/bots")).text


async def test_bots_are_rate_limited_each_on_its_own(make_live_server: MakeServer):
    server = make_live_server(env={**BASE_ENV, "CHAT_MESSAGE_RATE": "3/60"})
    alice = Member(server, "Alice")
    code = await alice.create_room()
    noisy = Script(server, code, (await create_bot(alice, code, "Noisy"))[0])
    calm = Script(server, code, (await create_bot(alice, code, "Calm"))[0])
    try:
        for n in range(3):
            assert (await noisy.post({"text": f"n{n}"}))[0] == 201
        status, headers, body = await noisy.post({"text": "one too many"})
        assert_problem(status, body, 429)
        assert 1 <= int(headers["Retry-After"]) <= 60
        assert "too quickly" in body["reason"]
        assert (await calm.post({"text": "my own limit"}))[0] == 201
        _, _, listed = await calm.get()
        assert "one too many" not in [m["text"] for m in listed["messages"]]
    finally:
        await noisy.close()
        await calm.close()
        await alice.close()


async def test_openapi_document_is_valid_and_describes_the_api(room):
    server, *_ = room
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/openapi.json") as response:
            assert response.status == 200
            document = await response.json()
        async with session.get(f"{server.url}/docs") as response:
            assert response.status == 200
            html = await response.text()
    validate(document)  # raises on an invalid OpenAPI document
    assert set(document["paths"]) == {"/api/v1/rooms/{code}/messages"}
    operations = document["paths"]["/api/v1/rooms/{code}/messages"]
    assert {"201", "401", "403", "422", "429"} <= set(operations["post"]["responses"])
    assert {p["name"] for p in operations["get"]["parameters"]} >= {"limit", "before", "after"}
    assert document["components"]["securitySchemes"]["bot_token"]["scheme"] == "bearer"
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(source.startswith("/") for source in sources)  # our own origin


FUZZ = settings(
    max_examples=80, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.dictionaries(st.sampled_from(["text", "message", "extra"]), json_values, max_size=3)
    .map(lambda value: json.dumps(value).encode()),
    st.text(max_size=3000).map(lambda text: json.dumps({"text": text}).encode()),
)
content_types = st.sampled_from([
    "application/json", "text/plain", "", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "application/json; charset=latin-1",
])
query_strings = st.lists(
    st.tuples(st.sampled_from(["limit", "before", "after", "x"]),
              st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str),
                        st.text(max_size=8))),
    max_size=3,
)


def test_fuzzed_requests_never_get_a_5xx(make_live_server: MakeServer):
    server = make_live_server(env={**BASE_ENV, "CHAT_MESSAGE_RATE": "off"})
    loop = asyncio.new_event_loop()
    run = loop.run_until_complete

    async def setup() -> tuple[Member, Script]:
        alice = Member(server, "Alice")
        code = await alice.create_room()
        return alice, Script(server, code, (await create_bot(alice, code, "Fuzz"))[0])

    alice, script = run(setup())

    @FUZZ
    @given(body=bodies, content_type=content_types, query=query_strings)
    def check(body: bytes, content_type: str, query: list[tuple[str, str]]) -> None:
        headers = {"Content-Type": content_type} if content_type else {}
        status, _, answer = run(script.post(raw=body, headers=headers))
        assert status < 500, (status, answer)
        if status != 201:
            assert_problem(status, answer, (400, 413, 422, 429))
        status, answer = run(_get(script, query))
        assert status < 500, (status, answer)
        if status != 200:
            assert_problem(status, answer, (400, 422))

    try:
        check()
    finally:
        run(script.close())
        run(alice.close())
        loop.close()
    assert "Traceback" not in server.log_tail(2000)


async def _get(script: Script, query: list[tuple[str, str]]) -> tuple[int, object]:
    async with script.session.get(script.url, params=query, headers=script.headers) as response:
        return response.status, await _json(response)


# Two processes on Redis ----------------------------------------------------------------


async def test_across_processes_bot_messages_reach_everyone_and_revoking_is_at_once(
    two_servers, members
):
    a, b = two_servers
    alice, bob = members(a, "Alice"), members(b, "Bob")
    code = await alice.create_room()
    await bob.join_room(code)
    on_b = await bob.open(code)
    token, bot_id = await create_bot(alice, code, "Deployer")
    via_a, via_b = Script(a, code, token), Script(b, code, token)
    try:
        status, _, posted = await via_a.post({"text": "deployed " + uuid.uuid4().hex})
        assert status == 201
        await wait_until(lambda: posted["id"] in on_b.messages, 15, "the bot's message on B")
        assert 'class="badge bot-badge">bot</span>' in on_b.articles[posted["id"]]
        assert (await via_b.post({"text": "from the other process"}))[0] == 201

        await revoke_bot(alice, code, bot_id)  # revoked on A...
        status, _, body = await via_b.post({"text": "after revoking"})  # ...refused on B
        assert_problem(status, body, 401)
        assert_problem(*(await via_b.get())[::2], 401)
    finally:
        await via_a.close()
        await via_b.close()
