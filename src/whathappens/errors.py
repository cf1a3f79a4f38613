"""Errors that name the step they happened in.

Every failure the journey can meet is a ``JourneyError``: which step (``url``, ``dns``, ``tcp``,
``tls``, ``http``, ``redirect``, ``journey``), a stable ``code`` (``dns.nxdomain``), a sentence
in plain words that says what happened and what it means, and the process exit code of its
class. Lower layers raise them; the runner attaches them to the failing span and still reports
everything measured before it.

    JourneyError
    ├── UrlError            exit 3   malformed URL, unsupported scheme, bad host or port
    ├── DnsError            exit 4   NXDOMAIN, NODATA, SERVFAIL, REFUSED, resolver timeout
    ├── ConnectError        exit 5   refused, unreachable, connect timeout
    │   └── QuicConnectError exit 5  QUIC: no answer on UDP, handshake timeout, closed (step "quic")
    ├── TlsError            exit 6   handshake failure, certificate problems
    │   └── QuicTlsError    exit 6   the same, in QUIC's handshake (step "quic")
    ├── HttpError           exit 7   malformed response, size limits, decoding
    ├── RedirectError       exit 8   too many redirects, redirect loop, bad Location
    ├── JourneyTimeout      exit 9   the whole journey ran out of time (--max-time)
    ├── LimitExceeded       exit of the step it ran out in: a budget (CPU, memory, counts)
    ├── InternalError       exit 10  a bug of ours, reported without a traceback
    └── TargetRefused       exit 13  --only-public / serve --public: a private or reserved address
"""

from __future__ import annotations

from whathappens.render.visible import visible


class JourneyError(Exception):
    step: str = "journey"
    exit_code: int = 10

    def __init__(self, code: str, message: str, *, detail: str | None = None) -> None:
        # A message often quotes the peer (a Location, a header, a name): whatever carried
        # it, no control character of the peer's reaches a report raw (render/visible.py).
        message = visible(message)
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = None if detail is None else visible(detail)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "step": self.step,
            "code": self.code,
            "message": self.message,
            "exit_code": self.exit_code,
        }
        if self.detail:
            out["detail"] = self.detail
        return out


class UrlError(JourneyError):
    step = "url"
    exit_code = 3


class DnsError(JourneyError):
    step = "dns"
    exit_code = 4


class ConnectError(JourneyError):
    step = "tcp"
    exit_code = 5


class TlsError(JourneyError):
    step = "tls"
    exit_code = 6


class QuicConnectError(ConnectError):
    """QUIC could not set up the connection: the class of a TCP connect failure (exit 5),
    in the step that replaces TCP + TLS."""

    step = "quic"


class QuicTlsError(TlsError):
    """QUIC's TLS handshake failed (a certificate, a TLS alert): the class of TLS (exit 6)."""

    step = "quic"


class HttpError(JourneyError):
    step = "http"
    exit_code = 7


class RedirectError(JourneyError):
    step = "redirect"
    exit_code = 8


class JourneyTimeout(JourneyError):
    step = "journey"
    exit_code = 9


class InternalError(JourneyError):
    step = "journey"
    exit_code = 10


# The exit code of a failure in each step (LimitExceeded takes the step it happened in).
STEP_EXIT_CODES = {"url": 3, "dns": 4, "tcp": 5, "tls": 6, "http": 7, "redirect": 8,
                   "journey": 9, "quic": 5}


class LimitExceeded(JourneyError):
    """A budget ran out (CPU, memory, frames, records, chunks, 1xx, DNS queries: see
    ``whathappens.net.budget``). It is reported in the step that was running, with that
    step's exit code: the peer of that step made us spend it."""

    def __init__(self, code: str, message: str, *, step: str = "journey",
                 detail: str | None = None) -> None:
        super().__init__(code, message, detail=detail)
        self.step = step
        self.exit_code = STEP_EXIT_CODES.get(step, 9)


class TargetRefused(JourneyError):
    """The address is one a public fetcher must not reach (see ``whathappens.guard``)."""

    step = "tcp"
    exit_code = 13


# The process exit codes of the commands, in one place (the journey's come from its errors).
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERNAL = 10
EXIT_DEMO_FAILED = 11   # demo / serve: the demo internet could not start
EXIT_LAB_FAILED = 12    # lab: could not install, start or do what was asked
EXIT_REFUSED = 13
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT

EXIT_CODES: dict[int, str] = {
    0: "the journey completed and a response arrived (any HTTP status)",
    2: "command-line usage error",
    3: "URL: malformed, unsupported scheme, bad host or port",
    4: "DNS: the name could not be resolved (NXDOMAIN, NODATA, SERVFAIL, timeout)",
    5: "TCP: could not connect (refused, unreachable, timeout)",
    6: "TLS: handshake or certificate verification failed",
    7: "HTTP: malformed or oversized response, or content that would not decode",
    8: "redirects: too many, a loop, or an unusable Location",
    9: "the whole journey ran out of time (--max-time)",
    10: "internal error in whathappens (a bug: please report it)",
    11: "demo: the demo internet could not start",
    12: "lab: could not install or start, or not running",
    13: "refused: the target is a private or reserved address (--only-public)",
}
