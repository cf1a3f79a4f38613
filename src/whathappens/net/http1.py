"""HTTP/1.1 over a connected stream (RFC 9112), with h11 as the protocol core.

Theory of operation: h11 does no I/O; it turns the request into bytes and bytes into events.
This module is the loop around it, and the place where the measurements are taken:

* ``t_request_start`` just before the request bytes go to ``send``, ``t_request_sent`` as soon
  as ``send`` returns (the bytes are in the kernel or the TLS layer, not yet at the server);
* ``t_first_byte`` when the first ``recv`` after that returns data; ``t_headers`` and
  ``t_body_done`` are the return times of the reads that completed the head and the body, so
  parsing time never counts as network time.

Every read asks for at most ``_READ_SIZE`` bytes and waits at most ``Limits.read_timeout``.
h11 refuses a head larger than ``Limits.max_header_bytes``; the body stops at
``Limits.max_body_bytes``. Whatever goes wrong becomes an ``HttpError`` that says at which
point of the response it happened; after one, the connection is closed and not reused.
"""

from __future__ import annotations

from collections.abc import Callable

import h11

from whathappens.contract.facts import ChunkedWire, WireChunk
from whathappens.errors import HttpError
from whathappens.net import budget
from whathappens.net.content import content_codings, decode_content
from whathappens.net.http_types import (
    ACCEPT,
    ACCEPT_ENCODING,
    BYTES_LITERAL,
    USER_AGENT,
    Exchange,
    Limits,
    Request,
    decode_field,
    escaped,
    joined_field,
    library_words,
    os_error_words,
    size_words,
    with_defaults,
)
from whathappens.net.stream import Stream, closed_how

_READ_SIZE = 64 * 1024
_SHOWN_BYTES = 80  # how much of a malformed response an error message shows
CHUNKS_KEPT = 200  # chunks of a chunked body kept for the report; the rest are counted


def request_headers_h1(request: Request) -> list[tuple[str, str]]:
    """The header lines we send: Host first (RFC 9112 §3.2), then what curl or a browser
    sends, then the caller's. A body gets a Content-Length (RFC 9110 §8.6)."""
    defaults = [
        ("Host", request.authority),
        ("User-Agent", USER_AGENT),
        ("Accept", ACCEPT),
        ("Accept-Encoding", ACCEPT_ENCODING),
    ]
    if request.body or request.method in ("POST", "PUT", "PATCH"):
        defaults.append(("Content-Length", str(len(request.body))))
    return with_defaults(defaults, request.headers)


class _Progress:
    """How far the response has come: for timestamps, and to say where things went wrong.
    (A plain class: a dataclass costs a millisecond or two at import.)"""

    def __init__(self) -> None:
        self.received = 0  # response bytes this exchange, as handed to h11
        self.first = b""  # its first bytes, to show when it is not HTTP
        self.t_last_read: int | None = None
        self.eof = False  # the server has closed its side
        self.in_body = False
        self.body_bytes = 0
        self.content_length: int | None = None
        self.chunked = False

    def point(self) -> str:
        if self.in_body and self.chunked:
            # RFC 9112 §7.1: a chunked body ends with a zero-size chunk and a blank line.
            return (f"after {self.body_bytes} bytes of the chunked body, before its end (the "
                    "zero-size last chunk and the blank line after it, RFC 9112 §7.1)")
        if self.in_body:
            of = f" of the {self.content_length} announced" if self.content_length else ""
            return f"after {self.body_bytes} bytes of the body{of}"
        if self.received:
            return f"in the middle of the response headers ({self.received} bytes received)"
        return "before sending any of the response"

    def waiting_for(self) -> str:
        if self.in_body:
            of = f" of {self.content_length}" if self.content_length else ""
            return f"more of the body ({self.body_bytes}{of} bytes received)"
        if self.received:
            return f"the rest of the response headers ({self.received} bytes received)"
        return "the first byte of the response"


