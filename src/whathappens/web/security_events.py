"""The live page's words on who answered and on the security headers, per response.

The page learns about each response as its http span ends, before the journey's other
requests are known, so this reads that one response alone: who its headers say answered
(analysis/who_answered.py) and its headers' grade (analysis/security.py) when it is a final
answer (a 2xx carrying HSTS or a CSP, read as if over https). The report shown at the end
has the whole journey's grade, with the redirect and every cookie. web/events.py makes the
strings visible on their way out.
"""

from __future__ import annotations

from whathappens.analysis.security import grade
from whathappens.analysis.who_answered import from_headers
from whathappens.contract.document import SpanDoc
from whathappens.contract.facts import HttpFacts


def live_note(span: SpanDoc) -> str:
    """``; answered by app server Hypercorn (possible); headers graded A- (85)``, or ""."""
    facts = span.facts_as(HttpFacts)
    if facts is None or facts.status is None:
        return ""
    headers = list(facts.response_headers)
    who = from_headers(headers)
    out = ""
    if who:
        out += "; answered by " + ", ".join(
            f"{w.role} {w.who} ({w.confidence})" for w in who[:3])
    if 200 <= facts.status < 300 and any(
            k.lower() == "strict-transport-security" or k.lower().startswith("content-sec")
            for k, _ in headers):
        score, letter, _ = grade(headers)
        out += f"; this response's headers alone grade {letter} ({score}, MDN HTTP " \
               "Observatory scoring)"
    return out
