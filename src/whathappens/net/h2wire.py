"""HTTP/2 on the wire: the frames of one exchange, as facts (RFC 9113 §4.1, §6).

Pure bookkeeping, no I/O: ``FrameLog`` is told each frame the connection wrote or read (its
raw bytes and a time on the journey's clock) and keeps what a reader wants to see of it:
type, stream, flags, payload length, and for the frames that carry parameters their values
(SETTINGS, WINDOW_UPDATE's increment, GOAWAY's and RST_STREAM's error codes). The list is
bounded: the first ``cap`` frames are kept, the rest only counted, so a server that sends
thousands of frames costs a counter, not memory.

``header_block`` measures a header block before HPACK (the fields' raw octets, and RFC 9113
§6.5.2's list size, which adds 32 octets per field) and after it (the HEADERS and
CONTINUATION payloads without padding or priority: HPACK's output, RFC 7541).
"""

from __future__ import annotations

from whathappens.contract.facts import H2Wire, HeaderBlock, WireFrame

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 §3.4: not a frame
FRAME_HEADER = 9
CAP = 200  # frames kept per exchange; the rest are counted
SHOWN_SETTINGS = 12  # values of one SETTINGS frame written out; the rest are counted

TYPES = ("DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING",
         "GOAWAY", "WINDOW_UPDATE", "CONTINUATION")
# RFC 9113 §6: which bit means what depends on the frame's type.
_FLAGS: dict[int, tuple[tuple[int, str], ...]] = {
    0x0: ((0x1, "END_STREAM"), (0x8, "PADDED")),
    0x1: ((0x1, "END_STREAM"), (0x4, "END_HEADERS"), (0x8, "PADDED"), (0x20, "PRIORITY")),
    0x4: ((0x1, "ACK"),),
    0x5: ((0x4, "END_HEADERS"), (0x8, "PADDED")),
    0x6: ((0x1, "ACK"),),
    0x9: ((0x4, "END_HEADERS"),),
}
_SAYS = frozenset({0x3, 0x4, 0x7, 0x8})  # RST_STREAM, SETTINGS, GOAWAY, WINDOW_UPDATE
SETTINGS_NAMES = {0x1: "HEADER_TABLE_SIZE", 0x2: "ENABLE_PUSH", 0x3: "MAX_CONCURRENT_STREAMS",
                  0x4: "INITIAL_WINDOW_SIZE", 0x5: "MAX_FRAME_SIZE",
                  0x6: "MAX_HEADER_LIST_SIZE", 0x8: "ENABLE_CONNECT_PROTOCOL",
                  0x9: "NO_RFC7540_PRIORITIES"}
ERROR_NAMES = ("NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
               "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM",
               "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
               "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED")


def type_name(code: int) -> str:
    return TYPES[code] if code < len(TYPES) else f"0x{code:02x}"


def error_name(code: int) -> str:
    return ERROR_NAMES[code] if code < len(ERROR_NAMES) else f"0x{code:x}"


def _setting(code: bytes) -> str:
    number = int.from_bytes(code, "big")
    return SETTINGS_NAMES.get(number, f"0x{number:x}")


def flag_names(type_: int, flags: int) -> list[str]:
    named = _FLAGS.get(type_, ())
    out = [name for bit, name in named if flags & bit]
    rest = flags & ~sum(bit for bit, _ in named)
    if rest:
        out.append(f"0x{rest:02x}")
    return out


def detail(type_: int, flags: int, payload: bytes) -> str | None:
    """The parameters a frame carries, in words; None for frames that carry data."""
    if type_ == 0x4 and not flags & 0x1:
        count = len(payload) // 6
        pairs = [payload[i:i + 6] for i in range(0, min(count, SHOWN_SETTINGS) * 6, 6)]
        said = ", ".join(f"{_setting(p[:2])}={int.from_bytes(p[2:], 'big')}" for p in pairs)
        if count > SHOWN_SETTINGS:  # a frame can hold 2,730 of them: say so, do not list
            said += f", … {count - SHOWN_SETTINGS} more"
        return said or "(no values)"
    if type_ == 0x8 and len(payload) >= 4:
        return f"+{int.from_bytes(payload[:4], 'big') & 0x7FFFFFFF:,}"
    if type_ == 0x3 and len(payload) >= 4:
        return error_name(int.from_bytes(payload[:4], "big"))
    if type_ == 0x7 and len(payload) >= 8:
        last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
        said = f", {len(payload) - 8} octets of debug data" if len(payload) > 8 else ""
        return f"{error_name(int.from_bytes(payload[4:8], 'big'))}, last stream {last}{said}"
    return None


def block_payload(type_: int, flags: int, payload: bytes) -> int:
    """The header block fragment's length: a HEADERS frame's payload without its padding
    (RFC 9113 §6.2: Pad Length, then padding) and priority fields (5 octets)."""
    size = len(payload)
    if type_ != 0x1:
        return size
    if flags & 0x8 and payload:
        size -= 1 + payload[0]
    if flags & 0x20:
        size -= 5
    return max(size, 0)


def header_block(fields: list[tuple[str, str]] | list[tuple[bytes, bytes]],
                 encoded: int) -> HeaderBlock:
    octets = sum(len(_octets(n)) + len(_octets(v)) for n, v in fields)
    return HeaderBlock(fields=len(fields), octets=octets, list_size=octets + 32 * len(fields),
                       encoded=encoded, ratio=round(encoded / octets, 3) if octets else None)


def _octets(x: str | bytes) -> bytes:
    return x if isinstance(x, bytes) else x.encode("utf-8", "surrogateescape")


class FrameLog:
    """The frames of one exchange, as they crossed the connection; the first ``cap`` kept."""

    def __init__(self, stream_id: int, cap: int = CAP) -> None:
        self.stream_id = stream_id
        self.cap = cap
        self.wire = H2Wire()
        self.sent_block = 0  # HPACK octets of our request's header block

    def frame(self, direction: str, data: bytes | memoryview, t_ns: int) -> None:
        """One whole frame (its 9-octet header and payload)."""
        self.wire.total += 1
        if len(self.wire.frames) >= self.cap:
            self.wire.dropped += 1
            return
        type_, flags = data[3], data[4]
        # Only the frames that carry parameters are read past their header (a DATA frame's
        # 16 KiB is not copied to learn its length).
        said = detail(type_, flags, bytes(data[FRAME_HEADER:])) if type_ in _SAYS else None
        self.wire.frames.append(WireFrame(
            direction=direction, type=type_name(type_),
            stream_id=int.from_bytes(data[5:9], "big") & 0x7FFFFFFF,
            flags=flag_names(type_, flags), length=len(data) - FRAME_HEADER, t_ns=t_ns,
            detail=said))

    def sent(self, data: bytes, t_ns: int) -> None:
        """What one write carried: whole frames, after the preface on the first."""
        view = memoryview(data)
        if view[:len(PREFACE)] == PREFACE:
            view = view[len(PREFACE):]
        while len(view) >= FRAME_HEADER:
            end = FRAME_HEADER + int.from_bytes(view[:3], "big")
            frame = view[:end]
            if frame[3] in (0x1, 0x9) and int.from_bytes(frame[5:9], "big") == self.stream_id:
                self.sent_block += block_payload(frame[3], frame[4],
                                                 bytes(frame[FRAME_HEADER:]))
            self.frame("sent", frame, t_ns)
            view = view[end:]
