"""The misbehaving-server corpus: run the real command against a bad peer, and measure it.

Every case of the corpus (tests/test_corpus_*.py) runs ``whathappens URL --json`` as a user
would, in a child process, against a small server on loopback that misbehaves in one way. It
then checks what the issue promises for every input, whatever the peer does:

* the step that failed and the exit code of its class (never 10, an internal error);
* a message in plain words that names what the peer did (the case's ``says`` patterns), and
  no bare library text (OpenSSL reason codes, ``_ssl.c``, ``[Errno 32]``, ``bytearray(``);
* the journey up to the failing step is still reported (its spans are in the JSON);
* wall time within ``--max-time`` plus a small margin, CPU time under a budget (the whole
  process, start-up included, from ``wait4``; and the journey's own, from its JSON), and the
  process's peak memory bounded.

    out = run_cli([url, "--max-time", "3"])
    check(out, step="http", exit_code=7, says=["closed the connection", "body"])
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Limits every case is held to unless it says otherwise.
MAX_JOURNEY_CPU_S = 1.0      # the journey's own CPU (facts.resources.cpu_ms)
MAX_PROCESS_CPU_S = 2.5      # the whole child: interpreter start-up and imports included
MAX_RSS_MIB = 250            # the child's peak resident memory
WALL_MARGIN_S = 1.5          # over --max-time: start-up, rendering, exit
OUTPUT_CAP = 8 * 1024 * 1024

# Text that comes from a library, not from us: never in a message shown to a user.
BARE_LIBRARY_TEXT = [
    re.compile(r"_ssl\.c"),
    re.compile(r"\[Errno \d+\]"),
    re.compile(r"\[SSL[:\]]"),
    re.compile(r"bytearray\("),
    re.compile(r"\bb'|\bb\""),
    re.compile(r"<[\w.]+ object at 0x"),
    re.compile(r"Traceback"),
    # OpenSSL's reason codes (EXCESSIVE_MESSAGE_SIZE, WRONG_VERSION_NUMBER…), but not the
    # names an RFC gives (RFC 9113 §7 error codes, §6.5.2 settings), which are the words a
    # reader looks up.
    re.compile(r"\b(?!(?:SETTINGS_\w+|FLOW_CONTROL_ERROR|FRAME_SIZE_ERROR|ENHANCE_YOUR_CALM"
               r"|HTTP_1_1_REQUIRED)\b)[A-Z][A-Z0-9]+(?:_[A-Z0-9]+){2,}\b"),
]


@dataclass
class Outcome:
    args: list[str]
    exit_code: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float               # user + system of the child process
    maxrss_mib: float          # wait4's: includes the parent's memory at fork (see below)
    killed: bool = False       # still running at the harness's own timeout
    journey: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def error(self) -> dict[str, Any]:
        return dict((self.journey or {}).get("error") or {})

    @property
    def message(self) -> str:
        return str(self.error.get("message", ""))

    @property
    def peak_rss_mib(self) -> float:
        """The child's own peak memory (VmHWM, reported by the journey). wait4's ru_maxrss
        also counts the test runner's memory at the fork that started the child."""
        res = ((self.journey or {}).get("facts") or {}).get("resources") or {}
        peak = res.get("peak_rss_kib")
        return self.maxrss_mib if peak is None else float(peak) / 1024

    @property
    def journey_cpu_s(self) -> float | None:
        res = ((self.journey or {}).get("facts") or {}).get("resources") or {}
        cpu = res.get("cpu_ms")
        return None if cpu is None else float(cpu) / 1000

    def spans(self) -> list[dict[str, Any]]:
        """Every span of the journey, depth first."""
        out: list[dict[str, Any]] = []

        def visit(span: dict[str, Any]) -> None:
            out.append(span)
            for child in span.get("children", []):
                visit(child)

        for span in (self.journey or {}).get("spans", []):
            visit(span)
        return out

    def failed_spans(self) -> list[dict[str, Any]]:
        return [s for s in self.spans() if s.get("error")]

    def describe(self) -> str:
        return (f"exit {self.exit_code}, wall {self.wall_s:.2f} s, cpu {self.cpu_s:.2f} s "
                f"(journey {self.journey_cpu_s}), peak rss {self.peak_rss_mib:.0f} MiB, "
                f"killed={self.killed}\nmessage: {self.message!r}\n"
                f"stderr: {self.stderr[-800:]!r}")


