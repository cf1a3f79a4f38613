"""Browser fidelity benchmark: whathappens' FCP/LCP/CLS next to Lighthouse's, and what the
browser phase costs.

    .venv/bin/python bench/browser_fidelity.py [--runs 10] [--quick] [--ours url|demo|none]
                                               [--warm-runs N] [--viewport 1280x900] [--keep]
    ./dev bench-browser [ARGS]               (the same, through the project's entry point)

This is a benchmark, not a test: it prints figures, and judges nothing but the aims below.
Everything is local: the demo internet (``whathappens.demo.internet``, on free high ports,
its delays injected as in ``whathappens demo``), started by this script and always stopped
(also on Ctrl-C or SIGTERM). Both tools load the demo's https://www.example.com:PORT/ page in
the same Debian Chromium (``/usr/bin/chromium``, or ``$CHROME_PATH``).

Lighthouse
    12.2.3, pinned in ``bench/node/package.json`` and its lock file; ``node_modules`` is
    git-ignored. On first use this script runs ``npm ci --prefix bench/node`` (the npm
    registry must be reachable); without npm it says how to install it. Each run::

        lighthouse URL --throttling-method=provided --only-categories=performance
            --output=json --preset=desktop --screenEmulation.width=W …height=H
            --screenEmulation.deviceScaleFactor=1 --disable-full-page-screenshot
            --chrome-flags="--headless=new --no-sandbox --disable-gpu
                            --host-resolver-rules='MAP www.example.com <the web server>'"

    with CHROME_PATH set to the same Chromium and HOME set to a throwaway directory whose
    NSS database (``certutil -d sql:$HOME/.pki/nssdb``, libnss3-tools) trusts the demo's CA
    and nothing else of ours: certificate errors are never ignored. ``provided`` means no
    simulated throttling: Lighthouse reports what it observed, as we do. The desktop preset
    and the viewport (``--viewport``, default 1280x900, the project's browser tests' size)
    keep Lighthouse from emulating a phone, whose narrow screen would pick another LCP
    element and other layout shifts.

whathappens (``--ours``)
    url   (default) ``whathappens URL --browser --json --cacert CA --root-hints … --resolver
          …``, pointed at the demo's DNS as ``whathappens demo`` does: the same demo
          internet, the same server process as Lighthouse's runs, so both tools meet the
          same server state.
    demo  ``whathappens demo --browser --json --high-ports --state DIR``: the demo command
          as a user runs it; it starts a demo internet of its own per run (ports 10053/10443:
          fails when another demo holds them).
    none  Lighthouse alone (also what happens when ``--browser`` is not in this checkout).

1. Fidelity (N runs of each tool, alternating: Lighthouse first on even runs, whathappens
   first on odd ones; one warm-up run each is not counted)

    metric   Lighthouse (--output=json)                whathappens (--json, read with
                                                       whathappens.contract.document)
    FCP      audits.first-contentful-paint.numericValue  BrowserFacts.fcp_ms (see below)
    LCP      audits.largest-contentful-paint.numericValue BrowserFacts.lcp_ms (see below)
    CLS      audits.cumulative-layout-shift.numericValue  BrowserFacts.cls

   Like with like: Lighthouse's times count from the navigation's start (the trace's
   navigationStart, its "time origin"), and so do ours when the journey says where that is
   (``BrowserFacts.navigation_start_ms``, on the journey's clock, with fcp_ms/lcp_ms counted
   from it: the core's contract). A journey of contract 1.5, whose fcp_ms/lcp_ms are on the
   journey's clock (t0 = before DNS, the whole network journey before the browser), is read
   relative to the navigation's own request instead: the "browser.resource" span with
   ``navigation`` true. The table says which was used. Where the document's request sits on
   each scale is printed too (Lighthouse: the network-requests audit's ``rendererStartTime``
   and ``networkRequestTime``; ours: the navigation's browser.resource span), so a constant
   offset between the references can be told apart from a difference in what was measured.
   CLS is a score, not a time, and is compared as is.

   How to read the table: "LH" and "wh" are medians over the runs; "diff" is wh − LH
   (positive: we report later paints / more shift than Lighthouse), "ratio" is wh / LH; "aim
   ±" is the tolerance, max(10 % of Lighthouse's median, 50 ms) for times and max(10 %, 0.01)
   for CLS (a tenth of its "good" threshold, 0.1), and "meets" says whether |diff| is within
   it. The p90 columns show the spread. Every sample is printed below the table, in the order
   the runs were made.

2. The browser phase's cost
   cold: the whathappens runs of part 1 (``whathappens URL --browser``: a launch per
   journey). warm: ``--warm-runs`` journeys (default: as many as ``--runs``) in one child
   process (this script's internal ``--warm-series`` mode) that keeps one Chromium for all
   of them, each journey a fresh context: ``whathappens.browser``'s ``WarmBrowser``, what
   ``serve`` uses; its first journey launches the browser and is not counted. From each
   journey's "browser" span: the whole phase (the span's duration), Chromium's launch
   (``launch_ms``: the throwaway profile and its NSS database, Playwright, Chromium; none
   when warm), the span's start → navigationStart (launch, context, page, CDP session, trace
   start), navigationStart → the load event (``load_ms``), and load → the span's end (the
   settle — until the page is quiet, ``settle_ms``, its own row — for late LCP candidates
   and layout shifts, ``Tracing.end`` and reading the trace back, describing the LCP
   element, closing the context).

   Peak memory: a thread sums, over the descendants of the process it watches that are
   Chromium (comm ``chrom…``), the resident set (RSS from statm, every 50 ms; shared pages
   counted once per process, as adding up ``ps`` would) and the proportional set (PSS from
   smaps_rollup, every 500 ms: it is ~6 ms per process to read under gVisor; shared pages
   divided among their sharers, the truer total). The rest of the tree (Playwright's node
   driver) is a line of its own. Cold: the peak of each run; warm: the peak over the whole
   series. Lighthouse's runs are sampled the same way, shown for reference only (its
   Chromium also runs Lighthouse's gatherers).

   Aim: the whole browser phase of the demo page under 2 s on 2 cores with a warm browser.
   The cold series is judged against the same figure, for scale.

Nothing is written into the repository at run time except, with ``--keep``, the raw JSON of
every run under ``bench/out/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from whathappens.demo.internet import DemoInternet

PYTHON = sys.executable
BENCH = Path(__file__).resolve().parent
NODE_DIR = BENCH / "node"
LIGHTHOUSE = NODE_DIR / "node_modules" / ".bin" / "lighthouse"
OUT_DIR = BENCH / "out"
CHROMIUM = "/usr/bin/chromium"
HOST = "www.example.com"
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu")
AIM_FRACTION = 0.10
AIM_FLOOR_MS = 50.0
AIM_FLOOR_CLS = 0.01
PHASE_AIM_MS = 2000.0
RUN_TIMEOUT = 120.0
SAMPLE_INTERVAL = 0.05
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
              "ALL_PROXY", "no_proxy", "NO_PROXY")


class BenchError(Exception):
    """A run that cannot be measured (a tool failed, a server did not start)."""


# --------------------------------------------------------------------------- command line


@dataclass(frozen=True)
class Config:
    runs: int
    warmup: int
    ours: str
    viewport: tuple[int, int]
    keep: bool
    warm_runs: int = 0


def _viewport(text: str) -> tuple[int, int]:
    try:
        width, height = (int(n) for n in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT") from None
    if not (100 <= width <= 4000 and 100 <= height <= 4000):
        raise argparse.ArgumentTypeError(f"{text!r}: each side between 100 and 4000")
    return width, height


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="whathappens --browser vs Lighthouse: FCP, LCP "
                                "and CLS of the demo page in the same Chromium, and the "
                                "browser phase's cost.")
    p.add_argument("--runs", type=int, help="counted runs of each tool (default 10; 3 with "
                   "--quick)")
    p.add_argument("--quick", action="store_true", help="3 runs, no warm-up: a smoke run")
    p.add_argument("--ours", choices=("url", "demo", "none"), default="url",
                   help="how whathappens loads the page (see the module docstring); none: "
                        "Lighthouse only")
    p.add_argument("--viewport", type=_viewport, default=(1280, 900), metavar="WxH",
                   help="Lighthouse's screen (default 1280x900; match whathappens')")
    p.add_argument("--warm-runs", type=int, help="journeys of the warm series, one browser "
                   "for all (default: --runs; 0 skips it)")
    p.add_argument("--keep", action="store_true",
                   help="keep every run's raw JSON under bench/out/ (git-ignored)")
    # Internal: this script started as the warm series' driver (see warm_series_main).
    p.add_argument("--warm-series", type=int, metavar="N", help=argparse.SUPPRESS)
    p.add_argument("trace_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.warm_series is not None:
        return warm_series_main(args.warm_series, args.trace_args)
    runs = args.runs if args.runs is not None else (3 if args.quick else 10)
    if runs < 1:
        print("--runs must be at least 1", file=sys.stderr)
        return 2
    warm_runs = runs if args.warm_runs is None else args.warm_runs
    cfg = Config(runs=runs, warmup=0 if args.quick else 1, ours=args.ours,
                 viewport=args.viewport, keep=args.keep, warm_runs=warm_runs)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return run(cfg)
    except KeyboardInterrupt:
        print("\ninterrupted: servers and browsers stopped", file=sys.stderr)
        return 130
    except BenchError as e:
        print(f"bench/browser_fidelity: {e}", file=sys.stderr)
        return 1


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(cfg: Config) -> int:
    chromium = find_chromium()
    certutil = shutil.which("certutil")
    if certutil is None:
        raise BenchError("certutil is missing (apt-get install libnss3-tools): Lighthouse's "
                         "Chromium must trust the demo's CA through an NSS database")
    lighthouse = ensure_lighthouse()
    whathappens = _whathappens_command()
    ours = cfg.ours
    if ours != "none" and not has_browser_flag(whathappens):
        print("note: this checkout's whathappens has no --browser yet (issue 10's browser "
              "capture is not merged): measuring Lighthouse only", file=sys.stderr)
        ours = "none"
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="whathappens-browser-bench-")))
        keep_dir = _keep_dir() if cfg.keep else None
        net = stack.enter_context(start_demo_internet(work / "demo"))
        url = f"https://{HOST}:{net.https_port}/"
        home = make_nss_home(work / "home", net.ca, certutil)
        tools = Tools(lighthouse=lighthouse, chromium=chromium, home=home, whathappens=whathappens,
                      net=net, url=url, viewport=cfg.viewport, work=work, keep=keep_dir)
        print(f"whathappens browser fidelity benchmark · {url} on the demo internet "
              f"({HOST} → {net.web}) · {_chromium_version(chromium)}")
        print(f"Lighthouse {lighthouse_version(lighthouse)} (--throttling-method=provided, "
              f"desktop, {cfg.viewport[0]}x{cfg.viewport[1]}) vs "
              f"{_ours_words(ours)} · {cfg.runs} runs each, {cfg.warmup} warm-up · "
              f"{os.cpu_count()} CPUs, load average {_load()}")
        print()
        lh_runs, our_runs, order = fidelity_series(tools, ours, cfg)
        print_fidelity(lh_runs, our_runs, order)
        warm: WarmSeries | None = None
        if ours != "none" and cfg.warm_runs > 0:
            warm = warm_series(tools, cfg.warm_runs)
            if warm.runs:
                print_fidelity(lh_runs, warm.runs, None,
                               ours="whathappens with a warm browser (run after them)")
        print_cost(our_runs, warm, lh_runs, _ours_words(ours))
        print(f"load average at the end: {_load()} (other work on the machine shows up as "
              "spread: compare the p90 columns)")
        if keep_dir is not None:
            print(f"raw JSON of every run: {keep_dir}")
    return 0


def _load() -> str:
    with contextlib.suppress(OSError):
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    return "?"


def _ours_words(ours: str) -> str:
    return {"url": "whathappens URL --browser --json",
            "demo": "whathappens demo --browser --json",
            "none": "nothing (Lighthouse only)"}[ours]


def _keep_dir() -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = OUT_DIR / f"browser-fidelity-{stamp}"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- prerequisites


def find_chromium() -> str:
    path = os.environ.get("CHROME_PATH") or shutil.which("chromium") or CHROMIUM
    if not os.access(path, os.X_OK):
        raise BenchError(f"no Chromium at {path} (apt-get install chromium, or set "
                         "CHROME_PATH)")
    return path


def ensure_lighthouse(node_dir: Path = NODE_DIR) -> Path:
    """bench/node's Lighthouse, installed from its lock file on first use."""
    binary = node_dir / "node_modules" / ".bin" / "lighthouse"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise BenchError("Lighthouse is not installed and npm is missing: install Node.js 20 "
                         "and npm (apt-get install nodejs npm), then run "
                         f"'npm ci --prefix {node_dir}' (Lighthouse 12.2.3, from the lock "
                         "file), or let this script do it")
    print(f"installing Lighthouse into {node_dir}/node_modules (npm ci, once) …",
          file=sys.stderr)
    done = subprocess.run([npm, "ci", "--prefix", str(node_dir), "--no-audit", "--no-fund",
                           "--loglevel=error"], capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not binary.exists():
        raise BenchError(f"npm ci --prefix {node_dir} failed ({done.returncode}): "
                         f"{(done.stderr or done.stdout).strip()[-1500:]}")
    return binary


def lighthouse_version(lighthouse: Path) -> str:
    done = subprocess.run([str(lighthouse), "--version"], capture_output=True, text=True,
                          timeout=60)
    return done.stdout.strip() or "?"


def _chromium_version(chromium: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([chromium, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
        return " ".join(out.split()[:2])
    return "Chromium"


def _whathappens_command() -> list[str]:
    script = Path(PYTHON).parent / "whathappens"
    return [str(script)] if script.exists() else [PYTHON, "-m", "whathappens"]


def has_browser_flag(whathappens: list[str]) -> bool:
    done = subprocess.run([*whathappens, "https://example.invalid/", "--help"],
                          capture_output=True, text=True, timeout=60)
    return "--browser" in done.stdout


# --------------------------------------------------------------------------- demo internet


@contextlib.contextmanager
def start_demo_internet(state: Path, attempts: int = 8) -> Iterator[DemoInternet]:
    """The demo internet on free high ports (as tests/conftest.py does), delays injected."""
    from whathappens.demo.internet import DemoInternet, DemoInternetError

    error: DemoInternetError | None = None
    for _ in range(attempts):
        dns, https, http = random.sample(range(20000, 60000), 3)
        try:
            net = DemoInternet.start(state, ports=(dns, https, http), delays=True)
        except DemoInternetError as e:
            if not e.address_in_use:
                raise BenchError(f"the demo internet did not start: {e}") from None
            error = e
            continue
        try:
            yield net
        finally:
            net.stop()
        return
    raise BenchError(f"the demo internet found no free ports: {error}")


def make_nss_home(home: Path, ca: Path, certutil: str) -> Path:
    """A throwaway HOME whose NSS database (Chromium's trust store on Linux) trusts ``ca``
    as an issuer of server certificates ("C,,"), so no certificate error is ignored."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    db = f"sql:{nssdb}"
    for argv in ([certutil, "-d", db, "-N", "--empty-password"],
                 [certutil, "-d", db, "-A", "-t", "C,,", "-n", "whathappens demo CA",
                  "-i", str(ca)]):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(argv)}: {(done.stderr or done.stdout).strip()}")
    return home


# --------------------------------------------------------------------------- the tools


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env.update(extra)
    return env


@dataclass(frozen=True)
class Tools:
    lighthouse: Path
    chromium: str
    home: Path
    whathappens: list[str]
    net: DemoInternet
    url: str
    viewport: tuple[int, int]
    work: Path
    keep: Path | None

    def lighthouse_argv(self, output: Path) -> list[str]:
        return lighthouse_argv(self.lighthouse, self.url, self.net.web, self.viewport, output)

    def our_argv(self, ours: str, run: int) -> list[str]:
        if ours == "demo":
            return [*self.whathappens, "demo", "--browser", "--json", "--high-ports",
                    "--state", str(self.work / f"demo-{run}"), "--max-time", "60"]
        # Pointed at the demo's DNS as ``whathappens demo`` points itself (commands/demo.py):
        # its names exist only there, and the system resolver would ask the real internet.
        argv = [*self.whathappens, self.url, "--browser", "--json",
                "--cacert", str(self.net.ca), "--root-hints", str(self.net.root_hints),
                "--dns-port", str(self.net.dns_port), "--dns-views", "resolver,walk",
                "--max-time", "60"]
        if self.net.resolver:
            argv += ["--resolver", f"{self.net.resolver}:{self.net.dns_port}"]
        return argv


def lighthouse_argv(lighthouse: Path, url: str, address: str, viewport: tuple[int, int],
                    output: Path) -> list[str]:
    width, height = viewport
    chrome_flags = " ".join([*CHROME_FLAGS, f"--window-size={width},{height}",
                             f"--host-resolver-rules='MAP {HOST} {address}'"])
    return [str(lighthouse), url, "--quiet", "--output=json", f"--output-path={output}",
            "--only-categories=performance", "--throttling-method=provided",
            "--preset=desktop", "--form-factor=desktop", "--screenEmulation.mobile=false",
            f"--screenEmulation.width={width}", f"--screenEmulation.height={height}",
            "--screenEmulation.deviceScaleFactor=1", "--disable-full-page-screenshot",
            f"--chrome-flags={chrome_flags}"]


def run_process(argv: list[str], env: Mapping[str, str], *, memory: TreeMemory | None = None,
                timeout: float = RUN_TIMEOUT) -> tuple[str, float]:
    """Run ``argv`` in its own process group; its stdout and wall time (ms). The whole group
    is killed on a timeout or an interrupt, so no Chromium outlives its run."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(env),
                            start_new_session=True)
    if memory is not None:
        memory.watch(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise BenchError(f"timed out after {timeout:.0f} s: {' '.join(argv)}") from None
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        if memory is not None:
            memory.stop()
    elapsed = (time.perf_counter() - started) * 1000
    if proc.returncode != 0 and not out.lstrip().startswith("{"):
        raise BenchError(f"exit {proc.returncode}: {' '.join(argv)}\n"
                         f"{(err or out).strip()[-1500:]}")
    return out, elapsed


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Stop a run and every process under it. Chromium is started detached (its own process
    group) by both chrome-launcher and Playwright, so its processes are found by ancestry
    first: SIGTERM lets Lighthouse and Playwright close their browser, SIGKILL ends what is
    left."""
    watcher = TreeMemory()
    tree = watcher.descendants(proc.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        for pid, comm in tree:
            if watcher.comm(pid) == comm:  # still that process, not a reused id
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
        if sig == signal.SIGTERM:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(3)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=10)


# --------------------------------------------------------------------------- memory


@dataclass
class MemoryPeak:
    chromium_rss_kib: int = 0
    chromium_pss_kib: int = 0
    chromium_processes: int = 0
    others_rss_kib: int = 0


class TreeMemory:
    """Samples the memory of a process's descendants in a thread; ``peak`` holds the largest
    sums seen (each column's own maximum).

    Cheap reads often, dear ones seldom: under gVisor (this machine) a scan of /proc/*/stat
    costs ~12 ms and a process's smaps_rollup ~6 ms, its statm ~0.02 ms. So the resident
    sets (statm) are summed every 50 ms, the process tree is scanned again every 250 ms (a
    Chromium process lives far longer), and the proportional sets (smaps_rollup) every 500 ms.
    """

    def __init__(self, interval: float = SAMPLE_INTERVAL, proc: Path = Path("/proc"),
                 tree_every: int = 5, pss_every: int = 10) -> None:
        self.interval = interval
        self.proc = proc
        self.tree_every = tree_every
        self.pss_every = pss_every
        self.peak = MemoryPeak()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tree: list[tuple[int, str]] = []
        self._samples = 0

    def watch(self, pid: int) -> None:
        self._thread = threading.Thread(target=self._loop, args=(pid,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self, root: int) -> None:
        while not self._stop.wait(self.interval):
            self.sample(root)

    def sample(self, root: int) -> None:
        if self._samples % self.tree_every == 0:
            self._tree = self.descendants(root)
        with_pss = self._samples % self.pss_every == 0
        self._samples += 1
        rss = pss = others = count = 0
        for pid, comm in self._tree:
            kib = self._rss_kib(pid)
            if not kib:
                continue  # gone
            if comm.startswith("chrom"):
                count += 1
                rss += kib
                pss += self._pss_kib(pid) if with_pss else 0
            else:
                others += kib
        p = self.peak
        p.chromium_rss_kib = max(p.chromium_rss_kib, rss)
        p.chromium_pss_kib = max(p.chromium_pss_kib, pss)
        p.chromium_processes = max(p.chromium_processes, count)
        p.others_rss_kib = max(p.others_rss_kib, others)

    def descendants(self, root: int) -> list[tuple[int, str]]:
        """(pid, comm) of every process below ``root``, from /proc/*/stat."""
        children: dict[int, list[tuple[int, str]]] = {}
        for entry in self.proc.iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                comm = stat[stat.index("(") + 1:stat.rindex(")")]
                ppid = int(stat[stat.rindex(")") + 2:].split()[1])
                children.setdefault(ppid, []).append((int(entry.name), comm))
        found: list[tuple[int, str]] = []
        todo = [root]
        while todo:
            for child in children.get(todo.pop(), []):
                found.append(child)
                todo.append(child[0])
        return found

    def comm(self, pid: int) -> str | None:
        with contextlib.suppress(OSError):
            return (self.proc / str(pid) / "comm").read_text().strip()
        return None

    def _rss_kib(self, pid: int) -> int:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pages = int((self.proc / str(pid) / "statm").read_text().split()[1])
            return pages * PAGE_KIB
        return 0

    def _pss_kib(self, pid: int) -> int:
        with contextlib.suppress(OSError, ValueError):
            for line in (self.proc / str(pid) / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    return int(line.split()[1])
        return 0


# --------------------------------------------------------------------------- 1. fidelity


@dataclass
class PageSample:
    """One tool's view of one page load; times in ms from the navigation's start."""

    fcp: float | None
    lcp: float | None
    cls: float | None
    wall_ms: float
    lcp_element: str | None = None
    doc_request: float | None = None  # the document's request, on the same scale
    doc_network: float | None = None  # …and when it reached the network (Lighthouse)
    reference: str = "navigationStart"  # what the times count from
    doc_done: float | None = None  # the document's last byte
    first_subresource: float | None = None  # the first other request: the parser got there
    css_done: float | None = None  # the last stylesheet's last byte (render-blocking here)

    @property
    def css_to_fcp(self) -> float | None:
        """The last stylesheet's last byte → FCP: style, layout, paint and the frame."""
        if self.fcp is None or self.css_done is None:
            return None
        return self.fcp - self.css_done
    warnings: list[str] = field(default_factory=list)
    memory: MemoryPeak | None = None  # the tool's process tree, sampled while it ran


@dataclass
class OurSample(PageSample):
    """A whathappens run: the page's figures, and what its browser phase cost."""

    phase_ms: float | None = None
    launch_ms: float | None = None
    warm: bool = False
    before_nav_ms: float | None = None
    nav_to_load_ms: float | None = None
    after_load_ms: float | None = None
    settle_ms: float | None = None
    requests: int = 0
    browser: str | None = None


def lighthouse_sample(report: Mapping[str, Any], wall_ms: float) -> PageSample:
    """FCP/LCP/CLS from a Lighthouse JSON report (LHR), relative to its navigation start."""
    if report.get("runtimeError"):
        err = report["runtimeError"]
        raise BenchError(f"Lighthouse: {err.get('code')}: {err.get('message')}")
    audits = report.get("audits", {})

    def numeric(audit_id: str) -> float | None:
        value = audits.get(audit_id, {}).get("numericValue")
        return float(value) if isinstance(value, int | float) else None

    doc = _lighthouse_document(audits, str(report.get("finalDisplayedUrl")
                                           or report.get("mainDocumentUrl") or ""))
    items = (audits.get("network-requests", {}).get("details") or {}).get("items", [])
    starts = [float(i["rendererStartTime"]) for i in items if isinstance(i, dict)
              and i is not doc and isinstance(i.get("rendererStartTime"), int | float)]
    css = [float(i["networkEndTime"]) for i in items if isinstance(i, dict)
           and i.get("resourceType") == "Stylesheet"
           and isinstance(i.get("networkEndTime"), int | float)]
    warnings = [str(w) for w in report.get("runWarnings", [])]
    if doc is not None and doc.get("statusCode") not in (None, 200):
        warnings.append(f"the document answered {doc.get('statusCode')}")
    element = None
    details = audits.get("largest-contentful-paint-element", {}).get("details") or {}
    for item in details.get("items", []):
        for sub in item.get("items", []) if isinstance(item, dict) else []:
            node = sub.get("node") if isinstance(sub, dict) else None
            if isinstance(node, dict) and node.get("selector"):
                element = str(node["selector"])
                break
        if element:
            break
    return PageSample(fcp=numeric("first-contentful-paint"),
                      lcp=numeric("largest-contentful-paint"),
                      cls=numeric("cumulative-layout-shift"), wall_ms=wall_ms,
                      lcp_element=element,
                      doc_request=_float(doc, "rendererStartTime"),
                      doc_network=_float(doc, "networkRequestTime"), warnings=warnings,
                      doc_done=_float(doc, "networkEndTime"),
                      first_subresource=min(starts) if starts else None,
                      css_done=max(css) if css else None)


def _lighthouse_document(audits: Mapping[str, Any], url: str) -> dict[str, Any] | None:
    items = (audits.get("network-requests", {}).get("details") or {}).get("items", [])
    docs = [i for i in items if isinstance(i, dict) and i.get("resourceType") == "Document"]
    return next((d for d in docs if d.get("url") == url), docs[0] if docs else None)


def _float(item: Mapping[str, Any] | None, key: str) -> float | None:
    value = None if item is None else item.get(key)
    return float(value) if isinstance(value, int | float) else None


def our_sample(journey: Mapping[str, Any], wall_ms: float) -> OurSample:
    """FCP/LCP/CLS and the phase's cost from whathappens' --json, read by the contract.

    The page's times count from Chromium's navigationStart when the journey says where that
    is (``BrowserFacts.navigation_start_ms``, on the journey's clock; the times are then
    already relative to it, as Lighthouse's are). A journey without it has them on the
    journey's clock, and they are taken relative to the document's request (the
    "browser.resource" span with ``navigation`` true) instead.
    """
    from whathappens.contract.document import read_journey
    from whathappens.contract.facts import BrowserFacts, BrowserResourceFacts

    doc = read_journey(journey)
    browser = next((s for s in doc.all_spans() if s.name == "browser"), None)
    facts = browser.facts_as(BrowserFacts) if browser is not None else None
    if browser is None or facts is None:
        raise BenchError("whathappens: no browser span in the journey (was --browser "
                         "ignored?)")
    if facts.outcome != "loaded":
        raise BenchError(f"whathappens: the browser phase {facts.outcome or 'ended'}"
                         f"{': ' + facts.why if facts.why else ''}")
    nav = next((s for s in browser.walk() if s.name == "browser.resource"
                and (f := s.facts_as(BrowserResourceFacts)) is not None and f.navigation),
               None)
    navigation_start: float | None = getattr(facts, "navigation_start_ms", None)
    if navigation_start is not None:
        origin, shift = navigation_start, 0.0  # page times already count from it
        reference = "navigationStart (BrowserFacts.navigation_start_ms)"
    elif nav is not None:
        origin = shift = nav.start_ms
        reference = "the document's request (its browser.resource span's start)"
    else:
        raise BenchError("whathappens: neither navigation_start_ms nor a navigation request "
                         "(browser.resource with navigation true) in the browser span")

    def rel(value: float | None) -> float | None:
        return None if value is None else value - shift

    warnings = [f"the document answered {facts.status}"] if facts.status not in (None,
                                                                                  200) else []
    warnings += [f"whathappens: {n}" for n in getattr(facts, "notes", [])]
    load = rel(facts.load_ms)
    end = browser.end_ms
    others = [c.start_ms - origin for c in browser.walk() if c.name == "browser.resource"
              and c is not nav]
    css = [c.end_ms - origin for c in browser.walk() if c.name == "browser.resource"
           and c.end_ms is not None and (f := c.facts_as(BrowserResourceFacts)) is not None
           and f.resource_type == "Stylesheet"]
    return OurSample(
        css_done=max(css) if css else None,
        doc_done=nav.end_ms - origin if nav is not None and nav.end_ms is not None else None,
        first_subresource=min(others) if others else None,
        fcp=rel(facts.fcp_ms), lcp=rel(facts.lcp_ms), cls=facts.cls, wall_ms=wall_ms,
        lcp_element=facts.lcp_element, reference=reference,
        doc_request=nav.start_ms - origin if nav is not None else None, warnings=warnings,
        phase_ms=browser.duration_ms, launch_ms=facts.launch_ms, warm=facts.warm,
        before_nav_ms=origin - browser.start_ms, nav_to_load_ms=load,
        after_load_ms=end - (origin + load) if end is not None and load is not None else None,
        settle_ms=facts.settle_ms, requests=facts.requests, browser=facts.browser)


def fidelity_series(tools: Tools, ours: str, cfg: Config
                    ) -> tuple[list[PageSample], list[OurSample], list[str]]:
    lh_runs: list[PageSample] = []
    our_runs: list[OurSample] = []
    order: list[str] = []
    lh_env = _child_env(HOME=str(tools.home), CHROME_PATH=tools.chromium)
    our_env = _child_env(CHROME_PATH=tools.chromium)
    for i in range(cfg.warmup + cfg.runs):
        keep = i >= cfg.warmup
        sequence: tuple[str, ...] = ("lh", "wh") if i % 2 == 0 else ("wh", "lh")
        if ours == "none":
            sequence = ("lh",)
        for tool in sequence:
            _progress(f"{'run' if keep else 'warm-up'} "
                      f"{i - cfg.warmup + 1 if keep else i + 1}: "
                      f"{'Lighthouse' if tool == 'lh' else 'whathappens'} …")
            if tool == "lh":
                output = tools.work / f"lighthouse-{i}.json"
                memory = TreeMemory()
                _, wall = run_process(tools.lighthouse_argv(output), lh_env, memory=memory)
                report = json.loads(output.read_text())
                sample = lighthouse_sample(report, wall)
                sample.memory = memory.peak
                _keep(tools.keep, f"lighthouse-{i}.json", output.read_text())
                if keep:
                    lh_runs.append(sample)
            else:
                memory = TreeMemory()
                out, wall = run_process(tools.our_argv(ours, i), our_env, memory=memory)
                _keep(tools.keep, f"whathappens-{i}.json", out)
                ours_sample = our_sample(json.loads(out), wall)
                ours_sample.memory = memory.peak
                if keep:
                    our_runs.append(ours_sample)
        if keep:
            order.append("LH first" if sequence[0] == "lh" else "wh first")
    _progress("")
    return lh_runs, our_runs, order


def _progress(text: str) -> None:
    """Which run is going, on the terminal only (a run of Lighthouse takes ~20 s)."""
    if sys.stderr.isatty():
        print(f"\r  {text:<60}", end="\r", file=sys.stderr, flush=True)


def _keep(directory: Path | None, name: str, text: str) -> None:
    if directory is not None:
        (directory / name).write_text(text)


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def p90(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return xs[0]
    return statistics.quantiles(xs, n=10, method="inclusive")[-1]


def _fmt_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    first, *rest = cells
    return f"  {first:<{widths[0]}}" + "".join(f"{c:>{w}}" for c, w in zip(rest, widths[1:],
                                                                          strict=True))


METRICS = (("FCP", "fcp"), ("LCP", "lcp"), ("CLS", "cls"))


def aim(metric: str, reference: float) -> float:
    """The tolerance around Lighthouse's median: 10 %, at least 50 ms (0.01 for CLS)."""
    floor = AIM_FLOOR_CLS if metric == "cls" else AIM_FLOOR_MS
    return max(AIM_FRACTION * abs(reference), floor)


def _values(runs: Sequence[PageSample], key: str) -> list[float]:
    return [v for r in runs if (v := getattr(r, key)) is not None]


def _fmt(value: float | None, key: str) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if key == "cls" else f"{value:.1f}"


def print_fidelity(lh_runs: Sequence[PageSample], our_runs: Sequence[PageSample],
                   order: Sequence[str] | None, ours: str = "whathappens") -> None:
    """The table, the references, and every sample (``order`` None: ours only, one line)."""
    header = ("metric", "LH", "wh", "diff", "ratio", "aim ±", "meets", "LH p90", "wh p90")
    widths = (8, 10, 10, 10, 8, 8, 7, 10, 10)
    print(f"Page fidelity · Lighthouse {len(lh_runs)} runs, {ours} {len(our_runs)} runs · "
          "ms from the navigation's start (CLS: score), medians unless p90")
    print(_fmt_row(header, widths))
    print("  " + "-" * sum(widths))
    missed: list[str] = []
    for name, key in METRICS:
        lh = _values(lh_runs, key)
        wh = _values(our_runs, key)
        if not lh:
            print(_fmt_row((name, "-", _fmt(median(wh), key) if wh else "-", *["-"] * 6),
                           widths))
            continue
        lm = median(lh)
        if not wh:
            print(_fmt_row((name, _fmt(lm, key), "-", "-", "-", _fmt(aim(key, lm), key), "-",
                            _fmt(p90(lh), key), "-"), widths))
            continue
        wm = median(wh)
        diff = wm - lm
        tolerance = aim(key, lm)
        meets = "yes" if abs(diff) <= tolerance else "NO"
        if meets == "NO":
            missed.append(name)
        ratio = f"{wm / lm:.2f}" if lm else "-"
        print(_fmt_row((name, _fmt(lm, key), _fmt(wm, key), f"{diff:+.{4 if key == 'cls' else 1}f}",
                        ratio, _fmt(tolerance, key), meets, _fmt(p90(lh), key),
                        _fmt(p90(wh), key)), widths))
    if our_runs:
        print(f"  misses the aim: {', '.join(missed) or 'none'}")
    print("  what the times count from, and where the document's request sits on that scale:")
    requests = _values(lh_runs, "doc_request")
    network = _values(lh_runs, "doc_network")
    if requests:
        print(f"    Lighthouse: navigationStart (its time origin); the document requested at "
              f"{median(requests):+.1f} ms (rendererStartTime), on the network at "
              f"{median(network):+.1f} ms (networkRequestTime), medians")
    if our_runs:
        references = sorted({r.reference for r in our_runs})
        requested = _values(our_runs, "doc_request")
        where = (f"; the document requested at {median(requested):+.1f} ms (the "
                 "navigation's browser.resource span), median" if requested else "")
        print(f"    whathappens: {', '.join(references)}{where}")
    for label, key in (("the document's last byte", "doc_done"),
                       ("the first subresource requested (the parser reached it)",
                        "first_subresource"),
                       ("the last stylesheet's last byte", "css_done"),
                       ("that stylesheet's last byte → FCP (style, layout, paint, frame)",
                        "css_to_fcp")):
        lh, wh = _values(lh_runs, key), _values(our_runs, key)
        if lh or wh:
            print(f"    {label}: Lighthouse {_fmt(median(lh) if lh else None, key)}, "
                  f"whathappens {_fmt(median(wh) if wh else None, key)} ms (medians)")
    for label, runs in (("Lighthouse", lh_runs), ("whathappens", our_runs)):
        elements = sorted({r.lcp_element for r in runs if r.lcp_element})
        if runs:
            print(f"    LCP element, {label}: {', '.join(elements) or 'not reported'}")
    warnings = sorted({w for r in [*lh_runs, *our_runs] for w in r.warnings})
    for w in warnings:
        print(f"    warning: {w}")
    print()
    if order is not None:
        print_samples(lh_runs, our_runs, order)
        return
    for name, key in METRICS:
        values = " ".join(_fmt(v, key) for v in _values(our_runs, key))
        print(f"  every {name} of the series: {values}")
    print()


def print_samples(lh_runs: Sequence[PageSample], our_runs: Sequence[PageSample],
                  order: Sequence[str]) -> None:
    print("  every sample (ms from the navigation's start; CLS as a score; wall: the tool's "
          "whole run)")
    widths = (5, 10, 9, 9, 8, 9, 9, 9, 8, 9)
    print(_fmt_row(("run", "order", "LH FCP", "LH LCP", "LH CLS", "LH wall", "wh FCP",
                    "wh LCP", "wh CLS", "wh wall"), widths))
    for i in range(max(len(lh_runs), len(our_runs))):
        lh = lh_runs[i] if i < len(lh_runs) else None
        wh = our_runs[i] if i < len(our_runs) else None

        def cells(s: PageSample | None) -> list[str]:
            if s is None:
                return ["-"] * 4
            return [_fmt(s.fcp, "fcp"), _fmt(s.lcp, "lcp"), _fmt(s.cls, "cls"),
                    f"{s.wall_ms:.0f}"]

        print(_fmt_row((str(i + 1), order[i] if i < len(order) else "", *cells(lh),
                        *cells(wh)), widths))
    print()


# --------------------------------------------------------------------------- 2. warm series


@dataclass
class WarmSeries:
    """Journeys in one process sharing one Chromium (a fresh context each), the first one
    launching it; or why the series could not run."""

    runs: list[OurSample] = field(default_factory=list)
    memory: MemoryPeak | None = None
    unavailable: str | None = None


def warm_series(tools: Tools, runs: int) -> WarmSeries:
    """``runs`` + 1 journeys to the demo page in a child process (this script's
    ``--warm-series`` mode, the venv's interpreter) with one ``WarmBrowser``; the first
    journey launches it and is not counted. Its process tree's memory is sampled throughout.
    """
    argv = [PYTHON, __file__, "--warm-series", str(runs + 1), "--",
            *tools.our_argv("url", 0)[len(tools.whathappens):]]
    _progress(f"warm series: {runs + 1} journeys, one browser …")
    memory = TreeMemory()
    out, _ = run_process(argv, _child_env(CHROME_PATH=tools.chromium), memory=memory,
                         timeout=RUN_TIMEOUT * (runs + 1))
    _progress("")
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    if lines and "unavailable" in lines[0]:
        return WarmSeries(unavailable=str(lines[0]["unavailable"]))
    series = WarmSeries(memory=memory.peak)
    for i, line in enumerate(lines):
        _keep(tools.keep, f"whathappens-warm-{i}.json", json.dumps(line["journey"]))
        sample = our_sample(line["journey"], float(line["wall_ms"]))
        if i > 0:
            series.runs.append(sample)
    return series


def warm_series_main(runs: int, trace_args: list[str]) -> int:
    """The driver: ``whathappens URL --browser`` ``runs`` times in this process, one
    Chromium kept warm across them (whathappens.browser's WarmBrowser, what ``serve`` uses);
    one JSON line per journey: its wall time and the journey."""
    import asyncio
    import dataclasses
    import importlib
    from urllib.parse import urlsplit

    # Looked up, not imported by name: a checkout without the browser phase says so.
    try:
        phase = importlib.import_module("whathappens.browser.phase")
        arguments = importlib.import_module("whathappens.commands.arguments")
        run_journey = importlib.import_module("whathappens.trace").run_journey
        warm_browser, after_journey = phase.WarmBrowser, phase.after_journey
        browser_options = arguments.browser_options
    except (ImportError, AttributeError) as e:
        print(json.dumps({"unavailable": f"this checkout has no warm browser ({e})"}))
        return 0
    parser = arguments.command_parser("browser_fidelity --warm-series", "")
    parser.add_argument("url")
    arguments.add_trace_arguments(parser)
    args = parser.parse_args([a for a in trace_args if a != "--"])
    options = arguments.options_from(args)
    base = browser_options(args, options.tls.cafile)
    host = urlsplit(args.url).hostname or ""

    async def series() -> None:
        warm: Any = None
        try:
            for _ in range(runs):
                started = time.perf_counter()
                journey = await run_journey(args.url, options)
                if warm is None:
                    # The browser the journeys will ask for: after_journey points it at the
                    # address the first journey connected to.
                    tcp = next((s for s in journey.all_spans() if s.name == "tcp"), None)
                    address = str(getattr(tcp.facts, "address", "")) if tcp else ""
                    warm = warm_browser(dataclasses.replace(base, host=host,
                                                            address=address))
                await after_journey(journey, base, warm=warm)
                wall = (time.perf_counter() - started) * 1000
                print(json.dumps({"wall_ms": wall, "journey": journey.to_dict()}), flush=True)
        finally:
            if warm is not None:
                await warm.close()

    asyncio.run(series())
    return 0


# --------------------------------------------------------------------------- 3. cost


COST_ROWS = (
    ("phase_ms", "whole browser phase (the browser span)"),
    ("launch_ms", "  Chromium's launch (launch_ms)"),
    ("before_nav_ms", "  span start → navigation start (launch, context, page, trace)"),
    ("nav_to_load_ms", "  navigation start → load event"),
    ("after_load_ms", "  load event → span end (settling, trace collection, close)"),
    ("settle_ms", "    of which the settle: until quiet (settle_ms)"),
    ("wall_ms", "whathappens' run (cold: the process; warm: journey + phase)"),
)


def print_cost(cold: Sequence[OurSample], warm: WarmSeries | None,
               lh_runs: Sequence[PageSample], command: str = "whathappens URL --browser"
               ) -> None:
    series: list[tuple[str, Sequence[OurSample], list[MemoryPeak], str]] = []
    if cold:
        series.append((f"cold: a launch per journey ({command})", cold,
                       [r.memory for r in cold if r.memory is not None], "per run"))
    if warm is not None and warm.runs:
        series.append(("warm: one browser, a fresh context per journey (WarmBrowser)",
                       warm.runs, [warm.memory] if warm.memory else [],
                       "over the whole series"))
    for title, runs, mems, scope in series:
        print(f"Browser phase cost · {title} · {len(runs)} runs · ms, medians")
        print(f"  {'':<64}{'median':>9}{'p90':>9}")
        for key, label in COST_ROWS:
            values = [v for r in runs if (v := getattr(r, key)) is not None]
            if values:
                print(f"  {label:<64}{median(values):>9.1f}{p90(values):>9.1f}")
        phase = [r.phase_ms for r in runs if r.phase_ms is not None]
        if phase:
            verdict = "meets" if median(phase) < PHASE_AIM_MS else "MISSES"
            is_warm = all(r.warm for r in runs)
            print(f"  aim: whole phase < {PHASE_AIM_MS:.0f} ms with a warm browser · "
                  f"{'this series ' + verdict if is_warm else 'cold, for scale: ' + verdict}")
        print_memory(mems, scope)
        print(f"    requests per page: {median([r.requests for r in runs]):.0f}")
        print()
    if warm is not None and warm.unavailable:
        print(f"Browser phase cost · warm: not measured: {warm.unavailable}")
        print()
    lh_mems = [r.memory for r in lh_runs if r.memory is not None]
    if lh_mems:
        print(f"For reference, Lighthouse's runs · {len(lh_runs)} runs · its Chromium also "
              "runs Lighthouse's gatherers and a benchmark, so it is no target")
        print(f"  {'':<64}{'median':>9}{'p90':>9}")
        walls = [r.wall_ms for r in lh_runs]
        label = "Lighthouse's whole run, ms"
        print(f"  {label:<64}{median(walls):>9.0f}{p90(walls):>9.0f}")
        print_memory(lh_mems, "per run")
        print()


def print_memory(mems: Sequence[MemoryPeak], scope: str) -> None:
    if not mems:
        return
    print(f"  peak memory, MiB ({scope}; sampled every {SAMPLE_INTERVAL * 1000:.0f} ms, PSS "
          f"every {SAMPLE_INTERVAL * 10 * 1000:.0f} ms):")
    for label, attr in (("Chromium's processes, sum of RSS", "chromium_rss_kib"),
                        ("Chromium's processes, sum of PSS", "chromium_pss_kib"),
                        ("the rest of the tree (Playwright's driver, node …), RSS",
                         "others_rss_kib")):
        values = [getattr(m, attr) / 1024 for m in mems]
        print(f"    {label:<62}{median(values):>9.1f}{p90(values):>9.1f}")
    print(f"    Chromium processes at most: {max(m.chromium_processes for m in mems)}")


if __name__ == "__main__":
    sys.exit(main())
