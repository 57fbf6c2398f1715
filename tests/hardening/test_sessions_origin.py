"""Sessions and origins: a forged or tampered session cookie is no session; a WebSocket
from a foreign origin or without a session never joins the room.

"Never joins" is observed from inside the room: a member already there sees no
"has entered the room" notice and no change to the member list.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

import pytest
from itsdangerous import URLSafeTimedSerializer
from quart.sessions import session_json_serializer

from tests.kit import (
    LiveClient,
    LiveServer,
    LogWatch,
    Member,
    RawWebSocket,
    close_code_of,
    parse_server_frames,
    wait_until,
)

pytestmark = pytest.mark.e2e

POLICY_VIOLATION = 1008


def _sign(data: dict, key: str) -> str:
    """A session cookie exactly as Quart makes one, with `key` (not the server's)."""
    return URLSafeTimedSerializer(
        key, salt="cookie-session", serializer=session_json_serializer,
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
    ).dumps(data)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_cookies(real: str) -> dict[str, str]:
    """Ways to fake a session from a real cookie `payload.timestamp.signature`."""
    payload, stamp, signature = real.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    admin = {**decoded, "name": "Admin", "user_id": "someone-else"}
    return {
        "payload edited, signature kept": f"{_b64(json.dumps(admin).encode())}.{stamp}.{signature}",
        # (the first character: the last one partly holds base64 padding bits)
        "signature changed":
            f"{payload}.{stamp}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}",
        "signature removed": f"{payload}.{stamp}",
        "timestamp changed": f"{payload}.{_b64(b'AAAAAA')}.{signature}",
        "signed with another key": _sign(admin, "not-the-servers-key"),
        "signed with an empty key": _sign(admin, ""),
        "unsigned JSON": _b64(json.dumps(admin).encode()),
        "garbage": "x" * 300,
    }


async def test_tampered_session_cookie_is_no_session(module_server: LiveServer) -> None:
    server = module_server
    watch = LogWatch(server)
    async with Member(server, "Ann") as ann:
        code = await ann.create_room()
        observer = await ann.client(code).open()
        try:
            await wait_until(lambda: observer.members == ["Ann"]
                             and "Ann has entered the room" in observer.notices, 5, "Ann alone")
            notices_before = list(observer.notices)
            for label, cookie in forged_cookies(ann.session_cookie()).items():
                async with Member(server, "Forger") as forger:
                    # The room page treats the visitor as unknown: back to the join form.
                    reply = await forger.get(f"/rooms/{code}",
                                             headers={"Cookie": f"session={cookie}"})
                    assert reply.status == 303, (label, reply.status)
                    assert reply.location.endswith(f"/?code={code}"), (label, reply.location)
                    # Posting with it is refused too (no session: no token can match).
                    reply = await forger.post(f"/rooms/{code}/messages",
                                              {"message": "forged", "csrf_token": "x"},
                                              headers={"Cookie": f"session={cookie}"})
                    assert 300 <= reply.status < 500, (label, reply.status)

                ws = LiveClient(server, code, f"session={cookie}", name=label, reconnect=False)
                await asyncio.wait_for(ws.start().finished.wait(), 5)
                assert ws.close_codes == [POLICY_VIOLATION], (label, ws.close_codes)
                assert ws.arrivals == [] and ws.members is None, label
            await asyncio.sleep(0.3)
            assert observer.notices == notices_before
            assert observer.members == ["Ann"]
            assert await ann.history(code) == []
        finally:
            await observer.stop()
    watch.assert_clean()


async def test_socket_from_foreign_origin_or_without_session_never_joins(
    module_server: LiveServer,
) -> None:
    server = module_server
    watch = LogWatch(server)
    async with Member(server, "Ann") as ann, Member(server, "Eve") as eve, \
            Member(server, "Nobody") as nobody:
        code = await ann.create_room()
        await eve.join_room(code)  # a real session, so only the origin is wrong
        await nobody.csrf_token()  # a session with a token but no name
        observer = await ann.client(code).open()
        try:
            await wait_until(lambda: observer.members == ["Ann"]
                             and "Ann has entered the room" in observer.notices, 5, "Ann alone")
            notices_before = list(observer.notices)
            attempts = [
                ("foreign origin", eve.cookie_header(), "http://evil.example"),
                ("no Origin header", eve.cookie_header(), None),
                ("Origin null", eve.cookie_header(), "null"),
                ("other port", eve.cookie_header(), f"http://{server.host}:{server.port + 1}"),
                ("look-alike", eve.cookie_header(), f"http://{server.host}:{server.port}.evil.example"),
                ("no cookie", "", server.url),
                ("session without a name", nobody.cookie_header(), server.url),
            ]
            for label, cookie, origin in attempts:
                ws = LiveClient(server, code, cookie, origin=origin, name=label, reconnect=False)
                await asyncio.wait_for(ws.start().finished.wait(), 5)
                assert ws.close_codes == [POLICY_VIOLATION], (label, ws.close_codes)
                assert ws.members is None and ws.arrivals == [], label

                # Sending right after the handshake, before the refusal lands, posts nothing.
                raw = RawWebSocket(server, f"/rooms/{code}/ws", cookie=cookie, origin=origin)
                raw.send_text(json.dumps({"message": f"sneaky ({label})"}))
                data, _ = raw.drain(5)
                raw.close()
                assert close_code_of(parse_server_frames(data)) == POLICY_VIOLATION, label

            await asyncio.sleep(0.3)  # anything broadcast would have arrived by now
            assert observer.notices == notices_before, observer.notices
            assert observer.members == ["Ann"]
            assert await ann.history(code) == []

            # Control: the same session from our own origin does join.
            ws = await eve.client(code, reconnect=False).open()
            await wait_until(lambda: "Eve has entered the room" in observer.notices, 5,
                             "enter notice")
            assert observer.members == ["Ann", "Eve"]
            await ws.stop()
        finally:
            await observer.stop()
    watch.assert_clean()


async def test_socket_to_unknown_room_is_refused(module_server: LiveServer) -> None:
    server = module_server
    async with Member(server, "Ann") as ann:
        await ann.create_room()
        for code in ("ZZZZ", "zzzz", "A", "../..", "%00"):
            ws = LiveClient(server, code, ann.cookie_header(), reconnect=False)
            await asyncio.wait_for(ws.start().finished.wait(), 5)
            assert ws.close_codes in ([POLICY_VIOLATION], [1006]), (code, ws.close_codes)
