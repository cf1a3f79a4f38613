"""HTTP/2 over a connected stream (RFC 9113), with h2 as the protocol core.

Theory of operation: h2 does no I/O; it turns requests into frames and received bytes into
events. ``H2Connection`` is the loop around it and takes the measurements. It runs one
exchange at a time, each on a new stream, and reads only while an exchange is running.

Received bytes are cut into whole frames here before h2 sees them, for four reasons: the
arrival time of each frame's first byte is known (``t_first_byte`` is when the first frame of
our stream began to arrive, not when the server's SETTINGS did); the bytes of the response's
HEADERS and CONTINUATION frames can be counted; a GOAWAY is seen before the frames that
follow it (below); and a frame longer than we allow is refused from its 9-byte header, where
h2 would first buffer all of it (up to 16 MiB).

GOAWAY (RFC 9113 §6.8): streams up to the frame's last stream id may still complete. h2 4.x
closes its whole state machine on GOAWAY and would refuse those frames (python-hyper/h2#1181),
so after a graceful GOAWAY that covers our stream we put the connection state back to open
and read our response to its end; the connection is then not reused.

The caller imports this module only when ALPN chose h2: h2 is the heaviest import we have.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from h2.errors import ErrorCodes
from h2.settings import SettingCodes, Settings

from whathappens.contract.facts import H2Wire, HeaderBlock
from whathappens.errors import HttpError
from whathappens.net import budget
from whathappens.net.content import content_codings, decode_content
from whathappens.net.h2rules import FrameRules
from whathappens.net.h2wire import FrameLog, block_payload, header_block
from whathappens.net.http_types import (
    ACCEPT,
    ACCEPT_ENCODING,
    USER_AGENT,
    Exchange,
    Limits,
    Request,
    decode_field,
    escaped,
    joined_field,
    library_words,
    os_error_words,
    pseudo_first,
    size_words,
)
from whathappens.net.stream import Stream, closed_how


class _LazyRepr:
    """``repr(obj)`` computed only if someone formats it.

    h2 writes every received frame to its trace log with an eager ``repr(frame)``
    (h2/connection.py ``_receive_frame``), even when nothing logs: about 40 µs a frame, which
    would be measured as download time. The name ``repr`` in that module now makes this
    object; a logger that does format it still gets the frame's own repr.
    """

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __str__(self) -> str:
        return repr(self.obj)

    __repr__ = __str__


h2.connection.repr = _LazyRepr  # type: ignore[attr-defined]

_READ_SIZE = 64 * 1024
# Receive windows like a browser's (Chromium: 6 MiB per stream, 15 MiB per connection), so
# flow control does not slow the transfer down; the body limit still bounds what we read.
_STREAM_WINDOW = 6 * 1024 * 1024
_CONNECTION_WINDOW = 15 * 1024 * 1024
_FRAME_HEADER = 9
_GOODBYE_TIMEOUT = 0.5  # seconds a parting GOAWAY may take to write
_DATA, _HEADERS, _PRIORITY, _RST_STREAM, _SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
_PING, _WINDOW_UPDATE, _CONTINUATION = 0x6, 0x8, 0x9
_END_STREAM = 0x1
# Frames that make us work but move no response forward. Servers send a handful per
# connection; floods of them are denial-of-service patterns (CVE-2019-9512 ping flood,
# -9515 settings flood, -9518 empty frames, CVE-2024-27316 CONTINUATION flood), so each one
# is counted against the journey's budget ("h2.control").
_CONTROL_TYPES = frozenset({_PRIORITY, _SETTINGS, _PING, _WINDOW_UPDATE})
_KNOWN_TYPES = frozenset(range(0x0, 0xA))
# RFC 9113 §8.2.2: connection-specific fields must not appear in an HTTP/2 message.
_CONNECTION_FIELDS = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
}


@dataclass
class H2ServerSettings:
    """What the server's SETTINGS frame said (RFC 9113 §6.5.2); defaults where it was silent."""

    header_table_size: int = 4096
    max_concurrent_streams: int | None = None  # None: no limit announced
    initial_window_size: int = 65535
    max_frame_size: int = 16384
    max_header_list_size: int | None = None
    announced: dict[str, int] = field(default_factory=dict)  # exactly what was sent, in order
    t_received_ns: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "header_table_size": self.header_table_size,
            "max_concurrent_streams": self.max_concurrent_streams,
            "initial_window_size": self.initial_window_size,
            "max_frame_size": self.max_frame_size,
            "max_header_list_size": self.max_header_list_size,
            "announced": dict(self.announced),
            "t_received_ns": self.t_received_ns,
        }


