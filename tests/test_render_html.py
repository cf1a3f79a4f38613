"""The self-contained HTML report: every section with the journey's real values, nothing
that reaches the network, and every journey value escaped (no browser needed here).

The report of tests/data/journey_demo.json is kept as a golden file beside the terminal's
(tests/data/journey_demo.golden.html). After an intended change, regenerate both with
``UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_render_html.py
tests/test_render_terminal.py`` and read the diff: it is what a reader will see.
"""

from __future__ import annotations

import copy
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from journey_helpers import demo_args, demo_url
from whathappens.demo.internet import DemoInternet
from whathappens.render.html import CSP, render_html, script_json

DATA = Path(__file__).parent / "data" / "journey_demo.json"
GOLDEN = DATA.with_name("journey_demo.golden.html")
VOID = {"meta", "input", "br", "hr", "img", "link", "source", "wbr", "col", "area", "base"}


def load() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
    return doc


class Checker(HTMLParser):
    """Tags balance; collects ids, attributes and the text of every element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.ids: set[str] = set()
        self.attrs: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.metas: list[dict[str, str | None]] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        d = dict(attrs)
        if d.get("id"):
            self.ids.add(str(d["id"]))
        self.attrs += [(tag, k, v) for k, v in attrs]
        if tag == "meta":
            self.metas.append(d)
        if tag == "script":
            self.scripts.append((d, ""))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] == "script":
            d, _ = self.scripts[-1]
            self.scripts[-1] = (d, self.scripts[-1][1] + data)
        else:
            self.text.append(data)


def parse(page: str) -> Checker:
    c = Checker()
    c.feed(page)
    c.close()
    assert c.errors == []
    assert c.stack == []
    return c


def test_report_matches_golden_file() -> None:
    page = render_html(load())
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(page, encoding="utf-8")
    assert page == GOLDEN.read_text(encoding="utf-8")


def test_stylesheet_is_the_package_file_inlined_once() -> None:
    from importlib.resources import files

    css = files("whathappens.render").joinpath("report.css").read_text(encoding="utf-8")
    page = render_html(load())
    assert page.count("<style>") == 1
    assert css.strip() in page
    assert ".s-dns{background:var(--dns)}" in css  # the waterfall's colours live there


def test_every_section_with_the_journeys_values() -> None:
    j = load()
    page = render_html(j)
    c = parse(page)
    for ident in ("glance", "url", "dns", "tcp", "tls", "http", "waterfall", "layers",
                  "cheatsheet", "footer", "mode-beginner", "mode-advanced"):
        assert ident in c.ids, ident
    text = " ".join(c.text)
    # at a glance: the summary and the actors in order
    assert "200 · HTTP/2 · TLSv1.3 · 94.7 ms total" in text
    order = [text.index(s) for s in ("127.0.53.53:10053", "a.root-servers.net.",
                                     "a.gtld-servers.net.", "ns1.example.com.", "[::1]:10443")]
    assert order == sorted(order)
    # URL anatomy, DNS hops, TCP, TLS, HTTP
    for value in ("registrable domain", "example.com", "10443", "explicit",
                  "127.0.53.1", "127.0.53.2", "127.0.53.3", "referral", "[::1]:57828",
                  "32732", "not captured", "TLS_AES_256_GCM_SHA384", "x25519",
                  "client_hello", "certificate_verify", "whathappens demo intermediate CA",
                  "2027-02-19", "trusted: chain and name verified", "user-agent: whathappens/0.1.0",
                  "server: hypercorn-h2", "demo_session=1; Path=/; Secure; HttpOnly; SameSite=Lax",
                  "rules of thumb, not measurements", "monotonic (time.perf_counter_ns)",
                  "system resolver view is skipped"):
        assert value in text, value
    # each step's texts (explain/), filled with this journey's values, beginner and advanced
    from whathappens.render.view import journey_view, read

    view = journey_view(read(j))
    leg = view.legs[0]
    for e in (view.url_step.explain if view.url_step else None, leg.explain,
              leg.dns.explain if leg.dns else None, leg.tcp.explain if leg.tcp else None,
              leg.tls.explain if leg.tls else None, leg.http.explain if leg.http else None,
              view.page_explain):
        assert e is not None
        assert e.beginner in text
        assert e.advanced in text
    assert "“GET / on www.example.com:10443, please”" in text
    # layers: each step's recorded layer
    assert "transport layer" in text
    assert "application layer" in text
    # the cheat sheet, filled in for this URL
    for cmd in ("dig +trace -p 10053 www.example.com",
                "dig @127.0.53.53 -p 10053 www.example.com A",
                "openssl s_client -connect www.example.com:10443 -servername www.example.com "
                "-alpn h2 </dev/null",
                "--resolve 'www.example.com:10443:[::1]'", "%{time_starttransfer}"):
        assert cmd in text, cmd


def test_self_contained_and_strict_csp() -> None:
    page = render_html(load())
    c = parse(page)
    csp = [m for m in c.metas if (m.get("http-equiv") or "").lower()
           == "content-security-policy"]
    assert csp
    assert csp[0]["content"] == CSP
    assert "default-src 'none'" in CSP
    for tag, name, value in c.attrs:
        if name in ("src", "href", "action", "srcset", "poster", "data"):
            assert value is not None, (tag, name)
            assert value.startswith("#"), (tag, name, value)
    assert "<link" not in page
    assert "<img" not in page
    assert "<iframe" not in page
    style = page[page.index("<style>"):page.index("</style>")]
    assert "url(" not in style
    assert "@import" not in style
    assert "@font-face" not in style
    # the only script is inert data
    assert [d.get("type") for d, _ in c.scripts] == ["application/json"]
    assert re.search(r"(src|href)\s*=\s*[\"']?https?:", page) is None


HOSTILE = ["<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "</script>",
           "\u2028"]


def hostile() -> dict[str, Any]:
    j = copy.deepcopy(load())
    payload = "".join(HOSTILE)
    leg = next(s for s in j["spans"] if s["name"] == "leg")
    kids = {c["name"]: c for c in leg["children"]}
    kids["http"]["attrs"]["response_headers"].append(["x-evil", payload])
    kids["http"]["attrs"]["body_excerpt"] = payload
    cert = kids["tls"]["attrs"]["chain"][0]
    cert["subject"] = cert["subject_cn"] = payload
    walk = next(v for v in kids["dns"]["children"] if v["name"] == "dns.walk")
    walk["children"][0]["children"][0]["attrs"]["server"] = payload
    j["error"] = {"step": "http", "code": payload, "message": payload, "exit_code": 7}
    j["findings"].append({"severity": "error", "step": "http", "message": payload})
    return j


def test_hostile_values_are_escaped_everywhere() -> None:
    page = render_html(hostile())
    c = parse(page)
    assert "<script>alert(1)" not in page
    assert "<img" not in page
    assert "onerror=alert(1)>" not in page.replace("onerror=alert(1)&gt;", "")
    assert "\u2028" not in page
    assert page.count("</script>") == 1  # the data block's own end tag
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    # shown as a visible escape (render/visible.py), in the page's text, not only in the data
    assert "\\u2028" in page.split("<script", 1)[0]
    # no element or attribute came from the payload
    assert {t for t, _, _ in c.attrs} <= {"meta", "input", "label", "a", "section", "h2", "ol",
                                          "span", "p", "dl", "table", "tr", "th", "td", "div",
                                          "html", "script", "nav", "ul", "li", "main", "header",
                                          "footer", "pre", "code", "h3", "h4", "strong"}
    assert all(name != "onerror" for _, name, _ in c.attrs)
    # the data block is JSON that parses back to the hostile journey
    _, data = c.scripts[0]
    assert "<" not in data
    assert ">" not in data
    assert "\u2028" not in data
    assert json.loads(data)["error"]["message"] == "".join(HOSTILE)
    # each place the payload was put shows it, escaped
    text = " ".join(c.text)
    assert text.count("<script>alert(1)</script>") >= 6


def test_script_json_is_safe_in_script_context() -> None:
    s = script_json({"a": "</script><!--&\u2028\u2029"})
    assert s == '{"a": "\\u003c/script\\u003e\\u003c!--\\u0026\\u2028\\u2029"}'
    assert json.loads(s) == {"a": "</script><!--&\u2028\u2029"}


def test_failed_journey_renders() -> None:
    j = copy.deepcopy(load())
    leg = next(s for s in j["spans"] if s["name"] == "leg")
    leg["children"] = leg["children"][:1]
    j["error"] = {"step": "tcp", "code": "connection_refused", "message": "refused",
                  "exit_code": 5}
    page = render_html(j)
    parse(page)
    assert "Failed at tcp" in page
    assert "No TCP connection was opened" in page


def test_cli_writes_the_html_file(demo_internet: DemoInternet, tmp_path: Path) -> None:
    from whathappens.cli import main

    net = demo_internet
    out = tmp_path / "report.html"
    code = main([demo_url(net), "--json", "--html", str(out), *demo_args(net)])
    assert code == 0
    page = out.read_text(encoding="utf-8")
    c = parse(page)
    text = " ".join(c.text)
    assert "a.root-servers.net." in text
    assert "TLSv1.3" in text
    assert f"{net.https_port}" in text
    assert CSP in page
