"""The CDN edge's drills: waf, rate-limit, stale.

``waf``
    ModSecurity (Debian's libnginx-mod-http-modsecurity) with the OWASP Core Rule Set
    (modsecurity-crs), switched on in the running edge: a request carrying an attack pattern
    gets 403 from the edge and never reaches HAProxy; a clean one still passes.
``rate-limit``
    nginx's limit_req at the edge, keyed by the client's address (429 when refused), under a
    bounded load from two client addresses, one over the limit and one under it.
``stale``
    A page is changed at the origin (``django-admin lab_publish``); the edge keeps serving
    its old copy until the copy expires (``s-maxage``) and one STALE answer has triggered
    the background refresh, or until the copy is purged.

Why the WAF is switched on by ``lab break waf`` rather than always: loading the 914 rules
takes ~0.1 s, well inside ``lab up``'s budget, but every request through the edge would
then be inspected, which changes every other measurement the lab makes (the experiments'
latencies) and can refuse the lab's own test traffic on a false positive. So the lab's edge
is the plain one, and the drill shows a WAF in blocking mode.

How: the edge's config includes ``drills/{main,http,server}/*.conf`` from its directory
(nothing there normally; ``tiers/nginx.py``). The drill writes its snippets there, checks
the whole config with ``nginx -t``, and reloads the running edge with SIGHUP: nginx starts
new workers with the new config and lets the old ones finish their requests, so nothing
is dropped. ``heal`` removes the snippets and reloads again; ``lab up`` removes them too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whathappens.lab.exercises.drills.common import (
    Browser,
    DrillError,
    Say,
    _nonce,
    _record,
    answered_by,
    lb_lines,
    ms,
    pct,
    wait_for,
)
from whathappens.lab.logs import logged, tail_lines
from whathappens.lab.running import Lab
from whathappens.lab.tier import LabContext
from whathappens.lab.tiers.nginx import OVERLAY_LEVELS, NginxEdge, access_log, waf_log

if TYPE_CHECKING:
    from whathappens.journey import Journey

MODSECURITY_MODULE = Path("/usr/lib/nginx/modules/ngx_http_modsecurity_module.so")
CRS_RULES = Path("/usr/share/modsecurity-crs/rules")
CRS_SETUP = Path("/etc/modsecurity/crs/crs-setup.conf")
CRS_BEFORE = Path("/etc/modsecurity/crs/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf")
CRS_AFTER = Path("/etc/modsecurity/crs/RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf")
UNICODE_MAP = Path("/etc/nginx/unicode.mapping")

# The attacks the waf drill sends (percent-encoded, as a browser would send them).
XSS = "q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"          # <script>alert(1)</script>
SQLI = "id=1%27%20OR%201%3D1--"                         # 1' OR 1=1--


def _edge(lab: Lab) -> NginxEdge:
    driver = lab.tier(lab.topo.front().name)
    if not isinstance(driver, NginxEdge) or driver.single:
        raise DrillError("the edge drills need the production profile's CDN edge")
    if not lab.running(driver.name):
        raise DrillError(f"the edge ({driver.name}) is not running")
    return driver


# ---------------------------------------------------------------------------------------------
# Snippets and reloads


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (nginx's master: its workers)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            # pid (comm) state ppid …: comm may hold spaces, so split after its ")"
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry.name))
    return out


def check_config(lab: Lab, edge: NginxEdge) -> str:
    """``nginx -t`` on the edge's config with the snippets in place: its output, or a
    DrillError with nginx's words (the running edge is not touched then)."""
    test = subprocess.run([*edge.command(lab.ctx), "-t"], capture_output=True, text=True,
                          cwd=lab.ctx.dir(edge.name), timeout=30, check=False)
    if test.returncode != 0:
        raise DrillError(f"nginx -t rejected the edge's config:\n{test.stderr.strip()}")
    return test.stderr


def reload_edge(lab: Lab, edge: NginxEdge) -> float:
    """SIGHUP to the edge's master; seconds until the old workers are gone and new ones
    run (so every request after this sees the new config)."""
    pid = lab.pid(edge.name)
    if pid is None:
        raise DrillError(f"the edge ({edge.name}) is not running")
    old = _children(pid)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGHUP)

    def swapped() -> bool:
        now = _children(pid)
        return bool(now) and not (now & old)

    if wait_for(swapped, timeout=10, interval=0.02) is None:
        raise DrillError("the edge's old workers were still running 10 s after the reload")
    return time.monotonic() - t0


def write_snippets(edge: NginxEdge, ctx: LabContext, name: str,
                   snippets: dict[str, str]) -> None:
    for level, text in snippets.items():
        where = edge.overlay_dir(ctx, level)
        where.mkdir(parents=True, exist_ok=True)
        (where / f"{name}.conf").write_text(f"# written by whathappens lab break {name}\n"
                                            f"{text}")


