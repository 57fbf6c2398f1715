"""CSRF on every state-changing form, and the security headers on every response.

Attacks the real server (`python -m chat` under hypercorn on 127.0.0.1): a forged
cross-site POST — foreign Origin or Referer, no token, a wrong token, another session's
token, no session at all — gets a 4xx and changes nothing in the database. A browser then
chats under the Content-Security-Policy and must report no violation.
"""

from __future__ import annotations

import re

import pytest

from tests.kit import (
    LiveServer,
    LogWatch,
    Member,
    count_messages,
    count_rooms,
)

pytestmark = pytest.mark.e2e

EVIL = "http://evil.example"


# CSRF: the home form (creates rooms, starts sessions) -----------------------------------


def _forgeries(server: LiveServer) -> list[tuple[str, dict[str, str] | None, str | None]]:
    """(label, headers, origin) for requests a cross-site page could make."""
    return [
        ("foreign Origin", None, EVIL),
        ("Origin null (sandboxed frame)", None, "null"),
        ("same host, other port", None, f"http://{server.host}:{server.port + 1}"),
        ("look-alike host", None, f"http://{server.host}:{server.port}.evil.example"),
        ("foreign Referer, no Origin", {"Referer": f"{EVIL}/page"}, None),
    ]


async def test_home_form_refuses_cross_site_posts(module_server: LiveServer) -> None:
    server = module_server
    watch = LogWatch(server)
    async with Member(server, "Mallory") as victim:
        token = await victim.csrf_token()
        rooms_before = count_rooms(server)
        for label, headers, origin in _forgeries(server):
            for form in ({"name": "Victim", "create": "1"},
                         {"name": "Victim", "code": "ABCD", "join": "1"}):
                reply = await victim.post("/", {**form, "csrf_token": token},
                                          headers=headers, origin=origin)
                assert reply.status == 403, (label, form, reply.status)
                assert "This form has expired" in reply.text, label
                cookie = reply.headers.get("Set-Cookie", "")
                assert "name" not in cookie, label
        assert count_rooms(server) == rooms_before
        # The session never got a name: the room page still sends the visitor home.
        assert (await victim.get("/rooms/ABCD")).status == 303
    watch.assert_clean()


async def test_home_form_refuses_missing_wrong_or_foreign_tokens(module_server: LiveServer) -> None:
    server = module_server
    async with Member(server, "Ann") as ann, Member(server, "Bob") as bob:
        ann_token = await ann.csrf_token()
        bob_token = await bob.csrf_token()
        assert ann_token != bob_token
        rooms_before = count_rooms(server)
        create = {"name": "Ann", "create": "1"}
        for label, extra in [
            ("no token", {}),
            ("empty token", {"csrf_token": ""}),
            ("wrong token", {"csrf_token": ann_token[:-2] + "xx"}),
            ("another session's token", {"csrf_token": bob_token}),
            ("token twice, wrong first", {"csrf_token": ["wrong", ann_token]}),
        ]:
            data = [(k, v) for k, vs in {**create, **extra}.items()
                    for v in (vs if isinstance(vs, list) else [vs])]
            reply = await ann.post("/", data)
            assert reply.status == 403, (label, reply.status)
        assert count_rooms(server) == rooms_before

    # No session at all (never loaded the form): no token can match.
    async with Member(server, "Eve") as eve:
        reply = await eve.post("/", {**create, "csrf_token": "anything"})
        assert reply.status == 403
        assert count_rooms(server) == rooms_before


async def test_home_form_accepts_the_real_thing(module_server: LiveServer) -> None:
    """The control: our own page's token and Origin (or no Origin: not a browser) works."""
    server = module_server
    async with Member(server, "Ann") as ann:
        rooms_before = count_rooms(server)
        token = await ann.csrf_token()
        reply = await ann.post("/", {"name": "Ann", "create": "1", "csrf_token": token})
        assert reply.status == 303 and "/rooms/" in reply.location
        form = {"name": "Ann", "create": "1", "csrf_token": token}
        reply = await ann.post("/", form, origin=None)
        assert reply.status == 303
        assert count_rooms(server) == rooms_before + 2


