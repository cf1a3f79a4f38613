"""The analyses of one journey as JSON: the ``analysis`` key of the journey document.

:func:`analyze` is the one entry point: the journey's dict in (as ``Journey.to_dict()``
builds it; an ``analysis`` key already in it is ignored), a JSON-ready dict out, with four
parts, five with a browser phase (:func:`analyze_journey` gives the same as dataclasses,
from the typed ``JourneyDoc``):

- ``summary``: how it ended, what it spoke, the time per step summed over requests;
- ``budgets``: each judged step's verdict against its rule of thumb (analysis/budgets.py);
- ``actors``: everyone the journey met, with their role (analysis/actors.py);
- ``resolver_cache``: whether each repeated question came from the resolver's cache
  (analysis/resolver_cache.py);
- ``browser`` (only with a browser phase): FCP, LCP and CLS against Core Web Vitals'
  thresholds, the chain that held FCP back and the LCP element's own (analysis/browser.py);
- ``security`` (with a response): the security headers and cookies graded with MDN HTTP
  Observatory's scoring (analysis/security.py);
- ``who_answered``: CDN, cache, load balancer, proxy, app server and framework inferred from
  the journey's evidence, each with its confidence (analysis/who_answered.py).
- ``caching`` (when a response came back): who may store each response and for how long,
  its validators and Vary, and the revalidation made after the journey (analysis/caching.py).
- ``timing_guide``: what good timing looks like, the rules of thumb beside this journey's
  figures (analysis/timing_guide.py).

The dataclasses are analysis/model.py; their JSON and :data:`SCHEMA` come from
contract/codec.py, like every span's facts. The terminal, the HTML report and the live page
show these same verdicts: the view (render/view.py) calls the same functions.
"""

from __future__ import annotations

from collections.abc import Mapping

from whathappens.analysis.actors import actors
from whathappens.analysis.browser import analyze_browser
from whathappens.analysis.budgets import verdicts
from whathappens.analysis.caching import analyze_caching
from whathappens.analysis.model import Analysis
from whathappens.analysis.resolver_cache import cache_checks
from whathappens.analysis.security import security
from whathappens.analysis.summary import summarize
from whathappens.analysis.timing_guide import timing_guide
from whathappens.analysis.who_answered import who_answered
from whathappens.contract.codec import JSON, schema_of, to_json
from whathappens.contract.document import JourneyDoc, read_journey


def without_analysis(data: Mapping[str, object]) -> Mapping[str, object]:
    """The document as the contract reads it: ``analysis`` is derived, not read back."""
    return {k: v for k, v in data.items() if k != "analysis"} if "analysis" in data else data


def analyze_journey(journey: JourneyDoc) -> Analysis:
    """The analyses of the typed journey document."""
    return Analysis(summary=summarize(journey), budgets=verdicts(journey),
                    actors=actors(journey), resolver_cache=cache_checks(journey),
                    browser=analyze_browser(journey), security=security(journey),
                    who_answered=who_answered(journey), caching=analyze_caching(journey),
                    timing_guide=timing_guide(journey))


def analyze(data: Mapping[str, object]) -> dict[str, JSON]:
    """The journey's analyses, JSON-ready, from its JSON dict. Pure: changes nothing."""
    out = to_json(analyze_journey(read_journey(without_analysis(data))))
    assert isinstance(out, dict)
    return out


def _schema() -> dict[str, object]:
    defs: dict[str, object] = {}
    top = schema_of(Analysis, defs)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **top, "$defs": defs}


# The ``analysis`` key's JSON Schema, generated from analysis/model.py.
SCHEMA = _schema()
