"""Terminal escape injection (issue 8): what the peer sent is shown, never obeyed.

Real journeys against hostile servers on 127.0.0.1 — a resolver whose CNAME target's label
holds ESC and a bidi override; an HTTPS server (HTTP/1.1) whose certificate's CN, issuer and
SAN hold escape sequences and whose status reason and headers hold the C1 byte 0x9b, a bidi
override and zero-width characters, with a body that sets the window title (OSC 0); an HTTP/2
server whose header values clear the screen and set the title; an HTTP/2 server that says
GOAWAY with escape sequences in its debug data; an HTTP/1.1 server whose status line holds
ESC — and every renderer of each journey: the terminal report (plain, colour, the real
command in a subprocess and under a pty), the JSON, the HAR, the HTML report, the live page's
events and the real ``serve``'s event stream and downloads. Each output holds no control
character the peer sent, only its visible escape; the JSON ones parse back to the journey.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
from h2.errors import ErrorCodes
from hypothesis import given
from hypothesis import strategies as st

import certgen
from journey_helpers import options, run
from misbehaving import RawServer, TinyDns, read_request_head, wait_until_closed
from serve_helpers import journey as live_journey
from serve_helpers import request as live_request
from serve_helpers import serve
from whathappens.commands.output import render
from whathappens.render.har import to_har
from whathappens.render.html import render_html
from whathappens.render.terminal import render_terminal
from whathappens.render.visible import escape_json, visible, visible_tree
from whathappens.web.events import DETAIL_SPANS, LIVE_SPANS, detail_event, step_event

# ------------------------------------------------------------------------- what is unsafe
# Written out here, not imported: the tests must not share the module's idea of "unsafe".
# C0 (ECMA-48 §5.2) but LF, DEL, C1 (§5.3), bidi controls (Unicode TR9, CVE-2021-42574),
# line/paragraph separators, zero-width and invisible characters, tag characters.
RAW_CONTROL = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f\x80-\x9f\u061c\u200b\u200e\u200f\u202a-\u202e\u2028\u2029"
    "\u2060-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]")
# What rich writes for colour: SGR sequences only (ECMA-48 §8.3.117).
SGR = re.compile(r"\x1b\[[0-9;]*m")


def raw_controls(text: str, allow: str = "") -> list[str]:
    return sorted({c for c in RAW_CONTROL.findall(text) if c not in allow})


# ------------------------------------------------------------------- the hostile payloads
CLEAR = "\x1b[2J\x1b[H"  # erase the screen, cursor home
TITLE = "\x1b]0;pwned\x07"  # OSC 0: set the window title
HOST = "www.evil.test"
H2_HOST = "h2.evil.test"
BAD_LABEL = b"c\x1b[2Jname\xe2\x80\xae"  # a CNAME target label: ESC and U+202E (UTF-8)
IN_CN = f"{CLEAR}leaf{TITLE}\u202etxt.exe"
IN_ISSUER = f"{TITLE}issuer\x9b31m\u2066"
IN_SAN = "san\x1b[2J.evil.test"
REASON = b"OK \x9b2J\xad"  # not UTF-8: read as ISO-8859-1, so 0x9b is U+009B
H1_HEADERS = [(b"X-C1", b"a\x9b2Jb\x9d0;t\x9c"),  # C1 CSI, OSC, ST (ISO-8859-1)
              (b"X-Bidi", "\u202egnp.exe \u2066x\u2069 \u200bz\ufeff".encode()),
              (b"X-Markup", b"[bold red]boom[/]"),
              (b"Content-Type", b"text/html; charset=utf-8")]
BODY = (f"<title>{TITLE}</title>{CLEAR}\n\u202e\u2028line\tend\r\n\x7f\x85").encode()
H2_HEADERS = [(b"x-clear", f"before{CLEAR}after".encode()),
              (b"x-title", f"{TITLE}t".encode()),
              (b"x-bidi", "\u202e\u2067\u200fabc".encode()),
              (b"content-type", b"text/plain; charset=utf-8")]
GOAWAY_DATA = f"bye{CLEAR}{TITLE}\u202e".encode()
# h11 takes ESC in a reason phrase or a field value as it is
ESC_STATUS = (f"HTTP/1.1 200 OK{CLEAR}{TITLE}\r\nX-Esc: {CLEAR}\b\bfake\r\n"
              "Content-Length: 0\r\n\r\n").encode()
# visible forms a reader must see (render/visible.py writes them as Python does)
SHOWN = ("\\x1b[2J", "\\x9b", "\\u202e")


# ------------------------------------------------------------------------------- servers
def evil_resolver(query: dns.message.Message) -> dns.message.Message:
    """Every name under evil.test: a CNAME to a target whose first label holds ESC and
    U+202E; that target's A record is 127.0.0.1."""
    q = query.question[0]
    response = dns.message.make_response(query)
    response.flags |= dns.flags.RA
    target = dns.name.Name([BAD_LABEL, b"evil", b"test", b""])
    if q.name != target:
        response.answer.append(dns.rrset.from_text_list(
            q.name, 60, dns.rdataclass.IN, dns.rdatatype.CNAME, [target.to_text()]))
    if q.rdtype == dns.rdatatype.A:
        response.answer.append(dns.rrset.from_text(target, 60, "IN", "A", "127.0.0.1"))
    return response