class _Reading:
    """The response as it is read: its head, the 1xx before it, the body, the times."""

    def __init__(self, leftover: int) -> None:
        self.leftover = leftover
        self.response: h11.Response | None = None
        self.informational: list[int] = []
        self.head_start = 0
        self.header_bytes = 0
        self.body = bytearray()
        self.t_first: int | None = None
        self.t_headers = 0
        self.t_done = 0
        self.chunks: ChunkedWire | None = None

    def chunk(self, data: bytes, start: bool, t_ns: int) -> None:
        """A piece of a chunked body (RFC 9112 §7.1): h11 may hand one chunk over in several
        pieces; the first (``chunk_start``) opens it, at the time of the read that brought
        it. Only the first ``CHUNKS_KEPT`` are kept."""
        log = self.chunks = self.chunks or ChunkedWire()
        log.body_bytes += len(data)
        if start:
            log.total += 1
            if len(log.chunks) < CHUNKS_KEPT:
                log.chunks.append(WireChunk(size=0, t_ns=t_ns))
            else:
                log.dropped += 1
        if log.chunks and log.total == len(log.chunks):
            log.chunks[-1].size += len(data)

    def take(self, event: object, consumed: int, progress: _Progress, request: Request,
             limits: Limits, clock: Callable[[], int]) -> None:
        """One event of h11's (other than NEED_DATA, EndOfMessage and ConnectionClosed)."""
        if isinstance(event, h11.InformationalResponse):
            # RFC 9110 §15.2: 1xx responses precede the final one; note and move on, but
            # not forever: a server can send them without end.
            self.informational.append(event.status_code)
            self.head_start = consumed
            budget.current().count("http.1xx")
            if len(self.informational) > limits.max_informational:
                raise HttpError(
                    "http.too_many_1xx",
                    f"The server sent more than {limits.max_informational} informational "
                    f"(1xx) responses without a final one ({_statuses(self.informational)}); "
                    "reading stopped there.",
                )
        elif isinstance(event, h11.Response):
            self.response = event
            self.header_bytes = consumed - self.head_start
            self.t_headers = _read_time(progress, clock)
            progress.in_body = True
            progress.content_length = _content_length(request, event)
            progress.chunked = _is_chunked(request, event)
            _check_announced_length(progress.content_length, limits)
        elif isinstance(event, h11.Data):
            if event.chunk_start:
                budget.current().count("h1.chunk")
            if progress.chunked:
                self.chunk(event.data, event.chunk_start, _read_time(progress, clock))
            self.body += event.data
            progress.body_bytes = len(self.body)
            if len(self.body) > limits.max_body_bytes:
                raise HttpError(
                    "http.body_too_large",
                    f"The body passed the limit of {size_words(limits.max_body_bytes)}; "
                    f"reading stopped there, {progress.point()}.",
                )


def _encode_request(conn: h11.Connection, request: Request,
                    headers: list[tuple[str, str]]) -> bytes:
    try:
        data = conn.send(
            h11.Request(
                method=request.method,
                target=request.target,
                headers=[(n.encode(), v.encode()) for n, v in headers],
            )
        )
        if request.body:
            data += conn.send(h11.Data(data=request.body))
        data += conn.send(h11.EndOfMessage())
    except h11.LocalProtocolError as e:
        raise HttpError(
            "http.invalid_request", f"The request cannot be sent as HTTP/1.1: {e}."
        ) from None
    assert data is not None
    return data


def _reuse_verdict(conn: h11.Connection, request: Request,
                   response: h11.Response) -> tuple[bool, list[str]]:
    """May the connection carry another request, and what the reader should know if not."""
    # RFC 9112 §9.3: keep-alive is the default in 1.1; h11 tracks "Connection: close",
    # HTTP/1.0 and close-delimited bodies, and leaves both sides DONE only if it may go on.
    reusable = conn.our_state is h11.DONE and conn.their_state is h11.DONE
    notes: list[str] = []
    stray = len(conn.trailing_data[0])
    if stray:
        # Bytes after the end of the response belong to no request: the server framed its
        # response wrongly, or is splitting responses. The connection is not reused (RFC 9112
        # §9.3: a client cannot tell where the next response begins).
        reusable = False
        notes.append(_stray_words(stray, request, response.status_code))
    fields = dict(response.headers)
    if b"transfer-encoding" in fields and b"content-length" in fields:
        # RFC 9112 §6.3: Transfer-Encoding wins, but the pair is how responses are split and
        # smuggled; the connection must not carry another request.
        reusable = False
        notes.append("the response carries both Transfer-Encoding and Content-Length; "
                     "Transfer-Encoding decided the body, and the connection was not "
                     "reused (RFC 9112 §6.3: a sign of response splitting)")
    return reusable, notes


