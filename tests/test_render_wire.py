"""The wire, the timing guide and every header in the reports (issue 11): rendered from the
recorded demo journey with facts added where a test needs them."""

from __future__ import annotations

from typing import Any

from test_render_terminal import journey, render


def http_span(j: dict[str, Any], leg: int = 0) -> dict[str, Any]:
    legs = [s for s in j["spans"] if s["name"] == "leg"]
    span: dict[str, Any] = next(c for c in legs[leg]["children"] if c["name"] == "http")
    return span


# --- report error 8: every response header, or say how many are hidden ----------------
LAB_LIKE = [("server", "nginx"), ("date", "Mon, 07 Dec 2026 16:00:00 GMT"),
            ("content-type", "text/html; charset=utf-8"), ("content-length", "4123"),
            ("vary", "Accept-Encoding"), ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"), ("referrer-policy", "same-origin"),
            ("cross-origin-opener-policy", "same-origin"), ("server-timing", "app;dur=3.1"),
            ("cache-control", "public, max-age=60"), ("etag", '"abc"'), ("age", "3"),
            ("via", "1.1 edge"), ("strict-transport-security", "max-age=31536000"),
            ("x-cache", "HIT"), ("content-encoding", "br"), ("x-request-id", "r-42")]


def test_every_response_header_is_shown_the_late_ones_too() -> None:
    j = journey()
    http_span(j)["attrs"]["response_headers"] = [list(h) for h in LAB_LIKE]
    text = render(j)
    for name, value in LAB_LIKE:
        assert f"< {name}: {value}" in text
    assert "not shown" not in text


def test_a_very_long_list_says_how_many_are_hidden_and_where_to_see_them() -> None:
    j = journey()
    many = [[f"x-h{i}", str(i)] for i in range(65)]
    http_span(j)["attrs"]["response_headers"] = many
    text = render(j)
    assert "< x-h39: 39" in text
    assert "< x-h40: 40" not in text
    assert "… 25 more response headers of 65 not shown: --explain lists every one" in text
    explained = render(j, explain=True)
    assert "< x-h64: 64" in explained
    assert "not shown" not in explained