def tls_h1_server(context: ssl.SSLContext) -> Callable[[socket.socket], None]:
    head = (b"HTTP/1.1 200 " + REASON + b"\r\n"
            + b"".join(n + b": " + v + b"\r\n" for n, v in H1_HEADERS)
            + f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n".encode())

    def serve_one(conn: socket.socket) -> None:
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                read_request_head(tls)
                tls.sendall(head + BODY)
                wait_until_closed(tls, 3)
        except ssl.SSLError:
            pass

    return serve_one


def h2_server(*, goaway: bool = False) -> Callable[[socket.socket], None]:
    """HTTP/2 with prior knowledge. Sends what it is told without h2's outbound checks."""

    def serve_one(conn: socket.socket) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                           validate_outbound_headers=False,
                                           normalize_outbound_headers=False)
        peer = h2.connection.H2Connection(config)
        peer.initiate_connection()
        conn.sendall(peer.data_to_send())
        while data := conn.recv(65536):
            try:
                events = peer.receive_data(data)
            except h2.exceptions.ProtocolError:  # the client's frames after our GOAWAY
                return
            for event in events:
                if isinstance(event, h2.events.StreamEnded):
                    sid = event.stream_id
                    peer.send_headers(sid, [(b":status", b"200"), *H2_HEADERS])
                    if goaway:
                        peer.close_connection(ErrorCodes.ENHANCE_YOUR_CALM,
                                              additional_data=GOAWAY_DATA)
                    else:
                        peer.send_data(sid, BODY, end_stream=True)
            conn.sendall(peer.data_to_send())

    return serve_one


def esc_status_server(conn: socket.socket) -> None:
    read_request_head(conn)
    conn.sendall(ESC_STATUS)
    wait_until_closed(conn, 3)


@dataclass
class Evil:
    https: str  # HTTP/1.1 over TLS, hostile certificate, reason, headers, body
    h2: str  # HTTP/2 cleartext, hostile header values and body
    goaway: str  # HTTP/2 GOAWAY with hostile debug data
    status: str  # HTTP/1.1 status line and a header with ESC
    wrong_name: str  # a certificate for other (hostile) names only: TLS fails, names them
    args: list[str]  # --resolver, --cacert, --dns-views


