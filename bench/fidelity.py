"""Fidelity benchmark: whathappens' per-phase timings next to curl's, and its cold start.

    .venv/bin/python bench/fidelity.py [--runs 30] [--quick] [--server auto|nginx|demo]
    ./dev bench                              (the same, through the project's entry point)

This is a benchmark, not a test: it prints figures, and judges nothing but the aims below.
Everything is local: one HTTPS server on 127.0.0.1 that this script starts and always stops
(also on Ctrl-C or SIGTERM), with a throw-away CA and certificate made for the run.

The server
    nginx when it is installed (``apt-get install nginx-light``, or any nginx with the ssl
    and http_v2 modules), else the project's own demo web server (hypercorn) with no think
    time. nginx is preferred: a fast, steady C server keeps server jitter out of the
    comparison. Both answer ``GET /big?bytes=N`` with N bytes, uncompressed.

The host name
    A name from /etc/hosts (not ``localhost``: curl ≥ 7.78 answers that one itself, without
    the resolver, and tries ::1 as well), so that both tools ask the system resolver
    (getaddrinfo → /etc/hosts). The certificate names it; both tools verify it against the
    run's CA (``--cacert``), so loading the trust store is work both of them do.

1. Phase fidelity (two series: HTTP/1.1 and HTTP/2, N runs of each tool per series)
    curl -q -so /dev/null -w '%{json}' --cacert CA --http1.1|--http2 URL
    whathappens URL --json --dns-views system --cacert CA --http1.1|--http2
   run alternately (curl first on even runs, whathappens first on odd ones), after warm-up
   runs that are not counted. Per-phase *durations* are compared, never cumulative offsets
   (our t0 is before URL parsing, curl's is later):

    phase      curl (-w variables, seconds)        whathappens (--json, ms since t0)
    DNS        time_namelookup                     the "dns" span's duration
    TCP        time_connect − time_namelookup      the "tcp" span's duration
    TLS        time_appconnect − time_connect      the "tls" span's duration (context
                                                   setup and CA loading included, as curl)
    TTFB       time_starttransfer − appconnect     t_first_byte − t_request_start (http span)
    download   time_total − time_starttransfer     t_body_done − t_first_byte
    total      time_total                          the sum of DNS, TCP, TLS, TTFB, download
    total+gaps time_total                          t_body_done − the dns span's start

   How to read the table: "curl" and "wh" are medians over the runs (ms); "diff" is
   wh − curl (positive: we report more time than curl), "ratio" is wh / curl; "aim ±" is the
   tolerance max(5 % of curl's median, 0.3 ms) and "meets" says whether |diff| is within it.
   The p90 columns show the spread. curl's phases are contiguous, so whatever curl does
   between two steps counts in the later one; ours are the steps themselves, and the time
   between them is shown below the table ("whathappens only"). curl builds its SSL_CTX and
   loads the CA file after the TCP connect, inside appconnect − connect; so does our TLS
   span (its context_setup_ms is shown below the table). "total+gaps" is the like-for-like
   total: everything from the start of DNS to the last body byte.

2. Cold start (N runs of each, in rotating order)
   Wall time of a fresh process to its exit: ``python -c pass`` (the venv's interpreter),
   ``curl URL``, ``whathappens URL --json`` (``--dns-views system --cacert CA``) and, when
   httpx is available, a one-shot ``httpx.get`` in a fresh process. Then whathappens'
   "process start → first packet": (t0_wall_ns + the dns span's start) − the wall time just
   before the process was spawned. Aim: under 300 ms. Finally the ten most expensive
   imports (cumulative) of ``python -X importtime -c "import whathappens.commands.trace,
   whathappens.trace"``.

httpx is not a dependency of the project. It is used when the venv has it, or when
``--httpx-python`` names an interpreter that has it (a separate venv keeps it away from
dnspython, which imports httpx eagerly when it is installed)::

    python3 -m venv /tmp/httpx-venv && /tmp/httpx-venv/bin/pip install 'httpx[http2]'
    .venv/bin/python bench/fidelity.py --httpx-python /tmp/httpx-venv/bin/python
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PYTHON = sys.executable
HEADER = ("phase", "curl", "wh", "diff", "ratio", "aim ±", "meets", "curl p90", "wh p90")
AIM_FRACTION = 0.05
AIM_FLOOR_MS = 0.3
COLD_START_AIM_MS = 300.0
RUN_TIMEOUT = 30.0
READY_TIMEOUT = 15.0
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
              "ALL_PROXY", "CURL_HOME")


class BenchError(Exception):
    """A run that cannot be measured (a tool failed, a server did not start)."""


# --------------------------------------------------------------------------- command line


@dataclass(frozen=True)
class Config:
    runs: int
    warmup: int
    body_bytes: int
    server: str
    host: str | None
    httpx_python: str | None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="whathappens vs curl: per-phase fidelity and "
                                "cold start, against a local HTTPS server.")
    p.add_argument("--runs", type=int, help="runs of each tool per series (default 30; 5 "
                   "with --quick)")
    p.add_argument("--quick", action="store_true", help="5 runs, 1 warm-up: a smoke run")
    p.add_argument("--server", choices=("auto", "nginx", "demo"), default="auto",
                   help="nginx if installed (auto), or the project's demo web server")
    p.add_argument("--bytes", type=int, default=128 * 1024, dest="body_bytes",
                   help="response body size (default 131072)")
    p.add_argument("--host", help="host name to use (default: one from /etc/hosts)")
    p.add_argument("--httpx-python", help="a Python interpreter that has httpx installed")
    # Internal: this script started as the demo web server (see serve_demo).
    p.add_argument("--serve-demo", nargs=3, metavar=("PORT", "CHAIN", "KEY"),
                   help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_demo:
        port, chain, key = args.serve_demo
        return serve_demo(int(port), Path(chain), Path(key))
    runs = args.runs if args.runs is not None else (5 if args.quick else 30)
    if runs < 1:
        print("--runs must be at least 1", file=sys.stderr)
        return 2
    cfg = Config(runs=runs, warmup=1 if args.quick else 2, body_bytes=args.body_bytes,
                 server=args.server, host=args.host, httpx_python=args.httpx_python)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return run(cfg)
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped", file=sys.stderr)
        return 130
    except BenchError as e:
        print(f"bench/fidelity: {e}", file=sys.stderr)
        return 1


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(cfg: Config) -> int:
    curl = shutil.which("curl") or "/usr/bin/curl"
    whathappens = _whathappens_command()
    host = cfg.host or pick_host()
    with tempfile.TemporaryDirectory(prefix="whathappens-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx workers run as nobody and read the body file from here
        certs = make_certs(work, host)
        with start_server(cfg.server, work, certs, cfg.body_bytes) as server:
            url = f"https://{host}:{server.port}/big?bytes={cfg.body_bytes}"
            tools = Tools(curl, whathappens, certs.ca, url, cfg.body_bytes)
            print(f"whathappens fidelity benchmark · {server.label} on 127.0.0.1:{server.port}"
                  f" · {url}")
            print(f"host name {host!r} resolved by the system resolver for both tools · "
                  f"{cfg.runs} runs per tool and series, {cfg.warmup} warm-up · "
                  f"{os.cpu_count()} CPUs · {_curl_version(curl)}")
            print()
            for version in ("1.1", "2"):
                curl_runs, our_runs = fidelity_series(tools, version, cfg)
                print_fidelity(version, curl_runs, our_runs)
            httpx_python = find_httpx(cfg.httpx_python)
            cold = cold_start(tools, cfg, httpx_python)
            print_cold_start(cold, httpx_python)
    print_import_costs()
    return 0


# --------------------------------------------------------------------------- host and certs


def pick_host(hosts_file: Path = Path("/etc/hosts")) -> str:
    """A name that /etc/hosts maps to 127.0.0.0/8, preferring one that is not localhost."""
    names: list[str] = []
    with contextlib.suppress(OSError):
        for line in hosts_file.read_text().splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2:
                continue
            with contextlib.suppress(ValueError):
                if ipaddress.ip_address(fields[0]) in ipaddress.ip_network("127.0.0.0/8"):
                    names += fields[1:]
    for name in names:
        if not name.startswith("localhost") and not name.startswith("ip6-"):
            return name
    print("note: /etc/hosts has no loopback name but localhost; curl resolves localhost "
          "without the system resolver, so the DNS row is not comparable", file=sys.stderr)
    return "localhost"


@dataclass(frozen=True)
class Certs:
    ca: Path
    chain: Path
    key: Path


def make_certs(work: Path, host: str) -> Certs:
    """A throw-away root CA and a leaf for ``host`` (and localhost, 127.0.0.1), ECDSA P-256."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def base(subject: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(name(subject))
                .issuer_name(name("whathappens bench CA"))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=2))
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    ca_key.public_key()), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False))

    def usage(*, ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=True, content_commitment=False,
                             key_encipherment=False, data_encipherment=False,
                             key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                             encipher_only=False, decipher_only=False)

    ca_cert = (base("whathappens bench CA", ca_key)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(usage(ca=True), critical=True)
               .sign(ca_key, hashes.SHA256()))
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys([host, "localhost"])]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    leaf = (base(host, leaf_key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    certs = Certs(work / "ca.pem", work / "chain.pem", work / "key.pem")
    certs.ca.write_bytes(ca_cert.public_bytes(pem))
    certs.chain.write_bytes(leaf.public_bytes(pem))
    certs.key.write_bytes(leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    certs.key.chmod(0o600)  # read by nginx's master (root) before it drops privileges
    return certs


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    """A server process this script started; ``stop`` ends it and everything it forked."""

    label: str
    port: int
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()  # nginx: fast shutdown; demo server: clean stop
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                # Its own process group (start_new_session), nginx's workers included.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc.stdin is not None:
            self.proc.stdin.close()


@contextlib.contextmanager
def start_server(which: str, work: Path, certs: Certs, body_bytes: int) -> Iterator[Server]:
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)
    if which == "nginx" and nginx is None:
        raise BenchError("nginx is not installed (apt-get install nginx-light)")
    if which == "auto" and nginx is None:
        print("note: nginx not found (apt-get install nginx-light for a steadier server); "
              "using the demo web server", file=sys.stderr)
    www = work / "www"  # nginx serves www/big whatever the query; the demo server, /big?bytes=N
    www.mkdir(mode=0o755)
    (www / "big").write_bytes(bytes(body_bytes))
    server: Server | None = None
    try:
        if nginx is not None and which in ("auto", "nginx"):
            server = _start_nginx(nginx, work, certs)
        else:
            server = _start_demo(work, certs)
        yield server
    finally:
        if server is not None:
            server.stop()


def _start_nginx(nginx: str, work: Path, certs: Certs) -> Server:
    port = free_port()
    version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
    temp = work / "nginx-temp"
    temp.mkdir(mode=0o755)
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(pid=work / "nginx.pid", log=work / "nginx-error.log",
                                      temp=temp, port=port, chain=certs.chain, key=certs.key,
                                      www=work / "www",
                                      http2=_nginx_http2_syntax(version)))
    proc = _spawn([nginx, "-c", str(conf), "-p", str(work), "-e", str(work / "nginx-error.log")],
                  log=work / "nginx-stderr.log")
    server = Server(version.replace("nginx version: ", ""), port, proc)
    _wait_ready(server, [work / "nginx-stderr.log", work / "nginx-error.log"])
    return server


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {pid};
error_log {log} warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    default_type application/octet-stream;
    sendfile on;
    server {{
        listen 127.0.0.1:{port} ssl{http2[0]};
        {http2[1]}
        ssl_certificate {chain};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        root {www};
        location = /big {{ }}
    }}
}}
"""


def _nginx_http2_syntax(version: str) -> tuple[str, str]:
    """``listen … http2`` before nginx 1.25.1, the ``http2 on;`` directive since."""
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", version)
    numbers = tuple(int(n) for n in found.groups()) if found else (0, 0, 0)
    return ("", "http2 on;") if numbers >= (1, 25, 1) else (" http2", "")


def _start_demo(work: Path, certs: Certs) -> Server:
    port = free_port()
    log = work / "demo-stderr.log"
    proc = _spawn([PYTHON, __file__, "--serve-demo", str(port), str(certs.chain),
                   str(certs.key)], log=log, stdin=subprocess.PIPE)
    server = Server("the demo web server (hypercorn)", port, proc)
    _wait_ready(server, [log])
    return server


def serve_demo(port: int, chain: Path, key: Path) -> int:
    """The demo web server on 127.0.0.1:``port`` until SIGTERM/SIGINT or stdin's EOF."""
    import asyncio

    from whathappens.demo.web import Site, serve_site

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        loop.add_reader(sys.stdin.fileno(), stop.set)  # readable only at EOF: parent gone
        await serve_site(Site(https_port=port, think_ms=0), binds=[f"127.0.0.1:{port}"],
                         chain=chain, key=key, shutdown=stop)

    asyncio.run(serve())
    return 0


