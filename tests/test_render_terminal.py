"""The terminal report, rendered from a recorded journey at a fixed width (golden file).

Regenerate the golden file after an intended change with ``UPDATE_GOLDEN=1 pytest``, and read
the diff: it is what a user will see.
"""

from __future__ import annotations

import copy
import io
import json
import os
from pathlib import Path
from typing import Any

import jsonschema

from whathappens.render.terminal import render_terminal

DATA = Path(__file__).parent / "data"
SCHEMA = Path(__file__).parent.parent / "src/whathappens/schema/journey.schema.json"


def journey() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "journey_demo.json").read_text())
    return data


def render(j: dict[str, Any], **kw: Any) -> str:
    out = io.StringIO()
    render_terminal(j, out, color=False, width=100, **kw)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"


def test_report_matches_golden_file() -> None:
    text = render(journey())
    golden = DATA / "journey_demo.golden.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_report_reads_top_to_bottom_with_every_step() -> None:
    text = render(journey())
    steps = text.split("\nFindings")[0]  # the timing guide after it names steps too
    labels = [line.split()[0] for line in steps.splitlines()
              if line.startswith(" ") and line.split() and line.split()[0] in
              ("URL", "DNS", "TCP", "TLS", "HTTP")]
    assert labels == ["URL", "DNS", "TCP", "TLS", "HTTP"]
    last = text.strip().splitlines()[-1]
    assert last.startswith("200 · HTTP/2 · TLSv1.3 · ")
    assert last.endswith("ms total")
    assert "referral to com." in text
    assert "→ client_hello" in text


def test_explain_adds_the_beginner_and_advanced_text() -> None:
    plain, explained = render(journey()), render(journey(), explain=True)
    for words in ("Reading the address", "Finding the server's address (DNS)",
                  "Opening a connection (TCP)", "Making the connection private (TLS)",
                  "Asking for the page (HTTP)", "What the number includes"):
        assert words not in plain
        assert words in explained


def test_a_failed_journey_says_where_and_why() -> None:
    j = copy.deepcopy(journey())
    leg = next(s for s in j["spans"] if s["name"] == "leg")
    leg["children"] = [c for c in leg["children"] if c["name"] in ("dns", "tcp")]
    err = {"step": "tcp", "code": "tcp.refused", "exit_code": 5,
           "message": "127.0.80.1:443 refused the connection"}
    leg["children"][-1]["error"] = err
    j["error"], j["exit_code"] = err, 5
    j["facts"]["summary"] = {"legs": 1, "failed_step": "tcp"}
    text = render(j)
    assert "✗ 127.0.80.1:443 refused the connection  [tcp.refused]" in text
    assert text.strip().splitlines()[-1].startswith(
        "failed at tcp: 127.0.80.1:443 refused the connection  (exit 5)")
    assert "TLS" not in [line.split()[0] for line in text.splitlines() if line.split()]


def test_recorded_journey_validates_against_the_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator(schema).validate(journey())


def test_renderer_escapes_nothing_and_survives_hostile_text() -> None:
    """Server-controlled strings are printed as text, never interpreted as rich markup."""
    j = copy.deepcopy(journey())
    leg = next(s for s in j["spans"] if s["name"] == "leg")
    http = next(c for c in leg["children"] if c["name"] == "http")
    http["attrs"]["response_headers"].append(["x-evil", "[bold red]boom[/] \x1b[31m"])
    text = render(j)
    assert "< x-evil: [bold red]boom[/]" in text
