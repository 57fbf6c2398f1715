"""The HTTP side through Quart's test client: home form, room page, history pages,
posting without JavaScript, capacity, health check and the session cookie."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from quart import Quart

from chat import texts
from tests.kit.html import elements, errors_shown, field_value, text, visible_buttons
from tests.kit.in_process import ORIGIN, join_room, post_form

ARTICLE_ID = re.compile(r'<article class="message[^"]*" id="message-(\d+)"[^>]*>')
HX_GET = re.compile(r'hx-get="(/rooms/[A-Z]+/messages\?before=[^"]+)"')


# Helpers ----------------------------------------------------------------------


async def fill_room(app: Quart, code: str, count: int) -> list[int]:
    hub = app.extensions["chat.hub"]
    posts = [await hub.post_message(code, "someone", "Ann", f"note {i}") for i in range(count)]
    return [post.message.id for post in posts]


# Home form --------------------------------------------------------------------


async def test_home_form_has_the_contracted_fields(client):
    response = await client.get("/")
    assert response.status_code == 200
    html = await text(response)
    ((form, _),) = elements(html, "form")
    assert form["method"] == "post" and form["action"] == "/"
    labels = {attrs["for"]: label for attrs, label in elements(html, "label")}
    ((name, _),) = elements(html, "input", name="name")
    ((code, _),) = elements(html, "input", name="code")
    assert name["type"] == code["type"] == "text"
    assert labels[name["id"]] == "Name"
    assert labels[code["id"]] == "Room code"
    assert visible_buttons(html) == {"Join a Room": "join", "Create a Room": "create"}
    assert all(attrs["type"] == "submit" for attrs, _ in elements(html, "button"))


NAME_33 = "n" * 33


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"name": "", "code": "ABCD", "join": "1"}, 400, "Please enter a name."),
        ({"name": "   ", "code": "", "create": "1"}, 400, "Please enter a name."),
        ({"name": "Ann", "code": "", "join": "1"}, 400, "Please enter a room code."),
        ({"name": "Ann", "code": "  ", "join": "1"}, 400, "Please enter a room code."),
        ({"name": "Ann", "code": "zzzz", "join": "1"}, 404, "Room does not exist."),
        ({"name": "Ann", "code": "TOOLONG", "join": "1"}, 404, "Room does not exist."),
        ({"name": NAME_33, "code": "ABCD", "join": "1"}, 400, texts.NAME_TOO_LONG),
        ({"name": NAME_33, "code": "", "create": "1"}, 400, texts.NAME_TOO_LONG),
        ({"name": "Ann\u202e", "code": "ABCD", "join": "1"}, 400, texts.NAME_UNPRINTABLE),
        ({"name": "Ann\x07", "code": "ABCD", "join": "1"}, 400, texts.NAME_UNPRINTABLE),
    ],
)
async def test_home_form_errors_are_4xx_and_keep_what_was_typed(client, form, status, error):
    response = await post_form(client, "/", form)
    assert response.status_code == status
    html = await text(response)
    assert errors_shown(html) == [error]
    assert field_value(html, "name") == form["name"]
    assert field_value(html, "code") == form["code"]


async def test_typed_markup_is_kept_escaped(client):
    typed = '"><script>alert(1)</script>'
    response = await post_form(client, "/", {"name": typed, "code": typed, "join": "1"})
    assert response.status_code == 404  # a name may contain markup; it stays text
    html = await text(response)
    assert "<script>alert(1)" not in html
    assert field_value(html, "name") == typed
    assert field_value(html, "code") == typed


async def test_failed_join_creates_no_session(client):
    await post_form(client, "/", {"name": "Ann", "code": "ZZZZ", "join": "1"})
    response = await client.get("/rooms/ZZZZ")
    assert response.status_code == 303
    assert response.headers["Location"] == "/?code=ZZZZ"


async def test_code_is_trimmed_and_case_insensitive(app, client):
    code = await join_room(app.test_client(), "Ann")
    typed = f" {code.lower()}\t"
    response = await post_form(client, "/", {"name": "Bob", "code": typed, "join": "1"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/rooms/{code}"


async def test_error_keeps_an_erased_name_erased(client):
    """Someone who joined before and now submits with the name field cleared must see
    the empty field the error talks about, not their old name put back."""
    code = await join_room(client, "Ann")
    response = await post_form(client, "/", {"name": "", "code": code, "join": "1"})
    assert response.status_code == 400
    html = await text(response)
    assert errors_shown(html) == ["Please enter a name."]
    assert field_value(html, "name") == ""


async def test_invite_link_prefills_the_code(client):
    html = await text(await client.get("/?code=abcd"))
    assert field_value(html, "code") == "ABCD"
    assert field_value(html, "name") == ""


async def test_create_redirects_to_a_new_room_and_the_session_lets_you_in(app, client):
    response = await post_form(client, "/", {"name": " Zoë 李 ", "create": "1"})
    assert response.status_code == 303
    location = response.headers["Location"]
    assert re.fullmatch(r"/rooms/[A-Z]{4}", location)

    page = await client.get(location)
    assert page.status_code == 200
    assert f"Chat Room: {location[-4:]}" in await text(page)

    cookie = next(iter(client.cookie_jar))
    session = app.session_interface.get_signing_serializer(app).loads(cookie.value)
    assert session["name"] == "Zoë 李"
    assert len(session["user_id"]) >= 16


async def test_every_user_gets_their_own_random_id(app):
    ids = set()
    for name in ("Ann", "Bob"):
        client = app.test_client()
        await join_room(client, name)
        cookie = next(iter(client.cookie_jar))
        ids.add(app.session_interface.get_signing_serializer(app).loads(cookie.value)["user_id"])
    assert len(ids) == 2


async def test_home_remembers_the_name_after_a_join(client):
    code = await join_room(client, "Ann")
    html = await text(await client.get(f"/?code={code}"))
    assert field_value(html, "name") == "Ann"
    assert field_value(html, "code") == code


async def test_session_cookie_is_httponly_and_samesite_lax(client):
    response = await post_form(client, "/", {"name": "Ann", "create": "1"})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


# Room page --------------------------------------------------------------------


async def test_room_page_without_a_session_redirects_to_the_home_form(app, client):
    code = await join_room(app.test_client(), "Ann")
    response = await client.get(f"/rooms/{code}")
    assert response.status_code in (302, 303)
    assert response.headers["Location"] == f"/?code={code}"


async def test_unknown_room_redirects_home_with_an_error(client):
    code = await join_room(client, "Ann")
    response = await client.get("/rooms/QQQQ" if code != "QQQQ" else "/rooms/JJJJ")
    assert response.status_code in (302, 303)
    assert response.headers["Location"] == "/"
    home = await text(await client.get(response.headers["Location"]))
    assert errors_shown(home) == ["Room does not exist."]
    # said once: a later visit is clean
    assert errors_shown(await text(await client.get("/"))) == []


async def test_room_page_shows_the_room(client):
    code = await join_room(client, "Ann")
    html = await text(await client.get(f"/rooms/{code}"))
    assert f"<h1>Chat Room: {code}</h1>" in html
    assert field_value(html, "message") == ""
    ((invite, _),) = elements(html, "input", id="invite-link")
    assert invite["value"] == f"{ORIGIN}/?code={code}"
    ((form, _),) = elements(html, "form", id="message-form")
    assert form["method"] == "post" and form["action"] == f"/rooms/{code}/messages"
    assert list(visible_buttons(html)) == ["Send"]
    assert elements(html, "a", href="/")[0][1] == "Leave room"
    assert len(elements(html, "div", id="messages")) == 1
    assert "Load earlier messages" not in html


async def test_room_page_lowercase_code_redirects_to_the_canonical_address(client):
    code = await join_room(client, "Ann")
    response = await client.get(f"/rooms/{code.lower()}")
    assert response.status_code in (301, 302, 303, 308)
    assert response.headers["Location"] == f"/rooms/{code}"


async def test_message_shows_author_text_and_utc_send_time(app, client):
    code = await join_room(client, "Ann")
    before = datetime.now(UTC)
    response = await post_form(client, f"/rooms/{code}/messages", {"message": "  hello  "})
    assert response.status_code == 303
    html = await text(await client.get(f"/rooms/{code}"))
    (article,) = re.findall(r'<article class="message[^"]*" id="message-\d+"[^>]*>.*?</article>',
                            html, re.S)
    assert '<span class="author">Ann</span>' in article
    assert '<p class="text">hello</p>' in article
    stamp = re.search(r'<time datetime="([^"]+)">', article).group(1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    sent = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= sent <= datetime.now(UTC)
    assert "UTC</time>" in article  # readable without JavaScript


async def test_room_page_shows_the_latest_page_oldest_first(app, client):
    code = await join_room(client, "Ann")
    ids = await fill_room(app, code, 50)
    html = await text(await client.get(f"/rooms/{code}"))
    assert [int(found) for found in ARTICLE_ID.findall(html)] == ids
    assert "Load earlier messages" not in html  # exactly one page: nothing older

    ids += await fill_room(app, code, 1)
    html = await text(await client.get(f"/rooms/{code}"))
    assert [int(found) for found in ARTICLE_ID.findall(html)] == ids[1:]
    ((link, label),) = elements(html, "a", href=f"/rooms/{code}?before={ids[1]}")
    assert label == "Load earlier messages"
    assert link["hx-get"] == f"/rooms/{code}/messages?before={ids[1]}"


async def test_earlier_pages_walk_the_whole_history_without_gaps_or_repeats(app, client):
    code = await join_room(client, "Ann")
    ids = await fill_room(app, code, 120)

    html = await text(await client.get(f"/rooms/{code}"))
    pages = [[int(found) for found in ARTICLE_ID.findall(html)]]
    while match := HX_GET.search(html):
        response = await client.get(unescape(match.group(1)))
        assert response.status_code == 200
        html = await text(response)
        pages.append([int(found) for found in ARTICLE_ID.findall(html)])
        assert len(pages) < 10

    assert [len(page) for page in pages] == [50, 50, 20]
    assert [message for page in reversed(pages) for message in page] == ids


async def test_earlier_page_without_javascript_is_a_full_page(app, client):
    code = await join_room(client, "Ann")
    ids = await fill_room(app, code, 60)
    response = await client.get(f"/rooms/{code}?before={ids[10]}")
    assert response.status_code == 200
    html = await text(response)
    assert [int(found) for found in ARTICLE_ID.findall(html)] == ids[:10]
    assert "Back to the latest" in html
    assert "hx-ws:connect" not in html  # an old page does not go live


async def test_page_size_is_configurable(make_app):
    app = await make_app(page_size=5)
    client = app.test_client()
    code = await join_room(client, "Ann")
    ids = await fill_room(app, code, 7)
    html = await text(await client.get(f"/rooms/{code}"))
    assert [int(found) for found in ARTICLE_ID.findall(html)] == ids[2:]
    html = await text(await client.get(f"/rooms/{code}/messages?before={ids[2]}"))
    assert [int(found) for found in ARTICLE_ID.findall(html)] == ids[:2]
    assert "Load earlier messages" not in html


async def test_rooms_have_separate_histories(app):
    ann, bob = app.test_client(), app.test_client()
    first, second = await join_room(ann, "Ann"), await join_room(bob, "Bob")
    await post_form(ann, f"/rooms/{first}/messages", {"message": "in the first room"})
    await post_form(bob, f"/rooms/{second}/messages", {"message": "in the second room"})
    first_page = await text(await ann.get(f"/rooms/{first}"))
    second_page = await text(await bob.get(f"/rooms/{second}"))
    assert "in the first room" in first_page and "in the second room" not in first_page
    assert "in the second room" in second_page and "in the first room" not in second_page


# Posting without JavaScript ---------------------------------------------------


async def test_posting_without_javascript_stores_and_redirects_back(client):
    code = await join_room(client, "Ann")
    response = await post_form(client, f"/rooms/{code}/messages", {"message": "no JS here"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/rooms/{code}"
    html = await text(await client.get(f"/rooms/{code}"))
    assert '<p class="text">no JS here</p>' in html


async def test_a_retried_post_with_its_nonce_posts_one_message(client):
    code = await join_room(client, "Ann")
    page = await text(await client.get(f"/rooms/{code}"))
    nonce = field_value(page, "nonce")
    assert 1 <= len(nonce) <= 64

    for _ in range(3):  # the answer was lost, the browser asks again
        form = {"message": "posted once", "nonce": nonce}
        response = await post_form(client, f"/rooms/{code}/messages", form)
        assert response.status_code == 303
    html = await text(await client.get(f"/rooms/{code}"))
    assert html.count("posted once") == 1
    assert field_value(html, "nonce") != nonce  # the next message gets a new one


async def test_a_bad_nonce_is_refused_and_nothing_is_posted(client):
    code = await join_room(client, "Ann")
    form = {"message": "with a bad nonce", "nonce": "x" * 65}
    response = await post_form(client, f"/rooms/{code}/messages", form)
    assert response.status_code == 400
    assert "with a bad nonce" not in await text(await client.get(f"/rooms/{code}"))


async def test_a_refused_message_keeps_its_nonce(client):
    code = await join_room(client, "Ann")
    response = await post_form(client, f"/rooms/{code}/messages", {"message": " ", "nonce": "abc"})
    assert response.status_code == 400
    assert field_value(await text(response), "nonce") == "abc"


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("", "Please type a message."),
        ("   ", "Please type a message."),
        ("z" * 2001, "Messages can be at most 2,000 characters."),
        ("ring\x07", texts.MESSAGE_UNPRINTABLE),
    ],
)
async def test_refused_message_gives_400_with_the_error_and_keeps_the_text(client, typed, error):
    code = await join_room(client, "Ann")
    response = await post_form(client, f"/rooms/{code}/messages", {"message": typed})
    assert response.status_code == 400
    html = await text(response)
    assert f'<p id="message-error" class="error" role="alert">{error}</p>' in html
    assert field_value(html, "message") == typed
    assert f"Chat Room: {code}" in html
    assert not ARTICLE_ID.search(html)  # nothing was stored


async def test_posting_without_a_session_stores_nothing(app, client):
    owner = app.test_client()
    code = await join_room(owner, "Ann")
    response = await post_form(client, f"/rooms/{code}/messages", {"message": "anonymous"})
    assert response.status_code in (302, 303, 403)
    assert "anonymous" not in await text(await owner.get(f"/rooms/{code}"))


# Capacity ---------------------------------------------------------------------


async def test_full_room_refuses_a_new_user_while_the_first_is_connected(make_app):
    app = await make_app(room_capacity=1)
    ann, bob = app.test_client(), app.test_client()
    code = await join_room(ann, "Ann")
    async with ann.websocket(f"/rooms/{code}/ws", headers={"Origin": ORIGIN}) as ann_ws:
        await asyncio.wait_for(ann_ws.receive(), 2)  # connected: the member list

        response = await post_form(bob, "/", {"name": "Bob", "code": code, "join": "1"})
        assert response.status_code == 409
        html = await text(response)
        assert errors_shown(html) == ["Room is full."]
        assert field_value(html, "name") == "Bob" and field_value(html, "code") == code

        # someone already in the room still gets back in
        again = await post_form(ann, "/", {"name": "Ann", "code": code, "join": "1"})
        assert again.status_code == 303


# Operations -------------------------------------------------------------------


async def test_health_check_answers_200(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert (await response.get_json())["status"] == "ok"
