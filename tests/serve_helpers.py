"""Start a real ``whathappens serve`` and talk to it like the page does (POST, then SSE)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whathappens.demo.internet import DemoInternet

WHATHAPPENS = str(Path(sys.executable).parent / "whathappens")


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
def serve(*args: str, cwd: Path | None = None) -> Iterator[Served]:
    """``whathappens serve --port 0 ARGS``; yields once it prints its address."""
    proc = subprocess.Popen([WHATHAPPENS, "serve", "--port", "0", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
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


def journey(served: Served, url: str, *, timeout: float = 60.0,
            stop_after: str | None = None, headers: dict[str, str] | None = None) -> Stream:
    """POST the URL and read the event stream to its end (or until ``stop_after``)."""
    conn = http.client.HTTPConnection(served.host, served.port, timeout=timeout)
    try:
        start = time.monotonic()
        conn.request("POST", "/api/journey", body=json.dumps({"url": url}).encode(),
                     headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        out = Stream(resp.status, {k.lower(): v for k, v in resp.getheaders()})
        kind, data = "message", ""
        while True:
            line = resp.readline()
            if not line:
                break
            text = line.decode().rstrip("\n")
            if text.startswith("event: "):
                kind = text[7:]
            elif text.startswith("data: "):
                data += text[6:]
            elif text == "" and data:
                out.events.append((kind, json.loads(data), time.monotonic() - start))
                if kind == stop_after:
                    break
                kind, data = "message", ""
        return out
    finally:
        conn.close()
