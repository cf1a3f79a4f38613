"""The journey model: a tree of spans plus findings, and its one serializer.

A span is one network action or one step of reasoning, with a name (``dns.query``), the step
of the journey it belongs to (``dns``), its actor (who did the work: ``you``, ``recursive
resolver 127.0.53.53``, ``a.root-servers.net``), the TCP/IP layer it lives in, start and end in
nanoseconds since the journey's t0, its typed facts (``contract.facts``: one dataclass per span
name, so ``Span[TlsFacts]`` is checked by mypy wherever a driver writes it), and an error if it
failed.

Every renderer (terminal, JSON, HAR, HTML, the live page) reads ``Journey.to_dict()`` — through
``contract.document.read_journey`` — and nothing else: renderers never reach back into probes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from whathappens.clock import CLOCK_NAME, Clock, ms
from whathappens.contract.codec import JSON, to_json
from whathappens.contract.document import JourneyFacts
from whathappens.contract.facts import Facts, facts_class
from whathappens.contract.schema import SCHEMA_VERSION
from whathappens.errors import JourneyError

__all__ = ["LAYERS", "SCHEMA_VERSION", "Finding", "Journey", "Span"]

F = TypeVar("F", bound=Facts)

# The four layers of the TCP/IP model (RFC 1122), as the seeds' layer table uses them.
LAYERS = ("application", "transport", "internet", "link")


@dataclass
class Span(Generic[F]):
    name: str
    step: str
    actor: str
    layer: str
    start_ns: int
    facts: F
    end_ns: int | None = None
    children: list[Span[Any]] = field(default_factory=list)
    error: dict[str, object] | None = None
    span_id: int = 0

    @property
    def attrs(self) -> MappingProxyType[str, JSON]:
        """The facts as the JSON carries them: read-only (write ``facts``)."""
        out = to_json(self.facts)
        assert isinstance(out, dict)
        return MappingProxyType(out)

    @property
    def duration_ns(self) -> int | None:
        return None if self.end_ns is None else self.end_ns - self.start_ns

    def fail(self, err: JourneyError) -> None:
        self.error = err.to_dict()

    def walk(self) -> Iterator[Span[Any]]:
        yield self
        for child in self.children:
            yield from child.walk()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.span_id,
            "name": self.name,
            "step": self.step,
            "actor": self.actor,
            "layer": self.layer,
            "start_ms": ms(self.start_ns),
            "end_ms": ms(self.end_ns),
            "duration_ms": ms(self.duration_ns),
            "attrs": to_json(self.facts),
            "error": self.error,
            "children": [c.to_dict() for c in self.children],
        }


@dataclass
class Finding:
    """Something worth telling the reader: a warning, a note, or a problem."""

    severity: str  # "info" | "warning" | "error"
    step: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "step": self.step, "message": self.message}


@dataclass
class Journey:
    url: str
    clock: Clock = field(default_factory=Clock)
    spans: list[Span[Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    facts: JourneyFacts = field(default_factory=JourneyFacts)
    error: JourneyError | None = None
    # Called with each span a ``timed`` block closes or ``ended`` announces, complete with
    # its attributes (the live page streams steps as they finish). ``end`` alone does not
    # call it: a layer may end a span early and fill in its facts afterwards.
    listener: Callable[[Span[Any]], None] | None = field(default=None, repr=False, compare=False)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def span(
        self,
        name: str,
        step: str,
        actor: str,
        layer: str,
        facts: F,
        *,
        parent: Span[Any] | None = None,
        start_ns: int | None = None,
    ) -> Span[F]:
        """Open a span now (or at ``start_ns``) under ``parent`` or at the top level."""
        if not isinstance(facts, facts_class(name)):
            raise TypeError(f"span {name} takes {facts_class(name).__name__}, not "
                            f"{type(facts).__name__}")
        s = Span(
            name=name,
            step=step,
            actor=actor,
            layer=layer,
            start_ns=self.clock.now() if start_ns is None else start_ns,
            facts=facts,
            span_id=next(self._ids),
        )
        (parent.children if parent is not None else self.spans).append(s)
        return s

    def end(self, span: Span[F], end_ns: int | None = None) -> Span[F]:
        span.end_ns = self.clock.now() if end_ns is None else end_ns
        return span

    def ended(self, span: Span[Any]) -> None:
        """Tell the listener, if any, that ``span`` is complete; its failure is never ours."""
        if self.listener is not None:
            try:
                self.listener(span)
            except Exception as exc:  # a listener must not cost the journey
                self.listener = None
                self.note("warning", "journey", f"a live listener failed and was dropped: {exc}")

    @contextmanager
    def timed(
        self, name: str, step: str, actor: str, layer: str, facts: F, *,
        parent: Span[Any] | None = None,
    ) -> Iterator[Span[F]]:
        """A span that ends when the block ends; a JourneyError marks it failed and goes on up."""
        s = self.span(name, step, actor, layer, facts, parent=parent)
        try:
            yield s
        except JourneyError as err:
            if s.error is None:
                s.fail(err)
            raise
        except BaseException:
            s.facts.interrupted = True  # cancelled: the caller says why (close_open)
            raise
        finally:
            if s.end_ns is None:
                s.end_ns = self.clock.now()
            self.close_open(s)
            self.ended(s)

    def close_open(self, span: Span[Any], err: JourneyError | None = None) -> None:
        """End whatever under ``span`` is still open, within its parent's time.

        A span cut short (a cancelled view, a journey timeout) may leave children that never
        saw their end; they end when their parent did, so every child nests in its parent.
        """
        now = self.clock.now()
        for child in span.children:
            if child.end_ns is None:
                child.end_ns = min(now, span.end_ns) if span.end_ns is not None else now
                child.facts.interrupted = True
                if err is not None and child.error is None and not child.children:
                    child.fail(err)
            elif span.end_ns is not None and child.end_ns > span.end_ns:
                child.end_ns = span.end_ns
            self.close_open(child, err)

    def note(self, severity: str, step: str, message: str) -> None:
        self.findings.append(Finding(severity, step, message))

    def all_spans(self) -> Iterator[Span[Any]]:
        for s in self.spans:
            yield from s.walk()

    @property
    def exit_code(self) -> int:
        return 0 if self.error is None else self.error.exit_code

    def to_dict(self) -> dict[str, Any]:
        """The journey document (``contract.document``), with its analyses (``analysis``)
        derived from the rest by the pure functions of ``whathappens.analysis``."""
        from whathappens.analysis.document import analyze

        ends = [s.end_ns for s in self.all_spans() if s.end_ns is not None]
        doc: dict[str, Any] = {
            "schema": "https://whathappens.dev/schema/journey.schema.json",
            "schema_version": SCHEMA_VERSION,
            "url": self.url,
            "clock": {
                "name": CLOCK_NAME,
                "unit": "ms since t0",
                "t0_wall_ns": self.clock.wall_origin_ns,
                "t0_monotonic_ns": self.clock.origin_ns,
            },
            "total_ms": ms(max(ends, default=0)),
            "facts": to_json(self.facts),
            "spans": [s.to_dict() for s in self.spans],
            "findings": [f.to_dict() for f in self.findings],
            "error": None if self.error is None else self.error.to_dict(),
            "exit_code": self.exit_code,
        }
        doc["analysis"] = analyze(doc)
        return doc
