"""Real load generators: wrk and h2load (Debian's ``wrk`` and ``nghttp2-client``).

The project's own client (``load.py``: Python threads, one http.client connection each)
keeps every request's numbers — status, headers, which node served it — which is what an
experiment about per-request behaviour needs, but it tops out near 2,000 requests/s on two
cores: for a question about throughput it measures itself. wrk (epoll, C, LuaJIT) and h2load
(nghttp2, C) do not keep per-request detail in their output, but they can push nginx far
harder from the same cores. This module runs them and reads what they print.

What each reports, and from which clock:

- wrk: ``Requests/sec`` = completed requests / the run's wall time; latency (send → whole
  response, per request, microsecond resolution, its own clock) as a histogram from which
  ``--latency`` prints the 50/75/90/99th percentiles. A ``done()`` hook in Lua (``P95_LUA``)
  prints the 50/95/99th from the same histogram, so the table's columns match the Python
  client's. Non-2xx/3xx answers and socket errors are counted, not hidden.
- h2load: ``req/s`` = requests / the run's wall time; per-request times only as min, max,
  mean and sd in its summary, so ``--log-file`` writes one line per request (start µs,
  status, duration µs) and the percentiles are computed from it here.

Neither tool verifies the server's certificate: they only run against the lab's own edge on
loopback (``check_loopback``), whose certificate the rest of the lab checks.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

TOOLS = ("wrk", "h2load")
MAX_OUTPUT = 256 * 1024          # bytes of a tool's output read (it prints a few dozen lines)
MAX_LOG_LINES = 500_000          # h2load log lines read (one per request)
# nginx closes a connection after keepalive_requests (1000 by default, HTTP/2 included since
# 1.19.7); h2load does not reconnect, so every request beyond that fails ("Process Request
# Failure"). Seen for real: -n 20000 -c 8 gave 8,000 successes. h2load's count stays under it.
PER_CONNECTION = 900

P95_LUA = """\
done = function(summary, latency, requests)
  for _, p in ipairs({50, 95, 99}) do
    io.write(string.format("whathappens-percentile %g %d\\n", p, latency:percentile(p)))
  end
  io.write(string.format("whathappens-max %d\\n", latency.max))
end
"""


@dataclass
class ToolResult:
    """What one run of a load tool printed, in the units of the project's tables."""

    tool: str
    protocol: str = ""               # http/1.1, h2
    requests: int = 0                # completed
    ok: int = 0                      # 2xx or 3xx
    failed: int = 0                  # non-2xx/3xx answers, errors, timeouts
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    errors: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {"client": self.tool, "protocol": self.protocol, "requests": self.requests,
                "ok": self.ok, "failed": self.failed, "seconds": round(self.seconds, 3),
                "rps": round(self.rps, 1), "p50_ms": self.p50_ms, "p95_ms": self.p95_ms,
                "p99_ms": self.p99_ms, "max_ms": self.max_ms, "errors": self.errors,
                "command": " ".join(self.command)}


class ToolError(Exception):
    """A load tool is missing, failed, or printed nothing we can read."""


# ---------------------------------------------------------------------------- parsing
UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = re.compile(r"^([0-9.]+)(us|ms|s|m|h)$")


def duration_ms(text: str) -> float:
    """wrk's and h2load's durations ("276.00us", "1.22ms", "2.01s") in milliseconds."""
    m = _DURATION.match(text.strip())
    if m is None:
        raise ValueError(f"not a duration: {text!r}")
    return round(float(m.group(1)) * UNITS_MS[m.group(2)], 3)


def parse_wrk(text: str) -> ToolResult:
    """wrk 4.1's report (with ``--latency`` and, optionally, ``P95_LUA``)."""
    r = ToolResult("wrk", protocol="http/1.1")   # wrk speaks HTTP/1.1 only
    done = re.search(r"^\s*(\d+) requests in ([0-9.]+\w+), ", text, re.M)
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    if done is None or rps is None:
        raise ToolError("wrk printed no result: " + _tail(text))
    r.requests, r.seconds = int(done.group(1)), duration_ms(done.group(2)) / 1000
    r.rps = float(rps.group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     text)
    non2xx = int(bad.group(1)) if bad else 0
    errors = sum(int(g) for g in sock.groups()) if sock else 0
    r.ok, r.failed = r.requests - non2xx, non2xx + errors
    if bad:
        r.errors.append(f"{non2xx} non-2xx/3xx responses")
    if sock:
        r.errors.append(sock.group(0))
    percentiles = {float(p): int(us) / 1000 for p, us in
                   re.findall(r"^whathappens-percentile ([0-9.]+) (\d+)$", text, re.M)}
    if not percentiles:   # --latency's own lines: 50%, 75%, 90%, 99% (no 95th)
        percentiles = {float(p): duration_ms(v) for p, v in
                       re.findall(r"^\s+([0-9.]+)%\s+([0-9.]+\w+)$", text, re.M)}
    r.p50_ms, r.p95_ms, r.p99_ms = (percentiles.get(p) for p in (50.0, 95.0, 99.0))
    most = re.search(r"^whathappens-max (\d+)$", text, re.M)
    stats = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", text, re.M)
    r.max_ms = int(most.group(1)) / 1000 if most else (
        duration_ms(stats.group(1)) if stats else None)
    return r


