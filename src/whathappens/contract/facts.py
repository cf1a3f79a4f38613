"""The facts of each span kind: what a driver measured, as the JSON's ``attrs`` carries it.

One dataclass per span name (``SPAN_FACTS`` maps names to classes). Drivers fill them
(``journey.span(kind, ..., facts=TcpConnectFacts(...))`` returns a ``Span[TcpConnectFacts]``
whose ``facts`` mypy checks on every write); renderers read them back from the JSON through
``contract.document.read_journey`` (so a renamed field fails mypy in the reader, and the
generated schema test in CI). Field names are the JSON keys; every field is written, ``None``
as ``null``. Times are ms since the journey's t0 unless a name says ``_ns``.

All classes are keyword-only: a span is often opened before its facts are known, so every
field has a default and drivers fill it in as the step goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def doc(text: str) -> dict[str, str]:
    """A field's description in the generated schema."""
    return {"doc": text}


@dataclass(kw_only=True)
class Facts:
    """What every span may carry."""

    # Set when the span was cut short (cancelled, a journey timeout): its end is where it
    # stopped, not where its work finished. Omitted from the JSON when False.
    interrupted: bool = field(default=False, metadata={"omit_default": True})


# ------------------------------------------------------------------------------ URL (step 0)
@dataclass(kw_only=True)
class UrlFacts(Facts):
    """How the address bar took the URL apart (WHATWG URL Standard, RFC 3986)."""

    input: str = ""
    original: str = ""
    url: str = ""
    scheme: str = ""
    scheme_assumed: bool = False
    username: str | None = None
    password: str | None = field(default=None, metadata=doc("'***' when one was given"))
    host: str = ""
    host_unicode: str | None = None
    host_kind: str = field(default="", metadata=doc("domain | ipv4 | ipv6"))
    host_spelled: str | None = field(
        default=None, metadata=doc("the host as typed, when it is not how it was read"))
    port: int = 0
    port_explicit: bool = False
    authority: str = ""
    path: str = ""
    query: str | None = None
    request_target: str = ""
    fragment: str | None = None
    fragment_sent: bool = False
    origin: tuple[str, str, int] | None = None
    public_suffix: str | None = None
    registrable_domain: str | None = None
    public_suffix_note: str | None = None
    hsts_preloaded: bool = False
    upgraded_from_http: bool = False


@dataclass(kw_only=True)
class PrepareFacts(Facts):
    """Code loaded before the network steps, so that their times measure the network."""

    loaded: list[str] = field(default_factory=list)
    note: str = ""


@dataclass(kw_only=True)
class LegFacts(Facts):
    """One request of the journey (the first, or one after a redirect)."""

    index: int = 0
    url: str = ""
    method: str = "GET"
    origin: str = ""
    connection: str | None = field(default=None, metadata=doc("new | reused"))
    reused_from_tcp_span: int | None = None


@dataclass(kw_only=True)
class RedirectFacts(Facts):
    """A redirect that could not be followed (the span carries the error)."""


@dataclass(kw_only=True)
class GuardFacts(Facts):
    """--only-public / serve --public: which resolved addresses may be reached."""

    refused: dict[str, str] = field(default_factory=dict, metadata=doc("address → why"))
    allowed: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------- DNS
@dataclass(kw_only=True)
class HostCacheHit:
    """A lookup answered from the journey's own host cache, as a browser's host cache
    answers a name it resolved moments ago (its entry lives for the answer's TTL)."""

    dns_span_id: int = field(default=0, metadata=doc("the DNS step that looked it up"))
    ttl_s: int = field(default=0, metadata=doc("the entry's lifetime"))
    ttl_source: str = field(default="", metadata=doc(
        "where the lifetime comes from: the answer's TTL, or 60 s for a system answer "
        "(getaddrinfo gives no TTL; Chromium's host cache keeps those 60 s)"))
    age_ms: float = field(default=0.0, metadata=doc("since the entry was stored"))
    ttl_left_s: int = 0


@dataclass(kw_only=True)
class DnsFacts(Facts):
    """The DNS step: the views that ran and the addresses of the one in use."""

    host: str = ""
    view_used: str | None = field(
        default=None, metadata=doc("system | resolver | walk | host_cache | none"))
    addresses: list[str] = field(default_factory=list)
    https_records: list[str] = field(default_factory=list)
    note: str | None = None
    host_cache: HostCacheHit | None = field(
        default=None, metadata={"omit_default": True,
                                "doc": "answered from the journey's host cache"})


@dataclass(kw_only=True)
class DnsSystemFacts(Facts):
    """getaddrinfo, as most programs resolve a name."""

    hosts_file: str | None = None
    hosts_file_hit: bool = False
    hosts_file_addresses: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    source: str | None = None


@dataclass(kw_only=True)
class DnsResolverFacts(Facts):
    """Questions to one recursive resolver (RFC 1034 §2.4)."""

    resolver: str | None = None
    addresses: list[str] = field(default_factory=list)
    cname_chain: list[str] | None = None
    https_records: list[str] = field(default_factory=list)
    first_ttl: int | None = None
    repeat_ttl: int | None = field(
        default=None, metadata=doc("the TTL when asked again: lower means it came from cache"))


