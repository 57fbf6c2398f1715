"""Search, a message in context and the bots page, through the Quart test client.

Search: members only, results newest first through the message fragment with the
searched words in <mark> (escaped first), each linking to its place in the room; the
htmx request gets the results alone; any query is safe. Bots: created by a member with
the form's CSRF token, the token shown once and stored only as a hash, listed, revoked.
"""

from __future__ import annotations

import re
import sqlite3
from html import unescape
from urllib.parse import quote

from quart import Quart

from chat.bots import token_hash
from tests.kit.html import elements, text
from tests.kit.in_process import ORIGIN, csrf_token, join_room, post_form

ARTICLE = re.compile(r'<article class="message[^"]*" id="message-(\d+)"[^>]*>(.*?)</article>', re.S)
HTMX = {"HX-Request": "true"}
BOT_TOKEN = re.compile(r'id="bot-token" type="text" readonly value="([^"]+)"')


async def post(app: Quart, code: str, text_: str, author: str = "Ann") -> int:
    hub = app.extensions["chat.hub"]
    return (await hub.post_message(code, f"user-{author}", author, text_)).message.id


def found_ids(html: str) -> list[int]:
    return [int(found) for found, _ in ARTICLE.findall(html)]


# Search -------------------------------------------------------------------------------


async def test_search_shows_the_rooms_matches_newest_first_marked_and_linked(app, client):
    code = await join_room(client, "Ann")
    other = await join_room(app.test_client(), "Eve")
    first = await post(app, code, "Deploy <b>done</b> & dusted")
    await post(app, code, "lunch?")
    second = await post(app, code, "deploy again: deploy!")
    await post(app, other, "deploy in another room")

    response = await client.get(f"/rooms/{code}/search?q=DEPLOY")
    assert response.status_code == 200
    html = await text(response)
    assert "<html" in html and 'id="search-input"' in html  # the whole page without JS
    assert found_ids(html) == [second, first]
    articles = dict(ARTICLE.findall(html))
    assert "<mark>Deploy</mark> &lt;b&gt;done&lt;/b&gt; &amp; dusted" in articles[str(first)]
    assert "<mark>deploy</mark> again: <mark>deploy</mark>!" in articles[str(second)]
    for message_id in (first, second):
        assert f'href="/rooms/{code}?around={message_id}"' in articles[str(message_id)]
    assert "another room" not in html

    # Words that are markup are marked as text, never inside a tag.
    html = await text(await client.get(f"/rooms/{code}/search?q=b"))
    assert "&lt;<mark>b</mark>&gt;done&lt;/<mark>b</mark>&gt;" in html


async def test_htmx_gets_the_results_alone_and_an_empty_box_gets_nothing(app, client):
    code = await join_room(client, "Ann")
    message = await post(app, code, "search as you type")

    response = await client.get(f"/rooms/{code}/search?q=typ", headers=HTMX)
    html = await text(response)
    assert response.status_code == 200 and "<html" not in html
    assert "No messages match “typ”." in html  # whole words only
    html = await text(await client.get(f"/rooms/{code}/search?q=type", headers=HTMX))
    assert found_ids(html) == [message] and "<html" not in html
    assert 'class="search-close"' in html
    response = await client.get(f"/rooms/{code}/search?q=%20", headers=HTMX)
    assert response.status_code == 200 and await text(response) == ""
    assert "HX-Request" in response.headers["Vary"]


async def test_any_query_answers_200(app, client):
    code = await join_room(client, "Ann")
    await post(app, code, 'quote " star * OR NEAR( minus - (paren) 日本語')
    for query in ['"', '""', "*", "OR", "NEAR(", "-", "(", ")", "a OR b", "NEAR(a b, 2)",
                  '"unterminated', "-not", "x*", "日本語", "%00", "%ED%A0%80", "%FF", "\\",
                  "'", "a:b", "body:x", "room_code:ABCD", "🎉", "x" * 5000]:
        for headers in ({}, HTMX):
            url = f"/rooms/{code}/search?q={quote(query, safe='%')}"
            response = await client.get(url, headers=headers)
            assert response.status_code == 200, query
    html = await text(await client.get(f"/rooms/{code}/search?q=NEAR%28", headers=HTMX))
    assert len(found_ids(html)) == 1
    html = await text(await client.get(f"/rooms/{code}/search?q=%22star%22", headers=HTMX))
    assert len(found_ids(html)) == 1


async def test_more_results_page_back(make_app):
    app = await make_app(page_size=3)
    client = app.test_client()
    code = await join_room(client, "Ann")
    ids = [await post(app, code, f"needle {n}") for n in range(7)]

    html = await text(await client.get(f"/rooms/{code}/search?q=needle", headers=HTMX))
    pages = [found_ids(html)]
    while match := re.search(r'hx-get="([^"]+)"[^>]*>More results', html):
        html = await text(await client.get(unescape(match.group(1)), headers=HTMX))
        assert "search-summary" not in html  # just the next results
        pages.append(found_ids(html))
    assert pages == [ids[:3:-1], ids[3:0:-1], ids[:1]]
    # Without JavaScript, "More results" is a link to the next whole page.
    html = await text(await client.get(f"/rooms/{code}/search?q=needle"))
    ((link, label),) = elements(html, "a", **{"hx-target": "closest li"})
    assert label == "More results" and "before=" in link["href"]


