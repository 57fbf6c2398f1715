"""Frames built and read by hand (chat.frames) are byte for byte what wsproto builds and
reads: the server's text frames for every size class, and from a browser's bytes exactly
the leading whole text frames, leaving everything else to wsproto from its first byte;
and a raw socket reads only while wsproto holds no part of a frame or message."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypercorn.events import RawData
from hypercorn.protocol.ws_stream import ASGIWebsocketState, WebsocketBuffer
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import Message, Ping, TextMessage
from wsproto.frame_protocol import FrameProtocol

from chat.frames import read_text_frames, text_frame
from chat.raw_socket import RawSocket
from tests.kit.wire import ws_frame

SIZE_MAX = 1 << 20


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 200_001])
def test_a_text_frame_is_what_wsproto_sends(size: int) -> None:
    text = "é" * (size // 2) + "a" * (size % 2)  # two bytes a letter: sizes in bytes
    assert text_frame(text) == FrameProtocol(client=False, extensions=[]).send_data(text, True)


def _client_frame(text: str) -> bytes:
    return bytes(FrameProtocol(client=True, extensions=[]).send_data(text, True))


texts = st.text(max_size=300)
# What else a browser's bytes may hold after some text frames: (bytes, what it is).
others = st.one_of(
    st.binary(max_size=10).map(lambda payload: ws_frame(0x9, payload)),  # a ping
    texts.map(lambda text: ws_frame(0x1, text.encode(), fin=False)),  # a first fragment
    st.binary(max_size=40).map(lambda payload: ws_frame(0x2, payload)),  # binary
    st.binary(min_size=1, max_size=40).map(lambda junk: b"\x81" + junk),  # maybe malformed
    st.just(ws_frame(0x1, b"\xff\xfe")),  # text that is not UTF-8
    st.just(ws_frame(0x1, b"unmasked", mask=False)),
    st.just(b"\x81\xfe\x00\x05" + bytes(9)),  # a length spelt in two bytes, under 126
)


@settings(max_examples=300, deadline=None)
@given(leading=st.lists(texts, max_size=5), rest=st.lists(others, max_size=3),
       cut=st.integers(min_value=0, max_value=12))
def test_leading_text_frames_are_read_and_the_rest_left_whole(
    leading: list[str], rest: list[bytes], cut: int
) -> None:
    whole = b"".join(_client_frame(text) for text in leading)
    tail = b"".join(rest)
    data = whole + tail
    if not rest and leading:  # a last frame cut short stays unread
        data = data[:max(len(whole) - cut, 0)]

    read, used = read_text_frames(data, SIZE_MAX)

    complete = [text for at, text in enumerate(leading)
                if len(b"".join(_client_frame(t) for t in leading[:at + 1])) <= len(data)]
    assert read == complete
    assert used == len(b"".join(_client_frame(text) for text in complete))
    # wsproto, reading the same bytes from the start, finds the same leading messages.
    server = Connection(ConnectionType.SERVER)
    server.receive_data(data)
    messages = []
    for event in server.events():
        if not isinstance(event, TextMessage) or not event.message_finished:
            break
        messages.append(event.data)
    assert messages[:len(read)] == read


def test_frames_over_the_bound_are_left_to_wsproto() -> None:
    frame = _client_frame("x" * 200)
    assert read_text_frames(frame, 199) == ([], 0)
    assert read_text_frames(frame, 200) == (["x" * 200], len(frame))


def test_what_is_left_reads_on_in_wsproto_as_if_nothing_was_taken() -> None:
    data = _client_frame("one") + ws_frame(0x9, b"hi") + _client_frame("two")
    read, used = read_text_frames(data, SIZE_MAX)
    assert (read, used) == (["one"], len(_client_frame("one")))
    server = Connection(ConnectionType.SERVER)
    server.receive_data(data[used:])
    events = list(server.events())
    assert isinstance(events[0], Ping) and events[0].payload == b"hi"
    assert isinstance(events[1], Message) and events[1].data == "two"


class _Transport:
    def get_write_buffer_limits(self) -> tuple[int, int]:
        return 16_384, 65_536


async def _reading_after(received: bytes) -> tuple[list[str], bool]:
    """What a raw socket does with a whole text frame once wsproto has `received` these
    bytes of the same connection: (texts it read itself, whether it left the frame to
    hypercorn as it came)."""
    connection = Connection(ConnectionType.SERVER)
    connection.receive_data(received)
    list(connection.events())
    texts: list[str] = []
    left: list[bytes] = []

    async def app_put(event: dict) -> None:
        texts.append(event["text"])

    async def hypercorn_reads(event: RawData) -> None:
        left.append(event.data)

    stream = SimpleNamespace(
        closed=False, state=ASGIWebsocketState.CONNECTED, connection=connection,
        buffer=WebsocketBuffer(SIZE_MAX), app_put=app_put,
        config=SimpleNamespace(websocket_max_message_size=SIZE_MAX))
    server = SimpleNamespace(writer=SimpleNamespace(transport=_Transport()),
                             protocol=SimpleNamespace(handle=hypercorn_reads))
    h11 = SimpleNamespace(connection=SimpleNamespace(buffer=bytearray()))
    RawSocket(stream, server, h11)  # type: ignore[arg-type]
    frame = _client_frame("next")
    await server.protocol.handle(RawData(data=frame))
    return texts, left == [frame]


async def test_a_raw_socket_reads_only_between_frames() -> None:
    assert await _reading_after(_client_frame("whole")) == (["next"], False)
    half = _client_frame("x" * 40)[:20]  # wsproto holds half a frame
    assert await _reading_after(half) == ([], True)
    first_fragment = ws_frame(0x1, b"part", fin=False)  # and here half a message
    assert await _reading_after(first_fragment) == ([], True)