@dataclass(kw_only=True)
class DnsQueryFacts(Facts):
    """One question to the resolver and its answer (RFC 1035 §4)."""

    qname: str = ""
    qtype: str = ""
    purpose: str = ""
    rcode: str | None = None
    records: list[str] = field(default_factory=list)
    ttl: int | None = None
    cname_chain: list[str] = field(default_factory=list)
    recursion_available: bool | None = None
    authenticated_data: bool | None = None
    answer: list[str] = field(default_factory=list)
    transport: str | None = None
    tcp_retry: bool | None = None
    bytes_sent: int | None = None
    bytes_received: int | None = None
    local: str | None = None


@dataclass(kw_only=True)
class DnsWalkFacts(Facts):
    """The iterative walk from the root, as a recursive resolver does it."""

    root_hints: str = ""
    port: int = 53
    addresses: list[str] = field(default_factory=list)
    cname_chain: list[str] = field(default_factory=list)
    https_records: list[str] = field(default_factory=list)
    queries: int | None = None


@dataclass(kw_only=True)
class DnsWalkQuestionFacts(Facts):
    """One question (A, AAAA, HTTPS) walked down the hierarchy."""

    qname: str = ""
    qtype: str = ""
    outcome: str | None = field(default=None,
                                metadata=doc("answer | nxdomain | nodata | servfail"))
    final_name: str | None = None
    records: list[str] = field(default_factory=list)
    ttl: int | None = None
    cname_chain: list[str] = field(default_factory=list)
    message: str | None = None
    code: str | None = None


@dataclass(kw_only=True)
class DnsHopFacts(Facts):
    """One query of the walk to one name server, and what it said."""

    server: str = ""
    address: str = ""
    zone: str = ""
    qname: str = ""
    qtype: str = ""
    transport: str = "udp"
    depth: int = 0
    purpose: str = ""
    kind: str = field(default="", metadata=doc("referral | answer | cname | nxdomain | nodata "
                                               "| error | timeout"))
    rcode: str | None = None
    authoritative: bool = False
    referral_zone: str | None = None
    referral_ns: list[str] = field(default_factory=list)
    glue: dict[str, list[str]] = field(default_factory=dict)
    glueless: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    cname_target: str | None = None
    note: str | None = None


@dataclass(kw_only=True)
class DnsRecursionFacts(Facts):
    """The recursive resolver's own work for this lookup (the lab's Unbound): the queries it
    sent upstream, as the lab's authoritative servers logged them. DNS carries no trace
    context, so they are matched to the journey by name and time window."""

    resolver: str = ""
    name: str = ""
    upstream_queries: int = 0
    from_cache: bool = field(default=False, metadata=doc(
        "no upstream query in the window: Unbound answered from its cache"))
    servers: list[str] = field(default_factory=list)
    flushed: str | None = field(default=None, metadata=doc(
        "what was flushed from Unbound's cache before the journey (--lab-cold)"))
    other_queries: list[str] = field(default_factory=list, metadata=doc(
        "queries Unbound sent in the window for names outside this name's chain"))
    repeat_upstream: int | None = field(default=None, metadata=doc(
        "upstream queries received while the repeated A question waited: 0 means Unbound "
        "answered it from its cache"))
    matched_by: str = ""
    clock: str = ""


@dataclass(kw_only=True)
class DnsUpstreamFacts(Facts):
    """One query the resolver sent to a name server, from the server's log."""

    server: str = ""
    role: str = field(default="", metadata=doc("root | tld | authoritative"))
    client: str | None = None
    qname: str = ""
    qtype: str = ""
    transport: str = "udp"
    kind: str = field(default="", metadata=doc("answer | referral | nodata | nxdomain | ..."))
    rcode: str | None = None
    authoritative: bool = False
    records: list[str] = field(default_factory=list)
    server_ms: float | None = field(default=None, metadata=doc(
        "received → answer ready, by the server's wall clock (ns stamps)"))


# --------------------------------------------------------------------------------- TCP
@dataclass(kw_only=True)
class TcpInfo:
    """The kernel's TCP_INFO (Linux ``struct tcp_info``), in plain units."""

    state: str
    retransmits: int
    rto_ms: float
    snd_mss: int
    rcv_mss: int
    unacked: int
    lost: int
    pmtu: int
    rtt_ms: float = field(metadata=doc("smoothed RTT"))
    rttvar_ms: float
    snd_ssthresh: int
    snd_cwnd: int = field(metadata=doc("congestion window, in segments"))
    advmss: int
    total_retrans: int
    bytes_acked: int
    bytes_received: int
    segs_out: int
    segs_in: int


@dataclass(kw_only=True)
class Segment:
    """One TCP segment of the handshake as the packet capture saw it."""

    segment: str
    from_: str = field(metadata={"json": "from"})
    to: str
    seq: int
    ack: int | None
    flags: list[str]
    window: int
    options: dict[str, int | bool | str] = field(
        metadata=doc("TCP options by name (mss, window_scale, sack_permitted, timestamp…)"))
    payload_bytes: int
    t_ms: float | None


@dataclass(kw_only=True)
class CaptureStatus:
    captured: bool
    how: str | None = None
    why: str | None = None


