"""A whole lab for a test module: on a private subnet, in a state dir the lab's users can enter."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from whathappens.lab import lab
from whathappens.lab.exercises import drills
from whathappens.lab.install import missing_packages, missing_python
from whathappens.lab.tier import LabContext

needs_lab = pytest.mark.skipif(
    bool(missing_packages() or missing_python()),
    reason="lab programs missing: run `whathappens lab install` as root",
)


def private_state(prefix: str = "whathappens-lab-") -> Path:
    """Not pytest's tmp_path: it is mode 0700, and PostgreSQL (postgres) and Unbound
    (unbound) run as users of their own that must enter the state dir."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


# The subnets this process has handed out: a module's lab can be up while a test brings up
# another one, and two random draws from 50 met in CI (Unbound: address already in use).
_HANDED_OUT: set[int] = set()


def busy_subnets() -> set[int]:
    """The 127.<N> subnets with a TCP or UDP socket bound in them now, by any process of
    this network namespace (/proc/net/tcp and udp: the local address is little-endian hex,
    so 127.171.54.53 reads 3536AB7F)."""
    busy = set()
    for table in ("tcp", "udp"):
        try:
            rows = Path("/proc/net", table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            address = row.split()[1].partition(":")[0]
            if len(address) == 8 and address[6:8].upper() == "7F":
                busy.add(int(address[4:6], 16))
    return busy


def lab_subnet() -> int:
    """A random 127.<N>.x.y subnet for a test lab, from the range WHATHAPPENS_TEST_SUBNETS
    ("150-250" when unset): ``./dev test`` runs the lab tests beside the others and gives
    each process a range of its own. Within the range, one that this process has not handed
    out and where nothing is bound now, so two labs never share addresses."""
    low, _, high = os.environ.get("WHATHAPPENS_TEST_SUBNETS", "150-250").partition("-")
    every = set(range(int(low), int(high or low) + 1))
    busy = busy_subnets()
    free = (every - _HANDED_OUT - busy) or (every - busy) or every
    subnet = random.choice(sorted(free))
    _HANDED_OUT.add(subnet)
    return subnet


def bring_up(profile: str, prefix: str = "whathappens-lab-",
             wan: dict[str, object] | None = None, *, mtls: bool = False
             ) -> Iterator[LabContext]:
    """Up on 127.<random>.x.y (beside any lab already running), down and removed after;
    ``wan`` ({"rtt": "40ms", ...}) puts a client namespace behind a WAN link (lab up --rtt);
    ``mtls``: TLS with client certificates between the tiers (lab up --mtls)."""
    state = private_state(prefix)
    ctx = LabContext(state=state, profile=profile, subnet=lab_subnet(), wan=wan,
                     mtls=mtls)
    started = time.monotonic()
    lab.up(ctx)
    print(f"lab up ({profile}) in {time.monotonic() - started:.1f} s")
    try:
        yield ctx
    finally:
        lab.down(ctx)
        shutil.rmtree(state, ignore_errors=True)


def in_force(ctx: LabContext) -> set[str]:
    """The drills in force on the lab in ``ctx`` (its drills.json)."""
    return set(drills.in_force(drills.open_lab(ctx)))


@contextlib.contextmanager
def healing(ctx: LabContext, target: str) -> Iterator[dict[str, Any]]:
    """Heal ``target`` after the block, even when one of its assertions failed; the dict
    holds what the heal measured."""
    healed: dict[str, Any] = {}
    try:
        yield healed
    finally:
        healed.update(drills.do(ctx, "heal", target, say=print))
