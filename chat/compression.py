"""permessage-deflate on live sockets: what the server answers when a browser offers it.

Every browser offers permessage-deflate, and hypercorn 0.18 always accepts it at wsproto's
defaults (a window of 2**15 and zlib memLevel 8: about 300 KiB of zlib state per socket,
and one zlib call per socket for every frame); it has no setting to refuse (hypercorn
issue #307). At each handshake hypercorn builds the extension from the name
`PerMessageDeflate` in `hypercorn.protocol.ws_stream`, so `install(mode)` replaces that
name with a class of ours, for the whole process:

- `off` (the default): decline; frames go uncompressed.
- `small`: accept with a window of 2**10 both ways (the client is told with
  `client_max_window_bits` when it offered that parameter) and memLevel 4.
- `default`: hypercorn's own behaviour (wsproto's defaults).

`install` first checks that hypercorn still works that way (the handshake refers to the
name as a module global, and wsproto's extension keeps its compressor where we set it) and
raises `CompressionHookError` otherwise, so an upgrade that changes them stops the server
at start instead of silently compressing again.
"""

from __future__ import annotations

import zlib

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import FrameDecoder, FrameProtocol, Opcode, RsvBits

MODES = ("off", "small", "default")
SMALL_WINDOW_BITS = 10  # 1 KiB of history: a chat message or two
SMALL_MEM_LEVEL = 4  # zlib's hash and buffer sizes (8 is zlib's default)
HOOKED_NAME = "PerMessageDeflate"


class CompressionHookError(RuntimeError):
    """hypercorn's or wsproto's internals are not what the hook replaces."""


class DeclinedDeflate(PerMessageDeflate):
    """Answers an offer by leaving the extension out of the handshake."""

    def accept(self, offer: str) -> None:
        return None


class SmallDeflate(PerMessageDeflate):
    """Accepts with a small window and memLevel, whatever the client allows more."""

    def accept(self, offer: str) -> str:
        params = _offer_params(offer)
        server_bits = min(SMALL_WINDOW_BITS, _bits(params.get("server_max_window_bits")))
        self.server_max_window_bits = server_bits
        # RFC 7692 lets the server name its own window even when the offer did not.
        answer = [f"server_max_window_bits={server_bits}"]
        if "client_max_window_bits" in params:  # the client lets us bound its window too
            client_bits = min(SMALL_WINDOW_BITS, _bits(params["client_max_window_bits"]))
            self.client_max_window_bits = client_bits
            answer.append(f"client_max_window_bits={client_bits}")
        for flag in ("server_no_context_takeover", "client_no_context_takeover"):
            if flag in params:
                setattr(self, flag, True)
                answer.append(flag)
        self._enabled = True
        return "; ".join(answer)

    def frame_outbound(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        data: bytes,
        fin: bool,
    ) -> tuple[RsvBits, bytes]:
        # wsproto creates its compressor with zlib's default memLevel; create ours first.
        if self._compressor is None and opcode in (Opcode.TEXT, Opcode.BINARY):
            self._compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self.server_max_window_bits,
                SMALL_MEM_LEVEL,
            )
        return super().frame_outbound(proto, opcode, rsv, data, fin)


def _offer_params(offer: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for part in offer.split(";")[1:]:
        name, _, value = part.partition("=")
        params[name.strip()] = value.strip().strip('"') or None
    return params


def _bits(value: str | None) -> int:
    """An offered window size; no value (or a bad one) leaves ours as the bound."""
    if value is not None and value.isdecimal() and 8 <= int(value) <= 15:
        return max(9, int(value))  # zlib has no raw window of 2**8
    return SMALL_WINDOW_BITS


CLASSES: dict[str, type[PerMessageDeflate]] = {
    "off": DeclinedDeflate,
    "small": SmallDeflate,
    "default": PerMessageDeflate,
}


def check_hypercorn(module: object) -> None:
    """Raise `CompressionHookError` unless `module` is hypercorn's ws_stream as the hook
    knows it: the handshake looks `PerMessageDeflate` up as a global, and that name holds
    wsproto's extension (or one of ours)."""
    where = getattr(module, "__name__", repr(module))
    current = getattr(module, HOOKED_NAME, None)
    if not (isinstance(current, type) and issubclass(current, PerMessageDeflate)):
        raise CompressionHookError(
            f"{where} has no {HOOKED_NAME} from wsproto: hypercorn changed, so "
            "CHAT_WS_COMPRESSION cannot be applied (check chat/compression.py)"
        )
    handshake = getattr(module, "Handshake", None)
    accept = getattr(handshake, "accept", None)
    if HOOKED_NAME not in getattr(getattr(accept, "__code__", None), "co_names", ()):
        raise CompressionHookError(
            f"{where}.Handshake.accept no longer builds {HOOKED_NAME}: hypercorn changed, "
            "so CHAT_WS_COMPRESSION cannot be applied (check chat/compression.py)"
        )
    probe = PerMessageDeflate()
    if not hasattr(probe, "_compressor") or not hasattr(probe, "_enabled"):
        raise CompressionHookError(
            "wsproto's PerMessageDeflate changed (no _compressor/_enabled): "
            "CHAT_WS_COMPRESSION cannot be applied (check chat/compression.py)"
        )


def install(mode: str, module: object | None = None) -> None:
    """Make hypercorn answer permessage-deflate offers as `mode` says (process-wide)."""
    if mode not in CLASSES:
        raise ValueError(f"compression mode must be one of {', '.join(MODES)}, got {mode!r}")
    if module is None:
        from hypercorn.protocol import ws_stream as module
    check_hypercorn(module)
    setattr(module, HOOKED_NAME, CLASSES[mode])