@dataclass(kw_only=True)
class TcpConnectFacts(Facts):
    """One connection attempt to one address (Happy Eyeballs may race several)."""

    address: str = ""
    port: int = 0
    family: str = ""
    outcome: str | None = field(default=None,
                                metadata=doc("connected, an error code, or abandoned"))
    local: str | None = None
    remote: str | None = None
    tcp_info: TcpInfo | None = None


@dataclass(kw_only=True)
class TcpFacts(Facts):
    """The TCP step: the candidates, the attempts, and the connection that won."""

    candidates: list[str] = field(default_factory=list)
    port: int = 0
    happy_eyeballs: bool = False
    address: str | None = None
    local: str | None = None
    remote: str | None = None
    family: str | None = None
    attempts: int | None = None
    tcp_info_end: TcpInfo | None = field(
        default=None, metadata=doc("TCP_INFO after the last exchange on the connection"))
    # Only with --capture: left out of the JSON otherwise.
    capture: CaptureStatus | None = field(default=None, metadata={"omit_default": True})
    handshake_segments: list[Segment] | None = field(default=None,
                                                     metadata={"omit_default": True})
    segments_seen: list[Segment] | None = field(default=None, metadata={"omit_default": True})


# --------------------------------------------------------------------------------- TLS
@dataclass(kw_only=True)
class TlsMessage:
    """One handshake message (or alert, or ChangeCipherSpec) as OpenSSL saw it."""

    direction: str = field(metadata=doc("sent | received"))
    t_ms: float
    type: str
    bytes: int | None = None


@dataclass(kw_only=True)
class Certificate:
    """What one certificate of the chain says (RFC 5280)."""

    subject: str
    subject_cn: str | None
    issuer: str
    issuer_cn: str | None
    serial: str
    san_dns: list[str]
    san_ip: list[str]
    not_before: str | None
    not_after: str | None
    days_left: int | None
    key: str
    signature_algorithm: str
    is_ca: bool
    self_signed: bool
    sct_count: int
    sha256: str
    unreadable: str | None = field(
        default=None, metadata=doc("why the certificate's fields could not be read"))


@dataclass(kw_only=True)
class ChainVerification:
    ok: bool
    code: str
    reason: str
    by: str
    openssl: str | None = None


@dataclass(kw_only=True)
class TlsFacts(Facts):
    """The TLS handshake (RFC 8446, RFC 5246) and the certificate chain."""

    session_offered: bool = False
    sni: str | None = None
    alpn_offered: list[str] = field(default_factory=list)
    verification: str = ""
    context_setup_ms: float | None = None
    server_first_flight_ms: float | None = None
    messages: list[TlsMessage] = field(default_factory=list)
    version: str | None = None
    cipher: str | None = None
    cipher_bits: int | None = None
    alpn: str | None = None
    session_reused: bool | None = None
    group: str | None = None
    hello_retry_request: bool | None = None
    chain: list[Certificate] | None = None
    chain_error: str | None = None
    chain_verification: ChainVerification | None = None


# -------------------------------------------------------------------------------- HTTP
@dataclass(kw_only=True)
class WireFrame:
    """One HTTP/2 frame of the exchange as it crossed the connection (RFC 9113 §4.1)."""

    direction: str = field(default="", metadata=doc("sent | received"))
    type: str = field(default="", metadata=doc("DATA, HEADERS, SETTINGS… or 0xNN"))
    stream_id: int = 0
    flags: list[str] = field(default_factory=list)
    length: int = field(default=0, metadata=doc("the payload's octets (the 9-octet frame "
                                                "header not counted)"))
    t_ns: int = field(default=0, metadata=doc(
        "sent: when the write that carried it returned; received: when its first byte "
        "arrived (the read that brought it returned); ns since t0"))
    detail: str | None = field(default=None, metadata=doc(
        "SETTINGS values, a WINDOW_UPDATE's increment, a GOAWAY's or RST_STREAM's code"))


@dataclass(kw_only=True)
class HeaderBlock:
    """A header block's size before and after HPACK (RFC 7541)."""

    fields: int = 0
    octets: int = field(default=0, metadata=doc("names + values, raw octets"))
    list_size: int = field(default=0, metadata=doc(
        "RFC 9113 §6.5.2's size: names + values + 32 per field"))
    encoded: int = field(default=0, metadata=doc(
        "HPACK's output: the HEADERS + CONTINUATION payloads (frame headers not counted)"))
    ratio: float | None = field(default=None, metadata=doc("encoded / octets"))


@dataclass(kw_only=True)
class H2Wire:
    """HTTP/2 on the wire for one exchange: every frame sent and received from the request's
    first write to the response's end, at most ``kept`` of them (the first ones)."""

    frames: list[WireFrame] = field(default_factory=list)
    total: int = 0
    dropped: int = field(default=0, metadata=doc("frames seen but not kept (over the cap)"))
    request_block: HeaderBlock | None = None
    response_block: HeaderBlock | None = None


@dataclass(kw_only=True)
class WireChunk:
    """One chunk of a chunked body, as it arrived (RFC 9112 §7.1)."""

    size: int = 0
    t_ns: int = field(default=0, metadata=doc("when the read that brought its first byte "
                                              "returned; ns since t0"))


