"""The fidelity benchmark still runs: a short real run of bench/fidelity.py (figures unjudged).

It starts its own HTTPS server on 127.0.0.1 (nginx when installed, else the demo web server)
and takes ~15 s here with three runs per tool.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "fidelity.py"


@pytest.mark.skipif(shutil.which("curl") is None, reason="the benchmark compares with curl")
def test_fidelity_quick_run_prints_the_tables() -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--runs", "3"],
                          capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert re.search(r"^\s+phase\s+curl\s+wh\s+diff\s+ratio\s+aim ±\s+meets", out, re.M), out
    for title in ("Phase fidelity · HTTP/1.1", "Phase fidelity · HTTP/2", "Cold start",
                  "Import costs"):
        assert title in out, out
    for phase in ("DNS", "TCP", "TLS", "TTFB", "download", "total"):
        assert re.search(rf"^\s+{re.escape(phase)}\s+\d+\.\d{{3}}\s", out, re.M), phase


def test_quic_bench_quick_run_prints_its_tables() -> None:
    """bench/quic.py starts the demo internet, makes one journey of each kind and aioquic's
    own client's request, and prints the medians (figures unjudged)."""
    done = subprocess.run([sys.executable, str(BENCH.parent / "quic.py"), "--runs", "1"],
                          capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    for title in ("whathappens --http3", "whathappens --http2",
                  "aioquic's own client (reference)", "Cold start"):
        assert title in done.stdout, done.stdout
    assert re.search(r"^\s+setup\s+\d+\.\d\d\s", done.stdout, re.M), done.stdout