@pytest.fixture(scope="module")
def evil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Evil]:
    tmp = tmp_path_factory.mktemp("escapes")
    root = certgen.make_ca("whathappens escapes root")
    intermediate = certgen.make_ca(IN_ISSUER, issuer=root)
    leaf = certgen.make_leaf(intermediate, [HOST, IN_SAN], cn=IN_CN)
    certfile, keyfile = certgen.write_server_files(tmp, [leaf, intermediate])
    context = certgen.server_context(certfile, keyfile)
    context.set_alpn_protocols(["http/1.1"])
    other = certgen.make_leaf(intermediate, [IN_SAN], cn=IN_CN)
    other_files = certgen.write_server_files(tmp, [other, intermediate], stem="other")
    other_context = certgen.server_context(*other_files)
    with TinyDns(evil_resolver) as resolver, RawServer(tls_h1_server(context)) as https, \
            RawServer(h2_server()) as h2s, RawServer(h2_server(goaway=True)) as gone, \
            RawServer(esc_status_server) as status, \
            RawServer(tls_h1_server(other_context)) as wrong:
        yield Evil(f"https://{HOST}:{https.port}/", f"http://{H2_HOST}:{h2s.port}/",
                   f"http://{H2_HOST}:{gone.port}/", status.url(),
                   f"https://{HOST}:{wrong.port}/",
                   ["--resolver", resolver.address, "--dns-views", "resolver",
                    "--cacert", certgen.write_cafile(tmp, [root]), "--max-time", "20"])


def strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def walk(spans: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for span in spans:
        yield span
        yield from walk(span.get("children") or [])


CASES = {"https": ("https", []), "h2": ("h2", ["--http2"]), "goaway": ("goaway", ["--http2"]),
         "status": ("status", []), "wrong_name": ("wrong_name", [])}


@pytest.fixture(scope="module")
def journeys(evil: Evil) -> dict[str, dict[str, Any]]:
    """Each hostile journey, run once in-process, as its JSON-ready dict."""
    out = {}
    for name, (attr, extra) in CASES.items():
        journey = run(getattr(evil, attr), options(*evil.args, *extra))
        out[name] = json.loads(json.dumps(journey.to_dict()))
    return out


# ------------------------------------------------------ the journeys met every payload
def test_the_journeys_really_carry_the_hostile_text(journeys: dict[str, dict[str, Any]]
                                                    ) -> None:
    https = "\n".join(strings(journeys["https"]))
    for payload in (IN_CN, IN_ISSUER, IN_SAN, "OK \x9b2J\xad", "a\x9b2Jb\x9d0;t\x9c",
                    "\u202egnp.exe", f"<title>{TITLE}</title>", "\u2028line\tend"):
        assert payload in https, payload
    assert journeys["https"]["exit_code"] == 0
    h2 = "\n".join(strings(journeys["h2"]))
    assert f"before{CLEAR}after" in h2
    assert f"{TITLE}t" in h2
    assert journeys["h2"]["exit_code"] == 0
    assert journeys["goaway"]["error"]["code"] == "http.goaway"
    assert journeys["status"]["exit_code"] == 0
    assert "\n".join(strings(journeys["status"])).count(CLEAR) >= 2  # reason, X-Esc
    assert journeys["wrong_name"]["error"]["step"] == "tls"
    # every journey holds raw controls somewhere: the renderers have work to do (but the
    # GOAWAY's debug data, which http2.py already quotes with every byte visible)
    for name, doc in journeys.items():
        assert bool(raw_controls("\n".join(strings(doc)), allow="\n")) == (name != "goaway")


# ------------------------------------------------------------------------------ terminal
def terminal(doc: dict[str, Any], *, color: bool, explain: bool = False, width: int = 100
             ) -> str:
    out = io.StringIO()
    render_terminal(doc, out, color=color, width=width, explain=explain)
    return out.getvalue()


@pytest.mark.parametrize("name", list(CASES))
def test_terminal_report_shows_controls_and_obeys_none(journeys: dict[str, dict[str, Any]],
                                                       name: str) -> None:
    doc = journeys[name]
    plain = terminal(doc, color=False, explain=True)
    assert raw_controls(plain) == []
    assert "\x1b" not in plain
    colour = terminal(doc, color=True)
    assert "\x1b[" in colour  # rich did colour it
    assert re.search(r"\x1b(?!\[[0-9;]*m)", colour) is None  # no ESC but rich's SGR
    assert raw_controls(SGR.sub("", colour)) == []
    # the same report, colour aside
    assert [line.rstrip() for line in SGR.sub("", colour).splitlines()] == [
        line.rstrip() for line in terminal(doc, color=False).splitlines()]


def test_terminal_shows_each_payload_where_the_peer_put_it(journeys: dict[str, dict[str, Any]]
                                                           ) -> None:
    text = terminal(journeys["https"], color=False, width=400)  # one line each
    assert "leaf \\x1b[2J\\x1b[Hleaf\\x1b]0;pwned\\x07\\u202etxt.exe" in text  # the CN
    assert "issued by \\x1b]0;pwned\\x07issuer\\x9b31m\\u2066" in text
    assert "san\\x1b[2J.evil.test" in text
    assert "200 OK \\x9b2J\xad" in text  # the reason; U+00AD (soft hyphen) is not a control
    assert "< X-C1: a\\x9b2Jb\\x9d0;t\\x9c" in text
    assert "< X-Bidi: \\u202egnp.exe \\u2066x\\u2069 \\u200bz\\ufeff" in text
    assert "< X-Markup: [bold red]boom[/]" in text  # rich markup is text too
    # the CNAME target: dnspython's own \DDD escapes (its text form, lower-cased here)
    assert "c\\027[2jname\\226\\128\\174.evil.test" in text.lower()
    text = terminal(journeys["h2"], color=False, width=400)
    assert "< x-clear: before\\x1b[2J\\x1b[Hafter" in text
    assert "< x-title: \\x1b]0;pwned\\x07t" in text
    assert "< x-bidi: \\u202e\\u2067\\u200fabc" in text
    text = terminal(journeys["goaway"], color=False)
    assert "ENHANCE_YOUR_CALM" in text
    assert "\\x1b[2J" in text
    text = terminal(journeys["status"], color=False, width=400)
    assert "HTTP/1.1 200 OK\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07" in text
    assert "< X-Esc: \\x1b[2J\\x1b[H\\x08\\x08fake" in text
    text = terminal(journeys["wrong_name"], color=False, width=400)
    last = text.strip().splitlines()[-1]
    assert last.startswith("failed at tls: ")
    assert "it covers san\\x1b[2J.evil.test.  (exit 6)" in last


def test_normal_text_is_untouched() -> None:
    for text in ("", "plain ASCII [bold] \\x1b", "müde Straße · 日本語 · עברית · العربية",
                 "emoji 👩‍💻 ZWJ and ZWNJ می‌خواهم", "tab-free, LF-free"):
        assert visible(text) == text
        assert escape_json(json.dumps(text, ensure_ascii=False)) == json.dumps(
            text, ensure_ascii=False)


@pytest.mark.parametrize(("raw", "shown"), [
    ("\x1b", "\\x1b"), ("\x00", "\\x00"), ("\x07", "\\x07"), ("\x08", "\\x08"),
    ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"), ("\x7f", "\\x7f"), ("\x85", "\\x85"),
    ("\x9b", "\\x9b"), ("\x9f", "\\x9f"), ("\u061c", "\\u061c"), ("\u200e", "\\u200e"),
    ("\u200f", "\\u200f"), ("\u202a", "\\u202a"), ("\u202e", "\\u202e"),
    ("\u2066", "\\u2066"), ("\u2069", "\\u2069"), ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"), ("\u200b", "\\u200b"), ("\ufeff", "\\ufeff"),
    ("\U000e0041", "\\U000e0041"), ("\udc9b", "\\udc9b"),
])
def test_each_control_has_a_visible_escape(raw: str, shown: str) -> None:
    assert visible(f"a{raw}b") == f"a{shown}b"


def test_layout_is_kept_only_when_asked() -> None:
    assert visible("a\tb\nc\rd\x1b", keep_layout=True) == "a\tb\nc\rd\\x1b"
    tree = visible_tree({"k\x1b": ["a\nb", ("\u202e",), 3, None],
                         "explain": "one\ntwo\x1b\r"}, lines=("explain",))
    assert tree == {"k\\x1b": ["a\\nb", ["\\u202e"], 3, None], "explain": "one\ntwo\\x1b\\r"}


@given(st.text())
def test_visible_leaves_no_control(text: str) -> None:
    assert raw_controls(visible(text)) == []
    assert "\n" not in visible(text)


@given(st.recursive(st.text() | st.integers() | st.none(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)))
def test_escape_json_keeps_the_values(value: object) -> None:
    text = escape_json(json.dumps(value, ensure_ascii=False, indent=2))
    assert json.loads(text) == value
    assert raw_controls(text) == []


# ----------------------------------------------------------- the real command, its output
def whathappens(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "whathappens", *args], capture_output=True,
                          timeout=60, check=False)