def _spawn(argv: list[str], *, log: Path, stdin: int = subprocess.DEVNULL
           ) -> subprocess.Popen[bytes]:
    """A server in its own process group (spared the terminal's ^C: we stop it ourselves),
    killed by the kernel should this script die without cleaning up (Linux), its stderr in
    ``log`` (a file, not a pipe nobody reads that could fill up and stall it)."""
    with log.open("wb") as err:
        return subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True, preexec_fn=_die_with_parent)


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _wait_ready(server: Server, logs: list[Path]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            said = "".join(p.read_text(errors="replace") for p in logs if p.exists())
            raise BenchError(f"{server.label} exited at startup ({server.proc.returncode}): "
                             f"{said.strip()[-800:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port),
                                                                    timeout=0.5):
            return
        time.sleep(0.05)
    server.stop()
    raise BenchError(f"{server.label} did not listen on 127.0.0.1:{server.port} "
                     f"within {READY_TIMEOUT:.0f} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --------------------------------------------------------------------------- the tools


def _whathappens_command() -> list[str]:
    script = Path(PYTHON).parent / "whathappens"
    return [str(script)] if script.exists() else [PYTHON, "-m", "whathappens"]


def _curl_version(curl: str) -> str:
    out = subprocess.run([curl, "-V"], capture_output=True, text=True).stdout
    return " ".join(out.split()[:2]) if out else "curl"


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    return env


@dataclass(frozen=True)
class Tools:
    curl: str
    whathappens: list[str]
    ca: Path
    url: str
    body_bytes: int
    env: dict[str, str] = field(default_factory=_child_env)

    def curl_argv(self, version: str | None, *, timings: bool) -> list[str]:
        argv = [self.curl, "-q", "-s", "-o", "/dev/null", "--max-time", "10",
                "--cacert", str(self.ca)]
        if version is not None:
            argv.append("--http1.1" if version == "1.1" else "--http2")
        if timings:
            argv += ["-w", "%{json}"]
        return [*argv, self.url]

    def whathappens_argv(self, version: str | None) -> list[str]:
        argv = [*self.whathappens, self.url, "--json", "--dns-views", "system",
                "--cacert", str(self.ca), "--max-time", "10"]
        if version is not None:
            argv.append("--http1.1" if version == "1.1" else "--http2")
        return argv

    def run(self, argv: list[str]) -> tuple[str, float, int]:
        """Run a fresh process; its stdout, its wall time (ms) and the wall ns before spawn."""
        wall_before = time.time_ns()
        started = time.perf_counter()
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                                  env=self.env, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BenchError(f"timed out after {RUN_TIMEOUT:.0f} s: {' '.join(argv)}") from None
        elapsed = (time.perf_counter() - started) * 1000
        if done.returncode != 0:
            raise BenchError(f"exit {done.returncode}: {' '.join(argv)}\n"
                             f"{(done.stderr or done.stdout).strip()[-1500:]}")
        return done.stdout, elapsed, wall_before


# --------------------------------------------------------------------------- 1. fidelity

PHASES = ("DNS", "TCP", "TLS", "TTFB", "download", "total", "total+gaps")
OUR_EXTRAS = {
    "dns_system": "DNS: the getaddrinfo call alone (dns.system child span)",
    "tcp_connect": "TCP: the connect call alone (tcp.connect child span)",
    "tls_context": "TLS context setup (SSLContext, CA file), inside the TLS step",
    "gap_tcp_tls": "gap TCP end → TLS start (context setup included)",
    "gap_tls_http": "gap TLS end → request start",
    "t0_dns": "t0 → DNS start (URL anatomy, set-up)",
}


def curl_phases(out: str, version: str, expected_bytes: int) -> dict[str, float]:
    w = json.loads(out)
    if w.get("response_code") != 200 or int(w.get("size_download", -1)) != expected_bytes:
        raise BenchError(f"curl: unexpected response {w.get('response_code')}, "
                         f"{w.get('size_download')} bytes")
    if str(w.get("http_version")) != version:
        raise BenchError(f"curl spoke HTTP/{w.get('http_version')}, not HTTP/{version}")
    t = {k: float(w[f"time_{k}"]) * 1000 for k in
         ("namelookup", "connect", "appconnect", "starttransfer", "total")}
    return {
        "DNS": t["namelookup"],
        "TCP": t["connect"] - t["namelookup"],
        "TLS": t["appconnect"] - t["connect"],
        "TTFB": t["starttransfer"] - t["appconnect"],
        "download": t["total"] - t["starttransfer"],
        "total": t["total"],
        "total+gaps": t["total"],
    }


def leg_spans(journey: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The first leg's children by name: dns, tcp, tls, http."""
    for span in journey.get("spans", []):
        if span.get("name") == "leg":
            return {c["name"]: c for c in span.get("children", [])}
    raise BenchError("whathappens: no leg span in the journey")


def our_phases(out: str, version: str) -> dict[str, float]:
    journey = json.loads(out)
    spans = leg_spans(journey)
    missing = {"dns", "tcp", "tls", "http"} - spans.keys()
    if missing:
        raise BenchError(f"whathappens: leg without {', '.join(sorted(missing))} span(s)")
    dns, tcp, tls, http = (spans[n] for n in ("dns", "tcp", "tls", "http"))
    a = http["attrs"]
    if a.get("status") not in (None, 200):
        raise BenchError(f"whathappens: status {a.get('status')}")
    protocol = str(http["attrs"].get("protocol", ""))
    if protocol and protocol != f"HTTP/{version}":
        raise BenchError(f"whathappens spoke {protocol}, not HTTP/{version}")
    ttfb = (a["t_first_byte_ns"] - a["t_request_start_ns"]) / 1e6
    download = (a["t_body_done_ns"] - a["t_first_byte_ns"]) / 1e6
    phases = {"DNS": dns["duration_ms"], "TCP": tcp["duration_ms"], "TLS": tls["duration_ms"],
              "TTFB": ttfb, "download": download}
    phases["total"] = sum(phases.values())
    phases["total+gaps"] = a["t_body_done_ns"] / 1e6 - dns["start_ms"]
    phases["gap_tcp_tls"] = tls["start_ms"] - tcp["end_ms"]
    phases["gap_tls_http"] = a["t_request_start_ns"] / 1e6 - tls["end_ms"]
    phases["t0_dns"] = dns["start_ms"]
    for parent, child, key in ((dns, "dns.system", "dns_system"),
                               (tcp, "tcp.connect", "tcp_connect")):
        found = next((c for c in parent.get("children", []) if c.get("name") == child), None)
        if found is not None:
            phases[key] = found["duration_ms"]
    if "context_setup_ms" in tls.get("attrs", {}):
        phases["tls_context"] = tls["attrs"]["context_setup_ms"]
    return phases


def fidelity_series(tools: Tools, version: str, cfg: Config
                    ) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    curl_argv = tools.curl_argv(version, timings=True)
    our_argv = tools.whathappens_argv(version)
    curl_runs: list[dict[str, float]] = []
    our_runs: list[dict[str, float]] = []
    for i in range(cfg.warmup + cfg.runs):
        keep = i >= cfg.warmup
        order = ("curl", "wh") if i % 2 == 0 else ("wh", "curl")
        for tool in order:
            if tool == "curl":
                c = curl_phases(tools.run(curl_argv)[0], version, tools.body_bytes)
                if keep:
                    curl_runs.append(c)
            else:
                w = our_phases(tools.run(our_argv)[0], version)
                if keep:
                    our_runs.append(w)
    return curl_runs, our_runs


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def p90(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return xs[0]
    return statistics.quantiles(xs, n=10, method="inclusive")[-1]


def _fmt_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    first, *rest = cells
    return f"  {first:<{widths[0]}}" + "".join(f"{c:>{w}}" for c, w in zip(rest, widths[1:],
                                                                          strict=True))


def print_fidelity(version: str, curl_runs: list[dict[str, float]],
                   our_runs: list[dict[str, float]]) -> None:
    widths = (12, 10, 10, 10, 8, 8, 7, 10, 10)
    print(f"Phase fidelity · HTTP/{version} · {len(curl_runs)} runs each · ms, medians "
          "unless p90")
    print(_fmt_row(HEADER, widths))
    print("  " + "-" * (sum(widths)))
    missed = []
    for phase in PHASES:
        if not all(phase in r for r in our_runs):
            continue  # a phase this run did not have
        c = [r[phase] for r in curl_runs]
        w = [r[phase] for r in our_runs]
        cm, wm = median(c), median(w)
        diff = wm - cm
        aim = max(AIM_FRACTION * cm, AIM_FLOOR_MS)
        ratio = f"{wm / cm:.2f}" if cm > 0 else "-"
        meets = "yes" if abs(diff) <= aim else "NO"
        if meets == "NO":
            missed.append(phase)
        print(_fmt_row((phase, f"{cm:.3f}", f"{wm:.3f}", f"{diff:+.3f}", ratio, f"{aim:.3f}",
                        meets, f"{p90(c):.3f}", f"{p90(w):.3f}"), widths))
    print(f"  misses the aim: {', '.join(missed) or 'none'}")
    print("  whathappens only (not a phase of its own in curl's figures):")
    for key, label in OUR_EXTRAS.items():
        values = [r[key] for r in our_runs if key in r]
        if values:
            print(f"    {label:<62}{median(values):>8.3f}  (p90 {p90(values):.3f})")
    print()


# --------------------------------------------------------------------------- 2. cold start


def find_httpx(explicit: str | None) -> str | None:
    candidates = [explicit] if explicit else [PYTHON]
    for python in candidates:
        probe = subprocess.run([python, "-c", "import httpx"], capture_output=True)
        if probe.returncode == 0:
            return python
    if explicit:
        raise BenchError(f"{explicit} cannot import httpx")
    return None


@dataclass
class ColdStart:
    wall: dict[str, list[float]] = field(default_factory=dict)
    marks: dict[str, list[float]] = field(default_factory=dict)


COLD_MARKS = (
    ("t0", "→ t0 (interpreter, imports of the CLI, argument parsing)"),
    ("dns", "→ DNS start: first network step (aim < 300 ms)"),
    ("tcp", "→ TCP connect start: the SYN"),
    ("done", "→ last body byte"),
    ("exit", "→ process exit (report, interpreter teardown)"),
)


def cold_start(tools: Tools, cfg: Config, httpx_python: str | None) -> ColdStart:
    commands: dict[str, list[str]] = {
        "python -c pass": [PYTHON, "-c", "pass"],
        "curl URL": tools.curl_argv(None, timings=False),
        "whathappens URL --json": tools.whathappens_argv(None),
    }
    if httpx_python:
        code = f"import httpx; httpx.get({tools.url!r}, verify={str(tools.ca)!r})"
        commands["httpx.get(URL), fresh process"] = [httpx_python, "-c", code]
    result = ColdStart({name: [] for name in commands}, {m: [] for m, _ in COLD_MARKS})
    names = list(commands)
    for i in range(cfg.warmup + cfg.runs):
        for name in names[i % len(names):] + names[:i % len(names)]:  # rotate the order
            out, elapsed, wall_before = tools.run(commands[name])
            if i < cfg.warmup:
                continue
            result.wall[name].append(elapsed)
            if name.startswith("whathappens"):
                _cold_marks(result, json.loads(out), wall_before, elapsed)
    return result


def _cold_marks(result: ColdStart, journey: dict[str, Any], wall_before: int,
                elapsed: float) -> None:
    spans = leg_spans(journey)
    t0 = (journey["clock"]["t0_wall_ns"] - wall_before) / 1e6
    result.marks["t0"].append(t0)
    result.marks["dns"].append(t0 + spans["dns"]["start_ms"])
    result.marks["tcp"].append(t0 + spans["tcp"]["start_ms"])
    result.marks["done"].append(t0 + spans["http"]["attrs"]["t_body_done_ns"] / 1e6)
    result.marks["exit"].append(elapsed)


def print_cold_start(cold: ColdStart, httpx_python: str | None) -> None:
    n = len(next(iter(cold.wall.values())))
    print(f"Cold start · {n} runs each · wall time of a fresh process to its exit, ms")
    print(f"  {'command':<44}{'median':>10}{'p90':>10}")
    for name, values in cold.wall.items():
        print(f"  {name:<44}{median(values):>10.1f}{p90(values):>10.1f}")
    if httpx_python is None:
        print("  (httpx not available: see --httpx-python in the docstring)")
    print()
    print("  whathappens, wall clock from just before the spawn:")
    for key, label in COLD_MARKS:
        values = cold.marks[key]
        verdict = ""
        if key == "dns":
            verdict = "  meets" if median(values) < COLD_START_AIM_MS else "  MISSES"
        print(f"    {label:<58}{median(values):>8.1f}{p90(values):>10.1f}{verdict}")
    print()


def print_import_costs(top: int = 10) -> None:
    code = "import whathappens.commands.trace, whathappens.trace"
    done = subprocess.run([PYTHON, "-X", "importtime", "-c", code], capture_output=True,
                          text=True, timeout=RUN_TIMEOUT)
    rows: list[tuple[int, int, str]] = []
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (.*)$", line)
        if m:
            rows.append((int(m[2]), int(m[1]), m[3].strip()))
    rows.sort(reverse=True)
    print(f"Import costs · python -X importtime -c {code!r} · one run, ms")
    print(f"  {'module':<44}{'cumulative':>12}{'self':>10}")
    for cumulative, self_us, module in rows[:top]:
        print(f"  {module:<44}{cumulative / 1000:>12.1f}{self_us / 1000:>10.1f}")


if __name__ == "__main__":
    sys.exit(main())