def parse_h2load(text: str, log: list[str] | None = None) -> ToolResult:
    """h2load's summary, and its ``--log-file`` lines for the percentiles."""
    r = ToolResult("h2load")
    fin = re.search(r"^finished in ([0-9.]+\w+), ([0-9.]+) req/s", text, re.M)
    req = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", text, re.M)
    codes = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    if fin is None or req is None or codes is None:
        raise ToolError("h2load printed no result: " + _tail(text))
    proto = re.search(r"^Application protocol: (\S+)", text, re.M)
    r.protocol = proto.group(1) if proto else ""
    r.seconds, r.rps = duration_ms(fin.group(1)) / 1000, float(fin.group(2))
    total, _, done, _, failed, errored, timeout = (int(g) for g in req.groups())
    r.requests = done
    r.ok = int(codes.group(1)) + int(codes.group(2))
    # h2load counts a 4xx/5xx answer as succeeded; here it is a failure, as for wrk.
    r.failed = total - r.ok
    if failed or errored or timeout:
        r.errors.append(f"{failed} failed, {errored} errored, {timeout} timeout (of {total})")
    if "Process Request Failure" in text:
        r.errors.append("requests refused on a connection the server was closing "
                        "(nginx keepalive_requests)")
    if int(codes.group(3)) or int(codes.group(4)):
        r.errors.append(f"{codes.group(3)} 4xx, {codes.group(4)} 5xx")
    times = sorted(_log_durations_ms(log or []))
    if times:
        r.p50_ms, r.p95_ms, r.p99_ms = (percentile(times, p) for p in (50, 95, 99))
        r.max_ms = times[-1]
    else:
        most = re.search(r"^time for request:\s+\S+\s+(\S+)", text, re.M)
        r.max_ms = duration_ms(most.group(1)) if most and r.requests else None
    return r


def _log_durations_ms(lines: list[str]) -> list[float]:
    """h2load --log-file: "<start µs>\\t<status>\\t<duration µs>" per request; only answered
    requests (status > 0) count, as in the Python client's percentiles of the ok ones."""
    out = []
    for line in lines[:MAX_LOG_LINES]:
        parts = line.split("\t")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit() \
                and 200 <= int(parts[1]) < 400:
            out.append(int(parts[2]) / 1000)
    return out


def percentile(sorted_ms: list[float], p: float) -> float:
    """The same rule as the Python client's (``load.LoadResult.percentile``): the value at
    index round(p% × (n − 1)) of the sorted times, so every row of a table means the same."""
    k = min(len(sorted_ms) - 1, max(0, round(p / 100 * (len(sorted_ms) - 1))))
    return round(sorted_ms[k], 3)


def _tail(text: str) -> str:
    return " | ".join(text.strip().splitlines()[-3:])[:300] or "(nothing)"


# ---------------------------------------------------------------------------- running
def available() -> dict[str, str | None]:
    return {t: shutil.which(t) for t in TOOLS}


def check_loopback(address: str) -> None:
    if not ipaddress.ip_address(address).is_loopback:
        raise ValueError(f"load tools run only against loopback addresses, not {address}")


def _run(argv: list[str], timeout: float) -> str:
    if shutil.which(argv[0]) is None:
        raise ToolError(f"{argv[0]} is not installed (whathappens lab install)")
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ToolError(f"{argv[0]} took more than {timeout:g} s") from None
    out = (done.stdout[:MAX_OUTPUT] + done.stderr[:MAX_OUTPUT]).decode("utf-8", "replace")
    if done.returncode != 0:
        raise ToolError(f"{argv[0]} failed with status {done.returncode}: {_tail(out)}")
    return out


def run_wrk(address: str, port: int, path: str, *, host: str, connections: int,
            seconds: float, headers: dict[str, str] | None = None) -> ToolResult:
    """wrk over TLS for ``seconds``, ``connections`` kept-alive connections, one thread
    (the machine's other core is nginx's)."""
    check_loopback(address)
    with tempfile.TemporaryDirectory(prefix="whathappens-wrk-") as tmp:
        script = Path(tmp) / "p95.lua"
        script.write_text(P95_LUA)
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
                "-H", f"Host: {host}", *_header_args(headers), "-s", str(script),
                f"https://{address}:{port}{path}"]
        result = parse_wrk(_run(argv, seconds + 30))
    result.command = [a if a != str(script) else "p95.lua" for a in argv]
    return result


def run_h2load(address: str, port: int, path: str, *, host: str, connections: int,
               requests: int, h1: bool = False,
               headers: dict[str, str] | None = None) -> ToolResult:
    """h2load over TLS: ``requests`` in all over ``connections`` connections, HTTP/2 (one
    stream at a time per connection, like the others) or HTTP/1.1 with ``h1``."""
    check_loopback(address)
    requests = min(requests, connections * PER_CONNECTION)
    with tempfile.TemporaryDirectory(prefix="whathappens-h2load-") as tmp:
        log = Path(tmp) / "requests.log"
        argv = ["h2load", f"-n{requests}", f"-c{connections}", "-t1", "-m1",
                "-H", f":authority: {host}", *_header_args(headers),
                *(["--h1"] if h1 else []), f"--log-file={log}",
                f"https://{address}:{port}{path}"]
        out = _run(argv, 120)
        lines = log.read_text(errors="replace").splitlines()[:MAX_LOG_LINES] \
            if log.exists() else []
        result = parse_h2load(out, lines)
    result.command = [a if not a.startswith("--log-file=") else "--log-file=…" for a in argv]
    return result


def _header_args(headers: dict[str, str] | None) -> list[str]:
    return [arg for k, v in (headers or {}).items() for arg in ("-H", f"{k}: {v}")]
