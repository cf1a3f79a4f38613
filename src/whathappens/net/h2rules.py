"""The rules a server's HTTP/2 frames must keep (RFC 9113), checked before h2 sees them.

h2 enforces most of these too, but says so in its own terms ("Frame data missing or invalid",
"Invalid input StreamInputs.RECV_CONTINUATION in state 5", a bare stream number). A reader
needs to know which frame broke which rule, so each frame is checked here first, from its
9-byte header and payload (RFC 9113 §4.1), and a broken rule comes back as a sentence that
names the frame, the stream and the section. No I/O and no h2: ``FrameRules`` only sees bytes.

What is checked: the server's preface is a SETTINGS frame (§3.4); a header block is HEADERS
then CONTINUATION frames of the same stream and nothing else in between (§6.10); frames that
belong to a stream are not on stream 0 and frames of the connection only on stream 0 (§6.x);
fixed lengths (§6.3–§6.9); a WINDOW_UPDATE of 0 (§6.9); SETTINGS values a server may send
(§6.5.2); frames on streams we never opened: an idle stream, or an even one the server could
only open with a push we disabled (§5.1, §5.1.1, §8.4). PRIORITY may name any stream (§6.3)
and unknown frame types are ignored (§4.1, §5.5).
"""

from __future__ import annotations

NAMES = {0x0: "DATA", 0x1: "HEADERS", 0x2: "PRIORITY", 0x3: "RST_STREAM", 0x4: "SETTINGS",
         0x5: "PUSH_PROMISE", 0x6: "PING", 0x7: "GOAWAY", 0x8: "WINDOW_UPDATE",
         0x9: "CONTINUATION"}
_STREAM_FRAMES = {0x0: "§6.1", 0x1: "§6.2", 0x2: "§6.3", 0x3: "§6.4", 0x5: "§6.6",
                  0x9: "§6.10"}
_CONNECTION_FRAMES = {0x4: "§6.5", 0x6: "§6.7", 0x7: "§6.8"}
# Exact payload lengths (section, length).
_LENGTHS = {0x2: ("§6.3", 5), 0x3: ("§6.4", 4), 0x6: ("§6.7", 8), 0x8: ("§6.9", 4)}
_END_HEADERS = 0x4
_ACK = 0x1
# SETTINGS a server may send, with their bounds (RFC 9113 §6.5.2).
_ENABLE_PUSH, _INITIAL_WINDOW_SIZE, _MAX_FRAME_SIZE = 0x2, 0x4, 0x5
_MAX_WINDOW = 2**31 - 1


def frame_name(type_: int) -> str:
    return NAMES.get(type_, f"unknown-type (0x{type_:02x})")


