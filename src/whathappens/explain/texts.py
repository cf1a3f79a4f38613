"""What each step is, in two registers.

``beginner`` is for someone meeting the idea for the first time: plain words and an everyday
comparison. ``advanced`` names the mechanism and the standard that defines it, so an engineer
knows what the numbers beside it mean. Written for this project; keep it short and true.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Explanation:
    title: str
    beginner: str
    advanced: str
    measures: str      # what the step's number includes, and on which clock


STEPS: dict[str, Explanation] = {
    "url": Explanation(
        title="Reading the address",
        beginner=(
            "Before anything touches the network, the text you typed is taken apart. The "
            "scheme says which language to speak (https means encrypted HTTP), the host says "
            "which machine to find, the port says which door on that machine to knock on, and "
            "the path says which page you want. It is like reading an envelope before "
            "posting it: country, city, street, flat."
        ),
        advanced=(
            "Parsed per RFC 3986 with the WHATWG host rules: Unicode names go through "
            "UTS-46 to their xn-- (punycode) form, IPv4 literals in odd spellings are "
            "normalised, the port comes from the scheme when absent. Hosts on Chromium's "
            "HSTS preload list are switched from http to https here, before any packet "
            "(RFC 6797). The fragment (#...) never leaves the machine."
        ),
        measures="CPU time to parse; no network.",
    ),
    "dns": Explanation(
        title="Finding the server's address (DNS)",
        beginner=(
            "Computers reach each other by numbers (IP addresses), not names, so the name "
            "has to be looked up. Your machine first checks its own list (the hosts file), "
            "then asks a recursive resolver, a server whose job is to find answers. If it "
            "does not know, it asks the root servers, which point to the servers for .com, "
            "which point to the servers that hold example.com's own records. Think of asking "
            "a librarian who goes from the catalogue to the right shelf to the right book."
        ),
        advanced=(
            "Three views are measured: getaddrinfo (what a browser uses: hosts file, then "
            "the resolver from resolv.conf), one recursive query with RD=1 (answer, TTLs, "
            "CNAME chain; a repeat shows the cache), and the iterative walk with RD=0 from "
            "the root hints, each hop a referral (NS in authority, glue in additional) until "
            "an authoritative answer (AA), NXDOMAIN or NODATA (RFC 1034 §4.3, RFC 2308). "
            "A, AAAA and HTTPS (type 65, RFC 9460) are asked."
        ),
        measures="Monotonic time from sending each query to its reply; a view's time covers "
                 "all its queries.",
    ),
    "tcp": Explanation(
        title="Opening a connection (TCP)",
        beginner=(
            "Now that the address is known, your computer opens a connection to it, a bit "
            "like a phone call: it says \"hello?\" (SYN), the server answers \"hello, I hear "
            "you\" (SYN-ACK) and your computer confirms (ACK). After this three-way "
            "handshake both sides know the line works, and data can flow in order and "
            "without loss."
        ),
        advanced=(
            "connect() returns once the SYN-ACK has arrived, so the time is one round trip "
            "plus the local stack (RFC 9293 §3.5). With both IPv6 and IPv4 addresses, Happy "
            "Eyeballs (RFC 8305) races them, IPv6 first, 250 ms apart. The kernel's TCP_INFO "
            "gives its own smoothed RTT (RFC 6298), MSS and congestion window."
        ),
        measures="Monotonic time from connect() to the socket being writable (SYN → SYN-ACK).",
    ),
    "tls": Explanation(
        title="Making the connection private (TLS)",
        beginner=(
            "Before sending anything personal, your computer and the server agree on secret "
            "keys that nobody listening on the way can learn, and the server proves who it "
            "is with a certificate signed by an authority your computer already trusts, like "
            "a passport checked against a list of real passport offices."
        ),
        advanced=(
            "ClientHello offers versions, ciphers, key shares, SNI and ALPN; the server picks "
            "(ServerHello), sends its certificate chain and proves it holds the key "
            "(CertificateVerify); both derive traffic keys from an (EC)DHE exchange. TLS 1.3 "
            "needs one round trip (RFC 8446), TLS 1.2 two (RFC 5246). The chain is verified "
            "up to a trusted root, and the name checked against the SANs (RFC 6125)."
        ),
        measures="Monotonic time from the ClientHello being sent to our Finished being "
                 "sent; message times are when OpenSSL processed each message.",
    ),
    "http": Explanation(
        title="Asking for the page (HTTP)",
        beginner=(
            "Finally the real question is asked: \"please give me / on www.example.com\". The "
            "server works out the answer and sends it back: a status (200 means OK, 301 means "
            "\"it moved, go there\", 404 \"not found\"), some labels about the content "
            "(headers), and the page itself, often compressed to travel faster."
        ),
        advanced=(
            "HTTP/1.1 (RFC 9112) or HTTP/2 (RFC 9113) as agreed by ALPN. Time to first byte "
            "(wait) covers one round trip plus the server's own work; receive is the "
            "transfer of the rest. Bytes on the wire include TLS records and headers; the "
            "decoded size is after Content-Encoding (gzip, br, zstd) is undone. Redirects "
            "are followed as a browser does, reusing a connection to the same origin."
        ),
        measures="send: writing the request; wait (TTFB): request sent → first response "
                 "byte; receive: first byte → last byte. Monotonic clock.",
    ),
    "browser": Explanation(
        title="Drawing the page (the browser)",
        beginner=(
            "The HTML is only a recipe. The browser reads it top to bottom and builds the "
            "page's tree (the DOM); every stylesheet, script, font and image it mentions is "
            "fetched too, many at once over the same connection. Nothing is drawn until the "
            "stylesheets in the head have arrived, so one slow stylesheet keeps the screen "
            "blank. Then the browser works out each element's style, where every box goes "
            "(layout) and paints it: the first text appears (FCP), then the largest picture "
            "or block of text (LCP)."
        ),
        advanced=(
            "Chromium's critical rendering path: ParseHTML (DOM), ParseAuthorStyleSheet "
            "(CSSOM), UpdateLayoutTree (style), Layout, PrePaint, Paint, Layerize, Commit, "
            "then the compositor draws the frame. Head stylesheets are render-blocking and "
            "classic scripts parser-blocking (HTML Standard §8.1.4.7); subresources share "
            "the HTTP/2 connection as streams (RFC 9113 §5). FCP, LCP and CLS are Core Web "
            "Vitals (Paint Timing, Largest Contentful Paint, Layout Instability specs)."
        ),
        measures="From Chromium's trace and CDP Network events, on the journey's monotonic "
                 "clock; FCP and LCP count from the navigation's start (the document "
                 "request).",
    ),
}
