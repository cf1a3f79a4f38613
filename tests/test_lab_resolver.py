"""The resolver on the timeline: the lab's Unbound's upstream queries under the DNS step.

Pure tests of the matching (name + time window + the resolver's address), then a real
single-profile lab: a cold lookup (``--lab-cold all``: unbound-control flush_zone .) shows
root → TLD → example.com as Unbound walked it, with the authoritative servers' ns stamps
inside the journey's resolver view; a warm one shows none; ``--lab-cold`` (the name only)
shows only the example.com server asked. A CLI run renders it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import pytest

from journey_helpers import check_universal, child, legs, options
from lab_helpers import bring_up, needs_lab
from whathappens.journey import Journey, Span
from whathappens.lab.client import apply, front, merge_inside
from whathappens.lab.client.resolver import Upstream, flush, in_chain, parse_line, select
from whathappens.lab.tier import LabContext
from whathappens.lab.topology import topology
from whathappens.trace import run_journey


def _up(qname: str, at: int, client: str = "127.0.54.53:40000") -> Upstream:
    return Upstream("ns1.example.com", client, qname, "A", "udp", "answer", "NOERROR", True,
                    [], at, at + 500_000)


# ------------------------------------------------------------------------ pure
def test_the_chain_is_the_name_and_its_ancestors() -> None:
    assert in_chain("www.example.com.", "www.example.com")
    assert in_chain("example.com.", "www.example.com.")     # QNAME minimisation (RFC 9156)
    assert in_chain("com.", "WWW.Example.COM.")
    assert in_chain(".", "www.example.com.")                # priming the root (RFC 8109)
    assert not in_chain("ample.com.", "www.example.com.")   # a label, not a suffix
    assert not in_chain("pop2.example.com.", "www.example.com.")


def test_select_keeps_the_resolvers_queries_in_the_window_for_the_name() -> None:
    lines = [_up("com.", 100), _up("www.example.com.", 300),
             _up("pop2.example.com.", 200),                          # another name
             _up("www.example.com.", 250, client="127.0.0.1:5353"),  # the walk view
             _up("www.example.com.", 50), _up("www.example.com.", 900)]  # outside
    mine, others = select(reversed(lines), "127.0.54.53", "www.example.com.", 100, 800)
    assert [(u.qname, u.received_ns) for u in mine] == [("com.", 100),
                                                        ("www.example.com.", 300)]
    assert [u.qname for u in others] == ["pop2.example.com."]


def test_a_log_line_without_stamps_or_of_the_wrong_shape_is_skipped() -> None:
    good = {"server": "a.root-servers.net", "client": "127.0.54.53:1", "qname": "COM.",
            "qtype": "A", "kind": "referral", "rcode": "NOERROR", "aa": False,
            "records": ["example.com. 172800 IN NS ns1.example.com."],
            "received_ns": 10, "sent_ns": 20}
    up = parse_line(good)
    assert up is not None
    assert up.qname == "com."
    assert up.sent_ns == 20
    assert parse_line({**good, "received_ns": None}) is None
    assert parse_line({k: v for k, v in good.items() if k != "sent_ns"}) is None
    assert parse_line({**good, "received_ns": "soon"}) is None


def test_lab_cold_without_a_lab_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from whathappens.commands.trace import trace_main

    assert trace_main(["https://www.example.com/", "--lab-cold"]) == 2
    assert "--lab-cold flushes the lab's resolver: it needs --lab" in capsys.readouterr().err


# ------------------------------------------------------------------- the real lab
@pytest.fixture(scope="module")
def lab_up() -> Iterator[LabContext]:
    yield from bring_up("single", "whathappens-lab-resolver-")


def _journey(ctx: LabContext, cold: str | None) -> Journey:
    opts = options()
    apply(opts, ctx.state)
    flushed = flush(ctx.state, "www.example.com", cold) if cold else None
    j = asyncio.run(run_journey(_url(ctx), opts))
    merge_inside(j, ctx.state, flushed)
    assert j.error is None, j.error and j.error.to_dict()
    check_universal(j)
    return j


def _url(ctx: LabContext) -> str:
    port = front(ctx.state)[1]
    return f"https://www.example.com{'' if port == 443 else f':{port}'}/"


def _recursion(j: Journey) -> tuple[Span, Span]:
    [leg] = legs(j)
    view = child(child(leg, "dns"), "dns.resolver")
    return view, child(view, "dns.recursion")


@needs_lab
def test_a_cold_lookup_shows_unbound_walking_root_tld_authoritative(
        lab_up: LabContext) -> None:
    topo = topology("single", lab_up.subnet)
    j = _journey(lab_up, "all")
    view, rec = _recursion(j)
    assert rec.attrs["from_cache"] is False
    assert rec.attrs["flushed"] == "everything (flush_zone .)"
    ups = rec.children
    assert rec.attrs["upstream_queries"] == len(ups) >= 3
    roles = [u.attrs["role"] for u in ups]
    # In order: the root (priming and/or "com."), then the TLD, then example.com's server.
    assert roles.index("root") < roles.index("tld") < roles.index("authoritative")
    assert {(u.attrs["qname"], u.attrs["kind"]) for u in ups} >= {
        ("com.", "referral"), ("example.com.", "referral"), ("www.example.com.", "answer")}
    resolver = topo.address("resolver")
    assert all(u.attrs["client"].startswith(resolver + ":") for u in ups)
    # Real times, inside the view that waited for them (same machine, same clock).
    assert view.end_ns is not None
    for u in ups:
        assert u.end_ns is not None
        assert view.start_ns <= u.start_ns <= u.end_ns <= view.end_ns
        assert 0 <= u.attrs["server_ms"] < 50
    assert [u.start_ns for u in ups] == sorted(u.start_ns for u in ups)
    assert rec.start_ns == ups[0].start_ns
    # The repeated A question (asked to see the cache) sent nothing upstream.
    assert rec.attrs["repeat_upstream"] == 0
    # The journey's own walk asked the same servers, from another address: not counted.
    assert len([h for h in j.all_spans() if h.name == "dns.hop"]) >= 3


@needs_lab
def test_a_warm_lookup_is_answered_from_unbounds_cache(lab_up: LabContext) -> None:
    _journey(lab_up, None)                       # whatever the state, now it is cached
    j = _journey(lab_up, None)
    _, rec = _recursion(j)
    assert rec.attrs["from_cache"] is True
    assert rec.attrs["upstream_queries"] == 0
    assert rec.children == []
    assert any("answered from Unbound's cache: no upstream queries" in f.message
               for f in j.findings)


@needs_lab
def test_flushing_the_name_only_asks_the_authoritative_server(lab_up: LabContext) -> None:
    _journey(lab_up, None)
    j = _journey(lab_up, "name")
    _, rec = _recursion(j)
    assert rec.attrs["flushed"] == "www.example.com. (flush_zone www.example.com.)"
    # The delegations to com. and example.com. are still cached: only ns1 is asked.
    assert {u.attrs["role"] for u in rec.children} == {"authoritative"}
    assert {u.attrs["qtype"] for u in rec.children} >= {"A", "HTTPS"}


@needs_lab
def test_the_cli_renders_the_resolvers_queries(lab_up: LabContext) -> None:
    done = subprocess.run([sys.executable, "-m", "whathappens", _url(lab_up), "--lab",
                           str(lab_up.state), "--lab-cold", "all", "--no-color"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert "upstream queries" in done.stdout, done.stdout + done.stderr
    assert "a.gtld-servers.net (tld)" in done.stdout
    assert "matched by name and time window" in done.stdout
    assert "the A question asked again sent nothing upstream" in done.stdout