def request_headers_h2(request: Request) -> list[tuple[str, str]]:
    """Pseudo-header fields first (RFC 9113 §8.3.1), then regular fields with lowercase names
    (RFC 9113 §8.2.1); :authority replaces Host (RFC 9113 §8.3.1)."""
    defaults = [
        ("user-agent", USER_AGENT),
        ("accept", ACCEPT),
        ("accept-encoding", ACCEPT_ENCODING),
    ]
    if request.body or request.method in ("POST", "PUT", "PATCH"):
        defaults.append(("content-length", str(len(request.body))))
    return pseudo_first(request, defaults, _CONNECTION_FIELDS)


class _Frame:
    __slots__ = ("data", "stream_id", "t_start", "type")

    def __init__(self, data: bytes, type: int, stream_id: int, t_start: int) -> None:
        self.data = data
        self.type = type
        self.stream_id = stream_id
        self.t_start = t_start  # when its first byte arrived


class _StreamProgress:
    """How far our stream's response has come. (Plain classes here: a dataclass costs a
    millisecond or two at import.)"""

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        self.t_last_read = 0
        self.t_first_byte: int | None = None
        self.t_headers: int | None = None
        self.t_done: int | None = None
        self.head_bytes = 0  # HEADERS + CONTINUATION frames of the head being received
        self.header_bytes = 0
        self.block_bytes = 0  # HPACK octets of the head being received (no frame headers)
        self.response_block: HeaderBlock | None = None
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.informational: list[int] = []
        self.body = bytearray()
        self.alt_svc_frame: str | None = None

    def point(self) -> str:
        if self.status is not None:
            return f"after {len(self.body)} bytes of the body"
        return "before the response headers arrived"

    def waiting_for(self) -> str:
        if self.status is not None:
            return f"more of the body ({len(self.body)} bytes received)"
        return "the response headers"


