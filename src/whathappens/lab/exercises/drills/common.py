"""The drills' shared machinery: the running lab, if the drills can use it (``open_lab``),
what is broken now (``drills.json``), HTTPS probes to the front door as a browser would
send them and what answered them, the formatting of what was measured, and stopping and
starting tiers."""

from __future__ import annotations

import http.client
import json
import secrets
import signal
import ssl
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whathappens.lab import process
from whathappens.lab.exercises.https import HTTPSTo, server_timing
from whathappens.lab.logs import logged
from whathappens.lab.running import Lab, LabNotRunning
from whathappens.lab.running import open_lab as open_running_lab
from whathappens.lab.tier import LabContext
from whathappens.lab.topology import SITE

Say = Callable[[str], None]

STATE_FILE = "drills.json"


def lb_lines(lab: Lab, needle: str, want: int | None = None) -> list[dict[str, Any]]:
    """HAProxy's log lines with ``needle``, once its log has caught up (logs.settled: it
    logs a request at the end of the transaction, a moment after the client has read it)."""
    return logged(lab.ctx.log(lab.haproxy().name), needle, want)


class DrillError(Exception):
    """The drill could not be done (no lab, wrong profile, a tier that will not start)."""


def open_lab(ctx: LabContext) -> Lab:
    """The running lab, if it is one the drills can break: the production profile."""
    try:
        return open_running_lab(
            ctx, profile="production",
            why="drills need the production profile (an LB, two app nodes, a replica, a "
                "worker): whathappens lab up --profile production")
    except LabNotRunning as err:
        raise DrillError(str(err)) from None


# -- drills.json: what is broken now ----------------------------------------------------------


def state_path(ctx: LabContext) -> Path:
    return ctx.state / STATE_FILE


def in_force(lab: Lab) -> dict[str, dict[str, Any]]:
    """Drills in force for this lab (entries from before its latest ``lab up`` are dropped)."""
    try:
        data = json.loads(state_path(lab.ctx).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items()
            if isinstance(v, dict) and v.get("lab_id") == lab.lab_id()}


def _record(lab: Lab, target: str, facts: dict[str, Any] | None) -> None:
    data = in_force(lab)
    if facts is None:
        data.pop(target, None)
    else:
        data[target] = {"lab_id": lab.lab_id(), "since": time.time(), **facts}
    path = state_path(lab.ctx)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def status_lines(ctx: LabContext) -> list[str]:
    """For ``lab status``: one line per drill in force."""
    try:
        lab = open_lab(LabContext(state=ctx.state))
    except DrillError:
        return []
    now = time.time()
    return [f"drill in force: {target} (broken {now - float(v.get('since', now)):.0f} s ago; "
            f"undo: whathappens lab heal {target})" for target, v in in_force(lab).items()]


# ---------------------------------------------------------------------------------------------
# HTTPS to the lab's front door, as a browser would (cookies, CSRF), one connection each


@dataclass
class Reply:
    status: int                  # 0: no answer at all
    headers: dict[str, str]      # lower-case names
    body: str
    ms: float
    error: str = ""

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def timing(self) -> dict[str, float]:
        """Server-Timing entries in ms: app (Django), db, cache …"""
        return server_timing(self.header("server-timing"))

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