def command() -> list[str]:
    return [sys.executable, "-m", "whathappens"]


def run_cli(args: list[str], *, timeout: float = 40.0, json_output: bool = True,
            env: dict[str, str] | None = None) -> Outcome:
    """Run ``whathappens ARGS [--json]`` and measure it with wait4 (CPU, peak RSS)."""
    argv = [*command(), *args, *(["--json"] if json_output else [])]
    child_env = dict(os.environ, **(env or {}))
    child_env.setdefault("COLUMNS", "120")
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=child_env, start_new_session=True)
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}

    def drain(name: str, pipe: Any) -> None:
        size = 0
        while data := pipe.read1(65536):
            if size < OUTPUT_CAP:
                chunks[name].append(data)
                size += len(data)

    readers = [threading.Thread(target=drain, args=(n, p), daemon=True)
               for n, p in (("out", proc.stdout), ("err", proc.stderr))]
    for r in readers:
        r.start()
    killed = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - t0 > timeout:
            killed = True
            os.killpg(proc.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.005)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    for r in readers:
        r.join(5)
    stdout = b"".join(chunks["out"]).decode("utf-8", "replace")
    stderr = b"".join(chunks["err"]).decode("utf-8", "replace")
    journey = None
    if json_output:
        try:
            journey = json.loads(stdout)
        except ValueError:
            journey = None
    return Outcome(args=argv, exit_code=proc.returncode, stdout=stdout, stderr=stderr,
                   wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime,
                   maxrss_mib=usage.ru_maxrss / 1024, killed=killed, journey=journey)


def max_time_of(args: list[str]) -> float:
    if "--max-time" in args:
        return float(args[args.index("--max-time") + 1])
    return 60.0


def check(out: Outcome, *, step: str | None, exit_code: int, says: Sequence[str] = (),
          max_journey_cpu: float = MAX_JOURNEY_CPU_S,
          max_process_cpu: float = MAX_PROCESS_CPU_S, max_rss_mib: float = MAX_RSS_MIB,
          max_wall: float | None = None, steps_before: Sequence[str] = ()) -> None:
    """Everything a case must hold; ``says`` are regexes (case-insensitive) the message must
    match, ``steps_before`` spans that must be in the report (the journey up to the failure)."""
    why = out.describe()
    assert not out.killed, f"still running at the harness timeout: {why}"
    assert "Traceback" not in out.stderr, why
    assert out.exit_code != 10, f"internal error: {why}"
    assert out.journey is not None, f"no JSON journey on stdout: {why}"
    assert out.exit_code == exit_code, f"exit {out.exit_code}, wanted {exit_code}: {why}"
    assert out.journey.get("exit_code") == exit_code, why
    if exit_code == 0:
        assert not out.error, why
    else:
        assert out.error.get("step") == step, f"failed in {out.error.get('step')}: {why}"
        assert out.failed_spans(), f"no span carries the error: {why}"
        for pattern in says:
            assert re.search(pattern, out.message, re.IGNORECASE), (
                f"message does not say /{pattern}/: {why}")
        for bare in BARE_LIBRARY_TEXT:
            assert not bare.search(out.message), f"bare library text /{bare.pattern}/: {why}"
    names = {s.get("name") for s in out.spans()}
    for name in steps_before:
        assert name in names, f"span {name} missing from the report: {why}"
    limit = max_wall if max_wall is not None else max_time_of(out.args) + WALL_MARGIN_S
    assert out.wall_s <= limit, f"wall {out.wall_s:.2f} s over {limit:.2f} s: {why}"
    assert out.cpu_s <= max_process_cpu, f"process CPU over {max_process_cpu} s: {why}"
    jcpu = out.journey_cpu_s
    assert jcpu is not None, f"the journey did not report its resources: {why}"
    assert jcpu <= max_journey_cpu, f"journey CPU over {max_journey_cpu} s: {why}"
    assert out.peak_rss_mib <= max_rss_mib, f"peak memory over {max_rss_mib} MiB: {why}"
