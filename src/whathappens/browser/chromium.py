"""Chromium for the browser phase: where it is, how it is started, what it trusts.

Chromium is pointed at the journey's own answer and trust, so that the page loads from the
server the journey measured and is judged by the same CA:

- ``--host-resolver-rules="MAP host address"`` sends the URL's host to the address the journey
  connected to (the port stays the URL's), whatever DNS would say;
- a throwaway HOME whose NSS database (``$HOME/.pki/nssdb``, where Chromium on Linux reads
  locally trusted roots) holds exactly the CA file the journey trusted (``--cacert``), made
  with libnss3-tools' ``certutil``. Never ``--ignore-certificate-errors``: a page whose
  certificate the journey would refuse fails here too, with Chromium's reason.

The profile is removed when the browser closes. ``extra_args`` and ``proxy`` are how
``serve --public`` hardens the browser (its own ``--host-resolver-rules`` then replaces ours).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_EXECUTABLE = "/usr/bin/chromium"
INSTALL_HINT = "apt-get install chromium libnss3-tools"

# Quiet, reproducible, no background traffic of Chromium's own; QUIC off so the page uses the
# TCP+TLS the journey measured (the demo serves no HTTP/3).
BASE_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             "--disable-quic")
NSS_NICKNAME = "whathappens journey CA"


class BrowserUnavailable(Exception):
    """The browser phase cannot run here (no Chromium, no Playwright, no certutil): the
    phase is skipped, and the message says how to install what is missing."""


@dataclass
class BrowserOptions:
    """How the page is loaded, and the budgets it gets."""

    executable: str = DEFAULT_EXECUTABLE
    cafile: str | None = None          # the CA the journey trusted (--cacert); None: Chromium's
    host: str | None = None            # the URL's host …
    address: str | None = None         # … and the address the journey connected to
    timeout: float = 20.0              # the whole phase (launch, load, trace), seconds
    # After load, until the page is quiet (late layout shifts and LCP candidates arrive after
    # load): no request in flight and no new LCP candidate or layout shift for ``quiet``
    # seconds, at most ``settle_max``.
    quiet: float = 0.5
    settle_max: float = 3.0
    max_requests: int = 300            # requests the page may make
    max_bytes: int = 50 * 1024 * 1024  # bytes on the wire the page may pull
    max_trace_bytes: int = 96 * 1024 * 1024  # the trace read back (IO.read), at most
    max_trace_events: int = 400_000    # trace events parsed, at most
    max_frames: int = 12               # filmstrip frames kept
    viewport: tuple[int, int] = (1280, 900)
    extra_args: list[str] = field(default_factory=list)  # serve --public's hardening
    proxy: str | None = None           # every request through this proxy (per context)
    # --lab: a W3C trace id; each request of the page then carries a traceparent of its own
    # (CDP Fetch interception) so the lab's tiers, which log it, can be merged under it.
    trace_id: str | None = None


def find_chromium(executable: str = DEFAULT_EXECUTABLE) -> str | None:
    """The executable if it exists and can be run (a name is looked up on PATH)."""
    path = executable if os.sep in executable else shutil.which(executable)
    if path and os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    return None


def chromium_version(executable: str = DEFAULT_EXECUTABLE) -> str | None:
    """``Chromium 156.0.8078.129`` as ``--version`` says it, without starting a browser;
    None when it cannot be run."""
    path = find_chromium(executable)
    if path is None:
        return None
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in done.stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1][:1].isdigit():
            return f"{words[0]} {words[1]}"
    return None


def missing_reason(options: BrowserOptions) -> str | None:
    """Why the browser phase cannot run, with how to fix it; None when it can."""
    import importlib.util

    if find_chromium(options.executable) is None:
        return f"Chromium was not found at {options.executable} ({INSTALL_HINT})"
    if importlib.util.find_spec("playwright") is None:
        return ("Playwright's Python package is not installed (pip install "
                "'whathappens[browser]'; its own browsers are not needed)")
    if options.cafile and shutil.which("certutil") is None:
        return f"certutil is missing, needed to trust {options.cafile} ({INSTALL_HINT})"
    return None


def _has_flag(args: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


def host_rule(host: str, address: str) -> str:
    """``MAP host address``: the URL's port is kept, so a demo on :10443 still works."""
    target = f"[{address}]" if ":" in address else address
    return f"--host-resolver-rules=MAP {host} {target}"