def remove_snippets(edge: NginxEdge, ctx: LabContext, name: str) -> bool:
    removed = False
    for level in OVERLAY_LEVELS:
        with contextlib.suppress(FileNotFoundError):
            (edge.overlay_dir(ctx, level) / f"{name}.conf").unlink()
            removed = True
    return removed


def _switch(lab: Lab, edge: NginxEdge, name: str, snippets: dict[str, str] | None) -> tuple[
        str, float]:
    """Write (or with None remove) drill ``name``'s snippets, check, reload: (nginx -t's
    output, seconds the reload took). A config nginx rejects is taken back out."""
    if snippets is None:
        remove_snippets(edge, lab.ctx, name)
    else:
        write_snippets(edge, lab.ctx, name, snippets)
    try:
        checked = check_config(lab, edge)
    except DrillError:
        remove_snippets(edge, lab.ctx, name)
        raise
    return checked, reload_edge(lab, edge)


def _journey(lab: Lab, path: str) -> Journey:
    """``whathappens https://www.example.com<path> --lab`` in-process (no revalidation
    request after it: the drills count every request the edge sees)."""
    import asyncio

    from whathappens.lab.client import apply, merge_inside
    from whathappens.lab.topology import SITE
    from whathappens.trace import Options, run_journey

    options = Options(max_time=30.0, revalidate=False)
    apply(options, lab.ctx.state)
    port = lab.front[1]
    url = f"https://{SITE}{'' if port == 443 else f':{port}'}{path}"
    journey = asyncio.run(run_journey(url, options))
    merge_inside(journey, lab.ctx.state)
    return journey


def _http(journey: Journey) -> Any:
    spans = [c for leg in journey.spans if leg.name == "leg" for c in leg.children
             if c.name == "http"]
    return spans[-1] if spans else None


def _tiers_under(http: Any) -> list[tuple[str, str, Any]]:
    """The merged server spans under the request: (span name, tier, logged status)."""
    if http is None:
        return []
    return [(s.name, s.facts.tier, s.facts.extra.get("status")) for s in http.walk()
            if s.name.startswith("server.")]


# ---------------------------------------------------------------------------------------------
# waf: ModSecurity + the OWASP CRS at the edge


def _waf_log(lab: Lab, edge: NginxEdge) -> Path:
    return waf_log(lab.ctx, edge.name)


def modsecurity_conf(ctx: LabContext, edge: NginxEdge) -> str:
    """Our ModSecurity setup: Debian's recommended one, blocking, with the CRS. The
    response body is not inspected (the edge's job here is requests), the audit log is
    JSON, and nothing is reported anywhere (SecStatusEngine Off)."""
    work = edge.overlay_dir(ctx) / "waf"
    work.mkdir(parents=True, exist_ok=True)
    lines = [
        "SecRuleEngine On",
        "SecRequestBodyAccess On",
        "SecRequestBodyLimit 13107200",
        "SecRequestBodyNoFilesLimit 131072",
        "SecResponseBodyAccess Off",
        "SecAuditEngine RelevantOnly",
        'SecAuditLogRelevantStatus "^(?:5|4(?!04))"',
        "SecAuditLogParts ABHZ",
        "SecAuditLogType Serial",
        "SecAuditLogFormat JSON",
        f"SecAuditLog {waf_log(ctx, edge.name)}",
        f"SecTmpDir {work}",
        f"SecDataDir {work}",
        "SecArgumentSeparator &",
        "SecCookieFormat 0",
        "SecStatusEngine Off",
    ]
    if UNICODE_MAP.exists():
        lines.append(f"SecUnicodeMapFile {UNICODE_MAP} 20127")
    # Debian's owasp-crs.load says IncludeOptional, which libmodsecurity 3 does not know.
    includes = [CRS_SETUP, CRS_BEFORE, CRS_RULES / "*.conf", CRS_AFTER]
    lines += [f"Include {p}" for p in includes if "*" in str(p) or p.exists()]
    conf = work / "modsecurity.conf"
    conf.write_text("# written by whathappens lab break waf\n" + "\n".join(lines) + "\n")
    return str(conf)


def waf_snippets(ctx: LabContext, edge: NginxEdge) -> dict[str, str]:
    return {"main": f'load_module "{MODSECURITY_MODULE}";\n',
            "server": ("modsecurity on;\n"
                       f'modsecurity_rules_file "{modsecurity_conf(ctx, edge)}";\n')}


def waf_entries(lab: Lab, edge: NginxEdge, needle: str) -> list[dict[str, Any]]:
    """ModSecurity's audit log transactions whose line holds ``needle`` (a trace id, a
    nonce), once the log has caught up (logs.settled): each with its status and the rules
    that matched."""
    out = []
    for item in logged(_waf_log(lab, edge), needle):
        tx = item.get("transaction")
        if not isinstance(tx, dict):
            continue
        rules = [(str(m.get("details", {}).get("ruleId", "?")), str(m.get("message", "")))
                 for m in tx.get("messages", []) if isinstance(m, dict)]
        out.append({"uri": tx.get("request", {}).get("uri"),
                    "status": tx.get("response", {}).get("http_code"),
                    "client": tx.get("client_ip"), "rules": rules})
    return out


