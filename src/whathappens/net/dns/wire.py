"""Sending one DNS message and getting its answer, over UDP or TCP, with bounded reads.

UDP (RFC 1035 §4.2.1): one datagram each way. A reply whose message ID or question does not
match ours is set aside, not used (RFC 5452 §9.1: it may be a late answer to an earlier
query, or spoofed), and we keep waiting until the timeout; if nothing better came by then,
the error says what did come, rather than "no answer". A reply with our ID that cannot be
read as DNS is the server's answer, unusable: it fails at once.

TCP (RFC 1035 §4.2.2, RFC 7766): a two-byte length prefix; used when the UDP answer came
back truncated (TC bit). On our own connection nothing is set aside: whatever comes is the
answer.

Every failure is a ``WireError`` whose ``words`` say what the peer did, in a phrase that
follows the peer's name ("the resolver 192.0.2.1:53 " + words), never a library's text.
A silent peer is ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from whathappens.net import budget

if TYPE_CHECKING:
    import dns.message

MAX_UDP = 65535
MAX_TCP = 65535
HEADER = 12                 # RFC 1035 §4.1.1
SET_ASIDE_KEPT = 4          # replies set aside, remembered for the report
MAX_DATAGRAMS = 256         # replies read for one query before we stop listening
# Records read from the replies of one view (all its queries together). Reading costs CPU
# per record (~30 µs in dnspython): a 64 KiB reply holds up to ~4,000, and a walk may send
# 64 queries, so without a total a peer could make one walk cost seconds of CPU.
MAX_RECORDS = 10_000


@dataclass
class WireResult:
    response: dns.message.Message
    transport: str           # "udp" | "tcp"
    bytes_sent: int
    bytes_received: int
    local: str               # "ip:port" we sent from


class WireError(OSError):
    """The peer did something that leaves us without a usable answer.

    ``code`` is the stable code of the journey's error (``dns.malformed``); ``words`` a
    phrase naming what the peer did, to follow its name in a sentence. An OSError, so that a
    caller that handles "the exchange failed" as OSError (the demo's resolver) handles it.
    """

    def __init__(self, code: str, words: str) -> None:
        super().__init__(words)
        self.code = code
        self.words = words


class RecordBudget:
    """Records a view may still read; shared by its queries (see MAX_RECORDS)."""

    def __init__(self, total: int = MAX_RECORDS) -> None:
        self.total = total
        self.left = total


class _Unusable(Exception):
    """A reply that cannot be the answer; ``final`` when it is the answer anyway (our ID,
    or on our own TCP connection), so waiting longer is pointless. ``what`` names the reply
    ("a reply whose message ID …")."""

    def __init__(self, code: str, what: str, *, final: bool) -> None:
        super().__init__(what)
        self.code = code
        self.what = what
        self.final = final

    @property
    def words(self) -> str:
        return f"sent {self.what}"


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _local(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


# ------------------------------------------------------------------ reading a reply
def read_reply(data: bytes, query: dns.message.Message, *, udp: bool,
               records: RecordBudget | None = None, describe: bool = True
               ) -> dns.message.Message:
    """The reply in ``data`` if it answers ``query``; else ``_Unusable`` saying why.

    The header is checked before anything is parsed: a reply that is not ours costs
    nothing more (``describe`` asks for the words of what it is, once), and one that would
    take the view over its record budget is refused unread.
    """
    import dns.message

    if len(data) < HEADER:
        raise _Unusable("dns.malformed", f"{_plural(len(data), 'byte')}, shorter than the "
                        f"{HEADER}-byte header every DNS message starts with (RFC 1035 "
                        "§4.1.1): not a DNS reply", final=not udp)
    ident, flags = struct.unpack("!HH", data[:4])
    if ident != query.id:
        what = (f"a reply whose message ID ({ident}) is not our query's ({query.id}): "
                "an answer to some other query, or not DNS at all")
        if describe and _diagnose(data) is not None:
            what += " (it is not a well-formed DNS message either)"
        raise _Unusable("dns.wrong_id", what, final=not udp)
    if not flags & 0x8000:  # QR
        if data == query.to_wire():
            raise _Unusable("dns.not_a_response", "our own query back, unchanged (an echo, "
                            "not a name server)", final=True)
        raise _Unusable("dns.not_a_response", "a message that is a query, not a response "
                        "(its QR bit is clear)", final=True)
    qd, an, ns, ar = struct.unpack("!HHHH", data[4:HEADER])
    total = qd + an + ns + ar
    # The smallest question is 5 bytes, the smallest record 11 (RFC 1035 §4.1.2-3): counts
    # that need more than the message holds are a malformed header, not a big answer.
    if qd * 5 + (an + ns + ar) * 11 > len(data) - HEADER:
        why = _diagnose(data) or "its header counts more records than the message can hold"
        raise _Unusable("dns.malformed", f"a malformed message: {why}", final=True)
    if records is not None and total > records.left:
        raise _Unusable("dns.record_limit", f"a reply of {total:,} records, more than the "
                        f"{records.left:,} left of the {records.total:,} we read from the "
                        "servers of one view: a flood rather than an answer", final=True)
    try:
        response = dns.message.from_wire(data, ignore_trailing=True)
    except Exception:  # dnspython raises many kinds for broken input; we say which part
        why = _diagnose(data) or ("a reply whose records could not be read as DNS (RFC 1035 "
                                  "§4.1)")
        raise _Unusable("dns.malformed", f"a malformed message: {why}",
                        final=True) from None
    if not query.is_response(response):
        got = _question_text(response)
        raise _Unusable("dns.wrong_question", f"an answer to another question ({got}) than "
                        f"the one we asked ({_question_text(query)})", final=not udp)
    if records is not None:
        records.left -= total
    return response


def _question_text(msg: dns.message.Message) -> str:
    import dns.rdatatype

    if not msg.question:
        return "no question at all"
    q = msg.question[0]
    return f"{q.name.to_text()} {dns.rdatatype.to_text(q.rdtype)}"


_SECTIONS = ("question", "answer", "authority", "additional")
_FIXED_RDATA = {1: ("A", 4, "RFC 1035 §3.4.1"), 28: ("AAAA", 16, "RFC 3596 §2.2")}


def _diagnose(data: bytes) -> str | None:
    """What breaks the DNS format in ``data``, in words; None when we find nothing wrong.

    Walks the sections as RFC 1035 §4.1 lays them out, so the words can name the part:
    a count that lies, a record length that runs past the end, a compression pointer that
    does not point back to an earlier name, an A record that is not 4 bytes.
    """
    if len(data) < HEADER:
        return f"{_plural(len(data), 'byte')}, shorter than the {HEADER}-byte header"
    counts = struct.unpack("!HHHH", data[4:HEADER])
    pos = HEADER
    for section, n in zip(_SECTIONS, counts, strict=True):
        for i in range(n):
            if pos >= len(data):
                return (f"its header announces {_plural(n, 'record')} in the {section} "
                        f"section, but the message ends after {i} (a count that lies)")
            where = f"record {i + 1} of the {section} section"
            pos, bad = _skip_name(data, pos)
            if bad is not None:
                return f"{where} has a name that {bad}"
            fixed = 4 if section == "question" else 10
            if pos + fixed > len(data):
                return f"the message ends inside {where}"
            if section == "question":
                pos += fixed
                continue
            rdtype, _, _, rdlen = struct.unpack("!HHIH", data[pos:pos + fixed])
            pos += fixed
            if pos + rdlen > len(data):
                return (f"{where} says its data is {_plural(rdlen, 'byte')} long, but only "
                        f"{len(data) - pos} remain (a record length that lies)")
            if rdtype in _FIXED_RDATA and rdlen != _FIXED_RDATA[rdtype][1]:
                kind, size, rfc = _FIXED_RDATA[rdtype]
                return (f"{where} is an {kind} record whose data is {_plural(rdlen, 'byte')} "
                        f"long; an {kind} record has {size} ({rfc})")
            pos += rdlen
    return None


def _skip_name(data: bytes, pos: int) -> tuple[int, str | None]:
    """The position after the name at ``pos``, or what is wrong with it (RFC 1035 §4.1.4)."""
    end: int | None = None
    seen: set[int] = set()
    length = 0
    while True:
        if pos >= len(data):
            return pos, "runs past the end of the message"
        b = data[pos]
        if b & 0xC0 == 0xC0:
            if pos + 1 >= len(data):
                return pos, "runs past the end of the message"
            target = ((b & 0x3F) << 8) | data[pos + 1]
            if end is None:
                end = pos + 2
            if target in seen:
                return pos, "is a loop of compression pointers (RFC 1035 §4.1.4)"
            if target >= pos:
                return pos, (f"uses a compression pointer to byte {target}, which is not an "
                             "earlier name (RFC 1035 §4.1.4 allows only pointers back: "
                             "this one makes a loop or points past the end)")
            seen.add(target)
            pos = target
            continue
        if b & 0xC0:
            return pos, f"has a label of unknown type (first byte {b:#04x})"
        if b == 0:
            return (end if end is not None else pos + 1), None
        length += b + 1
        if length > 255:
            return pos, "is longer than 255 bytes (RFC 1035 §2.3.4)"
        pos += b + 1


# ------------------------------------------------------------------ the transports
async def query_udp(
    query: dns.message.Message, address: str, port: int, timeout: float,
    records: RecordBudget | None = None,
) -> WireResult:
    wire = query.to_wire()
    loop = asyncio.get_running_loop()
    pace = budget.current()
    sock = socket.socket(_family(address), socket.SOCK_DGRAM)
    sock.setblocking(False)
    set_aside: list[_Unusable] = []
    try:
        try:
            sock.connect((address, port))
            await loop.sock_sendall(sock, wire)
        except OSError as exc:
            raise WireError(*_os_error(exc, "udp", port)) from None
        deadline = loop.time() + timeout
        received = datagrams = set_aside_count = 0
        while datagrams < MAX_DATAGRAMS:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                data = await asyncio.wait_for(loop.sock_recv(sock, MAX_UDP), left)
            except TimeoutError:
                break
            except OSError as exc:
                raise WireError(*_os_error(exc, "udp", port)) from None
            await pace.turn()  # a flood of datagrams must not starve the event loop
            datagrams += 1
            received += len(data)
            try:
                response = read_reply(data, query, udp=True, records=records,
                                      describe=not set_aside)
            except _Unusable as bad:
                if bad.final:
                    raise WireError(bad.code, bad.words) from None
                if len(set_aside) < SET_ASIDE_KEPT:
                    set_aside.append(bad)
                set_aside_count += 1
                continue
            return WireResult(response, "udp", len(wire), received, _local(sock))
        if not set_aside:
            raise TimeoutError
        raise WireError(set_aside[0].code, _set_aside_words(set_aside, set_aside_count,
                                                            timeout))
    finally:
        sock.close()


def _set_aside_words(replies: list[_Unusable], n: int, timeout: float) -> str:
    first = replies[0].what
    if n == 1:
        return f"sent {first}; no other reply came within {timeout:g} s"
    others = {r.what for r in replies[1:]} - {first}
    more = f"; others were {'; '.join(sorted(others))}" if others else ""
    return (f"sent {_plural(n, 'reply', 'replies')} within {timeout:g} s, none an answer to "
            f"our query: the first was {first}{more}")


async def query_tcp(
    query: dns.message.Message, address: str, port: int, timeout: float,
    records: RecordBudget | None = None,
) -> WireResult:
    wire = query.to_wire()
    loop = asyncio.get_running_loop()
    pace = budget.current()
    sock = socket.socket(_family(address), socket.SOCK_STREAM)
    sock.setblocking(False)

    async def read_exact(n: int, what: str) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = await loop.sock_recv(sock, n - len(buf))
            await pace.turn()
            if not chunk:
                if what == "length" and not buf:
                    raise WireError("dns.tcp_closed", "closed the TCP connection without "
                                    "answering")
                raise WireError("dns.tcp_closed", f"closed the TCP connection in the middle "
                                f"of its answer ({len(buf)} of the {n} bytes of the {what})")
            buf += chunk
        return bytes(buf)

    async def run() -> WireResult:
        try:
            await loop.sock_connect(sock, (address, port))
            await loop.sock_sendall(sock, struct.pack("!H", len(wire)) + wire)
            (length,) = struct.unpack("!H", await read_exact(2, "length"))
            data = await read_exact(min(length, MAX_TCP), "message")
        except WireError:
            raise
        except OSError as exc:
            raise WireError(*_os_error(exc, "tcp", port)) from None
        try:
            response = read_reply(data, query, udp=False, records=records)
        except _Unusable as bad:
            raise WireError(bad.code, bad.words) from None
        return WireResult(response, "tcp", len(wire) + 2, length + 2, _local(sock))

    try:
        return await asyncio.wait_for(run(), timeout)
    finally:
        sock.close()


def _os_error(exc: OSError, transport: str, port: int) -> tuple[str, str]:
    """(code, words) for a socket error; never the library's own text."""
    if isinstance(exc, ConnectionRefusedError):
        if transport == "udp":
            # The ICMP "port unreachable" the host sent back (RFC 1122 §4.1.3.1).
            return "dns.refused_port", (f"did not take the query: the host said no program "
                                        f"listens on UDP port {port}")
        return "dns.tcp_refused", (f"refused the TCP connection: no program listens on TCP "
                                   f"port {port} there")
    if isinstance(exc, ConnectionResetError):
        return "dns.tcp_closed", "reset the TCP connection"
    if isinstance(exc, BrokenPipeError):
        return "dns.tcp_closed", "closed the connection while our query was being sent"
    if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "dns.unreachable", "cannot be reached: there is no route to that address"
    reason = "a network error" if exc.errno is None else f"a network error ({_strerror(exc)})"
    return "dns.query_failed", f"could not be asked over {transport.upper()}: {reason}"


def _strerror(exc: OSError) -> str:
    import os

    return os.strerror(exc.errno) if exc.errno is not None else "unknown"