# CSRF: posting a message without JavaScript ---------------------------------------------


async def test_message_form_refuses_forged_posts(module_server: LiveServer) -> None:
    server = module_server
    watch = LogWatch(server)
    async with Member(server, "Ann") as ann, Member(server, "Bob") as bob:
        code = await ann.create_room()
        await bob.join_room(code)
        ann_token = await ann.csrf_token()
        bob_token = await bob.csrf_token()
        path = f"/rooms/{code}/messages"
        attempts = [
            ("foreign Origin", {"csrf_token": ann_token}, None, EVIL),
            ("Origin null", {"csrf_token": ann_token}, None, "null"),
            ("foreign Referer", {"csrf_token": ann_token}, {"Referer": EVIL + "/x"}, None),
            ("no token", {}, None, "default"),
            ("wrong token", {"csrf_token": "x" * 43}, None, "default"),
            ("Bob's token in Ann's session", {"csrf_token": bob_token}, None, "default"),
        ]
        for label, extra, headers, origin in attempts:
            reply = await ann.post(path, {"message": f"forged: {label}", **extra},
                                   headers=headers, origin=origin)
            assert 400 <= reply.status < 500, (label, reply.status)
        assert count_messages(server, code) == 0
        assert await ann.history(code) == []

        # A session without a name (someone who never joined) cannot post either.
        async with Member(server, "Eve") as eve:
            token = await eve.csrf_token()
            reply = await eve.post(path, {"message": "drive-by", "csrf_token": token})
            assert reply.status == 303 and "/?code=" in reply.location
        assert count_messages(server, code) == 0

        # Control: the real form posts and is redirected back to the room.
        reply = await ann.post(path, {"message": "real one", "csrf_token": ann_token})
        assert reply.status == 303 and reply.location.endswith(f"/rooms/{code}")
        assert [text for _, _, text in await ann.history(code)] == ["real one"]
    watch.assert_clean()


# Security headers on every response ------------------------------------------------------