def _edge_line(lab: Lab, edge: NginxEdge, needle: str) -> dict[str, Any]:
    lines = logged(access_log(lab.ctx, edge.name), needle, want=1)
    return lines[-1] if lines else {}


def _clean_latency(lab: Lab, n: int = 30) -> float | None:
    """p50 of ``n`` GETs of one cached page on one kept-alive connection (a HIT each but
    the first): the edge's own time, with and without the WAF."""
    from whathappens.lab.exercises import load
    from whathappens.lab.topology import SITE

    address, port = lab.front
    result = load.run(address, port, "/p/about/", requests=n, concurrency=1,
                      cafile=lab.cafile, host=SITE, seconds=15)
    return pct([s.latency_ms for s in result.samples[1:] if s.status == 200], 50)


def break_waf(lab: Lab, say: Say) -> dict[str, Any]:
    edge = _edge(lab)
    if not (MODSECURITY_MODULE.exists() and CRS_RULES.is_dir()):
        raise DrillError("ModSecurity or the OWASP CRS is not installed: whathappens lab "
                         "install (libnginx-mod-http-modsecurity, modsecurity-crs)")
    say("drill waf: ModSecurity with the OWASP Core Rule Set switched on at the edge "
        "(blocking mode, anomaly scoring, paranoia level 1), by a reload of its nginx")
    before = _clean_latency(lab)
    checked, took = _switch(lab, edge, "waf", waf_snippets(lab.ctx, edge))
    loaded = re.search(r"rules loaded inline/local/remote: (\d+)/(\d+)/(\d+)", checked)
    say(f"  nginx -t: {loaded[2] if loaded else '?'} rules loaded from the CRS; reload "
        f"(SIGHUP, new workers) took {took * 1000:.0f} ms")
    after = _clean_latency(lab)
    say(f"  a cached page, 30 GETs on one connection (client's clock, HIT at the edge): "
        f"p50 {ms(before)} without the WAF, {ms(after)} with it")
    attack = _waf_attack(lab, edge, say)
    sqli, clean = _waf_probes(lab, edge, say)
    say("  what it means:")
    say("    ModSecurity inspects each request before nginx looks in its cache or asks the "
        "origin (it runs in nginx's rewrite and preaccess phases): a request that scores "
        "≥ 5 on the CRS's inbound anomaly score (rule 949110) is answered 403 by the edge "
        "itself. The load balancer, the app nodes and Django never see it: the merged "
        "timeline has the edge's span alone, and HAProxy's log has no line for it.")
    say("    A clean request passes as before, at the cost of the inspection. A false "
        "positive looks exactly like the attack: a 403 from the edge, with nothing in the "
        "app's logs; ModSecurity's audit log (the rule ids) is where to look.")
    say("  undo: whathappens lab heal waf")
    _record(lab, "waf", {"audit_log": str(_waf_log(lab, edge))})
    return {"rules_loaded": int(loaded[2]) if loaded else None, "reload_s": took,
            "p50_before_ms": before, "p50_after_ms": after, **attack,
            "sqli": sqli, "clean": clean}


def _waf_attack(lab: Lab, edge: NginxEdge, say: Say) -> dict[str, Any]:
    """The XSS attack as a --lab journey: where it stopped, and the rules that fired."""
    path = f"/?{XSS}&{_nonce()}"
    say(f"  a --lab journey to {path} (<script>alert(1)</script> in the query):")
    journey = _journey(lab, path)
    http = _http(journey)
    status = http.facts.status if http is not None else None
    chain = _tiers_under(http)
    trace_id = str(journey.facts.trace_id or "")
    say(f"    HTTP {status}; merged tiers: " +
        (", ".join(f"{tier} ({logged})" for _, tier, logged in chain) or "none"))
    line = _edge_line(lab, edge, trace_id) if trace_id else {}
    span_waf = next((str(sp.facts.extra.get("waf")) for sp in (http.walk() if http else [])
                     if sp.name == "server.edge" and "waf" in sp.facts.extra), "")
    say(f"    the edge's span in the journey: WAF (ModSecurity) {span_waf or '-'}")
    upstream = line.get("upstream_addr") or ""
    say(f"    the edge's access log: status {line.get('status', '?')}, upstream "
        f"{upstream or 'none asked'}, request_time {line.get('request_time', '?')} s "
        f"(nginx's resolution: 1 ms)")
    lb = len(lb_lines(lab, trace_id)) if trace_id else -1
    say(f"    HAProxy's log: {lb} line(s) with this trace id")
    entries = waf_entries(lab, edge, trace_id) if trace_id else []
    rules = entries[-1]["rules"] if entries else []
    say("    ModSecurity's audit log (" + str(_waf_log(lab, edge).name) + "), rules matched:")
    for rule, message in rules:
        say(f"      {rule}  {message}")
    return {"status": status, "chain": chain, "trace_id": trace_id, "lb_lines": lb,
            "span_waf": span_waf,
            "rules": [r for r, _ in rules], "edge_line": line, "journey": journey}