class H1Connection:
    """One HTTP/1.1 connection: sequential exchanges while the server keeps it alive."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.exchanges = 0
        self._h11: h11.Connection | None = None
        self._failed = False
        self._reading: _Reading | None = None

    @property
    def chunks_so_far(self) -> ChunkedWire | None:
        """The chunks of the last response read, also when it was cut short."""
        return None if self._reading is None else self._reading.chunks
    @property
    def reusable(self) -> bool:
        """True while another request may go on this connection (RFC 9112 §9.3)."""
        if self._failed or self.stream.closed:
            return False
        return self._h11 is None or self._h11.our_state is h11.IDLE

    def idle_problem(self) -> tuple[str, str] | None:
        """Why this idle connection must not carry the next request (a finding's severity
        and words), or None.

        A response that arrived before we asked (RFC 9112 §9.3: responses answer requests in
        order) would be read as the answer to the next request; a closed connection cannot
        carry it. Either way a new connection is opened, as browsers do.
        """
        if not self.reusable:
            return None
        unread, closed = self.stream.poll_idle()
        if unread:
            self._failed = True
            return ("warning", f"the server sent {unread} bytes on the idle connection before "
                    "our next request, a response nobody asked for; a new connection was "
                    "opened for it (RFC 9112 §9.3)")
        if closed:
            self._failed = True
            return ("info", "the server had closed the idle connection; a new one was opened "
                    "(RFC 9112 §9.3.1)")
        return None

    def close(self) -> None:
        self.stream.close()

    async def exchange(
        self, request: Request, clock: Callable[[], int], limits: Limits
    ) -> Exchange:
        if not self.reusable:
            raise RuntimeError("this HTTP/1.1 connection cannot carry another request")
        if self._h11 is None:
            # The head limit of the first exchange holds for the connection's life.
            self._h11 = h11.Connection(
                h11.CLIENT, max_incomplete_event_size=limits.max_header_bytes
            )
        try:
            exchange = await self._exchange(self._h11, request, clock, limits)
        except BaseException:
            self._failed = True
            self.stream.close()
            raise
        budget.current().waiting_for = None  # only a step that is waiting says what for
        self.exchanges += 1
        return exchange

    async def _exchange(
        self, conn: h11.Connection, request: Request, clock: Callable[[], int], limits: Limits
    ) -> Exchange:
        stream = self.stream
        self._reading = None  # until this response is read: not the last one's
        headers = request_headers_h1(request)
        data = _encode_request(conn, request, headers)
        sent0, received0 = stream.wire_sent, stream.wire_received
        t_start = clock()
        try:
            await stream.send(data)
        except OSError as e:
            raise HttpError(
                "http.connection_closed",
                f"The connection broke while the request was being sent: {os_error_words(e)}.",
            ) from None
        t_sent = clock()
        got = await self._read_response(conn, request, clock, limits)
        response = got.response
        assert response is not None  # h11 sends EndOfMessage only after a Response
        reusable, notes = _reuse_verdict(conn, request, response)
        if reusable:
            conn.start_next_cycle()
        response_headers = [
            (decode_field(n), decode_field(v)) for n, v in response.headers.raw_items()
        ]
        codings = content_codings(response_headers)
        decoded = decode_content(
            bytes(got.body),
            codings,
            max_decoded=limits.max_decoded_bytes,
            keep=limits.keep_body_bytes,
        )
        return Exchange(
            http_version="HTTP/" + response.http_version.decode(),
            request_headers=headers,
            status=response.status_code,
            reason=decode_field(response.reason),
            response_headers=response_headers,
            t_request_start_ns=t_start,
            t_request_sent_ns=t_sent,
            t_first_byte_ns=got.t_first if got.t_first is not None else got.t_headers,
            t_headers_ns=got.t_headers,
            t_body_done_ns=got.t_done,
            body=decoded.kept,
            body_truncated=decoded.truncated,
            wire_bytes_sent=stream.wire_sent - sent0,
            wire_bytes_received=stream.wire_received - received0,
            body_bytes_encoded=len(got.body),
            body_bytes_decoded=decoded.size,
            content_encoding=codings,
            header_bytes=got.header_bytes,
            reusable=reusable and not stream.closed,
            alt_svc=joined_field(response_headers, "alt-svc"),
            informational=got.informational,
            notes=notes,
            chunked=got.chunks,
        )

    async def _read_response(
        self, conn: h11.Connection, request: Request, clock: Callable[[], int], limits: Limits
    ) -> _Reading:
        """Feed h11 until the response ends; every read bounded, every event counted."""
        progress = _Progress()
        got = _Reading(leftover=len(conn.trailing_data[0]))  # already buffered, this response's
        self._reading = got
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as e:
                raise self._protocol_error(e, progress, limits) from None
            if event is h11.NEED_DATA:
                chunk = await self._recv(progress, limits, clock)
                if got.t_first is None and chunk:
                    got.t_first = progress.t_last_read
                conn.receive_data(chunk)
                if chunk and len(progress.first) < _SHOWN_BYTES:
                    progress.first += chunk[: _SHOWN_BYTES - len(progress.first)]
                    _check_looks_like_http(progress.first)
                continue
            if isinstance(event, h11.EndOfMessage):
                break
            if isinstance(event, h11.ConnectionClosed):
                raise _closed_error(progress, self.exchanges, self.stream)
            consumed = got.leftover + progress.received - len(conn.trailing_data[0])
            got.take(event, consumed, progress, request, limits, clock)
        got.t_done = _read_time(progress, clock)
        return got

    async def _recv(self, progress: _Progress, limits: Limits, clock: Callable[[], int]) -> bytes:
        budget.current().waiting_for = progress.waiting_for
        try:
            chunk = await self.stream.recv(_READ_SIZE, limits.read_timeout)
        except TimeoutError:
            raise HttpError(
                "http.read_timeout",
                f"The server sent nothing for {limits.read_timeout:g} s while we waited for "
                f"{progress.waiting_for()}.",
            ) from None
        except OSError as e:
            raise HttpError(
                "http.connection_closed",
                f"The connection broke {progress.point()}: {os_error_words(e)}.",
                detail=getattr(e, "detail", None) or str(e),
            ) from None
        progress.t_last_read = clock()
        progress.received += len(chunk)
        progress.eof = not chunk
        return chunk

    def _protocol_error(
        self, e: h11.RemoteProtocolError, progress: _Progress, limits: Limits
    ) -> HttpError:
        if e.error_status_hint == 431 and not progress.in_body:
            return HttpError(
                "http.headers_too_large",
                f"The response headers passed the limit of "
                f"{size_words(limits.max_header_bytes)} without ending; reading stopped there.",
            )
        if progress.eof:
            return _closed_error(progress, self.exchanges, self.stream)
        return HttpError(
            "http.malformed",
            f"The response is not valid HTTP/1.1: {_h11_words(str(e))}; it began "
            f"{escaped(progress.first)}.",
            detail=library_words(str(e)),
        )


async def exchange_h1(
    stream: Stream, request: Request, *, clock: Callable[[], int], limits: Limits
) -> Exchange:
    """One request and its response on ``stream``."""
    return await H1Connection(stream).exchange(request, clock, limits)


def _read_time(progress: _Progress, clock: Callable[[], int]) -> int:
    """When the read that completed an event returned; now, if it needed no read (the bytes
    were already buffered from the previous exchange)."""
    return clock() if progress.t_last_read is None else progress.t_last_read


def _closed_error(progress: _Progress, earlier_exchanges: int, stream: Stream) -> HttpError:
    message = f"The server closed the connection{closed_how(stream)} {progress.point()}."
    if earlier_exchanges and not progress.received:
        # RFC 9112 §9.3.1: a server may close an idle persistent connection at any time.
        message += (
            f" The connection had already carried {earlier_exchanges} exchange(s); servers "
            "close idle keep-alive connections, so the request may succeed on a new one."
        )
    return HttpError("http.connection_closed", message)


# h11's messages (h11/_readers.py, _headers.py), said in words with the rule they break.
_H11_WORDS = (
    ("illegal status line", "its status line is not 'HTTP/1.x NNN reason' (RFC 9112 §4)"),
    ("illegal header line", "a header line is not 'name: value' (RFC 9112 §5)"),
    ("Illegal header name", "a header name holds characters a name may not (RFC 9110 §5.1)"),
    ("Illegal header value", "a header value holds characters a value may not, such as "
                             "control characters (RFC 9110 §5.5)"),
    ("illegal chunk header", "a chunk-size line is not a hexadecimal size (RFC 9112 §7.1)"),
    ("malformed chunk footer", "a chunk does not end with CRLF where its size says it ends "
                               "(RFC 9112 §7.1)"),
    ("conflicting Content-Length", "it carries Content-Length values that disagree "
                                   "(RFC 9112 §6.3)"),
    ("bad Content-Length", "its Content-Length is not a number (RFC 9110 §8.6)"),
    ("multiple Transfer-Encoding", "it carries more than one Transfer-Encoding field"),
    ("Only Transfer-Encoding: chunked", "it uses a transfer coding other than chunked, which "
                                        "a client cannot be asked to read (RFC 9112 §6.1)"),
    ("continuation line at start", "its headers begin with a folded continuation line "
                                   "(RFC 9112 §5.2)"),
    ("no response line", "it has no status line"),
    ("malformed data", "it holds bytes that do not fit HTTP/1.1's grammar"),
)


def _h11_words(message: str) -> str:
    """h11's complaint in words, with the offending bytes shown safely."""
    for prefix, words in _H11_WORDS:
        if message.startswith(prefix):
            shown = BYTES_LITERAL.search(message, len(prefix))
            return words + (f": {library_words(shown.group(0))}" if shown else "")
    return library_words(message)


