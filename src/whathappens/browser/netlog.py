"""Chromium's NetLog → the HTTP/2 stream of each request. Pure: no I/O.

CDP tells which connection a response came on (``connectionId``) but not which HTTP/2 stream
(RFC 9113 §5.1) carried it. The NetLog (``--log-net-log=FILE``) does: an ``HTTP2_SESSION``
is bound to its socket by ``HTTP2_SESSION_INITIALIZED`` (whose ``source_dependency`` is the
socket, the same id as CDP's ``connectionId``), and each ``HTTP2_SESSION_SEND_HEADERS`` names
the ``stream_id`` and the request's ``:authority`` and ``:path``. Requests are matched to
streams by (connection, authority, path) in the order they were sent.

A cold browser's NetLog is read whole once the browser has closed. A warm browser (``serve``)
keeps one NetLog for its whole life; Chromium writes it as it goes (one event a line, in
small batches: measured on 156, every request's headers were on disk by the time the page
had settled), so each journey reads only the part written since its page started
(``events_in``), with the constants from the file's head (``netlog_constants``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from whathappens.browser.network import ResourceRecord

Streams = dict[tuple[int, str], list[int]]


def read_netlog(text: str) -> tuple[dict[str, Any], list[Any]]:
    """The NetLog's constants and events; a NetLog still being written (no closing ``]}``,
    a half-written last event) gives the events written so far."""
    try:
        doc = json.loads(text)
    except ValueError:
        return _read_partial(text)
    if not isinstance(doc, dict):
        return {}, []
    constants, events = doc.get("constants"), doc.get("events")
    return (constants if isinstance(constants, dict) else {},
            events if isinstance(events, list) else [])


def _read_partial(text: str) -> tuple[dict[str, Any], list[Any]]:
    decoder = json.JSONDecoder()
    constants: dict[str, Any] = {}
    at = text.find('"constants"')
    if at >= 0:
        start = text.find("{", at)
        try:
            found, _ = decoder.raw_decode(text, start)
        except ValueError:
            return {}, []
        constants = found if isinstance(found, dict) else {}
    at = text.find('"events"')
    i = text.find("[", at) + 1 if at >= 0 else 0
    events: list[Any] = []
    while 0 < i < len(text):
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        if i >= len(text) or text[i] == "]":
            break
        try:
            event, i = decoder.raw_decode(text, i)
        except ValueError:
            break  # the event being written when we read
        events.append(event)
    return constants, events


def netlog_constants(head: str) -> dict[str, Any]:
    """The ``constants`` object at the head of a NetLog (written first, whole)."""
    at = head.find('"constants"')
    start = head.find("{", at) if at >= 0 else -1
    if start < 0:
        return {}
    try:
        found, _ = json.JSONDecoder().raw_decode(head, start)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def events_in(piece: str) -> list[Any]:
    """The events of a piece cut out of a NetLog being written: one event a line (``{…},``);
    the lines cut at either end, and anything else that is not an event, are skipped."""
    out: list[Any] = []
    for line in piece.splitlines():
        line = line.strip().removesuffix(",")
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "type" in event:
            out.append(event)
    return out


def h2_streams(text: str) -> Streams:
    """(connection id, authority + path) → the stream ids that carried it, in send order."""
    return streams_from(*read_netlog(text))


def streams_from(constants: dict[str, Any], events: list[Any]) -> Streams:
    """``h2_streams`` from a NetLog's constants and (some of) its events."""
    types = {v: k for k, v in (constants.get("logEventTypes") or {}).items()}
    socket_of: dict[int, int] = {}
    out: Streams = {}
    for e in events:
        if not isinstance(e, dict):
            continue
        name = types.get(e.get("type"))
        params: dict[str, Any] = e.get("params") or {}
        session = (e.get("source") or {}).get("id")
        if name == "HTTP2_SESSION_INITIALIZED":
            socket = (params.get("source_dependency") or {}).get("id")
            if isinstance(session, int) and isinstance(socket, int):
                socket_of[session] = socket
        elif name == "HTTP2_SESSION_SEND_HEADERS" and session in socket_of:
            pseudo = _pseudo_headers(params.get("headers") or [])
            stream = params.get("stream_id")
            if isinstance(stream, int):
                key = (socket_of[session], pseudo.get(":authority", "") + pseudo.get(":path", ""))
                out.setdefault(key, []).append(stream)
    return out


def _pseudo_headers(lines: list[Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        if isinstance(line, str) and line.startswith(":"):
            name, _, value = line[1:].partition(": ")
            out[":" + name] = value
    return out


def assign_streams(records: list[ResourceRecord], streams: Streams) -> int:
    """Set ``stream_id`` on each HTTP/2 request found in the NetLog; returns how many."""
    found = 0
    for r in sorted(records, key=lambda r: r.start_ns):
        f = r.facts
        if f.protocol != "h2" or f.connection_id is None or f.from_cache:
            continue
        parts = urlsplit(f.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        authority = parts.netloc.rpartition("@")[2]  # :authority has no userinfo
        queue = streams.get((f.connection_id, authority + path))
        if queue:
            f.stream_id = queue.pop(0)
            found += 1
    return found