def _waf_probes(lab: Lab, edge: NginxEdge, say: Say) -> tuple[dict[str, Any],
                                                                 dict[str, Any]]:
    """An SQL injection and a clean request, as a browser sends them."""
    out = []
    for label, query in (("SQL injection (1' OR 1=1--)", SQLI), ("clean", "")):
        nonce = _nonce()
        path = f"/p/about/?{query + '&' if query else ''}{nonce}"
        reply = Browser(lab).get(path)
        entries = waf_entries(lab, edge, nonce)
        rules = [r for r, _ in entries[-1]["rules"]] if entries else []
        lb = len(lb_lines(lab, nonce))
        say(f"  {label}: GET {path} → {reply.status} from {answered_by(reply)}; HAProxy "
            f"log lines: {lb}; rules: {', '.join(rules) or 'none'}")
        out.append({"status": reply.status, "answered_by": answered_by(reply),
                    "lb_lines": lb, "rules": rules})
    return out[0], out[1]


def heal_waf(lab: Lab, say: Say) -> dict[str, Any]:
    edge = _edge(lab)
    say("heal waf: the WAF's snippets removed, the edge reloaded")
    _, took = _switch(lab, edge, "waf", None)
    nonce = _nonce()
    reply = Browser(lab).get(f"/?{XSS}&{nonce}")
    say(f"  reload took {took * 1000:.0f} ms; the same attack now: {reply.status} from "
        f"{answered_by(reply)} (no WAF: the site itself treats q= as nothing special)")
    _record(lab, "waf", None)
    return {"status": reply.status, "answered_by": answered_by(reply)}


# ---------------------------------------------------------------------------------------------
# rate-limit: limit_req at the edge, keyed by the client's address

RL_ZONE = "edge_drill"
RL_RATE = 10                # requests per second per client address
RL_BURST = 10               # accepted at once above the rate (nodelay), then refused
# Two clients of the load run: one over the limit (a bot), one under it (a visitor).
RL_CLIENTS = (("bot", 90, 30.0, 3), ("visitor", 15, 5.0, 1))   # name, requests, r/s, conc.


def rate_snippets() -> dict[str, str]:
    return {"http": (f"limit_req_zone $binary_remote_addr zone={RL_ZONE}:1m "
                     f"rate={RL_RATE}r/s;\n"),
            "server": (f"limit_req zone={RL_ZONE} burst={RL_BURST} nodelay;\n"
                       "limit_req_status 429;\nlimit_req_log_level warn;\n")}


def rl_sources(lab: Lab) -> tuple[str, str]:
    """Two client addresses outside every lab host's range (127.S.251.1 and .2)."""
    return f"127.{lab.ctx.subnet}.251.1", f"127.{lab.ctx.subnet}.251.2"