def _directives(policy: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            parsed.setdefault(words[0].lower(), [w.lower() for w in words[1:]])
    return parsed


def assert_security_headers(headers: dict[str, str], what: str) -> None:
    lowered = {k.lower(): v for k, v in headers.items()}
    policy = lowered.get("content-security-policy")
    assert policy, f"{what}: no Content-Security-Policy"
    directives = _directives(policy)
    scripts = directives.get("script-src", directives.get("default-src"))
    assert scripts is not None, f"{what}: no script-src or default-src"
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, (what, policy)
    assert "*" not in scripts and "data:" not in scripts, (what, policy)
    assert directives.get("frame-ancestors") == ["'none'"], (what, policy)
    assert directives.get("object-src") == ["'none'"], (what, policy)
    assert lowered.get("x-content-type-options", "").lower() == "nosniff", what
    assert lowered.get("referrer-policy", "").lower() in {
        "no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}, what


async def test_every_kind_of_response_has_security_headers(module_server: LiveServer) -> None:
    server = module_server
    async with Member(server, "Ann") as ann, Member(server, "Stranger") as stranger:
        code = await ann.create_room()
        token = await ann.csrf_token()
        page = (await ann.get(f"/rooms/{code}")).text
        assets = re.findall(r'(?:src|href)="(/(?:static|vendor)/[^"]+)"', page)
        assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)

        checks: list[tuple[str, object]] = [
            ("home page", ann.get("/")),
            ("invite link", ann.get("/?code=ABCD")),
            ("room page", ann.get(f"/rooms/{code}")),
            ("earlier messages fragment", ann.get(f"/rooms/{code}/messages?before=1")),
            ("room page redirect (no session)", stranger.get(f"/rooms/{code}")),
            ("lower-case code redirect", ann.get(f"/rooms/{code.lower()}")),
            ("unknown room redirect", ann.get("/rooms/ZZZZZZ")),
            ("health check", ann.get("/healthz")),
            ("not found", ann.get("/no/such/page")),
            ("method not allowed", ann.get("/rooms/ABCD/ws")),
            ("join redirect", ann.post("/", {"name": "Ann", "create": "1", "csrf_token": token})),
            ("form error 400", ann.post("/", {"name": "", "create": "1", "csrf_token": token})),
            ("CSRF refusal 403", ann.post("/", {"name": "Ann", "create": "1"})),
            ("unreadable form", ann.post("/", b"\xff\xfe\x00", headers={
                "Content-Type": "application/x-www-form-urlencoded"})),
            ("message post redirect", ann.post(f"/rooms/{code}/messages",
                                               {"message": "hi", "csrf_token": token})),
            ("message CSRF refusal", ann.post(f"/rooms/{code}/messages", {"message": "hi"})),
        ]
        checks += [(f"asset {a}", ann.get(a)) for a in sorted(set(assets))]
        checks += [("missing static file", ann.get("/static/nope.js"))]
        statuses = set()
        for what, request in checks:
            reply = await request
            statuses.add(reply.status)
            assert reply.status < 500, (what, reply.status)
            assert_security_headers(reply.headers, f"{what} ({reply.status})")
        assert {200, 303, 400, 403, 404} <= statuses, statuses


# The browser runs under the policy without a single violation ---------------------------


@pytest.mark.browser
async def test_browser_chat_reports_no_csp_violation(browser, module_server: LiveServer) -> None:
    from playwright.async_api import expect

    server = module_server
    problems: list[str] = []

    async def open_page(name: str):
        context = await browser.new_context(base_url=server.url)
        context.set_default_timeout(8_000)
        page = await context.new_page()
        page.on("console", lambda m: problems.append(f"{name} console.{m.type}: {m.text}")
                if m.type in {"error", "warning"} or "Content Security Policy" in m.text
                or "Refused to" in m.text else None)
        page.on("pageerror", lambda e: problems.append(f"{name} pageerror: {e}"))
        return context, page

    ann_context, ann = await open_page("Ann")
    bob_context, bob = await open_page("Bob")
    try:
        await ann.goto("/")
        await ann.get_by_label("Name").fill("Ann")
        await ann.get_by_role("button", name="Create a Room").click()
        await expect(ann).to_have_url(re.compile(r"/rooms/[A-Z]{4}$"))
        code = ann.url.rsplit("/", 1)[1]
        await expect(ann.locator(".room")).to_have_attribute("data-connection", "up")

        await bob.goto(f"/?code={code}")
        await bob.get_by_label("Name").fill("Bob")
        await bob.get_by_role("button", name="Join a Room").click()
        await expect(bob.locator(".room")).to_have_attribute("data-connection", "up")

        for page, text in [(ann, "hi Bob <img src=x onerror=alert(1)>"), (bob, "hi Ann"),
                           (ann, "<script>alert(2)</script>")]:
            await page.locator("#message-input").fill(text)
            await page.locator("#message-input").press("Enter")
            for reader in (ann, bob):
                await expect(reader.locator("#messages .message .text").last).to_have_text(text)
            await expect(page.locator("#message-input")).to_have_value("")
        # The times were localized by our script (it ran under the policy).
        await expect(bob.locator("#messages time[data-local]")).to_have_count(3)
        await expect(ann.locator("#presence li")).to_have_count(2)
        await bob.reload()
        await expect(bob.locator("#messages .message")).to_have_count(3)
        await expect(bob.locator(".room")).to_have_attribute("data-connection", "up")
    finally:
        await ann_context.close()
        await bob_context.close()
    csp = [p for p in problems if "Content Security Policy" in p or "Refused to" in p]
    assert not csp, "\n".join(csp)
    assert not problems, "\n".join(problems)