@pytest.mark.parametrize("name", ["https", "h2"])
def test_the_command_no_color(evil: Evil, name: str) -> None:
    attr, extra = CASES[name]
    result = whathappens(getattr(evil, attr), *evil.args, *extra, "--no-color")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode("utf-8")  # strict: valid UTF-8
    assert raw_controls(out) == []
    assert b"\x1b" not in result.stdout
    for shown in SHOWN if name == "https" else ("\\x1b[2J", "\\u202e"):
        assert shown in out, shown


def test_the_command_in_colour_on_a_terminal(evil: Evil) -> None:
    """A pty: the command sees a terminal and colours its report."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "whathappens", evil.https, *evil.args,
                                 "--width", "120"], stdin=subprocess.DEVNULL, stdout=slave,
                                stderr=subprocess.PIPE,
                                env={k: v for k, v in os.environ.items() if k != "NO_COLOR"})
        os.close(slave)
        chunks = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    finally:
        os.close(master)
    out = b"".join(chunks).decode("utf-8")
    assert SGR.search(out)  # coloured
    assert re.search(r"\x1b(?!\[[0-9;]*m)", out) is None
    assert raw_controls(SGR.sub("", out), allow="\r") == []  # the pty writes CR LF
    assert "\r" not in SGR.sub("", out).replace("\r\n", "")
    for shown in SHOWN:
        assert shown in out, shown


# ------------------------------------------------------------------------ JSON and HAR
def args_for(tmp: Path, *, json_out: bool) -> Any:
    import argparse

    return argparse.Namespace(json=json_out, har=str(tmp / "j.har"), html=str(tmp / "j.html"),
                              explain=False, no_color=True, width=100)


@pytest.mark.parametrize("name", list(CASES))
def test_json_har_and_html_files(journeys: dict[str, dict[str, Any]], tmp_path: Path,
                                 name: str) -> None:
    doc = journeys[name]
    out = io.StringIO()
    render(doc, args_for(tmp_path, json_out=True), out)
    text = out.getvalue()
    assert raw_controls(text) == []  # JSON escapes C0; escape_json the rest
    assert json.loads(text) == doc  # the same values
    har_text = (tmp_path / "j.har").read_bytes().decode("utf-8")
    assert raw_controls(har_text) == []
    assert json.loads(har_text) == json.loads(json.dumps(to_har(doc)))
    page = (tmp_path / "j.html").read_bytes().decode("utf-8")
    assert page == render_html(doc)
    # TAB, LF, CR only where the page's <pre> lays out a body excerpt (HTML whitespace)
    assert raw_controls(page, allow="\t\r") == []
    shown, data = page.split('<script type="application/json" id="journey-data">', 1)
    assert json.loads(data.split("</script>", 1)[0]) == doc
    assert "\\x1b[2J" in shown


def test_har_and_html_show_the_body_excerpt(journeys: dict[str, dict[str, Any]]) -> None:
    doc = journeys["https"]
    har = to_har(doc)
    assert TITLE in har["log"]["entries"][0]["response"]["content"]["text"]  # the value
    page = render_html(doc)
    # in the <pre>, its lines and tab kept, the title-setting sequence shown
    assert ("&lt;title&gt;\\x1b]0;pwned\\x07&lt;/title&gt;\\x1b[2J\\x1b[H\n"
            "\\u202e\\u2028line\tend\r\n\\x7f\\x85") in page
    assert "\\u202egnp.exe" in page  # a header, in its own line of the headers <pre>
    assert "X-C1: a\\x9b2Jb\\x9d0;t\\x9c" in page


# -------------------------------------------------------------------------- the live page
@pytest.mark.parametrize("name", list(CASES))
def test_live_events_show_controls(journeys: dict[str, dict[str, Any]], name: str) -> None:
    doc = journeys[name]
    events = []
    for span in walk(doc["spans"]):
        if span["name"] in DETAIL_SPANS:
            events.append(detail_event(span, 0))
        elif span["name"] in LIVE_SPANS:
            events.append(step_event(span, 0))
    assert events
    text = "\n".join(s for e in events for s in strings(e))
    assert raw_controls(text) == []
    assert all("\n" not in s for e in events for s in strings(e))
    if name in ("https", "status"):  # the reason, in the HTTP step's summary
        assert "\\x9b2J" in text or "\\x1b[2J" in text


def test_the_real_serve(evil: Evil) -> None:
    """``whathappens serve``: the event stream, the report in it and the downloads."""
    with serve(*evil.args) as served:
        stream = live_journey(served, evil.https)
        assert stream.status == 200
        kinds = stream.kinds()
        assert "report" in kinds, kinds
        for kind, data, _ in stream.events:
            if kind == "report":
                assert raw_controls(data["html"], allow="\t\r") == []
                assert "\\x1b[2J" in data["html"]
            else:
                assert raw_controls(json.dumps(data, ensure_ascii=False)) == []
        summaries = " ".join(d["summary"] for d in stream.steps())
        assert "\\x9b2J" in summaries  # the reason, in the HTTP step's summary
        ident = stream.one("report")["id"]
        for ext in ("json", "har"):
            status, _, body = live_request(served, "GET", f"/journeys/{ident}.{ext}")
            assert status == 200
            text = body.decode("utf-8")
            assert raw_controls(text) == []
            values = "\n".join(strings(json.loads(text)))  # the values, intact
            assert (IN_CN if ext == "json" else "a\x9b2Jb\x9d0;t\x9c") in values
        # an error text that quotes the peer: the status line and the TLS step say it
        stream = live_journey(served, evil.wrong_name)
        report = stream.one("report")
        assert report["error"]["code"] == "tls.cert_hostname_mismatch"
        assert "it covers san\\x1b[2J.evil.test" in report["error"]["message"]
        tls = next(d for d in stream.steps() if d["step"] == "tls")
        assert "it covers san\\x1b[2J.evil.test" in tls["summary"]
        for kind, data, _ in stream.events:
            assert raw_controls(json.dumps(data, ensure_ascii=False), allow="\t\r") == [], kind



def test_control_characters_in_headers_are_a_finding(journeys: dict[str, dict[str, Any]]
                                                     ) -> None:
    """RFC 9110 §5.5 forbids them; h11 and h2 let them through, so the journey says so."""
    for name in ("https", "h2", "status"):
        said = [f["message"] for f in journeys[name]["findings"]]
        assert any("control characters in" in m and "RFC 9110 §5.5" in m for m in said), name