def launch_args(options: BrowserOptions) -> list[str]:
    """Chromium's command line: ours, the journey's address, then the caller's hardening
    (whose own --host-resolver-rules replaces ours)."""
    args = list(BASE_ARGS)
    if (options.host and options.address and options.host != options.address
            and options.proxy is None
            and not _has_flag(options.extra_args, "--host-resolver-rules")):
        args.append(host_rule(options.host, options.address))
    args.extend(options.extra_args)
    return args


# Playwright starts Chromium with --disable-dev-shm-usage (for containers whose /dev/shm is
# 64 MiB): Chromium then keeps its shared memory — the buffers every response body and every
# frame crosses between processes in — in files under /tmp. Where /tmp is a disk, that slows
# the page itself: measured here (a 24 GiB tmpfs /dev/shm, /tmp on disk), the demo page's
# first subresource was requested ~27 ms and FCP ~60 ms later with it than without it (medians
# of 10 interleaved loads each, three sessions). Lighthouse's launcher does not pass it. So
# it is dropped when /dev/shm is a usable tmpfs with room to spare.
SHM = Path("/dev/shm")
SHM_MIN_FREE = 1024 * 1024 * 1024


def dropped_defaults(shm: Path = SHM) -> list[str]:
    """Playwright's default switches to leave out: --disable-dev-shm-usage when ``shm`` is a
    writable directory with at least SHM_MIN_FREE bytes free."""
    try:
        stat = os.statvfs(shm)
    except OSError:
        return []
    if not os.access(shm, os.W_OK) or stat.f_bavail * stat.f_frsize < SHM_MIN_FREE:
        return []
    return ["--disable-dev-shm-usage"]


def launch_key(options: BrowserOptions) -> tuple[str, str | None, tuple[str, ...]]:
    """What a running browser was started with: a warm browser serves only the same key."""
    return options.executable, options.cafile, tuple(launch_args(options))


def make_nss_db(home: Path, cafile: str) -> None:
    """``$HOME/.pki/nssdb`` trusting every certificate of ``cafile`` as a CA for TLS."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    _certutil("-d", f"sql:{db}", "-N", "--empty-password")
    for i, pem in enumerate(_pem_blocks(Path(cafile).read_text(encoding="ascii"))):
        one = home / f"ca-{i}.pem"
        one.write_text(pem, encoding="ascii")
        _certutil("-d", f"sql:{db}", "-A", "-t", "C,,", "-n", f"{NSS_NICKNAME} {i}",
                  "-i", str(one))


def _pem_blocks(text: str) -> list[str]:
    end = "-----END CERTIFICATE-----"
    blocks = [b[b.index("-----BEGIN CERTIFICATE-----"):] + end + "\n"
              for b in text.split(end) if "-----BEGIN CERTIFICATE-----" in b]
    if not blocks:
        raise ValueError("no PEM certificate in it")
    return blocks


def _certutil(*args: str) -> None:
    done = subprocess.run(["certutil", *args], capture_output=True, text=True, timeout=20,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"certutil {' '.join(args[:3])}… failed: "
                           f"{(done.stderr or done.stdout).strip()[:200]}")


@contextlib.contextmanager
def throwaway_home(cafile: str | None) -> Iterator[Path]:
    """A temporary HOME for one browser (its NSS database trusting ``cafile``), removed
    afterwards whatever happened."""
    home = Path(tempfile.mkdtemp(prefix="whathappens-chromium-"))
    try:
        if cafile:
            make_nss_db(home, cafile)
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def browser_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(home)
    # Chromium's XDG dirs (cache, config) default under HOME; keep them in the throwaway too.
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        env.pop(name, None)
    return env