@dataclass(kw_only=True)
class ChunkedWire:
    """An HTTP/1.1 chunked body as it arrived: each chunk's size and arrival, the first
    ``kept`` of them."""

    chunks: list[WireChunk] = field(default_factory=list)
    total: int = 0
    dropped: int = field(default=0, metadata=doc("chunks seen but not kept (over the cap)"))
    body_bytes: int = 0


@dataclass(kw_only=True)
class HttpFacts(Facts):
    """One request and its response (RFC 9110; RFC 9112 or RFC 9113 on the wire)."""

    protocol: str = ""
    alpn_selected: str | None = field(
        default=None, metadata=doc("--http2 refused: what the server chose in ALPN instead"))
    traceparent: str | None = None
    http_version: str | None = None
    request_headers: list[tuple[str, str]] = field(default_factory=list)
    status: int | None = None
    reason: str | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    informational: list[int] = field(default_factory=list)
    t_request_start_ns: int | None = None
    t_request_sent_ns: int | None = None
    t_first_byte_ns: int | None = None
    t_headers_ns: int | None = None
    t_body_done_ns: int | None = None
    wire_bytes_sent: int | None = None
    wire_bytes_received: int | None = None
    header_bytes: int | None = None
    body_bytes_encoded: int | None = None
    body_bytes_decoded: int | None = None
    body_truncated: bool | None = None
    content_encoding: list[str] = field(default_factory=list)
    body_excerpt: str | None = None
    reusable: bool | None = None
    alt_svc: str | None = None
    stream_id: int | None = None
    send_ms: float | None = None
    wait_ms: float | None = None
    receive_ms: float | None = None
    connection_legs: int | None = None
    inside: list[str] | None = field(
        default=None, metadata=doc("the lab tiers this request went through, in order"))
    h2_wire: H2Wire | None = field(
        default=None, metadata={"omit_default": True,
                                "doc": "HTTP/2: the exchange's frames and HPACK sizes"})
    chunked: ChunkedWire | None = field(
        default=None, metadata={"omit_default": True,
                                "doc": "HTTP/1.1 chunked: the chunks as they arrived"})
    h3_wire: H2Wire | None = field(
        default=None, metadata={"omit_default": True,
                                "doc": "HTTP/3: the exchange's frames (RFC 9114 §7) and QPACK "
                                       "sizes (RFC 9204); a block's 'encoded' is the HEADERS "
                                       "frame's payload"})


@dataclass(kw_only=True)
class HttpPhaseFacts(Facts):
    """http.send / http.wait / http.receive: the exchange's three phases."""


@dataclass(kw_only=True)
class RevalidateFacts(Facts):
    """After the journey, its final request made again as a cache would revalidate a stored
    copy: with If-None-Match / If-Modified-Since (RFC 9110 §13.1, RFC 9111 §4.3.1). Its
    children are the connection's steps when a new one was needed, and the ``http`` span."""

    url: str = ""
    outcome: str = field(default="", metadata=doc("made | skipped | failed"))
    why: str | None = field(default=None, metadata=doc("why it was skipped or failed"))
    conditional: list[tuple[str, str]] = field(
        default_factory=list, metadata=doc("the conditional fields added to the request"))
    connection: str | None = field(default=None, metadata=doc("reused | new"))
    connection_why: str | None = field(
        default=None, metadata=doc("why that connection: the journey's was still open, or "
                                   "not (and then to the address it had used, without DNS)"))
    reused_from_tcp_span: int | None = None


# -------------------------------------------------------------------------------- QUIC
# HTTP/3 runs over QUIC (RFC 9000) on UDP: one step replaces TCP + TLS, because QUIC carries
# the TLS 1.3 handshake in its own CRYPTO frames (RFC 9001). Times are on the journey's clock.
@dataclass(kw_only=True)
class QuicPacket:
    """One QUIC packet as aioquic built or read it (RFC 9000 §17)."""

    direction: str = field(default="", metadata=doc("sent | received"))
    t_ms: float = field(default=0.0, metadata=doc(
        "sent: when its datagram was handed to the kernel (send() called); received: when its "
        "datagram arrived (the kernel's receive stamp, SO_TIMESTAMPNS; when read where there "
        "is none); ms since t0"))
    space: str = field(default="", metadata=doc(
        "initial | handshake | 0RTT | 1RTT | retry | version_negotiation: the packet type, "
        "hence its number space (RFC 9000 §12.3)"))
    number: int | None = field(default=None, metadata=doc("the packet number (none in a Retry)"))
    bytes: int = field(default=0, metadata=doc("the packet's length on the wire"))
    datagram: int = field(default=0, metadata=doc("which UDP datagram carried it (1, 2, …)"))
    datagram_bytes: int = 0
    coalesced: bool = field(default=False, metadata=doc(
        "it shared its datagram with other packets (RFC 9000 §12.2)"))
    frames: list[str] = field(default_factory=list, metadata=doc(
        "its frames' types, in order (crypto, ack, padding, stream, handshake_done…)"))
    read_ms: float | None = field(default=None, metadata={"omit_default": True, "doc": (
        "received: when our event loop read its datagram, when later than it arrived (the "
        "loop was busy, e.g. aioquic with the datagram before); ms since t0")})


