"""Below the WebSocket library: a handshake done by hand on a plain socket (to misbehave:
never read, send after close, send junk), frames built and parsed byte by byte, and the
check that what a member receives is only our own markup."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import struct
from html.parser import HTMLParser

from tests.kit.server import LiveServer

# Markup check: what another member receives must be only our own markup ---------------

OUR_TAGS = frozenset({"div", "article", "header", "span", "time", "p", "form", "input",
                      "label", "button", "h2", "ul", "li", "a", "details", "summary",
                      "textarea"})


class _TagAudit(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in OUR_TAGS:
            self.problems.append(f"unexpected tag <{tag}>")
        for name, _ in attrs:
            if name.startswith("on") or name in {"src", "srcdoc", "style"}:
                self.problems.append(f"unexpected attribute {name} on <{tag}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)


def markup_problems(frame: str) -> list[str]:
    """Raw attacker markup in a pushed frame: tags or attributes our templates never emit."""
    audit = _TagAudit()
    audit.feed(frame)
    audit.close()
    lowered = frame.lower()
    raw = [needle for needle in ("<script", "<img", "<svg", "<iframe") if needle in lowered]
    return audit.problems + [f"raw {needle}" for needle in raw]


# Raw WebSocket: the handshake by hand ---------------------------------------------------


def ws_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    """One client frame (RFC 6455 §5.2), masked as clients must."""
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([bit | length])
    elif length < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def parse_server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Unmasked server frames from a byte stream: (opcode, payload); a cut-off tail is dropped."""
    frames, at = [], 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            if at + 2 > len(data):
                break
            (length,) = struct.unpack("!H", data[at:at + 2])
            at += 2
        elif length == 127:
            if at + 8 > len(data):
                break
            (length,) = struct.unpack("!Q", data[at:at + 8])
            at += 8
        if at + length > len(data):
            break
        frames.append((opcode, data[at:at + length]))
        at += length
    return frames


def close_code_of(frames: list[tuple[int, bytes]]) -> int | None:
    for opcode, payload in frames:
        if opcode == 0x8:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    return None


class RawWebSocket:
    """A blocking socket that does the WebSocket handshake itself, then whatever the test
    wants: never read (a stuck client), send after close, send malformed frames."""

    def __init__(self, server: LiveServer, path: str, *, cookie: str = "",
                 origin: str | None = "default", rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect((server.host, server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {server.host}:{server.port}",
                 "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        if origin is not None:
            lines.append(f"Origin: {server.url if origin == 'default' else origin}")
        if cookie:
            lines.append(f"Cookie: {cookie}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            response += chunk
        head, _, self.buffered = response.partition(b"\r\n\r\n")
        self.status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        assert " 101 " in self.status_line, self.status_line

    def send(self, opcode: int, payload: bytes, **options) -> bool:
        """Send one frame; False when the server has already gone."""
        try:
            self.sock.sendall(ws_frame(opcode, payload, **options))
            return True
        except OSError:
            return False

    def send_text(self, text: str) -> bool:
        return self.send(0x1, text.encode("utf-8", "surrogatepass"))

    def drain(self, timeout: float = 10.0) -> tuple[bytes, bool]:
        """Read everything until EOF (True) or `timeout` of silence (False)."""
        self.sock.settimeout(timeout)
        data = self.buffered
        self.buffered = b""
        try:
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    return data, True
                data += chunk
        except TimeoutError:
            return data, False
        except OSError:  # reset by the server: gone as well
            return data, True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
