"""A live socket below hypercorn's ASGI interface: frames written straight onto its
transport, and whole text frames read in one pass.

Through ASGI every delivery costs each socket a wsproto framing, hypercorn's send lock
and an await, and every frame that comes in goes through wsproto's byte-by-byte
generators and a buffer of hypercorn's. A chat room sends each event to every member,
so `RawSocket.write` takes a frame built once for the room by `chat.frames` and
writes it with one call, and `RawSocket` reads the plain text frames browsers send
itself, as hypercorn's server reads them off the socket (before its HTTP/1.1 protocol
and wsproto), handing each text to the app through hypercorn's own queue (whose bound
still holds back a client that sends faster than it is read).

Both happen only where the bytes are exactly what hypercorn and wsproto would make of
them: WebSocket over HTTP/1.1 (hypercorn's `WSStream` under `H11Protocol` under its
asyncio `TCPServer`), no extension negotiated (no compression), and the connection open
both ways. A write also needs the transport's buffer below its high-water mark
(otherwise the caller sends the usual way, which waits for the client); a read needs
wsproto between frames, and whatever is not a whole, final, masked text frame of valid
UTF-8 (pings, closes, fragments, anything malformed) goes to hypercorn as it came, from
that byte on.

`check_hypercorn` checks at start that hypercorn and wsproto are still built this way
and raises `RawSocketError` otherwise.
"""

from __future__ import annotations

from typing import Any

from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.events import Event, RawData
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h11 import H11Protocol, H11WSConnection
from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.frame_protocol import FrameDecoder, MessageDecoder

from chat.frames import read_text_frames


class RawSocketError(RuntimeError):
    """hypercorn or wsproto is no longer built the way `RawSocket` relies on."""


class RawSocket:
    """The transport and frame reading of one accepted hypercorn WebSocket."""

    __slots__ = ("_h11", "_handle", "_high_water", "_size_max", "_stream", "_transport")

    def __init__(self, stream: WSStream, server: TCPServer, h11: H11Protocol) -> None:
        self._stream = stream
        self._h11 = h11
        self._transport = server.writer.transport
        self._high_water = self._transport.get_write_buffer_limits()[1]
        self._size_max = stream.config.websocket_max_message_size
        # What the server hands each chunk it reads; hypercorn's own for all not read here.
        self._handle = server.protocol.handle
        server.protocol.handle = self._read

    def _open(self) -> bool:
        stream = self._stream
        return (not stream.closed and stream.state is ASGIWebsocketState.CONNECTED
                and stream.connection.state is ConnectionState.OPEN)

    def write(self, frame: bytes) -> bool:
        """Write a frame made by `chat.frames` now; False when it must be sent the usual
        way instead (see the module)."""
        stream, transport = self._stream, self._transport  # `_open()`, inlined: per delivery
        if (stream.closed or stream.state is not ASGIWebsocketState.CONNECTED
                or stream.connection.state is not ConnectionState.OPEN
                or transport.is_closing()
                or transport.get_write_buffer_size() >= self._high_water):
            return False
        transport.write(frame)
        return True

    async def _read(self, event: Event) -> None:
        if type(event) is RawData and self._between_frames():
            texts, used = read_text_frames(event.data, self._size_max)
            if used:
                put = self._stream.app_put
                for text in texts:
                    await put({"type": "websocket.receive", "bytes": None, "text": text})
                if used == len(event.data):
                    return
                event = RawData(data=event.data[used:])
        await self._handle(event)  # from the first byte not read here, as it came

    def _between_frames(self) -> bool:
        """Neither hypercorn nor wsproto holds part of a frame or message, so the next
        byte starts a frame."""
        if (not self._open() or self._stream.buffer.value is not None
                or self._h11.connection.buffer):
            return False
        protocol = self._stream.connection._proto
        decoder = protocol._frame_decoder
        return (decoder.header is None and not len(decoder.buffer)
                and protocol._message_decoder.opcode is None)


def raw_socket(send: Any) -> RawSocket | None:
    """The raw socket under an accepted WebSocket's ASGI `send`, where its bytes are
    exactly what hypercorn would make of them (see the module)."""
    stream = getattr(send, "__self__", None)
    if not isinstance(stream, WSStream) or stream.state is not ASGIWebsocketState.CONNECTED:
        return None
    protocol = getattr(stream.send, "__self__", None)
    if not isinstance(protocol, H11Protocol):  # HTTP/2 carries frames in its own frames
        return None
    server = getattr(protocol.send, "__self__", None)
    if not isinstance(server, TCPServer):
        return None
    wrapped = getattr(server.protocol, "protocol", None)  # ProtocolWrapper's HTTP/1.1
    if wrapped is not protocol or not isinstance(protocol.connection, H11WSConnection):
        return None
    if stream.connection._proto.extensions:  # compressed: each socket frames its own
        return None
    return RawSocket(stream, server, protocol)


def _names(function: Any) -> set[str]:
    return set(getattr(getattr(function, "__code__", None), "co_names", ()))


def check_hypercorn() -> None:
    """Check what `RawSocket` relies on: the app's `send` is a `WSStream`'s own method,
    whose `send` is `H11Protocol.stream_send`, which writes through its `send`,
    `TCPServer.protocol_send`, onto the server's `writer`; H11Protocol hands a WebSocket's
    bytes to `WSStream.handle`, which feeds them to wsproto and what it reads to
    `app_put`; wsproto keeps its parsing state where `_between_frames` looks."""
    expected = [
        (WSStream.handle, {"app_send", "receive_data", "_handle_events"},
         "WSStream.handle no longer feeds wsproto or gives the app its app_send"),
        (WSStream._handle_events, {"app_put", "to_message"},
         "WSStream no longer hands the app what it reads through app_put"),
        (WSStream.__init__, {"closed", "state", "buffer"}, "WSStream keeps its state elsewhere"),
        (WSStream._accept, {"connection"}, "WSStream keeps its wsproto connection elsewhere"),
        (H11Protocol._create_stream, {"WSStream", "stream_send"},
         "H11Protocol no longer gives its WSStream stream_send"),
        (TCPServer._read_data, {"protocol", "handle", "RawData"},
         "TCPServer no longer hands what it reads to its protocol's handle"),
        (ProtocolWrapper.handle, {"protocol", "handle"},
         "ProtocolWrapper no longer hands events to its protocol"),
        (H11Protocol.handle, {"receive_data", "_handle_events"},
         "H11Protocol no longer feeds what it reads to its connection"),
        (H11Protocol._handle_events, {"stream", "handle"},
         "H11Protocol no longer hands a WebSocket's bytes to its stream's handle"),
        (H11WSConnection.next_event, {"buffer"},
         "H11WSConnection no longer passes a WebSocket's bytes through its buffer"),
        (H11Protocol.stream_send, {"RawData"}, "H11Protocol.stream_send writes no RawData"),
        (TCPServer.protocol_send, {"writer"}, "TCPServer.protocol_send writes to no writer"),
    ]
    for function, names, problem in expected:
        if not names <= _names(function):
            raise RawSocketError(f"hypercorn changed: {problem} (check chat/raw_socket.py)")
    protocol = getattr(Connection(ConnectionType.SERVER), "_proto", None)
    decoder = getattr(protocol, "_frame_decoder", None)
    if not (isinstance(decoder, FrameDecoder) and decoder.header is None
            and len(decoder.buffer) == 0
            and isinstance(getattr(protocol, "_message_decoder", None), MessageDecoder)
            and protocol._message_decoder.opcode is None):
        raise RawSocketError("wsproto keeps its parsing state elsewhere: "
                             "check chat/raw_socket.py")