@dataclass(kw_only=True)
class QuicPath:
    """QUIC's own view of the path, from aioquic's loss recovery (RFC 9002): the analogue
    of TCP_INFO."""

    t_ms: float = field(default=0.0, metadata=doc("when it was read, ms since t0"))
    smoothed_rtt_ms: float | None = None
    rttvar_ms: float | None = None
    min_rtt_ms: float | None = None
    latest_rtt_ms: float | None = None
    cwnd_bytes: int = field(default=0, metadata=doc("the congestion window"))
    bytes_in_flight: int = 0
    packets_sent: int = 0
    packets_received: int = 0
    packets_lost: int = field(default=0, metadata=doc(
        "declared lost by loss detection, and the packets whose CRYPTO data aioquic sends "
        "again at a probe timeout (it declares those lost then; RFC 9002 §6.2 would not)"))
    pto_count: int = field(default=0, metadata=doc(
        "probe timeouts fired so far on the connection (RFC 9002 §6.2): each sends a probe "
        "that repeats data (counted as they fire; aioquic's own counter is reset by every "
        "acknowledgement)"))


@dataclass(kw_only=True)
class QuicProbeTimeout:
    """A probe timeout that fired (RFC 9002 §6.2): nothing acknowledged what we sent within
    the PTO, so data not yet acknowledged is sent again in a probe."""

    t_ms: float = field(default=0.0, metadata=doc("when the timer fired, ms since t0"))
    waited_ms: float = field(default=0.0, metadata=doc(
        "from our last ack-eliciting packet to the firing (the PTO, doubled for each earlier "
        "timeout in a row, RFC 9002 §6.2.1); measured on aioquic's clock, the event loop's"))
    pto_ms: float | None = field(default=None, metadata=doc(
        "the PTO period aioquic computed, before doubling: twice the initial RTT (100 ms) "
        "before any RTT sample, else smoothed_rtt + max(4 × rttvar, 1 ms) (RFC 9002 §6.2.1)"))
    backoff: int = field(default=1, metadata=doc(
        "how many timeouts in a row this is (1: the first; each doubles the wait)"))
    resent: list[str] = field(default_factory=list, metadata=doc(
        "the packets whose data is sent again, as 'space number' (e.g. 'initial 0')"))


@dataclass(kw_only=True)
class QuicClose:
    """A CONNECTION_CLOSE (RFC 9000 §19.19), either side's."""

    by: str = field(default="", metadata=doc("server | client"))
    error_code: int = 0
    error_space: str = field(default="", metadata=doc(
        "transport (QUIC's codes, RFC 9000 §20.1; 0x100-0x1ff: a TLS alert, RFC 9001 §4.8) | "
        "application (HTTP/3's codes, RFC 9114 §8.1)"))
    error_name: str | None = None
    frame_type: int | None = None
    reason: str = ""


@dataclass(kw_only=True)
class QuicFacts(Facts):
    """The QUIC handshake (RFC 9000, RFC 9001): from our first Initial to our Finished."""

    address: str | None = None
    port: int = 0
    local: str | None = None
    remote: str | None = None
    family: str | None = None
    version: str | None = field(default=None, metadata=doc("e.g. 'QUIC v1 (0x00000001)'"))
    sni: str | None = None
    alpn_offered: list[str] = field(default_factory=list)
    alpn: str | None = None
    tls_version: str | None = field(default=None, metadata=doc("always TLS 1.3 (RFC 9001 §4.2)"))
    cipher: str | None = None
    group: str | None = None
    verification: str = ""
    messages: list[TlsMessage] = field(default_factory=list, metadata=doc(
        "the TLS handshake messages inside the CRYPTO frames, when aioquic handled them"))
    chain: list[Certificate] | None = None
    chain_verification: ChainVerification | None = None
    our_cid: str | None = field(default=None, metadata=doc("our source connection ID, hex"))
    server_cid: str | None = field(default=None, metadata=doc(
        "the connection ID the server chose, hex: packets to it carry this one"))
    original_dcid: str | None = field(default=None, metadata=doc(
        "the random destination ID of our first Initial, from which the Initial keys come "
        "(RFC 9001 §5.2)"))
    retry: bool = field(default=False, metadata=doc(
        "the server asked for address validation with a Retry (RFC 9000 §8.1.2): one more "
        "round trip before the handshake"))
    retry_token_bytes: int | None = None
    initial_timeout_ms: float | None = field(default=None, metadata=doc(
        "how long we would wait for any answer to our Initial"))
    client_hello_build_ms: float | None = field(default=None, metadata=doc(
        "aioquic building the ClientHello and our first Initial (key shares, Initial keys) "
        "before it left: our own work, before the step"))
    server_first_ms: float | None = field(default=None, metadata=doc(
        "when the server's first datagram arrived, ms since t0"))
    handshake_done_ms: float | None = field(default=None, metadata=doc(
        "when the server's HANDSHAKE_DONE arrived (the handshake confirmed, RFC 9001 §4.1.2)"
        ", ms since t0; after the step, which ends when our Finished left"))
    local_transport_parameters: dict[str, object] = field(default_factory=dict)
    server_transport_parameters: dict[str, object] = field(default_factory=dict)
    packets: list[QuicPacket] = field(default_factory=list, metadata=doc(
        "every packet of the connection, the first ones up to a cap"))
    packets_total: int = 0
    packets_dropped: int = field(default=0, metadata=doc("packets seen but not kept (the cap)"))
    datagrams_sent: int = 0
    datagrams_received: int = 0
    udp_bytes_sent: int = 0
    udp_bytes_received: int = 0
    path_after_handshake: QuicPath | None = None
    path_end: QuicPath | None = field(default=None, metadata=doc(
        "after the last exchange on the connection"))
    probe_timeouts: list[QuicProbeTimeout] = field(default_factory=list, metadata=doc(
        "each probe timeout that fired during the handshake and the exchanges, bounded"))
    close: QuicClose | None = None
    session_offered: bool = field(default=False, metadata=doc(
        "--resume: a session ticket from the first connection was offered"))
    session_resumed: bool | None = None
    early_data: str | None = field(default=None, metadata=doc(
        "--resume: sent (the request rode in 0-RTT packets) then accepted | rejected; or "
        "why it was not offered"))
    race: str | None = field(default=None, metadata={
        "omit_default": True, "doc": "--http3=auto: won | lost (TCP + TLS were ready first) | "
        "failed (the request fell back to TCP)"})
    advertised_by: str | None = field(default=None, metadata={
        "omit_default": True, "doc": "--http3=auto: why HTTP/3 was tried (the HTTPS record, "
        "an earlier Alt-Svc)"})


