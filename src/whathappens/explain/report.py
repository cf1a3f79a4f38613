"""The reports' own explanations, beside each step's (texts.py): what a layer does, why each
rule of thumb is what it is, what the TLS 1.2 vs 1.3 comparison shows, how to read the
handshake segments. Plain text, written for this project: renderers decide how it looks.
"""

from __future__ import annotations

# The TCP/IP model's layers (RFC 1122), in the words of the report's layer table.
LAYER_NOTES: dict[str, str] = {
    "application": "what programs say to each other: URL parsing, DNS questions, HTTP "
                   "(TLS is usually drawn here or just below it)",
    "transport": "the connection between two programs: TCP's handshake, ordering and "
                 "retransmission; TLS rides on it",
    "internet": "getting packets from one address to another across networks (IP, routing)",
    "link": "the local hop: Ethernet, Wi-Fi, the loopback interface",
}
LAYERS_INTRO = ("Each step belongs to a layer of the TCP/IP model (RFC 1122); the layer is "
                "recorded on every step of the journey.")


# Why each rule of thumb is what it is, by the step it judges (the rules themselves, their
# numbers and verdicts: analysis/budgets.py).
RULE_WHY: dict[str, str] = {
    "dns": "a resolver that answers from its cache usually replies well within 50 ms; a cold "
           "walk from the root can take longer",
    "tcp": "connect() waits for one round trip (SYN → SYN-ACK)",
    "tls": "plus the time to check signatures on both sides",
    "quic": "HTTP/3's transport sets up the connection and its TLS 1.3 in the same flights, "
            "so one round trip replaces TCP's and TLS's (RFC 9001); RTT is QUIC's own "
            "estimate, as a UDP socket has no kernel RTT",
    "ttfb": "time to first byte: one round trip plus the server's own work",
}
RULES_CAVEAT = ("The thin marks and the guide column are rules of thumb, not measurements: "
                "they say where a healthy step on a good network tends to end. RTT is the "
                "kernel's own estimate for this connection.")
RULES_SHORT = "rules of thumb"

COMPARE_BEGINNER = (
    "Before any page can travel encrypted, your computer and the server agree on keys: the "
    "TLS handshake. Think of ordering at a counter. With TLS 1.2 you greet the cashier and "
    "wait for a reply, then place your order and wait again before anything happens: two "
    "waits. With TLS 1.3 you greet and order in the same breath, so you wait only once. Each "
    "wait is one trip to the server and back; nearby that is a blink, across an ocean it is "
    "a noticeable pause. Below, both were tried for real against this server.")
COMPARE_ADVANCED = (
    "A full TLS 1.2 handshake (RFC 5246 §7.3) needs two round trips: ClientHello ⇢ "
    "ServerHello, Certificate, ServerKeyExchange, ServerHelloDone, then ClientKeyExchange, "
    "ChangeCipherSpec, Finished ⇢ ChangeCipherSpec, Finished. TLS 1.3 (RFC 8446 §2) sends a "
    "key share in the ClientHello, so the server answers with everything up to its Finished "
    "in one flight: one round trip (two after a HelloRetryRequest). Round trips here are "
    "counted from the recorded message timeline (server flights the client had to wait for), "
    "not assumed. Fresh connections to the address the journey used, one after the other in "
    "alternating rounds, each with a new TLS context and no session offered (no resumption); "
    "each version shows its median sample. Outside the journey's steps, so its total is "
    "unchanged.")
COMPARE_NOT_ASKED = ("Not measured on this journey. Run it again with --compare-tls (https "
                     "URLs) to add real handshakes, TLS 1.2 and TLS 1.3, side by side.")
COMPARE_HANDSHAKE = ("handshake = ClientHello written → handshake complete on our side (round "
                     "trips + both sides' crypto); TCP connect not included; each wait = our "
                     "last message → the server's next flight")
COMPARE_REST = ("the rest is work (crypto, the server's and our scheduling), not the wire")
COMPARE_REST_LONG = ("is work, not waiting on the wire: cryptography on both sides, the "
                     "server's and our scheduling.")

SEGMENTS_BEGINNER = (
    "These are the three real segments of the handshake. Each side picks a random starting "
    "number (its initial sequence number) and the other side acknowledges it by answering "
    "with that number + 1: that is how both know the other is listening.")
SEGMENTS_WIRE = ("from SYN to ACK (kernel timestamps); the connect time above also includes "
                 "the system call and the event loop noticing the socket became writable.")
SEGMENTS_MISSING = "not captured: run with --capture as root (a packet capture)"

CHEATSHEET_INTRO = ("The same steps with standard tools, filled in for this URL. The demo's "
                    "names only resolve through its own resolver and CA, so there add its "
                    "options.")
WATERFALL_INTRO = "Bars are placed on the journey's timeline ({clock}, ms since t0), so their " \
                  "length is the time each step took."
