"""What the live page is told as a journey runs: one small event per finished step.

Pure: a finished span (``Span.to_dict()``) becomes a JSON-ready event with a one-line summary
in plain words. The page shows events with ``textContent`` only, so no HTML escaping is needed
here; but text is still text to a reader, so every string of an event goes through
:func:`~whathappens.render.visible.visible_tree` on its way out (:func:`_shown`): a control
character or a bidi override from the peer is shown as ``\\x1b`` / ``\\u202e``, as in the
terminal and HTML reports, instead of reordering or hiding the page's words. The full report
that follows the last step is the HTML renderer's, escaped there.
"""

from __future__ import annotations

from typing import Any

from whathappens.render.visible import visible_tree

# The spans the page shows as they end, in the order a journey meets them.
LIVE_SPANS = ("url", "dns", "guard", "tcp", "tls", "http", "leg")
# Inside the DNS step: each question to the resolver and each hop of the walk, as they end.
DETAIL_SPANS = ("dns.query", "dns.hop")
STEP_TITLE = {
    "url": "URL", "dns": "DNS", "guard": "Address check", "tcp": "TCP", "tls": "TLS",
    "http": "HTTP", "leg": "Request done",
}


def _shown(event: dict[str, Any]) -> dict[str, Any]:
    """The one way out of this module: every string of the event made visible."""
    shown: dict[str, Any] = visible_tree(event)
    return shown


def _ms(v: object) -> str:
    return f"{float(v):.2f} ms" if isinstance(v, (int, float)) else "—"


def _rtt(tcp: dict[str, Any]) -> str:
    for child in tcp.get("children", []):
        info = (child.get("attrs") or {}).get("tcp_info") or {}
        if info.get("rtt_ms") is not None:
            return f", kernel RTT {float(info['rtt_ms']):.3f} ms"
    return ""


def summary(span: dict[str, Any]) -> str:
    """One line about a finished step, from its measured attributes only."""
    a = span.get("attrs") or {}
    name = span.get("name")
    err = span.get("error") or {}
    if err:
        return str(err.get("message") or "failed")
    if name == "url":
        return (f"{a.get('scheme')}://{a.get('host')} port {a.get('port')}, "
                f"path {a.get('request_target') or '/'}")
    if name == "dns":
        addrs = ", ".join(str(x) for x in (a.get("addresses") or [])) or "no address"
        view = a.get("view_used")
        how = {"none": "no lookup", "resolver": "the recursive resolver's answer",
               "walk": "the iterative walk's answer", "system": "the system resolver's answer"}
        return f"{a.get('host')} → {addrs} ({how.get(str(view), str(view))})"
    if name == "guard":
        allowed = ", ".join(a.get("allowed") or []) or "none"
        return f"private or reserved addresses skipped; allowed: {allowed}"
    if name == "tcp":
        local, remote = a.get("local"), a.get("remote")
        text = f"connected from {local} to {remote}" if local and remote else "connected"
        segs = a.get("handshake_segments") or []
        if len(segs) == 3:
            text += (f"; SYN seq {segs[0]['seq']}, SYN-ACK seq {segs[1]['seq']} ack "
                     f"{segs[1]['ack']}, ACK ack {segs[2]['ack']}")
        return text + _rtt(span)
    if name == "tls":
        parts = [str(a.get(k)) for k in ("version", "cipher", "group") if a.get(k)]
        if a.get("alpn"):
            parts.append(f"ALPN {a['alpn']}")
        if a.get("session_reused"):
            parts.append("session resumed")
        return " · ".join(parts) or "handshake done"
    if name == "http":
        size = a.get("body_bytes_encoded")
        body = f", {size:,} body bytes" if isinstance(size, int) else ""
        return (f"{a.get('status', '')} {a.get('reason') or ''} over "
                f"{a.get('http_version') or a.get('protocol') or 'HTTP'}{body}, "
                f"first byte after {_ms(a.get('wait_ms'))}").replace("  ", " ")
    if name == "leg":
        if any(c.get("error") for c in span.get("children") or []):
            return f"{a.get('method', 'GET')} {a.get('url', '')} did not complete"
        conn = "a reused connection" if a.get("connection") == "reused" else "a new connection"
        return f"{a.get('method', 'GET')} {a.get('url', '')} on {conn}"
    return ""


def step_event(span: dict[str, Any], leg: int | None) -> dict[str, Any]:
    from whathappens.explain.texts import STEPS

    name = str(span.get("name"))
    text = STEPS.get(name)
    return _shown({
        "step": name,
        "title": STEP_TITLE.get(name, name),
        "leg": leg,
        "actor": span.get("actor"),
        "layer": span.get("layer"),
        "start_ms": span.get("start_ms"),
        "duration_ms": span.get("duration_ms"),
        "summary": summary(span),
        "failed": bool(span.get("error")),
        "beginner": text.beginner if text else "",
        "advanced": text.advanced if text else "",
        "measures": text.measures if text else "",
    })


def compare_event(result: dict[str, Any]) -> dict[str, Any]:
    """The TLS 1.2 vs 1.3 comparison as one live step (the report has the whole table)."""
    if not result.get("measured"):
        text = str(result.get("reason") or "not measured")
    else:
        parts = []
        for v in result.get("versions") or []:
            if v.get("outcome") == "measured":
                parts.append(f"TLS {v.get('version')}: {_ms(v.get('handshake_ms'))}, "
                             f"{v.get('round_trips')} round trip(s)")
            else:
                why = (v.get("error") or {}).get("message") or v.get("outcome")
                parts.append(f"TLS {v.get('version')}: {why}")
        text = "; ".join(parts)
    return _shown({"step": "tls-compare", "title": "TLS 1.2 vs 1.3", "leg": None,
                   "actor": None, "layer": "transport", "start_ms": None, "duration_ms": None,
                   "summary": text, "failed": False, "beginner": "", "advanced": "",
                   "measures": ""})


def detail_event(span: dict[str, Any], leg: int | None) -> dict[str, Any]:
    """One DNS question (to the resolver) or one hop of the walk, as it ends."""
    a = span.get("attrs") or {}
    err = span.get("error") or {}
    records = ", ".join(str(r) for r in a.get("records") or [])
    if span.get("name") == "dns.hop":
        who = f"{str(a.get('server', '')).rstrip('.') or '.'} ({a.get('address')})"
        kind = str(a.get("kind") or "")
        if kind == "referral":
            what = f"referral to the {a.get('referral_zone')} servers"
        elif kind == "answer":
            what = f"answer {records}" if records else "answer"
        else:
            what = str(a.get("note") or kind or "no answer")
        text = f"walk: asked {who} for {a.get('qtype')} {a.get('qname')}: {what}"
    else:
        what = str(err.get("message") or "") or (records and f"answer {records}") or str(
            a.get("rcode") or "no records")
        again = " (asked again: the resolver's cache)" if str(
            a.get("purpose", "")).startswith("the same question") else ""
        text = f"{span.get('actor')}: {a.get('qtype')} {a.get('qname')}{again}: {what}"
    return _shown({"step": span.get("name"), "leg": leg, "start_ms": span.get("start_ms"),
                   "duration_ms": span.get("duration_ms"), "summary": text,
                   "failed": bool(err)})