@dataclass(kw_only=True)
class QuicFlightFacts(Facts):
    """One flight of the handshake: the datagrams one side sent before waiting for the other
    (RFC 9001 §4.1)."""

    flight: str = field(default="", metadata=doc(
        "client_initial | retry | server_handshake | client_ack | client_finished | probe "
        "(what we sent again at a probe timeout, RFC 9002 §6.2.4)"))
    direction: str = field(default="", metadata=doc("sent | received"))
    datagrams: int = 0
    packets: int = 0
    bytes: int = field(default=0, metadata=doc("UDP payload bytes"))
    spaces: list[str] = field(default_factory=list, metadata=doc("the packet types in it"))
    tls_messages: list[str] = field(default_factory=list)


# -------------------------------------------------------------------------------- lab
@dataclass(kw_only=True)
class DbPlanFacts:
    """One plan of a query as ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`` reported it."""

    node: str | None = field(default=None, metadata=doc("the top plan node: Index Scan, …"))
    relation: str | None = None
    index: str | None = None
    startup_cost: float | None = field(default=None, metadata=doc(
        "the planner's estimate, in its own cost units (seq_page_cost = 1), not time"))
    total_cost: float | None = None
    plan_rows: int | None = None
    actual_rows: int | None = None
    planning_ms: float | None = None
    execution_ms: float | None = None
    shared_hit: int | None = field(default=None, metadata=doc(
        "8 kB pages found in PostgreSQL's shared buffers"))
    shared_read: int | None = field(default=None, metadata=doc(
        "pages read from the kernel (its page cache or the disk)"))
    tree: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class DbExplainFacts:
    """The request's main query, step by step (lab, request header ``X-Explain: 1``): the
    plan PostgreSQL chose, the one it rejected (really run with the chosen access method
    switched off), the index's B-tree depth and pg_stat_statements for the statement."""

    clock: str = "PostgreSQL's own timers (EXPLAIN ANALYZE), on the server that ran the query"
    chosen: DbPlanFacts | None = None
    rejected: DbPlanFacts | None = None
    rejected_by: list[str] = field(default_factory=list, metadata=doc(
        "the planner settings switched off (SET LOCAL) to make it show the other plan"))
    btree_index: str | None = None
    btree_level: int | None = field(default=None, metadata=doc(
        "pageinspect's bt_metap level: 0 when the root page is the leaf"))
    btree_depth: int | None = field(default=None, metadata=doc(
        "index pages a lookup reads, root to leaf (level + 1)"))
    stmt_queryid: str | None = None
    stmt_calls: int | None = field(default=None, metadata=doc(
        "pg_stat_statements: executions of this statement on this server since its stats "
        "were reset"))
    stmt_mean_ms: float | None = None
    stmt_rows: int | None = None
    errors: dict[str, str] = field(default_factory=dict, metadata=doc(
        "a step that could not run, and PostgreSQL's reason"))


@dataclass(kw_only=True)
class HopConnectionFacts:
    """One hop's connection as the program at one end logged it: new or reused."""

    hop: str = field(metadata=doc("from → to, e.g. 'edge → lb'"))
    new: bool | None = field(default=None, metadata=doc("None: the logs do not say"))
    connect_ms: float | None = field(default=None, metadata=doc(
        "the connect as the connecting program timed it; None when it did not connect"))
    requests: int | None = field(default=None, metadata=doc(
        "this request's number on the connection (1: its first)"))
    age_ms: float | None = field(default=None, metadata=doc(
        "how long the connection had been open when this request used it"))
    evidence: str = field(default="", metadata=doc("which log fields or counters say so"))


