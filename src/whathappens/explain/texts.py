"""What each span of a journey is, in two registers, as templates filled with its own values.

``beginner`` is for someone meeting the idea for the first time: plain words and an everyday
comparison. ``advanced`` names the mechanism and the standard (or the program's manual) that
defines it, so an engineer knows what the numbers beside it mean. ``measures`` says what the
span's time includes and on which clock. Written for this project; keep it short and true.

Every text is a tuple of sentences. A sentence names the values it needs in braces:

- ``{name}``: a value of this span, formatted (``12.7 ms``, ``3,600``, ``h2, http/1.1``);
  ``name`` is a field of the span's facts class (``contract/facts.py``), a field its tier
  logged (lab spans), or a value worked out from the facts in ``explain/fill.py`` (its
  ``derive`` functions declare the names they give);
- ``{if:name}``: the sentence is kept only when the value is there and true (prints nothing);
- ``{not:name}``: kept only when the value is known and false.

A sentence whose value is absent is left out, so a text never says "None" and never makes a
value up. ``tests/test_explain.py`` checks that every span kind has a text and that every
name a template uses is one its span can carry.
"""

from __future__ import annotations

from dataclasses import dataclass

from whathappens.explain.report import COMPARE_ADVANCED, COMPARE_BEGINNER


@dataclass(frozen=True)
class Explanation:
    """A span's texts, filled: what a report shows."""

    title: str
    beginner: str
    advanced: str
    measures: str      # what the step's number includes, and on which clock


@dataclass(frozen=True)
class SpanText:
    """A span kind's templates (see the module's docstring)."""

    title: str
    beginner: tuple[str, ...]
    advanced: tuple[str, ...]
    measures: tuple[str, ...] = ()


T = SpanText

