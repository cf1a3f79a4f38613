"""Start a real ``whathappens serve`` and talk to it like the page does (POST, then SSE)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whathappens.demo.internet import DemoInternet

WHATHAPPENS = str(Path(sys.executable).parent / "whathappens")
START_TIMEOUT = 30.0  # seconds for serve to print its address


@dataclass
class Served:
    proc: subprocess.Popen[str]
    host: str
    port: int

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass
class Stream:
    status: int
    headers: dict[str, str]
    events: list[tuple[str, Any, float]] = field(default_factory=list)  # kind, data, arrival

    def kinds(self) -> list[str]:
        return [k for k, _, _ in self.events]

    def steps(self) -> list[dict[str, Any]]:
        return [d for k, d, _ in self.events if k == "step" and not d.get("pending")]

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def one(self, kind: str) -> dict[str, Any]:
        found = [d for k, d, _ in self.events if k == kind]
        assert len(found) == 1, (kind, self.kinds())
        data: dict[str, Any] = found[0]
        return data


def demo_args(demo: DemoInternet) -> list[str]:
    """Aim the served journeys at the test session's demo internet."""
    return ["--root-hints", str(demo.root_hints), "--cacert", str(demo.ca),
            "--dns-port", str(demo.dns_port), "--resolver",
            f"{demo.resolver}:{demo.resolver_port}", "--dns-views", "resolver,walk"]


@contextlib.contextmanager
def serve(*args: str, cwd: Path | None = None, browser: bool = False) -> Iterator[Served]:
    """``whathappens serve --port 0 ARGS``; yields once it prints its address. The browser
    phase (on by default where Chromium is) only with ``browser=True``: these tests count the
    connections their servers see, and a page load would add its own."""
    extra = [] if browser else ["--no-browser"]
    proc = subprocess.Popen([WHATHAPPENS, "serve", "--port", "0", *extra, *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            ready = sel.select(START_TIMEOUT)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("whathappens serve: http://"):
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"serve did not start: {line!r} {err!r}")
        address = line.split("http://", 1)[1].split("/", 1)[0]
        host, _, port = address.rpartition(":")
        yield Served(proc, host, int(port))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def request(served: Served, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(served.host, served.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def post(served: Served, url: str, *, timeout: float = 60.0,
         headers: dict[str, str] | None = None
         ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """POST /api/journey as the page does; returns once the response head has arrived."""
    conn = http.client.HTTPConnection(served.host, served.port, timeout=timeout)
    conn.request("POST", "/api/journey", body=json.dumps({"url": url}).encode(),
                 headers={"Content-Type": "application/json", **(headers or {})})
    return conn, conn.getresponse()


def events(resp: http.client.HTTPResponse, start: float | None = None
           ) -> Iterator[tuple[str, Any, float]]:
    """Server-sent events (HTML Living Standard §9.2) as they arrive: kind, JSON data, and
    seconds since ``start`` (time.monotonic())."""
    start = time.monotonic() if start is None else start
    kind, data = "message", ""
    while line := resp.readline():
        text = line.decode().rstrip("\n")
        if text.startswith("event: "):
            kind = text[7:]
        elif text.startswith("data: "):
            data += text[6:]
        elif text == "" and data:
            yield kind, json.loads(data), time.monotonic() - start
            kind, data = "message", ""


def journey(served: Served, url: str, *, timeout: float = 60.0,
            stop_after: str | None = None, headers: dict[str, str] | None = None) -> Stream:
    """POST the URL and read the event stream to its end (or until ``stop_after``)."""
    start = time.monotonic()
    conn, resp = post(served, url, timeout=timeout, headers=headers)
    try:
        out = Stream(resp.status, {k.lower(): v for k, v in resp.getheaders()})
        for event in events(resp, start):
            out.events.append(event)
            if event[0] == stop_after:
                break
        return out
    finally:
        conn.close()


# ------------------------------------------------------- the server process, from /proc
def rss_mib(served: Served) -> float:
    """The serve process's resident memory (VmRSS), MiB."""
    for line in Path(f"/proc/{served.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def cpu_seconds(served: Served) -> float:
    """User plus system CPU time the serve process has used (utime + stime)."""
    fields = Path(f"/proc/{served.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(served: Served) -> int:
    """File descriptors the serve process holds (each connection is one)."""
    return len(os.listdir(f"/proc/{served.proc.pid}/fd"))


def stderr_so_far(served: Served) -> str:
    """What serve wrote to stderr until now, without waiting (and without letting the pipe
    fill up and block the server while a test runs)."""
    assert served.proc.stderr is not None
    fd = served.proc.stderr.fileno()
    os.set_blocking(fd, False)
    chunks = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def example_url(served: Served) -> str:
    """The URL the page offers (under --demo: the demo internet's example site)."""
    _, _, body = request(served, "GET", "/")
    found = re.search(rb'value="(https?://[^"]+)"', body)
    assert found is not None
    return found.group(1).decode()


def raw_request(served: Served, body: bytes, *, headers: str = "", method: str = "POST",
                path: str = "/api/journey") -> bytes:
    """An HTTP/1.1 request head (and body) as bytes, with the Host the page accepts."""
    return (f"{method} {path} HTTP/1.1\r\nHost: {served.host}:{served.port}\r\n{headers}"
            "\r\n").encode() + body
