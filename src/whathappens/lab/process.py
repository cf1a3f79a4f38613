"""Starting lab tiers as detached processes, and finding and stopping them again.

Each tier runs in a session of its own (so ``lab up`` can return and a later ``lab down``
can stop it, children included), logs to ``logs/<tier>.log``, and is recorded in
``run/<tier>.json`` with its pid and start time. A tier is up when its process lives and its
readiness check passes; a port accepting is not always enough, so tiers check for real.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from whathappens.lab.tier import LabContext, Tier, port_open

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class LabError(Exception):
    """A tier could not be started, with what its log said."""


@dataclass
class Record:
    tier: str
    pid: int
    started: float        # wall clock, seconds
    argv: list[str]
    address: str
    port: int | None
    stop_signal: int = signal.SIGTERM

    @classmethod
    def load(cls, path: Path) -> Record | None:
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None


def run_checked(argv: list[str], *, cwd: Path, name: str, shown: str,
                env: dict[str, str] | None = None, user: str | None = None,
                timeout: float = 60.0) -> str:
    """A setup command (initdb, django-admin migrate …) run to its end, its output; a
    LabError with what it printed when it fails, or when it takes longer than ``timeout``
    (``name`` and ``shown``: how the error names the command)."""
    try:
        done = subprocess.run(argv, cwd=cwd, user=user, env=env, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as e:
        raise LabError(f"{name} took more than {timeout:g} s") from e
    if done.returncode != 0:
        raise LabError(f"{shown} failed with status {done.returncode}:\n"
                       f"{(done.stderr.strip() or done.stdout.strip())[-3000:]}")
    return done.stdout


def record_path(ctx: LabContext, name: str) -> Path:
    return ctx.run / f"{name}.json"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive: reap it if it is our child, else read its state.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start(tier: Tier, ctx: LabContext, timeout: float = READY_TIMEOUT) -> Record:
    """Prepare, launch and wait for ``tier``; raises LabError with its log on failure."""
    tier.prepare(ctx)
    argv = tier.command(ctx)
    log = ctx.log(tier.name)
    env = {**os.environ, **tier.env(ctx)}
    with log.open("ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True, env=env, cwd=ctx.dir(tier.name),
                                user=tier.user if os.geteuid() == 0 else None)
    rec = Record(tier.name, proc.pid, time.time(), argv, tier.address, tier.port,
                 int(tier.stop_signal))
    record_path(ctx, tier.name).write_text(json.dumps(rec.__dict__))
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            raise LabError(f"{tier.name} exited with status {code} while starting:\n"
                           f"{log_tail(log)}")
        try:
            if tier.ready(ctx):
                break
        except Exception:  # a readiness probe that fails is simply "not yet"
            pass
        if time.monotonic() > deadline:
            stop_pid(proc.pid)
            raise LabError(f"{tier.name} was not ready within {timeout:g} s:\n{log_tail(log)}")
        time.sleep(0.05)
    tier.after_ready(ctx)
    return rec


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT, first: int = signal.SIGTERM) -> None:
    """``first`` (SIGTERM) to the process group, then SIGKILL what is left after ``timeout``."""
    for sig in (first, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + (timeout if sig != signal.SIGKILL else 2.0)
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not alive(pid) and not _group_alive(pid):
                return
            time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(_pgid_of(p) == pgid for p in _pids() if alive(p))


def _pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def stop(ctx: LabContext, name: str) -> bool:
    """Stop a recorded tier; True when something was running."""
    path = record_path(ctx, name)
    rec = Record.load(path)
    if rec is None:
        return False
    running = alive(rec.pid) or _group_alive(rec.pid)
    if running:
        stop_pid(rec.pid, first=rec.stop_signal)
    if rec.port is not None:
        deadline = time.monotonic() + 5
        while port_open(rec.address, rec.port) and time.monotonic() < deadline:
            time.sleep(0.05)
    path.unlink(missing_ok=True)
    return running


def records(ctx: LabContext) -> list[Record]:
    out = []
    for path in sorted(ctx.run.glob("*.json")):
        rec = Record.load(path)
        if rec is not None:
            out.append(rec)
    return out