# ----------------------------------------------------------------------- the client's steps
CLIENT: dict[str, SpanText] = {
    "url": T(
        "Reading the address",
        ("You typed {input}. Before anything touches the network it is taken apart, the way "
         "you read an envelope before posting it: the scheme {scheme} says how to talk, the "
         "host {host} which machine to find, port {port} which door on that machine, and "
         "the path {path} which page you want.",
         "{not:port_explicit}Nobody wrote a port, so the scheme's usual one was taken.",
         "{if:upgraded_from_http}You typed http, but {host} is on the browser's list of "
         "sites that must always be encrypted, so it was switched to https before a single "
         "packet left.",
         "The part after #, #{fragment}, stays on your computer: it is never sent."),
        ("Parsed by the WHATWG URL Standard's rules (RFC 3986 for the syntax): the host is a "
         "{host_kind}, lower-cased, and a Unicode name is mapped by UTS-46 to its xn-- "
         "(punycode) form; what goes on the request line is {request_target}.",
         "It was typed as {host_spelled} and read as {host}.",
         "Its registrable domain is {registrable_domain}, under the public suffix "
         "{public_suffix} (Public Suffix List): the boundary cookies cannot cross.",
         "HSTS preload (RFC 6797 §12.3): {hsts_words}."),
        ("Wall time on the journey's monotonic clock, {took}: parsing, plus loading the HSTS "
         "preload table and the IDNA tables on first use. No network; not CPU time.",),
    ),
    "prepare": T(
        "Getting ready",
        ("Before the first packet, the code the steps need ({loaded}) was loaded, so that the "
         "steps' times measure the network and not this program starting up.",),
        ("Importing modules and OpenSSL's one-time initialisation would otherwise land inside "
         "the first DNS or TLS step; curl pays the same cost in curl_global_init, before its "
         "timers start.",),
        ("Wall time of loading, monotonic clock: {took}; outside every step's time.",),
    ),
    "guard": T(
        "Checking where we may go",
        ("Before connecting, each address the name led to was checked: on someone else's "
         "behalf only public addresses may be reached. Allowed: {allowed}.",
         "Refused: {refused}."),
        ("--only-public refuses loopback, private (RFC 1918), link-local and the other "
         "special-purpose ranges (RFC 6890), so a URL cannot make this tool reach into the "
         "network it runs in (server-side request forgery).",),
        ("Checking the addresses: {took}.",),
    ),
    "leg": T(
        "One request",
        ("{if:first}This is the request for the address you typed: {method} {url}.",
         "{if:redirected}The answer to request {previous_number} was {previous_status}, "
         "“{previous_status_words}”, and it pointed here, so request {number} asks {url}, "
         "as a browser does on its own.",
         "{if:reused}It travels on the connection already open to {origin}: no new lookup, "
         "no new handshake, no new keys.",
         "{not:reused}It needs a connection of its own to {origin}: {steps_words}."),
        ("{if:redirected}A redirect (RFC 9110 §15.4): status {previous_status}; the Location "
         "is resolved against the old URL (RFC 3986 §5) and followed with {method}, as "
         "browsers do (303, and 301/302 after a POST, become GET).",
         "{if:reused}Same origin (scheme, host and port, RFC 6454) as an open connection, so "
         "it is reused (RFC 9112 §9.3, RFC 9113 §9.1).",
         "{not:reused}No open connection to the origin {origin}, so a new one is opened."),
        ("From the request's first step to its last response byte: {took}, monotonic clock.",),
    ),
    "redirect": T(
        "A redirect that was not followed",
        ("The server said to go elsewhere, but that could not be done: {error_message}",),
        ("Browsers follow at most 20 redirects and stop on a loop (Fetch Standard, "
         "HTTP-redirect fetch); this tool stops at --max-redirects and names the loop.",),
    ),
    "dns": T(
        "Finding the server's address (DNS)",
        ("Machines find each other by number (an IP address), not by name, so {host} had "
         "to be looked up first, like finding a number in the phone book before calling.",
         "{if:first_lookup}A browser would first look in its own memory of recent names, "
         "then the operating system's; this journey starts with an empty memory, so the "
         "name is looked up.",
         "{if:resolver_ran}A recursive resolver, {resolver}, does the legwork for you: when "
         "it already knows the answer it replies at once from its memory (its cache); if "
         "not, it asks the root servers, which point to the servers of the top-level "
         "domain, which point to the servers that hold {host}'s own records.",
         "{resolver_cache_words}",
         "The address used: {addresses}, {used_words}."),
        ("Views that ran for this journey: {views_ran}; the connection used {used_words}.",
         "{if:system_ran}getaddrinfo(3) is how most programs resolve: the hosts file, then "
         "the resolver in resolv.conf, as nsswitch.conf says. Browsers do not all use it: "
         "Chromium often resolves with its own built-in resolver, or with DNS over HTTPS "
         "(RFC 8484) when that is on, so a browser's answer can differ from this one.",
         "{not:system_ran}The system's view (getaddrinfo) did not run here. A browser would "
         "use it, or, for Chromium, often its own built-in resolver or DNS over HTTPS "
         "(RFC 8484).",
         "{if:resolver_ran}The resolver was asked with recursion desired (RD=1, RFC 1034 "
         "§4.3.1) for A, AAAA and HTTPS (type 65, RFC 9460), then A again: a TTL below the "
         "zone's own shows a cached copy, since a cache may only hand a record out for what "
         "is left of its TTL (RFC 1035 §7.4).",
         "{if:walk_ran}The walk asked as a resolver does, without recursion (RD=0), from the "
         "root hints: {walk_path}; each step a referral (NS records in the authority "
         "section, their addresses as glue) until an authoritative answer (AA flag), "
         "NXDOMAIN or NODATA (RFC 1034 §4.3.2, RFC 2308).",
         "The HTTPS record, {https_records}, tells a browser before it connects which "
         "protocols the server speaks (RFC 9460).",
         "{note}"),
        ("All views side by side, from the first query to the last answer: {took} on the "
         "monotonic clock; each view's line is its own time.",),
    ),
    "dns.system": T(
        "The system's lookup (getaddrinfo)",
        ("Your computer's own way to look a name up: its hosts file first, then the resolver "
         "it is configured with. It answered {addresses}.",
         "{if:hosts_file_hit}The hosts file {hosts_file} already had the name: no question "
         "left the machine."),
        ("getaddrinfo(3) following nsswitch.conf: files ({hosts_file}), then dns "
         "(resolv.conf). Chromium may skip it for its built-in resolver or DNS over HTTPS "
         "(RFC 8484).",
         "Answered by: {source}."),
        ("The getaddrinfo() call, timed on the thread that made it: {took}.",),
    ),
    "dns.resolver": T(
        "Asking the recursive resolver",
        ("{resolver} is a recursive resolver: you ask once and it does the legwork, and it "
         "remembers answers for as long as their TTL allows. It answered {addresses}.",
         "{cache_words}"),
        ("Questions with recursion desired (RD=1, RFC 1034 §4.3.1); the first A answer had "
         "TTL {first_ttl} s, the same question asked again TTL {repeat_ttl} s. A cache hands "
         "a record out only for what is left of its TTL (RFC 1035 §7.4).",
         "CNAME chain: {cname_chain}.",
         "HTTPS records (RFC 9460): {https_records}."),
        ("From the first question sent to the last reply: {took}, monotonic clock.",),
    ),
    "dns.query": T(
        "One question to the resolver",
        ("The question: the {qtype} records of {qname}. {answer_words}",
         "Why it was asked: {purpose}."),
        ("One DNS message over {transport} (RFC 1035 §4): {bytes_sent} bytes out, "
         "{bytes_received} back, rcode {rcode}.",
         "TTL {ttl} s: how long the answer may be kept in a cache.",
         "{if:tcp_retry}The UDP reply came back truncated (TC bit), so it was asked again "
         "over TCP (RFC 7766).",
         "{if:authenticated_data}The resolver set AD: it validated the answer with DNSSEC "
         "(RFC 4035)."),
        ("Question sent → reply received: {took}.",),
    ),
    "dns.walk": T(
        "Walking the hierarchy from the root",
        ("The same name looked up from the very top, as a resolver does when its memory is "
         "empty: {walk_path}. Answer: {addresses}.",),
        ("Iterative queries without recursion (RD=0) starting from the root hints "
         "{root_hints}, port {port}; {queries} queries in all (RFC 1034 §5.3.3).",
         "CNAME chain followed: {cname_chain}."),
        ("First query sent → last reply: {took}.",),
    ),
    "dns.walk.question": T(
        "One question, walked down",
        ("{qtype} for {qname}: {outcome}. {records}",),
        ("Each hop either refers the question to the servers of a zone nearer the name or "
         "answers it; NXDOMAIN (the name does not exist) and NODATA (it exists, without "
         "this type) are answers too (RFC 2308).",
         "Followed the CNAME chain {cname_chain}.",
         "{message}"),
        ("From the first hop to the answer: {took}.",),
    ),
    "dns.hop": T(
        "One hop of the walk",
        ("{server} ({address}), a {role} server, was asked for {qtype} {qname}: {kind_words}",),
        ("Zone {zone}; transport {transport}.",
         "{if:authoritative}AA set: this server holds the zone itself (RFC 1035 §4.1.1).",
         "Referred to {referral_zone}: {referral_ns}.",
         "Answer: {answers}.",
         "{note}"),
        ("Query sent → reply: {took}.",),
    ),
    "dns.recursion": T(
        "What the resolver did for you (the lab's Unbound)",
        ("{if:from_cache}Answered from Unbound's cache: no upstream queries. It had looked "
         "{name} up before and the records' TTL had not run out.",
         "{not:from_cache}To answer, the resolver itself asked {upstream_queries} question(s) "
         "upstream: {servers}.",
         "Before the journey its cache was flushed of {flushed} (a cold lookup).",
         "{repeat_words}"),
        ("Matched to this journey by {matched_by}.",
         "Unbound also asked, in the same window, about: {other_queries}.",
         "Clock: {clock}."),
        ("First upstream query received → last answer ready: {took}.",),
    ),
    "dns.upstream": T(
        "One query the resolver sent",
        ("The resolver asked {server}, a {role} server, for {qtype} {qname}: it gave {kind}.",),
        ("Sent from {client} over {transport}; rcode {rcode}.",
         "{if:authoritative}AA set: this server holds the zone itself (RFC 1035 §4.1.1).",
         "Records: {records}."),
        ("The server's own log: received → answer ready {server_ms} (wall clock, integer "
         "nanoseconds); the span is placed on the journey's clock at those stamps.",),
    ),
    "tcp": T(
        "Opening a connection (TCP)",
        ("Now that the address is known, your computer opens a line to {address} port "
         "{port}, like a phone call: “hello?” (SYN), “hello, I hear you” (SYN-ACK), “good, "
         "let's talk” (ACK). That took {took}.",
         "{if:rtt_near}The kernel's own estimate of one round trip to this server is {rtt}: "
         "setting up the call cost about one of those, as it should.",
         "{not:rtt_near}The kernel's own estimate of one round trip to this server is {rtt}, "
         "and the set-up took {rtt_multiple} of those: besides the one round trip, connect() "
         "counts the kernel's and this program's own work, which dominates when the server "
         "is this close.",
         "{if:happy_eyeballs}Both IPv6 and IPv4 addresses were known, so they were tried "
         "Happy Eyeballs style, IPv6 first and IPv4 only if IPv6 was slow: "
         "{attempts_words}, {family} won."),
        ("connect() from {local} to {remote} ({family}) returns when the SYN-ACK arrives: one "
         "round trip plus the kernel's work (RFC 9293 §3.5).",
         "TCP_INFO: smoothed RTT {rtt} ± {rttvar} (RFC 6298), MSS {mss} bytes, congestion "
         "window {cwnd} segments (RFC 6928 allows 10 to start).",
         "Captured on the wire: {segments_words}; each side acknowledges the other's initial "
         "sequence number + 1.",
         "After the exchange: {segs_out} segments out, {segs_in} in, {retransmits} "
         "retransmitted."),
        ("connect() until the socket is writable (SYN → SYN-ACK): {took}, monotonic clock.",),
    ),
    "tcp.connect": T(
        "One connection attempt",
        ("An attempt to {address} port {port} over {family}: {outcome}.",),
        ("One connect() of Happy Eyeballs (RFC 8305): attempts start 250 ms apart, IPv6 "
         "first; the first to connect wins and the others are abandoned.",),
        ("connect() → writable or failed: {took}.",),
    ),
    "tls": T(
        "Making the connection private (TLS)",
        ("Before anything private is sent, your computer and {server_name} agree on secret "
         "keys nobody on the way can learn, and the server proves who it is with a "
         "certificate, checked like a passport against the passport offices your computer "
         "already trusts.",
         "Here that took {round_trip_words}.",
         "They also agreed, in the same breath, to speak {alpn_words} afterwards.",
         "{if:session_reused}A ticket from an earlier visit was used, so the server did not "
         "send its certificate again.",
         "The certificate for {leaf_name} was issued by {leaf_issuer}; {leaf_validity}."),
        ("{version} with {cipher}, key exchange {group}. {version_words}",
         "{if:hello_retry_request}The server asked for another key share "
         "(HelloRetryRequest), one more round trip.",
         "SNI {sni} told the server which certificate to send (RFC 6066 §3); ALPN offered "
         "{alpn_offered}, the server chose {alpn} (RFC 7301).",
         "{if:verified}The chain of {chain_length} was verified to a trusted root (RFC 5280 "
         "§6) and the name checked against its subjectAltName entries (RFC 9525): "
         "{verification_words}.",
         "{not:verified}The chain was checked up to a trusted root (RFC 5280 §6) and the name "
         "against its subjectAltName entries (RFC 9525), and it failed: "
         "{verification_words}."),
        ("{took} in all: building the TLS context and loading the trust store "
         "({context_setup_ms}), then ClientHello sent → {handshake_end} ({handshake_ms}); "
         "monotonic clock. Message times are when OpenSSL handled each message.",),
    ),
    "quic": T(
        "Connecting and making it private at once (QUIC)",
        ("For HTTP/3 there is no TCP phone call first: your computer sends its first letter "
         "over UDP to {remote}, and that letter already carries the TLS greeting. The "
         "server answers with its own greeting, its certificate and its proof in one go, so "
         "after one round trip both sides hold secret keys and the request can follow. That "
         "took {took}.",
         "{if:retry}The server first asked your computer to prove its address (a Retry with "
         "a token), which cost one more round trip before the real greeting.",
         "{if:session_resumed}This was a return visit: a ticket from the first connection "
         "let both sides skip the certificate, and the question could travel with the very "
         "first letter (0-RTT, {early_data}).",
         "Both sides named the connection with IDs ({our_cid} for us, {server_cid} for the "
         "server) rather than by addresses, so it could survive a change of network, say "
         "from Wi-Fi to mobile.",
         "Why UDP: TCP lives in the operating system and changes slowly, so QUIC builds its "
         "own reliable, encrypted streams on plain UDP datagrams. A lost packet then holds up "
         "only the stream it carried, not every file on the connection as with HTTP/2 over "
         "TCP.",
         "{advertised_by}: a browser only tries HTTP/3 when it has been told the server speaks "
         "it, by the HTTPS record in DNS or an Alt-Svc header on an earlier answer; there is "
         "no way to ask over UDP first without risking a long wait."),
        ("{version}, TLS 1.3 carried in CRYPTO frames (RFC 9001) with {cipher}, key exchange "
         "{group}; ALPN {alpn} (RFC 9114 §3.1).",
         "The Initial is padded to at least 1200 bytes (RFC 9000 §14.1) so a forged source "
         "address cannot turn the server into an amplifier: before the address is validated "
         "the server may send at most three times what it received (RFC 9000 §8.1).",
         "{if:retry}Address validation with Retry (RFC 9000 §8.1.2): a token of "
         "{retry_token_bytes} bytes, our Initial sent again with it.",
         "QUIC's loss recovery saw a smoothed RTT of {srtt} ± {rttvar} (min {min_rtt}), "
         "congestion window {cwnd} (RFC 9002 §7.2), {pto_words}.",
         "{datagrams_sent} datagrams sent and {datagrams_received} received on the "
         "connection, {udp_bytes_sent} and {udp_bytes_received} bytes of UDP payload."),
        ("Our first Initial sent → our Finished sent: {took}, monotonic clock (building the "
         "ClientHello before it, {client_hello_build_ms}, is not counted). Datagram times are "
         "when the socket read or sendto() returned.",),
    ),
    "quic.flight": T(
        "A flight of the QUIC handshake",
        ("{direction_words} {datagrams} datagram(s), {bytes} bytes: {flight_words}.",),
        ("{packets} QUIC packet(s) in the number spaces {spaces_words} (RFC 9000 §12.3); TLS "
         "messages inside: {messages_words}.",),
        ("From its first datagram to its last: {took}.",),
    ),
    "http": T(
        "Asking for the page (HTTP)",
        ("Finally the question itself: “{method} {path} on {host}, please”.",
         "The answer: {status_line}, “{status_words}”.",
         "It pointed to {location}, so the browser asks again there.",
         "The first byte of the answer came {wait_ms} after the question was sent: the trip "
         "there and back plus the server's thinking time.",
         "The content was {body_words} once unpacked{encoding_words}."),
        ("{http_version}: {protocol_words}.",
         "Status {status}: {status_class} (RFC 9110 §15).",
         "send {send_ms}, wait (TTFB) {wait_ms}, receive {receive_ms}; {wire_bytes_sent} "
         "bytes sent and {wire_bytes_received} received on the wire (headers and framing "
         "included, and TLS records on https), body {body_bytes_encoded} bytes as sent.",
         "The server timed its own work (Server-Timing, W3C): {server_timing}.",
         "The server calls itself {server_header}.",
         "{if:reusable}The connection stays open for more requests.",
         "It carried {shared_by} requests of this journey."),
        ("send: writing the request; wait (TTFB): request sent → first response byte; "
         "receive: first byte → last byte; monotonic clock.",),
    ),
    "revalidate": T(
        "Asking whether a kept copy is still good (revalidation)",
        ("A kept copy saves a download but may be out of date, so a browser or a CDN asks "
         "the server “has it changed since this version?”, like checking the date on "
         "a timetable you kept instead of printing a new one.",
         "{url} was asked for again, this time with the validators the first answer gave.",
         "It was {outcome}: {why}."),
        ("A conditional request (RFC 9110 §13.1): If-None-Match carries the ETag and "
         "If-Modified-Since the Last-Modified date; when the server's current version still "
         "matches, it answers 304 Not Modified with headers only and the cache refreshes its "
         "copy's freshness from them (RFC 9111 §4.3.4).",
         "It went on a {connection} connection: {connection_why}."),
        ("Monotonic time from the conditional request's start to the last byte of its "
         "answer, a new connection's set-up included when one was needed.",),
    ),
    "http.send": T(
        "Sending the request",
        ("Writing the request onto the connection: {took}.",),
        ("Until the last byte of the request (headers and any body) was handed to the "
         "kernel; on HTTP/2, HEADERS with END_STREAM.",),
    ),
    "http.wait": T(
        "Waiting for the first byte",
        ("Between sending the question and the first byte of the answer: {took}. The "
         "question's trip, the server's work and the answer's trip back are all in here.",),
        ("Time to first byte (TTFB): request sent → first response byte (headers or a 1xx).",),
    ),
    "http.receive": T(
        "Receiving the answer",
        ("The rest of the answer arriving: {took}.",),
        ("First byte → last byte of the body, decoded as it comes (Content-Encoding).",),
    ),
    "response": T(
        "The answer's trip back",
        ("{if:inside_return}The answer travels back the way the question came, each server "
         "handing it to the one that called it: {inside_return}; then over the same "
         "connection{encryption_words}, to you.",
         "{not:has_inside}The server ({server_header}) wrote its answer back onto the same "
         "connection{encryption_words}, to you.",
         "Its first byte reached you {wait_ms} after the question left; the whole answer was "
         "{wire_bytes_received} bytes on the wire, the last of them {receive_ms} after the "
         "first."),
        ("{if:has_inside}nginx buffers the response (proxy_buffering) so a slow client does "
         "not hold a Python worker, and the edge may keep a copy for the next visitor when "
         "Cache-Control allows it (RFC 9111).",
         "{not:has_inside}On the way back TCP paces the bytes: the receiver's window and the "
         "sender's congestion window decide how much may be in flight (RFC 9293, RFC 5681).",
         "Server-Timing from the server: {server_timing}."),
        ("First response byte and download time, on the client's monotonic clock.",),
    ),
    "page": T(
        "What a browser does next",
        ("The answer is {content_type}, {body_bytes_decoded} bytes once unpacked. A browser "
         "now reads it top to bottom and builds the page's tree (the DOM), fetches every "
         "stylesheet, script, font and image it names (usually over this same connection), "
         "works out each element's style and position (layout) and paints: first some text "
         "(FCP), then the largest picture or block of text (LCP).",
         "{not:html}This answer is not HTML, so there is no page to lay out: a browser shows "
         "or saves it as it is."),
        ("{if:html}The critical rendering path (HTML Standard §8.1.4, CSSOM): head "
         "stylesheets block the first paint, classic scripts block the parser; "
         "subresources from the same origin can share the connection, as HTTP/2 streams "
         "when HTTP/2 was agreed (RFC 9113 §5): here {http_version}.",
         "This journey did not load the page in a browser: run it again with --browser to "
         "have headless Chromium do all this on the same clock, with every step measured."),
        (),
    ),
    "tls-compare": T(
        "TLS 1.2 vs TLS 1.3, tried for real",
        (COMPARE_BEGINNER,
         "Here TLS 1.2 took {v12_ms} ({v12_round_trips}) and TLS 1.3 {v13_ms} "
         "({v13_round_trips}).",
         "{if:slower_13}TLS 1.3 was not faster here: with round trips this short, the time "
         "is the work on both sides (cryptography, scheduling), not the wire."),
        (COMPARE_ADVANCED,
         "Modelled, not measured: {round_trip_difference} round trip × kernel RTT {rtt} = "
         "{expected}; the measured difference was {measured}."),
        ("ClientHello written → handshake complete on our side, median of {rounds} rounds; "
         "TCP connect not included.",),
    ),
}

