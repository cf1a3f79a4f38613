"""The client side of the demo internet: start its process, wait until it is ready, stop it.

    with DemoInternet.start(state_dir, high_ports=True, delays=True) as net:
        ...  # net.root_hints, net.ca, net.dns_port, net.https_port, net.resolver, net.info

The servers run in their own process (``python -m whathappens.demo.serve``) so their CPU work
and their injected delays never run on the tracer's event loop or distort its clock. This
module imports only the standard library: it stays cheap for the CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
MAX_READY_LINE = 64 * 1024
LOG_TAIL = 4000
EXIT_IN_USE = 98


class DemoInternetError(RuntimeError):
    """The demo internet could not start; the message includes the server's stderr."""

    def __init__(self, message: str, *, address_in_use: bool = False) -> None:
        super().__init__(message)
        self.address_in_use = address_in_use


@dataclass
class DemoInternet:
    """A running demo internet (see :mod:`whathappens.demo.serve`)."""

    state_dir: Path
    root_hints: Path
    ca: Path
    dns_port: int
    https_port: int
    http_port: int
    resolver: str | None  # the recursive resolver's address, None when not available
    web: str  # the address of www.example.com
    ipv6: bool  # www.example.com also listens on [::1] and has an AAAA record
    delays: bool  # delays are injected (see info["servers"][i]["delay_ms"])
    info: dict[str, Any]  # internet.json: every server, its role, address, ports, delay
    ready: dict[str, Any]  # the ready line as printed by the server process
    log: Path  # the server process's stderr
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def resolver_port(self) -> int:
        return self.dns_port

    @classmethod
    def start(
        cls,
        state_dir: Path | str,
        *,
        high_ports: bool | None = None,
        delays: bool = True,
        ports: tuple[int, int, int] | None = None,
        timeout: float = READY_TIMEOUT,
        delay_overrides: dict[str, float] | None = None,
    ) -> DemoInternet:
        """Spawn the servers and return once every one of them answers.

        ``high_ports`` None means: the well-known ports when running as root, else high ones.
        ``ports`` (dns, https, http) overrides both. Raises :class:`DemoInternetError`.
        """
        state = Path(state_dir).resolve()
        state.mkdir(parents=True, exist_ok=True)
        if high_ports is None:
            high_ports = os.geteuid() != 0
        argv = [sys.executable, "-m", "whathappens.demo.serve", "--state", str(state),
                "--high-ports" if high_ports else "--root", "--exit-with-stdin"]
        if not delays:
            argv.append("--no-delay")
        for role, ms in (delay_overrides or {}).items():
            argv += ["--delay", f"{role}={ms:g}"]
        if ports is not None:
            argv += ["--dns-port", str(ports[0]), "--https-port", str(ports[1]),
                     "--http-port", str(ports[2])]
        log = state / "serve.log"
        with log.open("ab") as err:
            log_start = err.tell()
            process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                env=_child_env(),
            )
        try:
            ready = _read_ready_line(process, timeout)
        except DemoInternetError as e:
            _terminate(process)
            tail = _tail(log, log_start)
            in_use = process.returncode == EXIT_IN_USE
            raise DemoInternetError(
                f"{e}" + (f"\n--- server stderr ---\n{tail}" if tail else ""),
                address_in_use=in_use,
            ) from None
        assert process.stdout is not None
        process.stdout.close()  # the server writes nothing after the ready line
        info = json.loads(Path(ready["internet"]).read_text())
        return cls(
            state_dir=state,
            root_hints=Path(ready["root_hints"]),
            ca=Path(ready["ca"]),
            dns_port=int(ready["dns_port"]),
            https_port=int(ready["https_port"]),
            http_port=int(ready["http_port"]),
            resolver=ready.get("resolver"),
            web=str(ready["web"]),
            ipv6=bool(ready["ipv6"]),
            delays=bool(ready["delays"]),
            info=info,
            ready=ready,
            log=log,
            process=process,
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the servers have not exited within 5 s."""
        _terminate(self.process)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def __enter__(self) -> DemoInternet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _read_ready_line(process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    assert process.stdout is not None
    fd = process.stdout.fileno()
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DemoInternetError(f"the demo internet was not ready after {timeout:.0f} s")
            if not selector.select(left):
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                code = process.wait()
                raise DemoInternetError(f"the demo internet exited during startup (status {code})")
            buffer += chunk
            if len(buffer) > MAX_READY_LINE:
                raise DemoInternetError("the demo internet printed no ready line")
    line = buffer.split(b"\n", 1)[0]
    try:
        ready: Any = json.loads(line)
    except ValueError:
        ready = None
    if not isinstance(ready, dict) or ready.get("ready") is not True:
        raise DemoInternetError(f"unexpected output from the demo internet: {line[:200]!r}")
    return ready


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    # After SIGTERM, not before: closing stdin also asks the server to stop, and a SIGTERM
    # landing while it is already exiting could cut its clean exit short.
    if process.stdin is not None and not process.stdin.closed:
        with contextlib.suppress(OSError):
            process.stdin.close()
    if process.poll() is None:
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None and not process.stdout.closed:
        process.stdout.close()


def _tail(log: Path, start: int) -> str:
    """What this run wrote to the log, at most the last few KB."""
    try:
        with log.open("rb") as f:
            f.seek(max(start, f.seek(0, os.SEEK_END) - LOG_TAIL))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _child_env() -> dict[str, str]:
    """The child must import this very package, even when run from a source checkout."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if src not in paths:
        env["PYTHONPATH"] = os.pathsep.join([src, *paths])
    return env