class H2Connection:
    """One HTTP/2 connection carrying sequential exchanges, one stream each."""

    def __init__(self, stream: Stream, *, max_header_bytes: int = Limits.max_header_bytes) -> None:
        self.stream = stream
        self.server_settings: H2ServerSettings | None = None
        self.goaway: str | None = None  # the server's GOAWAY, in words, once one came
        self.exchanges = 0
        self._failed = False
        self._send_closed = False  # a write found the connection closed by the server
        self._rules = FrameRules()
        self._pending = bytearray()  # the start of a frame not yet complete
        self._pending_t = 0
        self._first = b""
        # The frames of the running exchange (RFC 9113 §4.1), for the report.
        self._log: FrameLog | None = None
        self._clock: Callable[[], int] | None = None
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self._h2 = h2.connection.H2Connection(config)
        self._h2.local_settings = Settings(
            client=True,
            initial_values={
                SettingCodes.ENABLE_PUSH: 0,  # RFC 9113 §8.4: we want no pushed responses
                SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
                SettingCodes.MAX_HEADER_LIST_SIZE: max_header_bytes,
            },
        )
        self._h2.decoder.max_header_list_size = max_header_bytes
        # The connection preface (RFC 9113 §3.4) and a connection window update wait in h2's
        # buffer and leave with the first request, in one write.
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(_CONNECTION_WINDOW - 65535)

    @property
    def frames_so_far(self) -> H2Wire | None:
        """The frames of the last exchange, also when it failed: what came before a
        RST_STREAM or a GOAWAY, and our own GOAWAY after it."""
        return None if self._log is None else dataclasses.replace(self._log.wire)

    @property
    def reusable(self) -> bool:
        """True while a new stream may be opened: no GOAWAY, no failure (RFC 9113 §6.8)."""
        return not (self._failed or self.goaway or self.stream.closed)

    def close(self) -> None:
        self.stream.close()

    async def exchange(
        self, request: Request, clock: Callable[[], int], limits: Limits
    ) -> Exchange:
        if not self.reusable:
            raise RuntimeError("this HTTP/2 connection cannot carry another request")
        try:
            exchange = await self._exchange(request, clock, limits)
        except HttpError as e:
            self._failed = True
            if e.code != "http.connection_closed":
                await self._say_goaway(e)
            self.stream.close()
            raise
        except BaseException:
            self._failed = True
            self.stream.close()
            raise
        budget.current().waiting_for = None  # only a step that is waiting says what for
        self.exchanges += 1
        return exchange

    async def _exchange(
        self, request: Request, clock: Callable[[], int], limits: Limits
    ) -> Exchange:
        stream = self.stream
        self._log = None  # until this exchange's first frame: not the last one's
        headers = request_headers_h2(request)
        stream_id = self._h2.get_next_available_stream_id()
        self._rules.opened(stream_id)
        try:
            self._h2.send_headers(
                stream_id,
                [(n.encode(), v.encode()) for n, v in headers],
                end_stream=not request.body,
            )
        except h2.exceptions.ProtocolError as e:
            raise HttpError(
                "http.invalid_request", f"The request cannot be sent as HTTP/2: {e}."
            ) from None
        progress = _StreamProgress(stream_id)
        to_send = memoryview(request.body)
        log = self._log = FrameLog(stream_id)
        self._clock = clock

        sent0, received0 = stream.wire_sent, stream.wire_received
        t_start = clock()
        to_send = self._queue_body(stream_id, to_send)
        await self._flush()
        t_sent = clock()

        while progress.t_done is None:
            chunk = await self._recv(progress, limits, clock)
            self._feed(list(self._cut_frames(chunk, progress.t_last_read)), progress, limits)
            if to_send and progress.t_done is None:
                to_send = self._queue_body(stream_id, to_send)
                if not to_send:
                    t_sent = clock()
            await self._flush()
        assert progress.status is not None
        assert progress.t_headers is not None

        codings = content_codings(progress.headers)
        decoded = decode_content(
            bytes(progress.body),
            codings,
            max_decoded=limits.max_decoded_bytes,
            keep=limits.keep_body_bytes,
        )
        return Exchange(
            http_version="HTTP/2",
            request_headers=headers,
            status=progress.status,
            reason="",
            response_headers=progress.headers,
            t_request_start_ns=t_start,
            t_request_sent_ns=t_sent,
            t_first_byte_ns=(
                progress.t_headers if progress.t_first_byte is None else progress.t_first_byte
            ),
            t_headers_ns=progress.t_headers,
            t_body_done_ns=progress.t_done,
            body=decoded.kept,
            body_truncated=decoded.truncated,
            wire_bytes_sent=stream.wire_sent - sent0,
            wire_bytes_received=stream.wire_received - received0,
            body_bytes_encoded=len(progress.body),
            body_bytes_decoded=decoded.size,
            content_encoding=codings,
            header_bytes=progress.header_bytes,
            reusable=self.reusable,
            alt_svc=joined_field(progress.headers, "alt-svc") or progress.alt_svc_frame,
            stream_id=stream_id,
            informational=progress.informational,
            h2_wire=dataclasses.replace(
                log.wire, request_block=header_block(headers, log.sent_block),
                response_block=progress.response_block),
        )

    def _queue_body(self, stream_id: int, body: memoryview) -> memoryview:
        """Hand h2 as much of the request body as flow control allows (RFC 9113 §5.2); the
        rest waits for a WINDOW_UPDATE. Ends the stream with the last byte."""
        if not body:
            return body
        while body:
            size = min(
                len(body),
                self._h2.local_flow_control_window(stream_id),
                self._h2.max_outbound_frame_size,
            )
            if size <= 0:
                return body
            self._h2.send_data(stream_id, bytes(body[:size]), end_stream=size == len(body))
            body = body[size:]
        return body

    def _cut_frames(self, chunk: bytes, t_read: int) -> Iterator[_Frame]:
        if not self._pending:
            self._pending_t = t_read
        self._pending += chunk
        while len(self._pending) >= _FRAME_HEADER:
            length = int.from_bytes(self._pending[:3], "big")
            if length > self._h2.max_inbound_frame_size:
                # RFC 9113 §4.2: FRAME_SIZE_ERROR. h2 would buffer the whole frame before
                # checking (up to 16 MiB), so refuse it here, from its header alone.
                raise _malformed(
                    f"a frame of {length} bytes, over the {self._h2.max_inbound_frame_size} "
                    "we allow",
                    self._first,
                )
            end = _FRAME_HEADER + length
            if len(self._pending) < end:
                return
            data = bytes(self._pending[:end])
            del self._pending[:end]
            stream_id = int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
            yield _Frame(data, data[3], stream_id, self._pending_t)
            self._pending_t = t_read  # whatever follows arrived in this read

    def _feed(self, frames: list[_Frame], progress: _StreamProgress, limits: Limits) -> None:
        """The complete frames of one read. Runs of frames go to h2 in one call (its per-call
        cost is then paid per read, not per frame); a HEADERS or CONTINUATION frame of our
        stream goes alone, after what came before it, as its size and time are its own."""
        batch: list[bytes] = []
        pace = budget.current()
        log = self._log
        for frame in frames:
            pace.count("h2.frame")
            if log is not None:
                log.frame("received", frame.data, frame.t_start)
            if _is_control(frame, progress.stream_id):
                pace.count("h2.control")
            broken = self._rules.check(frame.data)
            if broken is not None:
                self._receive(b"".join(batch), progress, limits)  # what came before it
                raise HttpError("http.malformed",
                                f"The server broke the HTTP/2 protocol: it sent {broken}.")
            if frame.stream_id == progress.stream_id and frame.type in (_HEADERS,
                                                                        _CONTINUATION):
                self._receive(b"".join(batch), progress, limits)
                batch.clear()
                progress.head_bytes += len(frame.data)
                progress.block_bytes += block_payload(frame.type, frame.data[4],
                                                      frame.data[_FRAME_HEADER:])
                if progress.head_bytes > limits.max_header_bytes + _FRAME_HEADER * 64:
                    # Checked per frame: CONTINUATION frames could otherwise grow one
                    # header block without end before h2 ever decodes it.
                    raise _headers_too_large(limits)
                if progress.t_first_byte is None:
                    progress.t_first_byte = frame.t_start
                self._receive(frame.data, progress, limits)
            else:
                batch.append(frame.data)
        self._receive(b"".join(batch), progress, limits)

    def _receive(self, data: bytes, progress: _StreamProgress, limits: Limits) -> None:
        if not data:
            return
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.InvalidBodyLengthError as e:
            raise HttpError(
                "http.malformed",
                f"The server broke the HTTP/2 protocol: the response announced Content-Length "
                f"{e.expected_length} but its DATA frames carried {e.actual_length} bytes when "
                "the stream ended (RFC 9113 §8.1.1).",
            ) from None
        except h2.exceptions.StreamClosedError as e:
            raise HttpError(
                "http.malformed",
                f"The server broke the HTTP/2 protocol: it sent a frame on stream "
                f"{e.stream_id}, which was already closed (RFC 9113 §5.1).",
            ) from None
        except h2.exceptions.DenialOfServiceError as e:
            if "header block" in str(e):  # hpack's bound on the decoded head
                raise _headers_too_large(limits) from None
            raise _malformed(e, self._first) from None
        except h2.exceptions.ProtocolError as e:
            raise _malformed(e, self._first) from None
        for event in events:
            self._handle(event, progress, limits)

    def _handle(self, event: h2.events.Event, progress: _StreamProgress, limits: Limits) -> None:
        ours = getattr(event, "stream_id", None) == progress.stream_id
        t = progress.t_last_read
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self._record_settings(event, t)
        elif isinstance(event, h2.events.DataReceived):
            # Give the window back as we take the data (RFC 9113 §6.9), for any stream.
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if ours:
                progress.body += event.data
                if len(progress.body) > limits.max_body_bytes:
                    # Cancel the rest (RFC 9113 §8.1) unless this frame already ended it.
                    with contextlib.suppress(h2.exceptions.StreamClosedError):
                        self._h2.reset_stream(progress.stream_id, ErrorCodes.CANCEL)
                    raise HttpError(
                        "http.body_too_large",
                        f"The body passed the limit of {size_words(limits.max_body_bytes)}; "
                        f"reading stopped there and the stream was cancelled, "
                        f"{progress.point()}.",
                    )
        elif isinstance(event, h2.events.InformationalResponseReceived) and ours:
            status = _status(_fields(event.headers), self._first)
            if status == 101:
                raise _malformed("a 101 (Switching Protocols) response, which HTTP/2 does not "
                                 "have (RFC 9113 §8.6)", self._first)
            progress.informational.append(status)
            progress.head_bytes = progress.block_bytes = 0
            budget.current().count("http.1xx")
            if len(progress.informational) > limits.max_informational:
                raise HttpError(
                    "http.too_many_1xx",
                    f"The server sent more than {limits.max_informational} informational "
                    f"(1xx) responses on stream {progress.stream_id} without a final one; "
                    "reading stopped there.",
                )
        elif isinstance(event, h2.events.ResponseReceived) and ours:
            fields = _fields(event.headers)
            if sum(len(n) + len(v) + 32 for n, v in fields) > limits.max_header_bytes:
                raise _headers_too_large(limits)  # RFC 9113 §6.5.2: the 32 is per field
            progress.status = _status(fields, self._first)
            progress.headers = [(n, v) for n, v in fields if not n.startswith(":")]
            progress.t_headers = t
            progress.header_bytes = progress.head_bytes
            progress.response_block = header_block(event.headers, progress.block_bytes)
        elif isinstance(event, h2.events.StreamEnded) and ours:
            if progress.status is None:  # trailers-only is not a response
                raise _malformed("the stream ended without a response", self._first)
            progress.t_done = t
        elif isinstance(event, h2.events.StreamReset) and ours:
            if not event.remote_reset:
                # h2 reset the stream itself, answering a frame that broke a stream rule.
                why = ("the server's WINDOW_UPDATE pushed the stream's flow-control window "
                       "over 2^31-1 bytes (RFC 9113 §6.9.1)"
                       if event.error_code == ErrorCodes.FLOW_CONTROL_ERROR else
                       "the server broke a rule of the stream")
                raise HttpError(
                    "http.stream_reset",
                    f"We reset stream {progress.stream_id} (RST_STREAM, "
                    f"{_code_name(event.error_code)}) {progress.point()}: {why}.",
                )
            raise HttpError(
                "http.stream_reset",
                f"The server reset the stream (RST_STREAM, {_code_name(event.error_code)}) "
                f"{progress.point()}, so the response is incomplete.",
            )
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._on_goaway(event, progress)
        elif isinstance(event, h2.events.AlternativeServiceAvailable) and event.field_value:
            progress.alt_svc_frame = decode_field(event.field_value)

    def _on_goaway(self, event: h2.events.ConnectionTerminated, progress: _StreamProgress) -> None:
        code = _code_name(event.error_code)
        last = event.last_stream_id or 0
        self.goaway = f"GOAWAY ({code}, last stream {last})"
        if event.additional_data:
            self.goaway += f" saying {escaped(event.additional_data)}"
        if progress.t_done is not None:
            return  # our response is complete; the connection just won't be reused
        if last < progress.stream_id:
            raise HttpError(
                "http.goaway",
                f"The server sent {self.goaway} before it processed our request on stream "
                f"{progress.stream_id}; it may be sent again on a new connection "
                "(RFC 9113 §6.8).",
            )
        if event.error_code != ErrorCodes.NO_ERROR:
            raise HttpError(
                "http.goaway",
                f"The server closed the connection with {self.goaway} {progress.point()}.",
            )
        # A graceful shutdown that still covers our stream: read on (see module docstring).
        self._h2.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN

    def _record_settings(self, event: h2.events.RemoteSettingsChanged, t: int) -> None:
        if self.server_settings is None:
            self.server_settings = H2ServerSettings(t_received_ns=t)
        for code, change in event.changed_settings.items():
            name = code.name if isinstance(code, SettingCodes) else f"0x{code:x}"
            self.server_settings.announced[name] = change.new_value
        remote = self._h2.remote_settings
        self.server_settings.header_table_size = remote.header_table_size
        self.server_settings.max_concurrent_streams = remote.max_concurrent_streams
        self.server_settings.initial_window_size = remote.initial_window_size
        self.server_settings.max_frame_size = remote.max_frame_size
        self.server_settings.max_header_list_size = remote.max_header_list_size

    async def _recv(
        self, progress: _StreamProgress, limits: Limits, clock: Callable[[], int]
    ) -> bytes:
        budget.current().waiting_for = progress.waiting_for
        try:
            chunk = await self.stream.recv(_READ_SIZE, limits.read_timeout)
        except TimeoutError:
            raise HttpError(
                "http.read_timeout",
                f"The server sent nothing for {limits.read_timeout:g} s while we waited for "
                f"{progress.waiting_for()} on stream {progress.stream_id}.",
            ) from None
        except OSError as e:
            raise HttpError(
                "http.connection_closed",
                f"The connection broke {progress.point()}: {os_error_words(e)}.",
                detail=getattr(e, "detail", None) or str(e),
            ) from None
        progress.t_last_read = clock()
        if not chunk:
            what = f" after {self.goaway}" if self.goaway else ""
            raise HttpError(
                "http.connection_closed",
                f"The server closed the connection{closed_how(self.stream)}{what} "
                f"{progress.point()} on stream {progress.stream_id}, so that stream's "
                "response is cut short.",
            )
        if len(self._first) < 80:
            self._first += chunk[: 80 - len(self._first)]
        return chunk

    async def _say_goaway(self, error: HttpError) -> None:
        """RFC 9113 §6.8: send GOAWAY before closing, after any RST_STREAM already queued.
        Best effort and brief: after a failure the server may not be reading."""
        code = ErrorCodes.PROTOCOL_ERROR if error.code == "http.malformed" else ErrorCodes.NO_ERROR
        try:
            self._h2.close_connection(code)
            await asyncio.wait_for(self._flush(), _GOODBYE_TIMEOUT)
        except (h2.exceptions.ProtocolError, HttpError, TimeoutError):
            pass

    async def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and not self._send_closed:
            try:
                await self.stream.send(data)
                if self._log is not None and self._clock is not None:
                    self._log.sent(data, self._clock())
            except (BrokenPipeError, ConnectionResetError):
                # The server closed first. What it sent before closing is still to be read,
                # and the read says how far the response came: no error here.
                self._send_closed = True
            except OSError as e:
                raise HttpError(
                    "http.connection_closed",
                    f"The connection broke while sending: {os_error_words(e)}.",
                ) from None