# ---------------------------------------------------------------------------- the browser
BROWSER: dict[str, SpanText] = {
    "browser": T(
        "Drawing the page (the browser)",
        ("The HTML is only a recipe. The browser reads it top to bottom and builds the "
         "page's tree (the DOM); every stylesheet, script, font and image it mentions is "
         "fetched too, many at once over the same connection. Nothing is drawn until the "
         "stylesheets in the head have arrived, so one slow stylesheet keeps the screen "
         "blank. Then the browser works out each element's style, where every box goes "
         "(layout) and paints it: the first text appears (FCP), then the largest picture "
         "or block of text (LCP).",
         "Here {browser} made {requests} requests for the page.",
         "The first text appeared {fcp_ms} after the navigation started, the largest "
         "element {lcp_ms} after it."),
        ("Chromium's critical rendering path: ParseHTML (DOM), ParseAuthorStyleSheet "
         "(CSSOM), UpdateLayoutTree (style), Layout, PrePaint, Paint, Layerize, Commit, "
         "then the compositor draws the frame. Head stylesheets are render-blocking and "
         "classic scripts parser-blocking (HTML Standard §8.1.4.7); subresources share "
         "the HTTP/2 connection as streams (RFC 9113 §5). FCP, LCP and CLS are Core Web "
         "Vitals (Paint Timing, Largest Contentful Paint, Layout Instability specs).",
         "The LCP element: {lcp_element}.",
         "{why}"),
        ("From Chromium's trace and CDP Network events, on the journey's monotonic "
         "clock; FCP and LCP count from the navigation's start (the document "
         "request).",),
    ),
    "browser.resource": T(
        "One request of the page",
        ("The page needed {url} ({resource_type}): {status}, {protocol}.",
         "{if:connection_reused}It went over a connection already open.",
         "It blocked the first paint ({render_blocking}) until it arrived."),
        ("Priority {priority}, initiator {initiator}; stream {stream_id}.",
         "From the browser's cache ({from_cache}).",
         "{note}"),
        ("Chromium's own timing (CDP Network.ResourceTiming): {took}.",),
    ),
    "browser.stage": T(
        "One step of drawing",
        ("{stage_words}",),
        ("Trace event {event}, {count} merged; on {url}.",),
        ("From Chromium's trace: {took}.",),
    ),
    "browser.mark": T(
        "A moment of the page's life",
        ("{mark_words}",),
        ("The element: {element}.", "Layout shift score {value}."),
    ),
}

