"""bench/browser_fidelity.py without Lighthouse or Chromium: its command line, and its two
readers (Lighthouse's JSON report, our --json through the contract) on small documents.

The benchmark itself (Lighthouse and whathappens --browser, 10+ runs) is run by hand:
``./dev bench-browser``; bench/README.md says how to read it.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
JOURNEY = ROOT / "tests" / "data" / "journey_demo.json"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("browser_fidelity",
                                                  ROOT / "bench" / "browser_fidelity.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _span(id_: int, name: str, start: float, end: float, attrs: dict[str, Any],
          children: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"id": id_, "name": name, "step": "browser", "actor": "browser",
            "layer": "application", "start_ms": start, "end_ms": end,
            "duration_ms": round(end - start, 3), "attrs": attrs, "error": None,
            "children": children or []}


def journey_with_browser(**facts: Any) -> dict[str, Any]:
    """The demo journey of tests/data with a browser phase appended, on its clock: the
    phase from 100 ms, the document requested at 400 ms, FCP 520, LCP 610, load 600."""
    journey: dict[str, Any] = json.loads(JOURNEY.read_text())
    nav = _span(901, "browser.resource", 400.0, 420.0,
                {"url": "https://www.example.com/", "navigation": True,
                 "resource_type": "Document", "status": 200})
    css = _span(902, "browser.resource", 430.0, 500.0,
                {"url": "https://www.example.com/static/style.css", "navigation": False,
                 "resource_type": "Stylesheet"})
    attrs = {"url": "https://www.example.com/", "outcome": "loaded", "launch_ms": 250.0,
             "status": 200, "load_ms": 600.0, "fcp_ms": 520.0, "lcp_ms": 610.0,
             "lcp_element": "img#hero", "cls": 0.042, "requests": 6, "warm": False,
             "browser": "Chromium 156.0.8078.129"}
    attrs.update(facts)
    journey["spans"].append(_span(900, "browser", 100.0, 900.0, attrs, [nav, css]))
    return journey


def test_arguments(bench: ModuleType) -> None:
    args = bench.parse_args(["--runs", "12", "--ours", "demo", "--viewport", "1024x768"])
    assert (args.runs, args.ours, args.viewport) == (12, "demo", (1024, 768))
    defaults = bench.parse_args([])
    assert (defaults.ours, defaults.viewport, defaults.keep) == ("url", (1280, 900), False)
    with pytest.raises(SystemExit):
        bench.parse_args(["--viewport", "wide"])


def test_lighthouse_command_uses_the_same_chromium_without_ignoring_certificates(
        bench: ModuleType, tmp_path: Path) -> None:
    argv = bench.lighthouse_argv(Path("lighthouse"), "https://www.example.com:10443/",
                                 "127.0.80.1", (1280, 900), tmp_path / "lh.json")
    flags = next(a for a in argv if a.startswith("--chrome-flags="))
    assert "--host-resolver-rules='MAP www.example.com 127.0.80.1'" in flags
    assert "ignore-certificate-errors" not in " ".join(argv)
    for option in ("--throttling-method=provided", "--only-categories=performance",
                   "--output=json", "--screenEmulation.width=1280"):
        assert option in argv


def test_our_figures_are_read_relative_to_the_documents_request(bench: ModuleType) -> None:
    sample = bench.our_sample(journey_with_browser(), wall_ms=1500.0)
    assert (sample.fcp, sample.lcp, sample.cls) == (120.0, 210.0, 0.042)
    assert sample.lcp_element == "img#hero"
    assert sample.phase_ms == 800.0
    assert sample.launch_ms == 250.0
    assert sample.before_nav_ms == 300.0  # span start 100 → document requested at 400
    assert sample.nav_to_load_ms == 200.0
    assert sample.after_load_ms == 300.0  # load 600 → span end 900
    assert sample.requests == 6
    # style.css requested at 430, done at 500: 30 and 100 ms after the document's request
    assert (sample.first_subresource, sample.css_done, sample.css_to_fcp) == (30.0, 100.0, 20.0)


def test_figures_counted_from_navigation_start_are_taken_as_they_are(
        bench: ModuleType) -> None:
    from whathappens.contract.facts import BrowserFacts

    if "navigation_start_ms" not in BrowserFacts.__dataclass_fields__:
        pytest.skip("this contract's fcp_ms/lcp_ms are on the journey's clock")
    journey = journey_with_browser(navigation_start_ms=395.0, fcp_ms=125.0, lcp_ms=215.0,
                                   load_ms=205.0)
    sample = bench.our_sample(journey, wall_ms=1.0)
    assert (sample.fcp, sample.lcp) == (125.0, 215.0)
    assert sample.reference.startswith("navigationStart")
    assert sample.doc_request == 5.0  # requested at 400, 5 ms after navigationStart
    assert sample.before_nav_ms == 295.0
    assert sample.after_load_ms == 300.0  # load at 395 + 205 = 600 → span end 900


def test_a_skipped_browser_phase_is_an_error_not_a_sample(bench: ModuleType) -> None:
    journey = journey_with_browser(outcome="skipped", why="Chromium is not installed")
    with pytest.raises(bench.BenchError, match="skipped: Chromium is not installed"):
        bench.our_sample(journey, wall_ms=1.0)
    with pytest.raises(bench.BenchError, match="no browser span"):
        bench.our_sample(json.loads(JOURNEY.read_text()), wall_ms=1.0)


def lighthouse_report() -> dict[str, Any]:
    url = "https://www.example.com:10443/"
    return {
        "lighthouseVersion": "12.2.3", "finalDisplayedUrl": url, "runWarnings": [],
        "audits": {
            "first-contentful-paint": {"numericValue": 162.5},
            "largest-contentful-paint": {"numericValue": 240.25},
            "cumulative-layout-shift": {"numericValue": 0.05},
            "largest-contentful-paint-element": {"details": {"items": [
                {"items": [{"node": {"selector": "main > img.hero"}}]}]}},
            "network-requests": {"details": {"items": [
                {"url": url, "resourceType": "Document", "rendererStartTime": 0,
                 "networkRequestTime": 1.9, "statusCode": 200},
                {"url": url + "static/style.css", "resourceType": "Stylesheet",
                 "rendererStartTime": 79.5, "networkEndTime": 120.0}]}},
        },
    }


def test_lighthouse_report_reader(bench: ModuleType) -> None:
    sample = bench.lighthouse_sample(lighthouse_report(), wall_ms=20000.0)
    assert (sample.fcp, sample.lcp, sample.cls) == (162.5, 240.25, 0.05)
    assert (sample.doc_request, sample.doc_network) == (0.0, 1.9)
    assert sample.lcp_element == "main > img.hero"
    assert (sample.first_subresource, sample.css_done, sample.css_to_fcp) == (79.5, 120.0, 42.5)
    assert sample.warnings == []
    failed = {"runtimeError": {"code": "CHROME_INTERSTITIAL_ERROR", "message": "interstitial"}}
    with pytest.raises(bench.BenchError, match="CHROME_INTERSTITIAL_ERROR"):
        bench.lighthouse_sample(failed, wall_ms=1.0)


def test_the_table_judges_by_ten_percent_or_fifty_ms(bench: ModuleType,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.aim("fcp", 200.0) == 50.0
    assert bench.aim("lcp", 2000.0) == 200.0
    assert bench.aim("cls", 0.05) == 0.01
    lh = [bench.lighthouse_sample(lighthouse_report(), wall_ms=1.0) for _ in range(3)]
    ours = [bench.our_sample(journey_with_browser(), wall_ms=1.0) for _ in range(3)]
    bench.print_fidelity(lh, ours, ["LH first", "wh first", "LH first"])
    out = capsys.readouterr().out
    # FCP 120 vs 162.5: −42.5 ms is within 50 ms; LCP 210 vs 240.25 within 50 ms too;
    # CLS 0.042 vs 0.05 within 0.01.
    assert "misses the aim: none" in out
    fcp = next(line for line in out.splitlines() if line.strip().startswith("FCP"))
    assert fcp.split()[1:5] == ["162.5", "120.0", "-42.5", "0.74"]