def _fields(headers: list[Any]) -> list[tuple[str, str]]:
    return [
        (n if isinstance(n, str) else decode_field(n), v if isinstance(v, str) else decode_field(v))
        for n, v in headers
    ]


def _is_control(frame: _Frame, ours: int) -> bool:
    """A frame that costs work and moves no response forward (see _CONTROL_TYPES)."""
    if frame.type in _CONTROL_TYPES or frame.type not in _KNOWN_TYPES:
        return True
    length = len(frame.data) - _FRAME_HEADER
    if frame.type == _DATA:
        return length == 0 and not frame.data[4] & _END_STREAM
    if frame.type == _CONTINUATION:
        return length == 0
    return frame.type == _RST_STREAM and frame.stream_id != ours


def _status(fields: list[tuple[str, str]], first: bytes) -> int:
    """The :status of a response head: exactly three digits (RFC 9113 §8.3.2, RFC 9110 §15)."""
    value = next((v for n, v in fields if n == ":status"), None)
    if value is None:
        raise _malformed("a response head without the :status pseudo-header", first)
    if len(value) != 3 or not value.isascii() or not value.isdigit() or value[0] == "0":
        raise _malformed(f"a :status of {escaped(value.encode('utf-8', 'replace'))}, which "
                         "is not a three-digit status code", first)
    return int(value)


def _code_name(code: ErrorCodes | int | None) -> str:
    if isinstance(code, ErrorCodes):
        return f"{code.name} (0x{code.value:x})"
    return f"error code 0x{code or 0:x}"


def _headers_too_large(limits: Limits) -> HttpError:
    return HttpError(
        "http.headers_too_large",
        f"The response headers passed the limit of {size_words(limits.max_header_bytes)} "
        "(RFC 9113 §6.5.2 SETTINGS_MAX_HEADER_LIST_SIZE, which we announced).",
    )


def _malformed(why: object, first: bytes) -> HttpError:
    if first.startswith(b"HTTP/1."):
        return HttpError(
            "http.malformed",
            f"The server answered in HTTP/1.x, not HTTP/2: it began {escaped(first)}.",
        )
    return HttpError(
        "http.malformed",
        f"The server broke the HTTP/2 protocol: {library_words(str(why))}.",
        detail=f"the connection began {escaped(first)}",
    )