# --------------------------------------------------------------------- the lab's server
# The fields each tier's log gives its spans (lab/tiers/*.py): the names lab templates may use
# beside ServerFacts' own. tests/test_explain.py checks them against the tiers' SPAN_FIELDS.
LOGGED: dict[str, tuple[str, ...]] = {
    "edge": ("status", "cache", "upstream_addr", "upstream_connect_time",
             "upstream_header_time", "upstream_response_time", "request_time", "request_id",
             "protocol", "ssl_protocol", "ssl_cipher", "ssl_session_reused", "node", "uri",
             "ssl_client_s_dn", "ssl_client_verify"),
    "lb": ("server", "backend", "status", "Tq", "Tw", "Tc", "Tr", "Ta", "termination",
           "retries", "queues", "request_id", "algorithm", "timers"),
    "django": ("view", "status", "method", "path", "pid", "gunicorn_worker_pid",
               "gunicorn_request_ms"),
    "sql": ("alias", "sql", "rows", "many", "error", "explain", "span_id"),
    "redis": ("alias", "command", "result", "error"),
    "connect": ("alias", "server", "database", "error"),
    "queue": ("alias", "command", "task_id", "error"),
    "think": (),
    "postgres": ("duration_ms", "backend_pid", "note"),
    "celery": ("task", "task_id", "retries", "status", "enqueued_ns", "outcome", "worker",
               "pid", "handover_ms", "queries"),
    "task": ("task", "task_id", "outcome", "attempts", "worker", "queue_wait_ms",
             "background"),
    "queue-wait": ("wait_ms", "retry", "what", "received"),
    "dead-letter": ("task_id", "retries", "error"),
    "middleware": ("phase", "middleware", "includes"),
    "template": ("template",),
    "view": ("view",),
    "explain": ("alias", "note"),
}
LOGGED["app"] = LOGGED["edge"]
# The second POP (Caddy's JSON access log: lab/tiers/caddy.py SPAN_FIELDS).
LOGGED["pop"] = ("status", "protocol", "alpn", "transport", "tls_version", "tls_cipher",
                 "tls_resumed", "server_name", "request_id", "duration_ms", "bytes", "node",
                 "uri", "upstream")

