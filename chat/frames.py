"""WebSocket frames by hand (RFC 6455, section 5.2), for the common case only: text
frames out, framed once per event, and whole text frames in, read in one pass.

A frame from the server is not masked and, with compression declined, holds nothing
particular to its socket: an event is framed once and the same bytes go to every socket
of the room. Frames from browsers are masked; `read_text_frames` reads the complete,
final, uncompressed text frames at the start of what arrived and stops at anything
else (a control frame, a fragment, an extension bit, a length spelt longer than needed,
bad UTF-8, a frame cut short), which the caller leaves to wsproto, byte for byte. See
`chat.direct_socket` for where both are used.
"""

from __future__ import annotations

import struct

FIN_TEXT = 0x81  # the final (and only) fragment of a text message, no extension bits
MASKED = 0x80
SHORT_MAX = 125  # payload lengths up to this fit in the second byte
TWO_BYTE_LENGTH = 126
EIGHT_BYTE_LENGTH = 127


def text_frame(text: str) -> bytes:
    payload = text.encode()
    size = len(payload)
    if size <= SHORT_MAX:
        header = bytes((FIN_TEXT, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", FIN_TEXT, TWO_BYTE_LENGTH, size)
    else:
        header = struct.pack("!BBQ", FIN_TEXT, EIGHT_BYTE_LENGTH, size)
    return header + payload


def read_text_frames(data: bytes, size_max: int) -> tuple[list[str], int]:
    """The texts of the whole, final, masked text frames at the start of `data` (each
    at most `size_max` bytes), and how many bytes of `data` they took."""
    texts: list[str] = []
    used, end = 0, len(data)
    while end - used >= 6 and data[used] == FIN_TEXT and data[used + 1] & MASKED:
        size, mask_at = _payload_size(data, used)
        start = mask_at + 4
        stop = start + size
        if size < 0 or size > size_max or stop > end:
            break
        try:
            texts.append(_unmask(data[mask_at:start], data[start:stop]).decode())
        except UnicodeDecodeError:
            break
        used = stop
    return texts, used


def _payload_size(data: bytes, at: int) -> tuple[int, int]:
    """The payload length of the frame at `at` and where its mask starts; -1 when the
    length is cut short or spelt longer than it needs (wsproto refuses that)."""
    size = data[at + 1] & 0x7F
    if size <= SHORT_MAX:
        return size, at + 2
    width = 2 if size == TWO_BYTE_LENGTH else 8
    if len(data) < at + 2 + width:
        return -1, at
    size = int.from_bytes(data[at + 2:at + 2 + width], "big")
    shortest = SHORT_MAX if width == 2 else 0xFFFF
    return (size if shortest < size < 1 << 63 else -1), at + 2 + width


def _unmask(mask: bytes, payload: bytes) -> bytes:
    size = len(payload)
    if not size:
        return b""
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "little")
    return (int.from_bytes(payload, "little") ^ key).to_bytes(size, "little")
