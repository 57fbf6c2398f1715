"""Search pages: `GET /rooms/<CODE>/search?q=` for members, as a whole page without
JavaScript and as the results fragment alone for htmx (search as you type)."""

from __future__ import annotations

import unicodedata

from quart import Blueprint, render_template, request, url_for

from chat import current, search, web

blueprint = Blueprint("search", __name__)


def _query() -> str:
    """The typed query, cut to length, without control characters (which nothing in a
    message can contain, and which some databases refuse)."""
    raw = request.args.get("q", "")[: search.QUERY_MAX]
    return "".join(
        char if unicodedata.category(char) not in {"Cc", "Cs"} else " " for char in raw
    ).strip()


@blueprint.get("/rooms/<code>/search")
async def search_room(code: str):
    code, refusal = await web.admit_to_room(code)
    if refusal:
        return refusal
    hub = current.hub()
    query = _query()
    words = search.query_words(query)
    before_id = web._before_id()
    found = await hub.search(code, words, before_id)
    more_url = url_for("search.search_room", code=code, q=query, before=found.last_id)
    context = {
        "code": code, "query": query, "found": found, "mark": search.marker(words),
        "more_url": more_url,
    }
    headers = {"Vary": "HX-Request"}
    if request.headers.get("HX-Request") != "true":
        return await render_template("search.html", **context), 200, headers
    if not query:  # the box was emptied: nothing stands in for the live room
        return "", 200, headers
    template = "search_hits" if before_id is not None else "search_results"
    return await render_template(f"fragments/{template}.html", **context), 200, headers
