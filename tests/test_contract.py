"""The journey's output contract: typed facts per span kind, and the schema made from them.

The checked-in schema is the generated one; a journey written by the code reads back into the
typed document the renderers use; a renamed field is caught both by mypy (in every reader
that names it) and here (the JSON a renamed dataclass writes no longer fits the schema, and
the checked-in schema no longer matches the generated one).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from whathappens.contract import facts as facts_mod
from whathappens.contract.codec import ContractError, from_json, schema_of, to_json
from whathappens.contract.document import JourneyDoc, read_journey
from whathappens.contract.facts import SPAN_FACTS, Facts, ServerFacts, TcpInfo, TlsFacts
from whathappens.contract.schema import journey_schema, render

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "src/whathappens/schema/journey.schema.json"
DEMO = ROOT / "tests/data/journey_demo.json"


def test_the_checked_in_schema_is_the_generated_one() -> None:
    assert SCHEMA.read_text() == render(), (
        "regenerate: .venv/bin/python -m whathappens.contract.schema > "
        "src/whathappens/schema/journey.schema.json")
    Draft202012Validator.check_schema(json.loads(SCHEMA.read_text()))


def test_a_recorded_journey_reads_back_and_writes_the_same_json() -> None:
    data = json.loads(DEMO.read_text())
    doc = read_journey(data)
    assert isinstance(doc, JourneyDoc)
    tls = next(s for s in doc.all_spans() if s.name == "tls")
    assert isinstance(tls.facts, TlsFacts)
    assert tls.facts.version
    assert tls.facts.messages
    assert tls.facts_as(TlsFacts) is tls.facts
    # Every span's facts, written again, are the attrs it was read from (nulls aside: a
    # field not established is written as null).
    for span, raw in zip(doc.all_spans(), _walk(data["spans"]), strict=True):
        again = to_json(span.facts)
        assert isinstance(again, dict)
        attrs = raw["attrs"]
        assert isinstance(attrs, dict)
        assert _no_nulls(attrs) == _no_nulls({k: v for k, v in again.items() if k in attrs})


def _no_nulls(value: object) -> object:
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_no_nulls(v) for v in value]
    return value


def _walk(spans: list[dict[str, object]]) -> list[dict[str, object]]:
    out = []
    for s in spans:
        out.append(s)
        children = s["children"]
        assert isinstance(children, list)
        out.extend(_walk(children))
    return out


def test_every_span_name_has_closed_facts_except_the_lab_tiers() -> None:
    schema = journey_schema()
    defs = schema["$defs"]
    assert isinstance(defs, dict)
    for name, cls in SPAN_FACTS.items():
        assert issubclass(cls, Facts), name
        assert defs[cls.__name__]["additionalProperties"] is False, name
    assert defs[ServerFacts.__name__]["additionalProperties"] is True


def test_an_unknown_or_mistyped_field_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match="unknown field"):
        from_json(TlsFacts, {"versoin": "TLSv1.3"})
    with pytest.raises(ContractError, match="expected an integer"):
        from_json(TlsFacts, {"cipher_bits": "256"})
    with pytest.raises(ContractError, match="missing"):
        from_json(TcpInfo, {"state": "ESTABLISHED"})


def test_a_lab_tier_keeps_the_fields_of_its_log() -> None:
    raw = {"tier": "lb", "clock": "c", "raw_start_ms": 1.0, "raw_end_ms": 2.0, "Tw": 0,
           "server": "app-1"}
    f = from_json(ServerFacts, raw)
    assert f.extra == {"Tw": 0, "server": "app-1"}
    assert to_json(f) == raw


def test_renaming_a_facts_field_is_caught_by_the_schema_and_by_mypy(tmp_path: Path) -> None:
    # The schema: the JSON a renamed field writes is not what the checked-in schema allows.
    renamed = dataclasses.make_dataclass(
        "TlsFacts", [("tls_version", str | None, dataclasses.field(default=None))],
        bases=(Facts,), kw_only=True)
    defs: dict[str, object] = {}
    assert schema_of(renamed, defs) == {"$ref": "#/$defs/TlsFacts"}
    checked_in = json.loads(SCHEMA.read_text())["$defs"]["TlsFacts"]
    assert defs["TlsFacts"] != checked_in
    validator = Draft202012Validator(checked_in)
    assert not validator.is_valid(to_json(renamed(tls_version="TLSv1.3")))
    # mypy: a reader that names the old field fails to type-check against the new class.
    copy = tmp_path / "whathappens_contract_copy"
    copy.mkdir()
    source = Path(facts_mod.__file__).read_text()
    assert "    version: str | None = None\n" in source
    (copy / "facts.py").write_text(
        source.replace("    version: str | None = None\n", "    tls_version: str | None = None\n"))
    (copy / "reader.py").write_text(textwrap.dedent("""
        from facts import TlsFacts

        def shown(f: TlsFacts) -> str:
            return f.version or "?"
    """))
    run = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                          "reader.py"], cwd=copy, capture_output=True, text=True, check=False)
    assert run.returncode == 1, run.stdout
    assert '"TlsFacts" has no attribute "version"' in run.stdout