async def test_search_is_for_members_only(app, client):
    code = await join_room(client, "Ann")
    stranger = app.test_client()
    response = await stranger.get(f"/rooms/{code}/search?q=x")
    assert response.status_code == 303 and response.headers["Location"] == f"/?code={code}"
    response = await client.get("/rooms/ZZZZ/search?q=x")
    assert response.status_code == 303 and response.headers["Location"] == "/"


async def test_the_room_header_has_the_search_box(app, client):
    code = await join_room(client, "Ann")
    html = await text(await client.get(f"/rooms/{code}"))
    ((form, _),) = elements(html, "form", role="search")
    assert form["method"] == "get" and form["action"] == f"/rooms/{code}/search"
    assert form["hx-get"] == f"/rooms/{code}/search"
    assert "input changed delay:300ms" in form["hx-trigger"] and "search" in form["hx-trigger"]
    assert form["hx-target"] == "#search-results"
    assert '<div id="search-results" class="search-panel" aria-live="polite"></div>' in html
    assert f'href="/rooms/{code}/bots"' in html


# A message in context -------------------------------------------------------------------


async def test_around_shows_the_message_among_its_neighbours_highlighted(make_app):
    app = await make_app(page_size=10)
    client = app.test_client()
    code = await join_room(client, "Ann")
    ids = [await post(app, code, f"message {n}") for n in range(30)]
    target = ids[12]

    html = await text(await client.get(f"/rooms/{code}?around={target}"))
    shown = found_ids(html)
    assert shown == ids[7:17]  # half before, the message, the rest after
    ((article, _),) = elements(html, "article", **{"aria-current": "true"})
    assert article["id"] == f"message-{target}" and "current" in article["class"].split()
    assert "hx-ws:connect" not in html  # a view of the past, not the live room
    assert f'<a href="/rooms/{code}">Back to the latest</a>' in html
    assert f'href="/rooms/{code}?before={ids[7]}"' in html  # "Load earlier" goes on
    # The newest message in context: the page ends with it.
    html = await text(await client.get(f"/rooms/{code}?around={ids[-1]}"))
    assert found_ids(html) == ids[24:]


# Bots page ------------------------------------------------------------------------------


async def create_bot(client, code: str, name: str):
    return await post_form(client, f"/rooms/{code}/bots", {"name": name})


async def test_a_member_creates_a_bot_sees_its_token_once_and_revokes_it(app, client, settings):
    code = await join_room(client, "Ann")
    response = await create_bot(client, code, "  CI  ")
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    html = await text(response)
    token = BOT_TOKEN.search(html).group(1)
    assert len(token) > 40 and f"/api/v1/rooms/{code}/messages" in html

    listing = await text(await client.get(f"/rooms/{code}/bots"))
    assert token not in listing and 'id="bot-token"' not in listing
    [bot_id] = [int(found) for found in re.findall(r'<li id="bot-(\d+)">', listing)]
    assert '<span class="author">CI</span> <span class="badge bot-badge">bot</span>' in listing
    assert f'action="/rooms/{code}/bots/{bot_id}/delete"' in listing

    with sqlite3.connect(settings.sqlite_path) as connection:
        rows = connection.execute("SELECT name, token_hash FROM bots").fetchall()
    assert rows == [("CI", token_hash(token))]
    assert token not in settings.sqlite_path.read_bytes().decode("latin-1")

    # Revoking needs the form's token too.
    response = await client.post(f"/rooms/{code}/bots/{bot_id}/delete", headers={"Origin": ORIGIN})
    assert response.status_code == 403
    response = await post_form(client, f"/rooms/{code}/bots/{bot_id}/delete", {})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/rooms/{code}/bots"
    assert "No bots yet." in await text(await client.get(f"/rooms/{code}/bots"))
    response = await post_form(client, f"/rooms/{code}/bots/{bot_id}/delete", {})
    assert response.status_code == 404
    response = await post_form(client, f"/rooms/{code}/bots/{2**70}/delete", {})
    assert response.status_code == 404


async def test_bot_forms_check_the_name_the_csrf_token_and_membership(app, client):
    code = await join_room(client, "Ann")
    response = await create_bot(client, code, "")
    assert response.status_code == 400 and "Please enter a name." in await text(response)
    response = await create_bot(client, code, "x" * 40)
    assert response.status_code == 400
    token = await csrf_token(client)
    response = await client.post(f"/rooms/{code}/bots", form={"name": "CI"},
                                 headers={"Origin": ORIGIN})
    assert response.status_code == 403
    response = await client.post(f"/rooms/{code}/bots", form={"name": "CI", "csrf_token": token},
                                 headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    stranger = app.test_client()
    assert (await stranger.get(f"/rooms/{code}/bots")).status_code == 303
    response = await post_form(stranger, f"/rooms/{code}/bots", {"name": "CI"})
    assert response.status_code == 303
    assert "No bots yet." in await text(await client.get(f"/rooms/{code}/bots"))