SERVER: dict[str, SpanText] = {
    "server.edge": T(
        "The CDN edge and its cache",
        ("The first server you reached was not the website itself but an edge server of a "
         "content delivery network ({tier}): a shop window near you that keeps copies of "
         "pages so most visitors never wait for the warehouse.",
         "For {uri} its cache said {cache}: {cache_words}."),
        ("nginx as a caching reverse proxy (proxy_cache; $upstream_cache_status is {cache}); "
         "what may be stored and for how long follows the response's Cache-Control "
         "(RFC 9111).",
         "TLS ended here: {ssl_protocol}, {ssl_cipher}.",
         "It asked {upstream_addr}: connected in {upstream_connect_ms}, headers after "
         "{upstream_header_ms}, whole answer after {upstream_response_ms}.",
         "Request id {request_id}."),
        ("The edge's access log: request_time {request_ms} (nginx counts from the first "
         "byte read to the last byte sent, in whole milliseconds); placed on the journey's "
         "clock.",),
    ),
    "server.pop": T(
        "The second CDN POP (Caddy, HTTP/3)",
        ("This request reached a second point of presence of the CDN ({tier}), another "
         "front door to the same site: it speaks the newest HTTP, HTTP/3 over QUIC, as well "
         "as HTTP/2, and hands every request to the same load balancer.",
         "It arrived as {protocol} over {transport}.",
         "This POP keeps no copies: every request goes on to the load balancer."),
        ("Caddy's reverse_proxy to {upstream} (HTTP/1.1, kept-alive connections); Debian's "
         "Caddy has no cache handler, so it caches nothing.",
         "TLS ended here: {tls_version}, {tls_cipher}, ALPN {alpn}, SNI {server_name}; "
         "resumed: {tls_resumed}.",
         "HTTP/3 (RFC 9114) runs on QUIC (RFC 9000) over UDP: one handshake sets up the "
         "transport and TLS 1.3 together (RFC 9001), and a lost packet stalls only its own "
         "stream. The lab's DNS announces it with an HTTPS record (RFC 9460, alpn h3,h2).",
         "Request id {request_id}."),
        ("Caddy's access log: duration {duration_ms}, from the request reaching its "
         "handlers to the log line after the last byte (nanosecond resolution); placed on "
         "the journey's clock.",),
    ),
    "server.lb": T(
        "The load balancer (HAProxy)",
        ("A load balancer is the receptionist who sends each visitor to a free desk: "
         "{tier} sent this request to {server} by the {algorithm} rule: "
         "{algorithm_words}.",
         "It waited {Tw} ms in the queue and {Tc} ms to connect to {server}."),
        ("HAProxy “balance {algorithm}” (HAProxy configuration manual §4, balance): "
         "{algorithm_mechanism}. Health checks (GET /healthz every 500 ms; out after 2 "
         "failures, back after 2 passes) keep a sick server out of the rotation.",
         "Timers from its log (HAProxy manual §8.4): Tw {Tw} ms queued, Tc {Tc} ms to "
         "connect, Tr {Tr} ms until {server}'s response headers, Ta {Ta} ms in all.",
         "Termination state {termination}: {termination_words}.",
         "{retries} retries; backend {backend}."),
        ("HAProxy's Ta, from accepting the request to the last byte, in whole ms.",),
    ),
    "server.app": T(
        "The reverse proxy (nginx on the app node)",
        ("nginx is the app server's front door ({tier}): it takes the request from the "
         "load balancer and hands it to gunicorn, the Python program behind it, then "
         "passes the answer back.",
         "Its small cache (a micro-cache) said {cache}: {cache_words}."),
        ("proxy_pass to gunicorn at {upstream_addr} (nginx ngx_http_proxy_module): "
         "connected in {upstream_connect_ms}, headers after {upstream_header_ms}, all "
         "after {upstream_response_ms}.",
         "With proxy_buffering on, nginx reads the whole answer quickly and feeds it to a "
         "slow client itself, so a Python worker is free again sooner.",
         "The hop in was mutual TLS (lab up --mtls): the load balancer showed the "
         "certificate {ssl_client_s_dn}, and nginx's check (ssl_verify_client) said "
         "{ssl_client_verify}."),
        ("nginx's request_time, {request_ms}, in whole milliseconds.",),
    ),
    "server.django": T(
        "gunicorn, WSGI and Django",
        ("gunicorn keeps a few Python worker processes ready; worker {pid} took this "
         "request and handed it to Django through WSGI, a standard plug shape between web "
         "servers and Python applications.",
         "Django ran its middleware, matched {path} to the view {view}, and the view built "
         "the answer: {status}."),
        ("WSGI (PEP 3333): gunicorn calls the application with the request's environ and a "
         "start_response callable; its pre-fork model gives each request to one worker "
         "process (gunicorn docs, Design).",
         "Django's request cycle: middleware in settings.MIDDLEWARE order, the URL "
         "resolver, the view {view}, template rendering, then the middleware again on the "
         "way out.",
         "gunicorn timed the request at {gunicorn_request_ms}, from parsing it to the "
         "last byte."),
        ("Django's span: the tracing middleware's wall clock (time.time_ns), aligned at "
         "t0.",),
    ),
    "server.middleware": T(
        "Django middleware",
        ("Before and after the view, each middleware gets its turn: sessions, security "
         "headers, the CSRF check, like checkpoints at a building's door.",
         "This is the {phase} half.",),
        ("Django runs MIDDLEWARE in order on the way in and in reverse on the way out "
         "(Django docs, Middleware).",
         "In this half: {middleware}.",
         "It includes {includes}."),
        ("{took}, Django's clock.",),
    ),
    "server.view": T(
        "Django's view",
        ("The view is the one function written for this kind of page, here {view}: it "
         "gathers what the page needs (the database, the cache) and decides the answer, like "
         "the cook who actually makes the dish the waiter ordered.",),
        ("The URL resolver matched the path to the view {view} (Django docs, URL "
         "dispatcher); the queries, cache calls and the template render under it ran inside "
         "it.",),
        ("{took}, Django's clock, from the view's call to its return.",),
    ),
    "server.explain": T(
        "X-Explain: the database, step by step",
        ("You asked for the explanation (X-Explain: 1), so the site also asked the database "
         "how it finds the rows, twice: its chosen way and the way it turned down. That "
         "costs extra time a normal visit does not pay.",),
        ("EXPLAIN (ANALYZE, BUFFERS) of the view's first SELECT on alias {alias}, the same "
         "query again with the chosen access path disabled in a rolled-back transaction, the "
         "index's B-tree level (pageinspect) and pg_stat_statements (PostgreSQL docs, Using "
         "EXPLAIN).",
         "{note}."),
        ("{took}, Django's clock: the cost of the explanation itself, inside the view.",),
    ),
    "server.template": T(
        "Rendering the template",
        ("The view pours its data into an HTML template, like filling in a form letter.",),
        ("Django's template engine compiles the template once and renders it with the "
         "view's context (Django docs, Templates).",),
        ("{took}, Django's clock.",),
    ),
    "server.sql": T(
        "A database query",
        ("The view needed data, so it asked the database in SQL: {sql_short}.",
         "{rows} row(s) came back.",
         "{if:via_pgbouncer}It went through PgBouncer, a pool that keeps database "
         "connections open so that each request borrows one instead of opening its own.",
         "{if:replica}It was read from a replica, a copy of the database that follows the "
         "primary and takes reads off it."),
        ("Database alias {alias} (Django's DATABASES, chosen by the site's router).",
         "{if:via_pgbouncer}PgBouncer in transaction pooling (pool_mode = transaction, "
         "PgBouncer docs): a server connection is lent for one transaction, then goes back.",
         "How PostgreSQL planned to find the rows: {plan_first} (EXPLAIN, PostgreSQL docs, "
         "Using EXPLAIN).",
         "Failed: {error}."),
        ("Django's side of the query, {took}: the round trip to the pool and the server "
         "plus the driver's work.",),
    ),
    "server.postgres": T(
        "PostgreSQL's own time",
        ("The database itself spent {duration_ms} on the statement; the rest of the "
         "query's time was the trip there and back.",),
        ("From the server's statement log (log_min_duration_statement = 0), backend pid "
         "{backend_pid}.", "{note}."),
        ("PostgreSQL's clock, whole milliseconds in its log.",),
    ),
    "server.redis": T(
        "Redis, the cache",
        ("Redis is a fast notebook kept in memory: {command} → {result_words}.",),
        ("One round trip of the Redis protocol (RESP). On a miss the view computes the "
         "value and stores it with an expiry (cache-aside).",
         "Failed: {error}."),
        ("The Redis client's call, {took}.",),
    ),
    "server.connect": T(
        "Opening a database connection",
        ("This request paid for a new database connection to {server} ({database}): "
         "{took}.",),
        ("TCP, the PostgreSQL startup message, authentication and Django's session set-up; "
         "a pool (PgBouncer) and persistent connections (CONN_MAX_AGE) exist so that most "
         "requests skip this.",
         "Failed: {error}."),
        ("Django's connect(): {took}.",),
    ),
    "server.queue": T(
        "Handing work to the queue",
        ("Slow work was put in a queue for a worker to do later, so the answer did not wait "
         "for it: {command}, task {task_id}.",),
        ("Celery publishes the task message to the broker (Redis); a worker takes it, "
         "acknowledges it after it ran (acks_late), and retries it with backoff on a "
         "database error (Celery docs, Tasks).",
         "Failed: {error}."),
        ("Publishing only: {took}.",),
    ),
    "server.celery": T(
        "The worker",
        ("A Celery worker took the task {task} from the queue and ran it: {status}.",
         "{if:outcome}This run {outcome}."),
        ("Task {task_id}, attempt {retries} (0 is the first run), on {worker}, pool "
         "process {pid}.",
         "{if:handover_ms}From the main process taking the message to the pool process "
         "starting it: {handover_ms} ms.",),
        ("The worker's own span: {took}.",),
    ),
    "server.task": T(
        "Background work, outside the response",
        ("The request did not do this work itself: it put a task ({task}) in a queue and "
         "answered at once. A worker picked the task up later; this is that task's life, "
         "from the moment it was queued to its end: it {outcome} after {attempts} run(s).",
         "It is drawn beside the response, at the times it really ran: the page you got "
         "never waited for it."),
        ("Celery on a Redis broker: the message waited in the list 'celery' for "
         "{queue_wait_ms} ms, then {worker} ran it; acks_late means the message is "
         "acknowledged only after the run, so a crash puts it back (Celery docs, Tasks).",
         "{background}."),
        ("From the publication (the web request's clock) to the last run's end (the "
         "worker's clock, the same machine): {took}.",),
    ),
    "server.queue-wait": T(
        "Waiting in the queue",
        ("The task sat in the queue until a worker was free to take it: {what}.",),
        ("With one worker process and a prefetch of one, a task waits for every task "
         "queued before it; a retry first waits out its countdown, then queues again.",),
        ("{wait_ms} ms, from the publication (or the previous attempt's end) to the worker's "
         "main process taking the message.",),
    ),
    "server.dead-letter": T(
        "Put aside: the dead-letter queue",
        ("The task failed every time it was tried, so instead of being thrown away it was "
         "put aside in a dead-letter queue, where someone can look at it and send it again.",),
        ("After {retries} retries, on_failure pushed the task (name, arguments, trace "
         "headers, the error) onto the Redis list 'dead_letter': {error}.",),
        ("An instant, by the worker's clock.",),
    ),
    "server.think": T(
        "A delay put there on purpose",
        ("This lab node is slowed down on purpose: {took} of waiting, shown so the slowness "
         "is visible, not a mystery.",),
        ("WHATHAPPENS_THINK_MS sleeps in the tracing middleware before the view.",),
    ),
    "server": T(
        "Inside the server",
        ("A span from {tier}'s own log: {took}.",),
        ("Clock: {clock}.",),
    ),
}

SPAN_TEXTS: dict[str, SpanText] = {**CLIENT, **BROWSER, **SERVER}

# The browser renderers' paragraph (render/terminal_browser.py and html_browser.py), unfilled.
STEPS: dict[str, Explanation] = {
    "browser": Explanation(BROWSER["browser"].title, BROWSER["browser"].beginner[0],
                           BROWSER["browser"].advanced[0], BROWSER["browser"].measures[0]),
}