def _statuses(codes: list[int]) -> str:
    shown = ", ".join(str(c) for c in codes[:5])
    return shown + (f" … {len(codes)} in all" if len(codes) > 5 else "")


def _check_looks_like_http(first: bytes) -> None:
    """A response starts with "HTTP/" (RFC 9112 §4); say so as soon as it cannot, rather than
    wait for a head that will never end."""
    start = first.lstrip(b"\r\n")  # RFC 9112 §2.2 robustness: skip stray blank lines
    if start[:5] == b"HTTP/"[: len(start[:5])]:
        return
    raise HttpError(
        "http.malformed",
        f"The server answered with something that is not HTTP: a response begins with "
        f"'HTTP/', this one began {escaped(first)}{_looks_like(start)}.",
    )


def _looks_like(start: bytes) -> str:
    if start[:1] in (b"\x15", b"\x16") and start[1:2] == b"\x03":
        return ", which looks like TLS: the port may expect https"
    if start.startswith(b"SSH-"):
        return ", which is an SSH server's greeting"
    if len(start) >= 9 and start[3] == 0x04 and start[5:9] == b"\0\0\0\0":
        return ", which looks like an HTTP/2 SETTINGS frame"
    return ""


def _content_length(request: Request, response: h11.Response) -> int | None:
    """The body length the server announced, when it is the length of this body: not for
    HEAD, 204 or 304 (RFC 9110 §8.6), nor beside Transfer-Encoding (RFC 9112 §6.3)."""
    if request.method == "HEAD" or response.status_code in (204, 304):
        return None
    fields = dict(response.headers)  # h11 gives lowercase names, one value per name here
    if b"transfer-encoding" in fields:
        return None
    value = fields.get(b"content-length", b"")
    return int(value) if value.isdigit() else None


def _is_chunked(request: Request, response: h11.Response) -> bool:
    if request.method == "HEAD" or response.status_code in (204, 304):
        return False
    return dict(response.headers).get(b"transfer-encoding", b"").lower() == b"chunked"


def _stray_words(stray: int, request: Request, status: int) -> str:
    if request.method == "HEAD" or status in (204, 304):
        what = "a response to HEAD" if request.method == "HEAD" else f"a {status} response"
        why = f"{what} has no body (RFC 9110 §9.3.2, §15.3.5, §15.4.5)"
    else:
        why = "more than the body its framing announced"
    return (f"the server sent {stray} bytes after the end of the response, {why}; they were "
            "ignored and the connection was not reused")


def _check_announced_length(length: int | None, limits: Limits) -> None:
    if length is not None and length > limits.max_body_bytes:
        raise HttpError(
            "http.body_too_large",
            f"The server announced a body of {size_words(length)} (Content-Length: {length}), "
            f"over the limit of {size_words(limits.max_body_bytes)}; it was not read.",
        )
