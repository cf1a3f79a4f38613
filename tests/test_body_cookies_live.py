"""A body and a cookie jar on a real server: what is sent on each leg of the journey."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from threaded_server import raw_server, serving
from whathappens.commands.trace import trace_main
from whathappens.cookies import CookieJar, read_netscape
from whathappens.trace import Options, run_journey

Seen = list[dict[str, Any]]


def site(seen: Seen):  # type: ignore[no-untyped-def]
    """/login sets cookies and 303s to /home; /form 307s to /echo (body kept) ."""

    async def handler(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ")
            fields = {k.lower(): v.strip() for k, _, v in
                      (x.partition(":") for x in lines[1:] if x)}
            body = await reader.readexactly(int(fields.get("content-length", "0")))
            seen.append({"method": method, "target": target, "cookie": fields.get("cookie"),
                         "type": fields.get("content-type"), "body": body})
            extra = ""
            status = "200 OK"
            if target == "/login":
                status = "303 See Other"
                extra = ("Location: /home\r\nSet-Cookie: sid=s3cr3t; Path=/; HttpOnly\r\n"
                         "Set-Cookie: far=1; Domain=other.example\r\n"
                         "Set-Cookie: sec=1; Secure\r\n")
            elif target == "/form":
                status, extra = "307 Temporary Redirect", "Location: /echo\r\n"
            w.write(f"HTTP/1.1 {status}\r\n{extra}Content-Length: 2\r\n\r\nok".encode())
            await w.drain()

    return raw_server(handler)


def run(port: int, path: str, **kw: Any) -> Any:
    opts = Options(revalidate=False, **kw)
    return asyncio.run(run_journey(f"http://127.0.0.1:{port}{path}", opts))


def test_303_drops_the_body_and_cookies_follow_the_legs() -> None:
    seen: Seen = []
    with serving(site(seen)) as port:
        j = run(port, "/login", method="POST", body=b"user=a&pw=b",
                headers=[("Content-Type", "application/x-www-form-urlencoded")],
                cookies=CookieJar())
    assert j.error is None, j.error
    login, home = seen
    assert (login["method"], login["body"], login["cookie"]) == ("POST", b"user=a&pw=b", None)
    assert login["type"] == "application/x-www-form-urlencoded"
    # 303: GET, no body, no body fields; the cookie the login set goes with it, the one
    # for another domain and the Secure one (set over http) do not.
    assert (home["method"], home["body"], home["type"]) == ("GET", b"", None)
    assert home["cookie"] == "sid=s3cr3t"
    note = next(f.message for f in j.findings if "Set-Cookie" in f.message)
    assert "far: Domain=other.example does not cover 127.0.0.1" in note
    assert "sec: Secure, but set over http" in note
    assert any("carried a body of 11 bytes" in f.message for f in j.findings)


def test_307_sends_the_body_again_and_no_jar_means_no_cookies() -> None:
    seen: Seen = []
    with serving(site(seen)) as port:
        j = run(port, "/form", method="POST", body=b'{"a":1}')
        j2 = run(port, "/login", method="POST", body=b"x")
    assert j.error is None
    assert j2.error is None
    assert [(s["method"], s["body"]) for s in seen[:2]] == [("POST", b'{"a":1}'),
                                                            ("POST", b'{"a":1}')]
    assert seen[3]["cookie"] is None                     # the cookie engine was off


def test_cli_data_and_cookie_jar_round_trip(tmp_path: Path) -> None:
    seen: Seen = []
    jar = tmp_path / "jar.txt"
    with serving(site(seen)) as port:
        base = f"http://127.0.0.1:{port}"
        code = trace_main([f"{base}/login", "-d", "user=a", "--data-urlencode", "pw=p w",
                           "-c", str(jar), "--no-revalidate", "--json"])
        assert code == 0
        text = jar.read_text()
        assert "#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t0\tsid\ts3cr3t" in text
        assert len(read_netscape(text, 0)) == 1
        code = trace_main([f"{base}/home", "-b", str(jar), "--no-revalidate", "--json"])
        assert code == 0
        code = trace_main([f"{base}/home", "-b", "a=1; b=2", "--no-revalidate", "--json"])
    assert seen[0]["body"] == b"user=a&pw=p%20w"
    assert seen[0]["method"] == "POST"
    assert seen[2]["cookie"] == "sid=s3cr3t"
    assert seen[3]["cookie"] == "a=1; b=2"
