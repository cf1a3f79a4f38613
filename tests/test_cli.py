"""The `whathappens` command as a user runs it: a real process, its exit code, what it prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from journey_helpers import demo_args, demo_url, schema_errors
from whathappens import __version__
from whathappens.demo.internet import DemoInternet
from whathappens.errors import EXIT_CODES, EXIT_USAGE
from whathappens.explain.texts import SPAN_TEXTS

TIMEOUT = 60


def whathappens(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "whathappens", *args], capture_output=True,
                          text=True, timeout=TIMEOUT, cwd=cwd, check=False,
                          env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8",
                               "PYTHONIOENCODING": "utf-8"})


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


def report(net: DemoInternet, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return whathappens(url, *demo_args(net), "--no-color", "--width", "100", *args)


def test_demo_command_json(tmp_path: Path) -> None:
    result = whathappens("demo", "--high-ports", "--no-delay", "--state", str(tmp_path / "demo"),
                         "--json", cwd=tmp_path)
    no_traceback(result)
    if result.returncode == 11 and "in use" in result.stderr.lower():
        pytest.skip("ports 10053/10443/10080 are held by another demo internet on this "
                    "machine, and `whathappens demo` has no free-port option")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert schema_errors(doc) == []
    assert doc["exit_code"] == 0
    assert doc["error"] is None
    assert doc["url"] == "https://www.example.com:10443/"
    summary = doc["facts"]["summary"]
    # The HTTPS record advertises h3: the demo goes as a browser would, QUIC raced and won.
    assert (summary["status"], summary["http_version"], summary["tls_version"]) == \
        (200, "HTTP/3", "TLSv1.3")
    [leg] = [s for s in doc["spans"] if s["name"] == "leg"]
    [quic] = [c for c in leg["children"] if c["name"] == "quic"]
    assert quic["attrs"]["race"] == "won"
    assert doc["facts"]["demo"]["delays_injected"] is False
    assert (tmp_path / "demo" / "ca.pem").exists()


# The default (the HTTPS record advertises h3: QUIC wins the race) and TCP + TLS.
STEPS = [((), ("URL", "DNS", "QUIC", "HTTP"), "HTTP/3"),
         (("--http3=off",), ("URL", "DNS", "TCP", "TLS", "HTTP"), "HTTP/2")]


@pytest.mark.parametrize(("args", "labels", "version"), STEPS)
def test_terminal_report(demo_internet: DemoInternet, args: tuple[str, ...],
                         labels: tuple[str, ...], version: str) -> None:
    net = demo_internet
    result = report(net, demo_url(net), *args)
    no_traceback(result)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "\x1b[" not in out  # --no-color
    lines = out.splitlines()
    for label in labels:
        assert any(line.startswith(f" {label} ") for line in lines), label
    assert max(len(line) for line in lines) <= 100
    assert f"200 · {version} · TLSv1.3" in out
    last = [line for line in lines if line.strip()][-1]
    assert last.startswith(f"200 · {version} · TLSv1.3 · ")
    assert last.rstrip().endswith("ms total")
    assert "a.root-servers.net" in out  # the walk's hops are shown


@pytest.mark.parametrize(("args", "steps"), [((), ("url", "dns", "quic", "http")),
                                             (("--http3=off",), ("url", "dns", "tcp", "tls",
                                                                 "http"))])
def test_explain_adds_the_beginner_paragraphs(demo_internet: DemoInternet,
                                              args: tuple[str, ...],
                                              steps: tuple[str, ...]) -> None:
    net = demo_internet
    plain = report(net, demo_url(net), *args)
    explained = report(net, demo_url(net), "--explain", *args)
    no_traceback(explained)
    assert explained.returncode == 0
    flat = " ".join(explained.stdout.split())
    for step in steps:
        title = SPAN_TEXTS[step].title    # then its texts, filled with this journey's values
        assert title in flat, step
        assert title not in " ".join(plain.stdout.split())
    assert "“GET / on www.example.com" in flat
    assert len(explained.stdout) > len(plain.stdout) + 1000


def test_json_output(demo_internet: DemoInternet) -> None:
    net = demo_internet
    result = whathappens(demo_url(net), *demo_args(net), "--json")
    no_traceback(result)
    assert result.returncode == 0
    doc = json.loads(result.stdout)
    assert schema_errors(doc) == []
    assert doc["facts"]["summary"]["status"] == 200


def test_failing_url_says_where_it_failed(demo_internet: DemoInternet) -> None:
    net = demo_internet
    result = report(net, demo_url(net, host="nx.example.com"))
    no_traceback(result)
    assert result.returncode == 4
    flat = " ".join(result.stdout.split())  # the report wraps long lines
    assert "failed at dns: nx.example.com does not exist" in flat
    assert "(exit 4)" in flat
    assert " DNS " in result.stdout   # the steps up to the failure are still shown
    assert " TCP " not in result.stdout


def test_failing_json_names_the_step_and_code(demo_internet: DemoInternet) -> None:
    net = demo_internet
    result = whathappens(demo_url(net, host="expired.example.com"), *demo_args(net), "--json")
    no_traceback(result)
    assert result.returncode == 6
    doc = json.loads(result.stdout)
    assert schema_errors(doc) == []
    assert doc["error"]["step"] == "tls"
    assert doc["error"]["code"] == "tls.cert_expired"
    assert doc["exit_code"] == 6


def test_unsupported_scheme_exit_code() -> None:
    result = whathappens("gopher://example.com/", "--no-color")
    no_traceback(result)
    assert result.returncode == 3
    assert "failed at url" in result.stdout


def test_usage_error_exit_code() -> None:
    result = whathappens("https://www.example.com/", "--resolve", "nonsense")
    no_traceback(result)
    assert result.returncode == 2
    assert "HOST:PORT:ADDRESS" in result.stderr


def test_help_lists_the_exit_codes() -> None:
    result = whathappens("--help")
    assert result.returncode == 0
    flat = " ".join(result.stdout.split())
    assert "exit codes:" in result.stdout
    for code, meaning in EXIT_CODES.items():
        assert f"{code} {' '.join(meaning.split())}" in flat, code
    assert "11 demo: the demo internet could not start" in flat
    demo_help = whathappens("demo", "--help")
    assert demo_help.returncode == 0
    assert "exit codes:" in demo_help.stdout


def test_cli_imports_only_the_command_that_runs() -> None:
    """A cold start pays for one command: cli.py dispatches lazily, and tracing a URL loads
    neither the page, nor the demo internet, nor the lab."""
    code = ("import sys, whathappens.cli\n"
            "print(sorted(m for m in sys.modules if m.startswith('whathappens.')))\n"
            "from whathappens.commands.trace import _parser\n"
            "_parser().parse_args(['https://example.com/'])\n"
            "print(sorted(m for m in sys.modules if m.startswith(('whathappens.', 'hypercorn'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=TIMEOUT, check=True)
    at_start, parsed = (json.loads(line.replace("'", '"')) for line in result.stdout.splitlines())
    assert not [m for m in at_start if m.startswith(("whathappens.commands", "whathappens.trace"))]
    assert "whathappens.commands.trace" in parsed
    assert not [m for m in parsed if m.startswith((
        "whathappens.web", "whathappens.demo", "whathappens.lab", "whathappens.commands.serve",
        "whathappens.commands.demo", "hypercorn"))], parsed


def test_every_subcommand_parses_its_own_arguments() -> None:
    """`python -m whathappens` (the console script's main) dispatches each subcommand to its
    own parser: its usage errors are its own, with exit 2."""
    result = whathappens("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"whathappens {__version__}")
    for command in ("serve", "demo", "lab"):
        result = whathappens(command, "--bogus")
        no_traceback(result)
        assert result.returncode == EXIT_USAGE
        assert f"whathappens {command}" in result.stderr  # that command's usage line