class FrameRules:
    """Checks each frame the server sends, in order; ``check`` returns the broken rule."""

    def __init__(self) -> None:
        self.saw_preface = False
        self.highest_opened = 0          # our streams are odd and rise (RFC 9113 §5.1.1)
        self.in_header_block: int | None = None  # the stream whose CONTINUATION must follow

    def opened(self, stream_id: int) -> None:
        self.highest_opened = max(self.highest_opened, stream_id)

    def check(self, frame: bytes) -> str | None:
        """``frame`` is a whole frame, header included; None when it keeps the rules."""
        length = len(frame) - 9
        type_, flags = frame[3], frame[4]
        stream_id = int.from_bytes(frame[5:9], "big") & 0x7FFFFFFF
        payload = frame[9:]
        name = frame_name(type_)
        if not self.saw_preface:
            self.saw_preface = True
            if type_ != 0x4 or flags & _ACK:
                what = "a SETTINGS acknowledgement" if type_ == 0x4 else f"a {name} frame"
                return (f"{what} as its first frame, where its connection preface must be a "
                        "SETTINGS frame (RFC 9113 §3.4)")
        if self.in_header_block is not None:
            if type_ != 0x9 or stream_id != self.in_header_block:
                return (f"a {name} frame on stream {stream_id} in the middle of the header "
                        f"block of stream {self.in_header_block}, where only its CONTINUATION "
                        "frames may come (RFC 9113 §6.10)")
        elif type_ == 0x9:
            return (f"a CONTINUATION frame on stream {stream_id} that continues no HEADERS "
                    "(RFC 9113 §6.10)")
        if type_ not in NAMES:
            return None  # RFC 9113 §5.5: unknown types are ignored (and counted)
        if type_ in _STREAM_FRAMES and stream_id == 0:
            return (f"a {name} frame on stream 0, where only frames of the connection go; "
                    f"{name} belongs to a stream (RFC 9113 {_STREAM_FRAMES[type_]})")
        if type_ in _CONNECTION_FRAMES and stream_id != 0:
            return (f"a {name} frame on stream {stream_id}; {name} belongs to the connection, "
                    f"stream 0 (RFC 9113 {_CONNECTION_FRAMES[type_]})")
        problem = self._length(type_, flags, length, name)
        if problem is not None:
            return problem
        if type_ == 0x8 and int.from_bytes(payload[:4], "big") & 0x7FFFFFFF == 0:
            where = "the connection" if stream_id == 0 else f"stream {stream_id}"
            return (f"a WINDOW_UPDATE of 0 bytes for {where}, which RFC 9113 §6.9 forbids")
        if type_ == 0x4 and not flags & _ACK:
            problem = _settings_values(payload)
            if problem is not None:
                return problem
        if stream_id and type_ != 0x2:  # PRIORITY may name any stream (RFC 9113 §6.3)
            if stream_id % 2 == 0:
                return (f"a {name} frame on stream {stream_id}, an even number: only the "
                        "server's pushed streams are even, and we disabled push "
                        "(RFC 9113 §5.1.1, §8.4)")
            if stream_id > self.highest_opened:
                return (f"a {name} frame on stream {stream_id}, which we never opened (an "
                        "idle stream, RFC 9113 §5.1)")
        if type_ in (0x1, 0x9):
            self.in_header_block = None if flags & _END_HEADERS else stream_id
        return None

    @staticmethod
    def _length(type_: int, flags: int, length: int, name: str) -> str | None:
        if type_ in _LENGTHS:
            section, wanted = _LENGTHS[type_]
            if length != wanted:
                return (f"a {name} frame of {length} bytes, where it is always {wanted} "
                        f"(RFC 9113 {section})")
        if type_ == 0x4:
            if flags & _ACK and length:
                return (f"a SETTINGS acknowledgement carrying {length} bytes, where it must be "
                        "empty (RFC 9113 §6.5)")
            if length % 6:
                return (f"a SETTINGS frame of {length} bytes, not a whole number of 6-byte "
                        "settings (RFC 9113 §6.5)")
        if type_ == 0x7 and length < 8:
            return f"a GOAWAY frame of {length} bytes, shorter than its 8 (RFC 9113 §6.8)"
        return None


def _settings_values(payload: bytes) -> str | None:
    for i in range(0, len(payload) - 5, 6):
        ident = int.from_bytes(payload[i:i + 2], "big")
        value = int.from_bytes(payload[i + 2:i + 6], "big")
        if ident == _ENABLE_PUSH and value != 0:
            return (f"the enable-push setting (SETTINGS_ENABLE_PUSH) set to {value}, where a "
                    "server may only send 0 (RFC 9113 §6.5.2)")
        if ident == _INITIAL_WINDOW_SIZE and value > _MAX_WINDOW:
            return (f"an initial window size (SETTINGS_INITIAL_WINDOW_SIZE) of {value:,}, "
                    f"over the largest window, {_MAX_WINDOW:,} (RFC 9113 §6.5.2)")
        if ident == _MAX_FRAME_SIZE and not 16_384 <= value <= 16_777_215:
            return (f"a max frame size (SETTINGS_MAX_FRAME_SIZE) of {value:,}, outside 16,384 "
                    "to 16,777,215 (RFC 9113 §6.5.2)")
    return None
