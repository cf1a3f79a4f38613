"""The long fuzzing run (issue 8, item 4): many generated hostile peers, one journey each.

    .venv/bin/python bench/fuzz/run.py --examples 100000 [--target http1|http2|dns|tls|url|all]
                                       [--out DIR] [--seed N] [--no-shrink]

The generators, servers and checks are the CI fuzz tests' own (tests/fuzz_strategies.py):
loopback servers send generated and mutated HTTP/1.1 responses, HTTP/2 frame sequences, DNS
answers and TLS records, and URLs are mutated from the WHATWG vectors; each input is one
in-process journey (``--max-time 2``) checked for: no traceback, no exit 10, no deadline miss
(wall within --max-time + 0.75 s), a failure that names its step, a report every renderer
accepts, and the journey's CPU under 1 s.

With ``--target all`` the examples are split across the targets (weights below), one target
after the other, in this one process. Hypothesis generates (random seed per round, or
``--seed``); a failure of a kind not met before is shrunk to a minimal input by Hypothesis and
saved (``DIR/failures/``: the case as Python, what the peer sent, the outcome, the traceback),
then the run goes on; later inputs failing the same way are counted, not shrunk again.

Printed at the end, and written to ``DIR/summary.json``: inputs tried per target, inputs per
second, failures (inputs, distinct kinds, which are already known to the tests), the worst
wall time and CPU per input, the outcome codes, and softer findings (bare library text in a
message, raw control characters in the plain terminal report, odd request lines).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

import hypothesis  # noqa: E402
from hypothesis import HealthCheck, Phase, Verbosity, given, settings  # noqa: E402

import fuzz_strategies as fz  # noqa: E402

WEIGHTS = {"http1": 0.25, "http2": 0.25, "tls": 0.15, "dns": 0.15, "url": 0.20}
ROUND = 5000          # examples per Hypothesis run; a failure ends a run early
PROGRESS_EVERY_S = 60


class FuzzFailure(AssertionError):
    sig = ""


_CLASSES: dict[str, type[FuzzFailure]] = {}


def failure_class(sig: str) -> type[FuzzFailure]:
    """One exception class per kind of failure, so that Hypothesis shrinks each on its own
    (it tells failures apart by exception type and place)."""
    if sig not in _CLASSES:
        name = "Fuzz_" + hashlib.sha1(sig.encode()).hexdigest()[:10]
        _CLASSES[sig] = type(name, (FuzzFailure,), {"sig": sig})
    return _CLASSES[sig]


@dataclass
class Failure:
    sig: str
    first_case: Any
    case: Any                 # the last one seen: after shrinking, the minimal one
    outcome: fz.Outcome
    repro: bytes
    inputs: int = 1
    shrunk: bool = False
    flaky: bool = False
    known: str | None = None


@dataclass
class Stats:
    target: str
    tried: int = 0
    seconds: float = 0.0
    exits: collections.Counter[int | None] = field(default_factory=collections.Counter)
    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    notes: collections.Counter[str] = field(default_factory=collections.Counter)
    note_texts: dict[str, collections.Counter[str]] = field(default_factory=dict)
    walls: list[float] = field(default_factory=list)
    worst_wall: tuple[float, str] = (0.0, "")
    worst_net_wall: tuple[float, str] = (0.0, "")   # less the time spent waiting for a CPU
    worst_cpu: tuple[float, str] = (0.0, "")
    failing_inputs: int = 0
    failures: dict[str, Failure] = field(default_factory=dict)
    harness_errors: int = 0

    def add(self, out: fz.Outcome) -> None:
        self.tried += 1
        self.exits[out.exit_code] += 1
        self.codes[out.code or "ok"] += 1
        self.walls.append(out.wall_s)
        what = f"{out.code or 'ok'} ({out.url[:60]!r})"
        if out.wall_s > self.worst_wall[0]:
            self.worst_wall = (out.wall_s, what)
        if out.wall_s - out.starved_s > self.worst_net_wall[0]:
            self.worst_net_wall = (out.wall_s - out.starved_s, what)
        if out.cpu_ms > self.worst_cpu[0]:
            self.worst_cpu = (out.cpu_ms, what)
        for note in out.notes:
            kind = note.split(":", 1)[0]
            self.notes[kind] += 1
            # distinct texts, numbers and quoted peer bytes folded, at most 40 per kind
            text = re.sub(r"'[^']*'|\d+", "_", note[len(kind) + 2:])[:240]
            texts = self.note_texts.setdefault(kind, collections.Counter())
            if text in texts or len(texts) < 40:
                texts[text] += 1
        if out.problems:
            self.failing_inputs += 1

    def summary(self) -> dict[str, Any]:
        walls = sorted(self.walls) or [0.0]
        return {
            "target": self.target,
            "inputs": self.tried,
            "seconds": round(self.seconds, 1),
            "inputs_per_second": round(self.tried / self.seconds, 1) if self.seconds else None,
            "failing_inputs": self.failing_inputs,
            "distinct_failures": len(self.failures),
            "failures": [{"signature": f.sig, "inputs": f.inputs, "shrunk": f.shrunk,
                          "flaky": f.flaky, "known": f.known,
                          "problems": f.outcome.problems} for f in self.failures.values()],
            "wall_s": {"p50": round(walls[len(walls) // 2], 3),
                       "p99": round(walls[int(len(walls) * 0.99)], 3),
                       "worst": round(self.worst_wall[0], 3), "worst_case": self.worst_wall[1],
                       "worst_less_cpu_wait": round(self.worst_net_wall[0], 3),
                       "worst_less_cpu_wait_case": self.worst_net_wall[1]},
            "cpu_ms": {"worst": self.worst_cpu[0], "worst_case": self.worst_cpu[1]},
            "exit_codes": {str(k): v for k, v in sorted(self.exits.items(), key=str)},
            "codes": dict(self.codes.most_common(25)),
            "notes": dict(self.notes),
            "note_texts": {k: dict(v.most_common()) for k, v in self.note_texts.items()},
            "harness_errors": self.harness_errors,
        }


def save_failure(out_dir: Path, target: fz.Target, f: Failure) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f.sig)[:80].strip("-")
    path = out_dir / "failures" / f"{slug}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = [
        f"signature: {f.sig}",
        f"inputs failing this way: {f.inputs}",
        f"shrunk by Hypothesis: {f.shrunk}"
        + (" (flaky: it did not fail again on replay)" if f.flaky else ""),
        f"known to the tests: {f.known or 'no'}",
        "",
        "minimal case (Python, for @example):",
        repr(f.case),
        "",
        "what the peer sent (Python bytes):",
        repr(f.repro),
        "",
        "outcome:",
        f.outcome.describe(),
    ]
    path.write_text("\n".join(text) + "\n", encoding="utf-8", errors="backslashreplace")
    path.with_suffix(".bin").write_bytes(f.repro)
    return path


def run_target(name: str, examples: int, out_dir: Path, *, seed: int | None,
               shrink: bool) -> Stats:
    target = fz.TARGETS[name]()
    strategy = target.strategy()
    stats = Stats(name)
    settled: set[str] = set()      # kinds already shrunk (or given up on): counted only
    t0 = time.monotonic()
    last_print = t0
    rounds = 0
    active: list[str] = []         # the kind being shrunk in this round
    try:
        while stats.tried < examples:
            active.clear()

            def body(case: Any) -> None:
                nonlocal last_print
                out = target.run(case)
                stats.add(out)
                now = time.monotonic()
                if now - last_print > PROGRESS_EVERY_S:
                    last_print = now
                    print(f"  {name}: {stats.tried:,} inputs, "
                          f"{stats.tried / (now - t0):.0f}/s, {stats.failing_inputs} failing, "
                          f"{len(stats.failures)} kinds", flush=True)
                sig = out.signature()
                if sig is None:
                    return
                f = stats.failures.get(sig)
                if f is None:
                    known = fz.known_failure(out)
                    f = stats.failures[sig] = Failure(sig, case, case, out, target.repro(case),
                                                      inputs=0,
                                                      known=known.name if known else None)
                    print(f"  {name}: new failure {sig}: {out.problems[0][:160]}", flush=True)
                f.inputs += 1
                if sig in settled or (active and active[0] != sig):
                    return
                active[:1] = [sig]
                f.case, f.outcome, f.repro = case, out, target.repro(case)
                raise failure_class(sig)(sig)

            run_settings = settings(
                max_examples=min(ROUND, examples - stats.tried), deadline=None, database=None,
                phases=[Phase.generate, Phase.shrink] if shrink else [Phase.generate],
                suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
                print_blob=False, verbosity=Verbosity.quiet)
            test = given(case=strategy)(body)
            test = run_settings(test)
            if seed is not None:
                test = hypothesis.seed(seed * 100_003 + rounds)(test)
            rounds += 1
            try:
                test()
            except FuzzFailure as exc:
                f = stats.failures[exc.sig]
                f.shrunk = shrink
                settled.add(exc.sig)
                print(f"  {name}: saved {save_failure(out_dir, target, f)}", flush=True)
            except hypothesis.errors.Flaky:
                # the failure did not reproduce on replay (timing): keep what was seen
                for sig in active:
                    f = stats.failures[sig]
                    f.flaky, f.shrunk = True, False
                    settled.add(sig)
                    print(f"  {name}: saved (flaky) {save_failure(out_dir, target, f)}",
                          flush=True)
    finally:
        stats.seconds = time.monotonic() - t0
        stats.harness_errors = len(target.harness_errors())
        for f in stats.failures.values():
            save_failure(out_dir, target, f)
        target.close()
    return stats


def table(all_stats: list[Stats]) -> str:
    head = (f"{'target':8} {'inputs':>8} {'s':>7} {'inputs/s':>9} {'failing':>8} {'kinds':>6} "
            f"{'wall p50':>9} {'wall p99':>9} {'worst wall':>11} {'worst cpu':>10}")
    lines = [head, "-" * len(head)]
    total_inputs = total_s = 0.0
    for s in all_stats:
        d = s.summary()
        total_inputs += s.tried
        total_s += s.seconds
        lines.append(f"{s.target:8} {s.tried:>8,} {s.seconds:>7.0f} {d['inputs_per_second']:>9} "
                     f"{s.failing_inputs:>8} {len(s.failures):>6} "
                     f"{d['wall_s']['p50']:>8.3f}s {d['wall_s']['p99']:>8.3f}s "
                     f"{s.worst_wall[0]:>10.3f}s {s.worst_cpu[0]:>8.0f}ms")
    rate = total_inputs / total_s if total_s else 0
    lines.append(f"{'all':8} {int(total_inputs):>8,} {total_s:>7.0f} {rate:>9.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=1000, help="inputs in total (default 1000)")
    p.add_argument("--target", choices=[*fz.TARGETS, "all"], default="all")
    p.add_argument("--out", type=Path, default=None,
                   help="where failures and summary.json go (default bench/fuzz/out/<time>)")
    p.add_argument("--seed", type=int, default=None, help="repeatable run")
    p.add_argument("--no-shrink", action="store_true", help="save failures as found")
    args = p.parse_args(argv)
    out_dir = args.out or ROOT / "bench" / "fuzz" / "out" / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.target == "all":
        plan = {t: max(1, round(args.examples * w)) for t, w in WEIGHTS.items()}
    else:
        plan = {args.target: args.examples}
    print(f"fuzzing {sum(plan.values()):,} inputs: {plan}; results in {out_dir}", flush=True)
    all_stats = []
    started = time.time()
    for name, n in plan.items():
        print(f"{name}: {n:,} inputs", flush=True)
        stats = run_target(name, n, out_dir, seed=args.seed, shrink=not args.no_shrink)
        all_stats.append(stats)
        print(table([stats]), flush=True)
        (out_dir / "summary.json").write_text(json.dumps({
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "argv": sys.argv[1:], "max_time_s": fz.MAX_TIME_S,
            "wall_margin_s": fz.WALL_MARGIN_S, "max_cpu_ms": fz.MAX_CPU_MS,
            "cpus": os.cpu_count(),
            "targets": [s.summary() for s in all_stats]}, indent=2, default=str))
    print("\n" + table(all_stats))
    failures = [f for s in all_stats for f in s.failures.values()]
    print(f"\n{sum(s.failing_inputs for s in all_stats)} failing inputs, "
          f"{len(failures)} distinct kinds")
    for f in failures:
        print(f"  {f.sig}  ({f.inputs} inputs{', known: ' + f.known if f.known else ''})")
        print(f"      {f.outcome.problems[0][:200]}")
    notes = collections.Counter[str]()
    for s in all_stats:
        notes.update(s.notes)
    if notes:
        print("softer findings (counted, not failed on): " +
              ", ".join(f"{k} {v}" for k, v in notes.most_common()))
    print(f"summary: {out_dir / 'summary.json'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
