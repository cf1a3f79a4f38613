"""What a command does with a running demo internet: its URL, the note on a journey that went
through it, and the foreground "running, try this" of ``whathappens demo --serve``.

The commands themselves (their arguments, starting the demo internet, tracing through it) are
``whathappens.commands.demo`` and ``whathappens.commands.serve``.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING

from whathappens.contract.codec import from_json
from whathappens.contract.document import DemoFacts
from whathappens.demo.page import delay_words as page_delay_words

if TYPE_CHECKING:
    from whathappens.demo.internet import DemoInternet
    from whathappens.journey import Journey


def delay_words(demo: DemoInternet) -> str:
    """Injected delay per role, e.g. "root 25 ms, tld 20 ms"."""
    by_role: dict[str, float] = {}
    for server in demo.info.get("servers", []):
        if server.get("delay_ms"):
            by_role.setdefault(str(server.get("role")), float(server["delay_ms"]))
    return ", ".join(f"{role} {delay:g} ms" for role, delay in by_role.items())


def demo_url(demo: DemoInternet, url: str | None) -> str:
    if url:
        return url
    port = "" if demo.https_port == 443 else f":{demo.https_port}"
    return f"https://www.example.com{port}/"


def annotate(journey: Journey, demo: DemoInternet, views: frozenset[str]) -> None:
    """Say on the journey that it went through the demo internet, and what was injected."""
    journey.facts.demo = from_json(DemoFacts, {"servers": demo.info.get("servers", []),
                                               "delays_injected": demo.delays,
                                               "page": demo.info.get("page")})
    if "system" not in views:
        journey.note("info", "dns", "the system resolver view is skipped in the demo: its "
                     "names exist only in the demo internet, and the demo stays offline")
    if demo.delays:
        journey.note("info", "demo", "the demo internet injects delays so its timeline looks "
                     f"like the real internet's: {delay_words(demo)} per answer. Every time "
                     "shown is measured; those waits are part of what was measured. "
                     "Run with --no-delay for loopback speed.")


def serve_forever(demo: DemoInternet) -> None:
    port = "" if demo.https_port == 443 else f":{demo.https_port}"
    dport = "" if demo.dns_port == 53 else f" -p {demo.dns_port}"
    print(f"""demo internet running (state in {demo.state_dir}); Ctrl-C stops it.
  servers:""")
    for s in demo.info.get("servers", []):
        print(f"    {s.get('role', ''):<14} {s.get('name', ''):<28} {s.get('address', '')}"
              f"  delay {s.get('delay_ms', 0):g} ms")
    page = page_delay_words(demo.info.get("page") or {})
    if page:
        print(f"  the page's files, each after its own delay: {page}")
    print(f"""  try:
    dig @{demo.resolver}{dport} www.example.com
    dig @127.0.53.1{dport} +norecurse www.example.com
    curl --cacert {demo.ca} --resolve www.example.com:{demo.https_port}:{demo.web} \
https://www.example.com{port}/
    whathappens https://www.example.com{port}/ --root-hints {demo.root_hints} \
--dns-port {demo.dns_port} --cacert {demo.ca}""")
    sys.stdout.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5) and demo.running:
            pass
    except KeyboardInterrupt:
        pass