@dataclass(kw_only=True)
class ServerFacts(Facts):
    """A span from a lab tier's own log, placed on the journey's clock. The tier's log
    fields (status, cache, upstream times, HAProxy's timers, SQL, …) ride along as they
    were logged: the set depends on the program, so the object is open-ended."""

    tier: str = ""
    clock: str = ""
    raw_start_ms: float | None = None
    raw_end_ms: float | None = None
    # Written only when a driver found them (a tier's span stays as its log had it).
    db_explain: DbExplainFacts | None = field(default=None, metadata={"omit_default": True})
    connections: list[HopConnectionFacts] = field(default_factory=list,
                                                  metadata={"omit_default": True})
    extra: dict[str, object] = field(default_factory=dict,
                                     metadata={"flatten": True})


# ---------------------------------------------------------------------------- browser
# The browser phase (issue 10): after the network journey the same URL loads in headless
# Chromium, and what Chromium reports (CDP Network.* events and a performance trace) is placed
# on the journey's clock. Chromium's trace and CDP timestamps are CLOCK_MONOTONIC, the clock the
# journey runs on, so each ``t_ms``/start/end is exact, not estimated.
@dataclass(kw_only=True)
class FilmstripFrame:
    """One screenshot of the page as it was drawn (a trace ``Screenshot`` event)."""

    t_ms: float
    image: str = field(metadata=doc("a data: URI (image/jpeg), so the report stays one file"))
    width: int | None = None
    height: int | None = None


@dataclass(kw_only=True)
class LayoutShiftFacts:
    """One layout shift (the Layout Instability API): its score and what moved."""

    t_ms: float
    score: float
    had_recent_input: bool = False
    moved: list[str] = field(default_factory=list,
                             metadata=doc("the elements that moved, as CSS-like selectors"))


@dataclass(kw_only=True)
class BrowserFacts(Facts):
    """The page loaded in headless Chromium, on the journey's clock."""

    url: str = ""
    browser: str | None = field(default=None, metadata=doc("e.g. Chromium 130.0.6723.116"))
    outcome: str = field(default="", metadata=doc("loaded | failed | skipped"))
    why: str | None = field(default=None,
                            metadata=doc("why the phase was skipped or failed, in words"))
    address: str | None = field(default=None,
                                metadata=doc("the address Chromium was pointed at (the journey's)"))
    trusted_ca: str | None = field(default=None,
                                   metadata=doc("the CA file put in the throwaway profile's NSS "
                                                "database, or the system's trust store"))
    warm: bool = field(default=False, metadata=doc("a browser already running was reused "
                                                   "(a fresh context); else this launch is timed"))
    launch_ms: float | None = None
    final_url: str | None = None
    status: int | None = None
    navigation_start_ms: float | None = field(
        default=None, metadata=doc("when Chromium started the navigation, ms since the "
                                   "journey's t0; the page's own times below "
                                   "(dom_content_loaded_ms … lcp_ms) count from it, as Web "
                                   "Vitals and Lighthouse do; the browser.mark spans place "
                                   "the same moments on the journey's timeline"))
    dom_content_loaded_ms: float | None = field(
        default=None, metadata=doc("ms after navigation_start_ms"))
    load_ms: float | None = field(default=None, metadata=doc("ms after navigation_start_ms"))
    first_paint_ms: float | None = field(default=None,
                                         metadata=doc("ms after navigation_start_ms"))
    fcp_ms: float | None = field(default=None, metadata=doc("First Contentful Paint, ms after "
                                                            "navigation_start_ms"))
    lcp_ms: float | None = field(default=None, metadata=doc("Largest Contentful Paint, ms "
                                                            "after navigation_start_ms"))
    lcp_element: str | None = None
    lcp_url: str | None = field(default=None, metadata=doc("the LCP element's image, if any"))
    cls: float | None = field(default=None, metadata=doc("Cumulative Layout Shift (the "
                                                         "largest session window)"))
    layout_shifts: list[LayoutShiftFacts] = field(default_factory=list)
    long_tasks: int = 0
    requests: int = 0
    bytes_on_wire: int = 0
    filmstrip: list[FilmstripFrame] = field(default_factory=list)
    trace_events: int | None = field(default=None, metadata=doc("trace events read back "
                                                                "(bounded)"))
    trace_bytes: int | None = field(default=None, metadata=doc("bytes of trace read back "
                                                               "(bounded)"))
    notes: list[str] = field(default_factory=list,
                             metadata=doc("what to know when reading these numbers: a cut "
                                          "trace, a stopped page, stages left out"))
    settle_ms: float | None = field(
        default=None, metadata=doc("how long the capture waited after load for the page to "
                                   "be quiet (late LCP candidates and layout shifts), ms"))
    settle_ended: str | None = field(
        default=None, metadata=doc("why that wait ended: quiet (no request in flight and no "
                                   "new LCP candidate or layout shift for a while), its "
                                   "bound, or the page's budget"))


@dataclass(kw_only=True)
class ResourceTiming:
    """Chromium's timing phases of one request (CDP Network.ResourceTiming), in ms; None
    where the phase did not happen (a reused connection has no DNS, connect or TLS)."""

    queued_ms: float | None = None
    dns_ms: float | None = None
    connect_ms: float | None = None
    tls_ms: float | None = None
    send_ms: float | None = None
    wait_ms: float | None = field(default=None, metadata=doc("time to first byte"))
    receive_ms: float | None = None