def _rl_load(lab: Lab, run_id: str) -> dict[str, Any]:
    """The two clients' load runs, side by side: name → (address, LoadResult)."""
    import threading

    from whathappens.lab.exercises import load
    from whathappens.lab.topology import SITE

    address, port = lab.front
    out: dict[str, Any] = {}

    def client(name: str, source: str, n: int, rate: float, conc: int) -> None:
        out[name] = (source, load.run(
            address, port, lambda k: f"/p/about/?drill={run_id}-{name}-{k}", requests=n,
            concurrency=conc, rate=rate, cafile=lab.cafile, host=SITE, seconds=20,
            sources=(source,)))

    threads = [threading.Thread(target=client, args=(name, src, n, rate, conc), daemon=True)
               for (name, n, rate, conc), src in zip(RL_CLIENTS, rl_sources(lab), strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    return out


def _rl_client(name: str, source: str, result: Any, rate: float) -> dict[str, Any]:
    """One client's run: what was accepted and refused, when, and the accepted rate."""
    samples = result.samples
    refused = [s for s in samples if s.status == 429]
    accepted = [s for s in samples if 200 <= s.status < 400]
    last = max((s.start for s in samples), default=0.0)
    first_refused = refused[0].start if refused else None
    steady = None
    if first_refused is not None and last > first_refused:
        # after the burst: what got through from the first refusal to the last request
        later = [s for s in accepted if s.start >= first_refused]
        steady = len(later) / (last - first_refused)
    return {"client": name, "address": source, "sent": len(samples), "offered_rate": rate,
            "accepted": len(accepted), "refused": len(refused),
            "other": len(samples) - len(accepted) - len(refused),
            "first_refused_s": first_refused,
            "last_refused_s": refused[-1].start if refused else None,
            "accepted_rate": steady, "seconds": last,
            "accepted_p50_ms": pct([s.latency_ms for s in accepted], 50),
            "refused_p50_ms": pct([s.latency_ms for s in refused], 50),
            "per_second": _per_second(samples)}


def _per_second(samples: list[Any]) -> list[tuple[int, int, int]]:
    """(second, accepted, refused) for each second of the run, by when requests started."""
    rows: dict[int, list[int]] = {}
    for s in samples:
        row = rows.setdefault(int(s.start), [0, 0])
        if s.status == 429:
            row[1] += 1
        elif 200 <= s.status < 400:
            row[0] += 1
    return [(k, a, r) for k, (a, r) in sorted(rows.items())]


def _rl_logs(lab: Lab, edge: NginxEdge, run_id: str, sent: int) -> dict[str, Any]:
    """What the edge and HAProxy logged of the run's ``sent`` requests, once their logs have
    caught up (logs.settled): 429s by client address (the edge's access log), nginx's
    'limiting requests' lines (its error log, written as it refuses), HAProxy's lines."""
    refused: dict[str, int] = {}
    for item in logged(access_log(lab.ctx, edge.name), f"drill={run_id}-", sent):
        if str(item.get("status")) == "429":
            key = str(item.get("client"))
            refused[key] = refused.get(key, 0) + 1
    limiting: dict[str, int] = {}
    sample = ""
    for line in tail_lines(lab.ctx.log(edge.name)):
        if "limiting requests" in line and f"drill={run_id}-" in line:
            m = re.search(r"client: ([0-9.]+)", line)
            key = m[1] if m else "?"
            limiting[key] = limiting.get(key, 0) + 1
            sample = sample or line
    return {"edge_429_by_client": refused, "error_log_by_client": limiting,
            "error_log_sample": sample.split("] ", 1)[-1][:300],
            "lb_lines": len(lb_lines(lab, f"drill={run_id}-"))}


def break_rate_limit(lab: Lab, say: Say) -> dict[str, Any]:
    edge = _edge(lab)
    say(f"drill rate-limit: nginx's limit_req at the edge, {RL_RATE} requests/s per client "
        f"address (burst {RL_BURST}, nodelay), refused with 429")
    _, took = _switch(lab, edge, "rate-limit", rate_snippets())
    say(f"  edge reloaded in {took * 1000:.0f} ms (limit_req_zone $binary_remote_addr "
        f"zone={RL_ZONE}:1m rate={RL_RATE}r/s; limit_req … burst={RL_BURST} nodelay)")
    run_id = _nonce().removeprefix("drill=")
    say("  load (each request its own URL /p/about/?drill=…, so every accepted one goes to "
        "the origin):")
    for (name, n, rate, conc), src in zip(RL_CLIENTS, rl_sources(lab), strict=True):
        say(f"    {name:<8} from {src}: {n} GETs at {rate:g}/s, {conc} at a time")
    runs = _rl_load(lab, run_id)
    clients = [_rl_client(name, runs[name][0], runs[name][1], rate)
               for name, _, rate, _ in RL_CLIENTS if name in runs]
    logs = _rl_logs(lab, edge, run_id, sum(len(r.samples) for _, r in runs.values()))
    _say_rate_limit(clients, logs, say)
    _record(lab, "rate-limit", {"zone": RL_ZONE, "rate": RL_RATE, "burst": RL_BURST})
    return {"rate": RL_RATE, "burst": RL_BURST, "reload_s": took, "clients": clients,
            **logs}


def _say_rate_limit(clients: list[dict[str, Any]], logs: dict[str, Any], say: Say) -> None:
    say("  what each client saw (client's clock, seconds since its run began):")
    for c in clients:
        when = ("never refused" if c["first_refused_s"] is None else
                f"refused from {c['first_refused_s']:.2f} s to {c['last_refused_s']:.2f} s")
        rate = (f"; accepted after the burst: {c['accepted_rate']:.1f}/s (configured "
                f"{RL_RATE}/s)" if c["accepted_rate"] is not None else "")
        say(f"    {c['client']:<8} {c['address']:<15} sent {c['sent']:>3} at "
            f"{c['offered_rate']:g}/s: accepted {c['accepted']}, refused (429) "
            f"{c['refused']}, other {c['other']}; {when}{rate}")
        say(f"      latency p50 (client's clock): accepted {ms(c['accepted_p50_ms'])} (to "
            f"the origin), refused {ms(c['refused_p50_ms'])}")
        say("      per second (accepted/refused): " + "  ".join(
            f"{k}s {a}/{r}" for k, a, r in c["per_second"]))
    say(f"  the edge's access log, 429s by client address: {logs['edge_429_by_client']}")
    say(f"  the edge's error log, 'limiting requests' lines by client: "
        f"{logs['error_log_by_client']}")
    if logs["error_log_sample"]:
        say(f"    e.g. {logs['error_log_sample']}")
    accepted = sum(c["accepted"] for c in clients)
    say(f"  HAProxy's log: {logs['lb_lines']} line(s) of this run = the {accepted} accepted "
        f"requests; the refused ones never left the edge")
    say("  what it means:")
    say(f"    limit_req is a leaky bucket per client address: {RL_BURST} requests above the "
        f"rate are let through at once (burst, nodelay), then one every "
        f"{1000 // RL_RATE} ms; everything beyond is answered 429 by the edge itself, "
        f"without a trip to the origin (see the latencies above). The client under the limit "
        f"is never refused: the key is the address, so one noisy client does not use up "
        f"another's share. Behind a NAT or a proxy many users share one address: then "
        f"they share one bucket too.")
    say("  undo: whathappens lab heal rate-limit")


def heal_rate_limit(lab: Lab, say: Say) -> dict[str, Any]:
    from whathappens.lab.exercises import load
    from whathappens.lab.topology import SITE

    edge = _edge(lab)
    say("heal rate-limit: the limit's snippets removed, the edge reloaded")
    _, took = _switch(lab, edge, "rate-limit", None)
    address, port = lab.front
    run_id = _nonce().removeprefix("drill=")
    result = load.run(address, port, lambda k: f"/p/about/?drill={run_id}-{k}", requests=40,
                      concurrency=3, rate=30.0, cafile=lab.cafile, host=SITE, seconds=15,
                      sources=(rl_sources(lab)[0],))
    statuses = result.summary()["statuses"]
    say(f"  reload took {took * 1000:.0f} ms; 40 GETs at 30/s from {rl_sources(lab)[0]}: "
        f"{statuses}")
    _record(lab, "rate-limit", None)
    return {"statuses": statuses}


# ---------------------------------------------------------------------------------------------
# stale: a change at the origin, the edge's old copy, the stale window, a purge

STALE_SLUG = "about"
STALE_PATH = f"/p/{STALE_SLUG}/"
POLL_S = 0.5                # seconds between two looks at the edge during the stale window
NGINX_CACHE_VERSION = 5     # ngx_http_file_cache_header_t's version in nginx 1.22


def publish(lab: Lab, title: str) -> dict[str, Any]:
    """``django-admin lab_publish`` on an app node, as an editor publishes: the page's new
    title; returns the command's facts (when it committed, the title before)."""
    from whathappens.lab.tiers.gunicorn import Gunicorn, run_site_command

    name = lab.topo.of_kind("gunicorn")[0].name
    driver = lab.tier(name)
    assert isinstance(driver, Gunicorn)
    out = run_site_command(["lab_publish", STALE_SLUG, "--title", title],
                           driver.env(lab.ctx), lab.ctx.dir(name), timeout=60)
    facts = json.loads(out.strip().splitlines()[-1])
    return facts if isinstance(facts, dict) else {}


def cache_files(lab: Lab, path: str) -> list[tuple[str, Path]]:
    """Every cache on the way that may hold ``path``, (tier, file): the edge's (key
    https+host+uri) and each app node's micro-cache (key http+host+uri)."""
    import hashlib

    from whathappens.lab.topology import SITE

    edge = _edge(lab)
    out = [(edge.name, edge.cache_file(lab.ctx, SITE, path))]
    for spec in lab.topo.of_kind("nginx-app"):
        key = f"http{SITE}{path}"
        digest = hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()
        out.append((spec.name, lab.ctx.dir(spec.name) / "cache" / digest[-1] /
                    digest[-3:-1] / digest))
    return out


def purge(lab: Lab, path: str) -> list[str]:
    """Open-source nginx has no purge: delete the cached files. On its next lookup nginx
    finds the key in its zone but not the file, and treats the request as a MISS (it
    fetches and stores a new copy). Returns the tiers whose copy was removed."""
    removed = []
    for tier, file in cache_files(lab, path):
        with contextlib.suppress(FileNotFoundError):
            file.unlink()
            removed.append(tier)
    return removed


def valid_until(lab: Lab, path: str) -> tuple[int, int] | None:
    """(valid_sec, updating_sec) of the edge's copy, from its cache file's header
    (ngx_http_file_cache_header_t: version, then valid_sec, updating_sec as 64-bit
    integers): the copy is fresh while nginx's clock, in whole seconds, is ≤ valid_sec,
    then may be served STALE for updating_sec more while it is refreshed."""
    import struct

    from whathappens.lab.topology import SITE

    try:
        with _edge(lab).cache_file(lab.ctx, SITE, path).open("rb") as f:
            head = f.read(24)
        version, valid, updating = struct.unpack("<qqq", head)
    except (OSError, struct.error):
        return None
    return (valid, updating) if version == NGINX_CACHE_VERSION else None


def _age(lab: Lab) -> float | None:
    """now − the Date the origin gave the edge's copy (RFC 9111 §4.2.3's apparent age),
    read from the cache file: nginx puts its own Date on every response it sends and adds
    no Age header, so a client cannot see how old a cached copy is."""
    from email.utils import parsedate_to_datetime

    from whathappens.lab.topology import SITE

    stored = _edge(lab).cache_entry(lab.ctx, SITE, STALE_PATH) or {}
    try:
        return time.time() - parsedate_to_datetime(stored.get("date", "")).timestamp()
    except (TypeError, ValueError):
        return None


def _look(lab: Lab, title: str, t_pub: float) -> dict[str, Any]:
    reply = Browser(lab).get(STALE_PATH)
    return {"t": time.time() - t_pub, "status": reply.status,
            "x_cache": reply.header("x-cache"), "microcache": reply.header("x-microcache"),
            "new": f"<h1>{title}</h1>" in reply.body, "age": _age(lab)}


def _stale_window(lab: Lab, title: str, t_pub: float, expires: float) -> dict[str, Any]:
    """Look at the edge every POLL_S until it serves the new title; the first request
    after the copy expired is a --lab journey (it is answered STALE)."""
    looks: list[dict[str, Any]] = []
    journey = None
    deadline = time.time() + 60
    while time.time() < deadline:
        if journey is None and time.time() >= expires:
            t = time.time() - t_pub
            journey = _journey(lab, STALE_PATH)
            http = _http(journey)
            headers = dict((n.lower(), v) for n, v in http.facts.response_headers) \
                if http is not None else {}
            looks.append({"t": t, "status": http.facts.status if http else None,
                          "x_cache": headers.get("x-cache", ""), "journey": True,
                          # STALE is the expired copy by definition: the old title
                          "new": False if headers.get("x-cache") == "STALE" else None,
                          "age": None})
        else:
            looks.append(_look(lab, title, t_pub))
            if looks[-1]["new"]:
                break
        time.sleep(POLL_S)
    old = [x["t"] for x in looks if x["new"] is False]
    new = [x["t"] for x in looks if x["new"]]
    return {"looks": looks, "journey": journey,
            "last_old_s": max(old) if old else None,
            "first_new_s": min(new) if new else None}


def _fill(lab: Lab, say: Say) -> dict[str, Any]:
    """A fresh copy at the edge: every cache purged, then one GET stores it."""
    purge(lab, STALE_PATH)
    reply = Browser(lab).get(STALE_PATH)
    validity = valid_until(lab, STALE_PATH)
    say(f"  the edge's copy: purged, then GET {STALE_PATH} → {reply.status}, X-Cache "
        f"{reply.header('x-cache')}, Cache-Control '{reply.header('cache-control')}', "
        f"Date {reply.header('date')}")
    return {"reply": reply, "validity": validity}


def refresh_check(journey: Journey | None) -> dict[str, Any]:
    """Was the STALE answer's background refresh kept out of the response's span?"""
    if journey is None:
        return {"checked": False, "why": "no journey was made"}
    http = _http(journey)
    chain = _tiers_under(http)
    notes = [f.message for f in journey.findings if "in the background" in f.message]
    x_cache = ""
    if http is not None:
        x_cache = next((v for n, v in http.facts.response_headers if n.lower() == "x-cache"),
                       "")
    return {"checked": x_cache == "STALE", "x_cache": x_cache, "chain": chain,
            "note": notes[0] if notes else "",
            "only_edge": bool(chain) and all(name == "server.edge" for name, _, _ in chain)}


def break_stale(lab: Lab, say: Say) -> dict[str, Any]:
    _edge(lab)
    say(f"drill stale: {STALE_PATH} is changed at the origin (django-admin lab_publish: a "
        f"new title, on the primary) while the edge holds a copy")
    fill = _fill(lab, say)
    stamp = time.strftime("%H:%M:%S")
    title_v2 = f"About this site (edition of {stamp})"
    t0 = time.time()
    pub = publish(lab, title_v2)
    t_pub = float(pub["committed"])
    took = time.time() - t0
    validity = fill["validity"]
    expires = float(validity[0] + 1) if validity else time.time() + 11
    say(f"  published '{title_v2}' (was '{pub['before']}'): the command took {took:.1f} s "
        f"(Django's start-up), its commit is the zero of the times below")
    if validity:
        say(f"  the edge's cache file says: fresh while nginx's clock ≤ {validity[0]} "
            f"(whole seconds), i.e. for {expires - t_pub:.1f} s after the publish; then "
            f"STALE allowed for {validity[1]} s while it refreshes (stale-while-revalidate)")
    window = _stale_window(lab, title_v2, t_pub, expires)
    refresh = refresh_check(window["journey"])
    _say_window(window, refresh, say)
    purged = _purge_demo(lab, say)
    _say_stale_meaning(say)
    say("  undo: whathappens lab heal stale (puts the original title back, purged)")
    _record(lab, "stale", {"slug": STALE_SLUG, "title": pub["before"]})
    return {"published": pub, "validity": validity, "expires_after_s": expires - t_pub,
            **{k: v for k, v in window.items() if k != "journey"},
            "journey": window["journey"], "refresh": refresh, "purge": purged}


def _say_window(window: dict[str, Any], refresh: dict[str, Any], say: Say) -> None:
    say(f"  the edge, every {POLL_S:g} s (seconds after the publish; age = now − the Date "
        f"the origin gave the cached copy, from the edge's cache file, 1 s resolution):")
    for x in window["looks"]:
        title = {True: "new title", False: "OLD title", None: "?"}[x["new"]]
        age = f"age {x['age']:.1f} s" if x.get("age") is not None else ""
        who = "  (the --lab journey)" if x.get("journey") else ""
        say(f"    {x['t']:6.2f} s  {x['status']}  X-Cache {x['x_cache'] or '-':<8} "
            f"{title:<9} {age}{who}")
    lo, hi = window["last_old_s"], window["first_new_s"]
    if hi is not None:
        say(f"  stale window: the old copy was last served {lo or 0:.2f} s and the new one "
            f"first {hi:.2f} s after the publish (to within the {POLL_S:g} s between looks)")
    else:
        say("  the new title did not appear within 60 s")
    if refresh.get("checked"):
        say("  the STALE answer's background refresh, in the --lab journey: the response's "
            "merged tiers are " + ", ".join(t for _, t, _ in refresh["chain"]) +
            (" only" if refresh["only_edge"] else "") + "; its note: " +
            (refresh["note"] or "(none)"))
    else:
        say(f"  the --lab journey was answered X-Cache {refresh.get('x_cache') or '?'}, not "
            f"STALE: the background refresh could not be checked this time")


def _purge_demo(lab: Lab, say: Say) -> dict[str, Any]:
    """A second change, seen at once thanks to a purge."""
    title_v3 = f"About this site (edition of {time.strftime('%H:%M:%S')}, purged)"
    pub = publish(lab, title_v3)
    t_pub = float(pub["committed"])
    before = _look(lab, title_v3, t_pub)
    t0 = time.time()
    removed = purge(lab, STALE_PATH)
    took = time.time() - t0
    after = _look(lab, title_v3, t_pub)
    say(f"  another change, then a purge: '{title_v3}'")
    for label, x in (("before the purge", before), ("after the purge", after)):
        say(f"    {label:<17} {x['t']:5.2f} s after the publish: X-Cache {x['x_cache']}, "
            f"micro-cache {x['microcache'] or '-'}, "
            f"{'new title' if x['new'] else 'OLD title'}")
    say(f"    purged: the cached files of {', '.join(removed) or 'nothing'} "
        f"({took * 1000:.1f} ms)")
    return {"before": before, "after": after, "removed": removed, "published": pub}


def _say_stale_meaning(say: Say) -> None:
    say("  what it means:")
    say("    The page says Cache-Control: public, max-age=60, s-maxage=10, "
        "stale-while-revalidate=30. The edge is a shared cache, so s-maxage is its "
        "lifetime (RFC 9111 §5.2.2.10): for up to 10 s after it stored the copy (nginx "
        "counts whole seconds, so up to 11) it answers from it without asking the origin, "
        "whatever changed there. After that, stale-while-revalidate (RFC 5861) lets it "
        "answer once more from the old copy (X-Cache STALE) while it fetches the new one "
        "in the background; the next request gets the new copy.")
    say("    So an edit shows at the edge after at most s-maxage + 1 s + the refresh, unless "
        "the copy is purged. nginx open source has no purge command (that is nginx Plus's "
        "proxy_cache_purge): the lab deletes the cache file, named by the MD5 of the cache "
        "key, and nginx treats the next request as a MISS. A purge must reach every cache "
        "on the way: the app nodes' 1 s micro-caches too. Browsers may still keep their "
        "copy for max-age (60 s): no purge reaches them.")


def heal_stale(lab: Lab, say: Say) -> dict[str, Any]:
    from whathappens.lab.exercises.drills.common import in_force

    facts = in_force(lab).get("stale", {})
    title = str(facts.get("title") or "About")
    say(f"heal stale: the page's title back to '{title}', every cache of it purged")
    publish(lab, title)
    removed = purge(lab, STALE_PATH)
    look = _look(lab, title, time.time())
    say(f"  purged {', '.join(removed) or 'nothing'}; GET {STALE_PATH}: X-Cache "
        f"{look['x_cache']}, {'the original title' if look['new'] else 'NOT the title'}")
    _record(lab, "stale", None)
    return {"title": title, "look": look}