class Browser:
    def __init__(self, lab: Lab) -> None:
        self.address, self.port = lab.front
        self.context = ssl.create_default_context(cafile=lab.cafile)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                form: dict[str, str] | None = None, timeout: float = 45.0) -> Reply:
        sent = {"Host": SITE, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        conn = HTTPSTo(self.address, self.port, self.context, timeout)
        start = time.monotonic()
        try:
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            text = resp.read(1 << 20).decode(errors="replace")
            for value in resp.headers.get_all("Set-Cookie") or []:
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
            # A header sent twice is one list (RFC 9110 §5.3): the edge adds its own
            # Server-Timing entry beside Django's.
            got: dict[str, str] = {}
            for k, v in resp.getheaders():
                got[k.lower()] = f"{got[k.lower()]}, {v}" if k.lower() in got else v
            return Reply(resp.status, got, text, (time.monotonic() - start) * 1000)
        except (OSError, http.client.HTTPException) as e:
            return Reply(0, {}, "", (time.monotonic() - start) * 1000,
                         f"{type(e).__name__}: {e}")
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post_contact(self, name: str, headers: dict[str, str] | None = None) -> Reply:
        """GET the form (for the CSRF cookie), then POST it as a browser would."""
        form = self.get(f"/contact/?{_nonce()}")
        token = self.cookies.get("csrftoken", "")
        if form.status != 200 or not token:
            return form
        # TLS ends at the edge; Django still checks the Origin of a POST made over https
        # against the Host it was sent to.
        sent = {"Origin": f"https://{SITE}", "Referer": f"https://{SITE}/contact/",
                **(headers or {})}
        return self.request("POST", "/contact/", headers=sent,
                            form={"name": name, "email": "drill@example.com",
                                  "message": f"sent during a drill by {name}",
                                  "csrfmiddlewaretoken": token})


def _nonce() -> str:
    """A query string of its own, so neither the edge cache nor the micro-cache answers."""
    return f"drill={secrets.token_hex(6)}"


def answered_by(reply: Reply) -> str:
    """Which tier produced this response, read from the headers the tiers add.

    Django sets Server-Timing ``app``; the app node's nginx always adds X-Served-By (also to
    its own error pages); HAProxy names the server in X-Backend-Server only on a server's
    response; HAProxy's and nginx's own error pages tell them apart when nothing else does.
    """
    if reply.status == 0:
        return f"nobody (no answer: {reply.error})"
    node = reply.header("x-served-by")
    if "app" in reply.timing():
        return f"Django on {node or '?'}"
    if node:
        return f"{node}'s nginx (the app node's reverse proxy)"
    if "<center>nginx</center>" in reply.body:
        return "the edge's nginx"
    return "HAProxy (the load balancer)"


def counts(statuses: list[int]) -> str:
    """'200 × 37, 502 × 3' (0 is 'no answer')."""
    c = Counter(statuses)
    return ", ".join(f"{s or 'no answer'} × {n}" for s, n in sorted(c.items())) or "none"


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    data = sorted(values)
    return data[min(len(data) - 1, max(0, round(p / 100 * (len(data) - 1))))]


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def latency(replies: list[Reply]) -> str:
    lat = [r.ms for r in replies if r.status]
    return f"p50 {ms(pct(lat, 50))}, p95 {ms(pct(lat, 95))}"


# ---------------------------------------------------------------------------------------------
# Stopping and starting tiers


def kill_tier(lab: Lab, name: str) -> bool:
    """SIGKILL the tier's whole process group, as a crash would; forget its record."""
    rec = process.Record.load(process.record_path(lab.ctx, name))
    if rec is None:
        return False
    was_alive = process.alive(rec.pid)
    if was_alive:
        process.stop_pid(rec.pid, first=signal.SIGKILL)
    process.stop(lab.ctx, name)     # waits for its port to close and removes the record
    return was_alive


def start_tiers(lab: Lab, names: list[str], say: Say) -> list[str]:
    """Start those of ``names`` that are not running, in the order given."""
    started = []
    for name in names:
        if lab.running(name):
            continue
        t0 = time.monotonic()
        process.start(lab.tier(name), lab.ctx)
        started.append(name)
        say(f"  started {name} ({time.monotonic() - t0:.1f} s)")
    return started


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> float | None:
    """Seconds until ``check()`` held, or None after ``timeout``."""
    t0 = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - t0
        except Exception:  # a probe that fails is simply "not yet"
            pass
        if time.monotonic() - t0 > timeout:
            return None
        time.sleep(interval)


def servers_line(states: dict[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(states.items())) or "(no answer)"


# ---------------------------------------------------------------------------------------------
# The site's database, as the drills look into it


def _pg(lab: Lab, tier: str, dbname: str = "site") -> Any:
    from whathappens.lab.tiers.postgres import SUPERUSER, connect

    address, port = lab.topo.endpoint(tier)
    return connect(address, port, dbname, SUPERUSER)


def _message(lab: Lab, message_id: int) -> tuple[Any, ...] | None:
    with _pg(lab, "db-primary") as conn:
        row = conn.execute("SELECT attempts, sent_at, worker FROM contact_messages "
                           "WHERE id = %s", (message_id,)).fetchone()
    return tuple(row) if row is not None else None


def _unsent(lab: Lab, message_id: int) -> bool:
    row = _message(lab, message_id)
    return row is not None and row[1] is None


def _wait_sent(lab: Lab, message_id: int, timeout: float) -> float | None:
    """time.monotonic() when the message got its sent_at, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = _message(lab, message_id)
        if row is not None and row[1] is not None:
            return time.monotonic()
        time.sleep(0.05)
    return None