@dataclass(kw_only=True)
class BrowserResourceFacts(Facts):
    """One request the page made (the document is ``navigation``), as Chromium saw it."""

    url: str = ""
    navigation: bool = False
    resource_type: str = field(default="", metadata=doc("Document, Stylesheet, Script, Image, "
                                                        "Font, Fetch…"))
    method: str = "GET"
    initiator: str | None = field(default=None, metadata=doc("parser, script, preload, other; "
                                                             "with its URL and line when known"))
    priority: str | None = field(default=None, metadata=doc("VeryHigh … VeryLow"))
    render_blocking: str | None = field(
        default=None, metadata=doc("blocking | in_body_parser_blocking | potentially_blocking "
                                   "| non_blocking"))
    status: int | None = None
    mime_type: str | None = None
    protocol: str | None = field(default=None, metadata=doc("h2, http/1.1, h3 …"))
    connection_id: int | None = None
    connection_reused: bool | None = None
    stream_id: int | None = field(default=None, metadata=doc("the HTTP/2 stream (NetLog)"))
    remote_address: str | None = None
    timing: ResourceTiming | None = None
    encoded_bytes: int | None = field(default=None, metadata=doc("on the wire, headers "
                                                                 "included"))
    decoded_bytes: int | None = None
    from_cache: str | None = field(default=None, metadata=doc("memory | disk | service worker"))
    cache_status: str | None = field(default=None, metadata=doc("what a cache on the way said "
                                                                "(X-Cache, Age): HIT, MISS…"))
    failed: str | None = field(default=None, metadata=doc("why the request failed, or was "
                                                          "blocked"))
    traceparent: str | None = field(
        default=None, metadata=doc("--lab: the W3C traceparent this request carried, so the "
                                   "lab's tiers can be merged under it"))
    inside: list[str] | None = field(
        default=None, metadata=doc("--lab: the tiers this request went through, in order"))
    note: str | None = field(default=None, metadata=doc("what to know when reading this "
                                                        "request's timing (e.g. a preconnect)"))


@dataclass(kw_only=True)
class BrowserStageFacts(Facts):
    """One step of the critical rendering path, script work or a long task, from the trace:
    ParseHTML (DOM), ParseAuthorStyleSheet (CSSOM), UpdateLayoutTree (style), Layout,
    PrePaint, Paint, Layerize, Commit, DrawFrame (composite), EvaluateScript, long task; and
    what the page waited on or asked for: a web font's load (BeginRemoteFontLoad →
    RemoteFontLoaded), an image's decode (Decode Image), a performance.measure."""

    stage: str = field(default="", metadata=doc("dom | cssom | style | layout | prepaint | "
                                                "paint | layerize | commit | composite | "
                                                "script | long_task | font_load | "
                                                "image_decode | user_measure"))
    event: str = field(default="", metadata=doc("the trace event's name"))
    url: str | None = field(default=None, metadata=doc("the stylesheet, script, font or "
                                                       "image, when one"))
    name: str | None = field(default=None, metadata=doc("a performance.measure's name, a "
                                                        "font's family, an image's type"))
    count: int = field(default=1, metadata=doc("events of this stage merged into the span "
                                               "(adjacent ones, to keep the tree readable)"))


@dataclass(kw_only=True)
class BrowserMarkFacts(Facts):
    """A moment of the page's life (a zero-length span): first paint, FCP, LCP,
    DOMContentLoaded, load, a layout shift, a mark the page made (User Timing)."""

    mark: str = field(default="", metadata=doc("first_paint | fcp | lcp | dom_content_loaded "
                                               "| load | layout_shift | user_mark"))
    element: str | None = None
    url: str | None = None
    value: float | None = field(default=None, metadata=doc("a layout shift's score"))
    name: str | None = field(default=None, metadata=doc("a performance.mark's name"))


# The facts class of every span name; "server.<kind>" spans all use ServerFacts.
SPAN_FACTS: dict[str, type[Facts]] = {
    "url": UrlFacts,
    "prepare": PrepareFacts,
    "guard": GuardFacts,
    "leg": LegFacts,
    "redirect": RedirectFacts,
    "dns": DnsFacts,
    "dns.system": DnsSystemFacts,
    "dns.resolver": DnsResolverFacts,
    "dns.query": DnsQueryFacts,
    "dns.walk": DnsWalkFacts,
    "dns.walk.question": DnsWalkQuestionFacts,
    "dns.hop": DnsHopFacts,
    "dns.recursion": DnsRecursionFacts,
    "dns.upstream": DnsUpstreamFacts,
    "tcp": TcpFacts,
    "tcp.connect": TcpConnectFacts,
    "tls": TlsFacts,
    "quic": QuicFacts,
    "quic.flight": QuicFlightFacts,
    "http": HttpFacts,
    "http.send": HttpPhaseFacts,
    "http.wait": HttpPhaseFacts,
    "http.receive": HttpPhaseFacts,
    "revalidate": RevalidateFacts,
    "browser": BrowserFacts,
    "browser.resource": BrowserResourceFacts,
    "browser.stage": BrowserStageFacts,
    "browser.mark": BrowserMarkFacts,
}


def facts_class(name: str) -> type[Facts]:
    if name.startswith("server."):
        return ServerFacts
    return SPAN_FACTS.get(name, Facts)
