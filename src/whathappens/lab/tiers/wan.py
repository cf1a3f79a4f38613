"""The ``wan`` tier: the client in a network namespace, behind a userspace delay line.

Loopback makes every hop ~0.1 ms. ``lab up --rtt 40ms`` adds a ``wan`` tier (``WanLink``,
started last, stopped first; its host is the client, 100.127.<N>.2, no port), whose program
is this module's relay (``python -m whathappens.lab.tiers.wan``). The relay puts a client
namespace (``wh-client``, ``wh-client-<subnet>``) behind a pair of TUN devices and relays
every packet between them through a :class:`DelayLine` (this kernel has no ``tc netem``):

    netns wh-client                          root namespace (the lab)
    whathappens … --lab ─▶ whc<N> ══ relay: rtt/2 each way ══ whl<N> ─▶ 127.<N>.x.y (every tier)
                           100.127.<N>.2                      100.127.<N>.1

No address translation: inside the namespace the local route of 127.0.0.0/8 is removed
(127.0.0.1 stays), 127.<N>.0.0/16 is routed through ``whc<N>``, and ``route_localnet`` on
both TUN devices lets 127/8 addresses cross them (RFC 1122 calls them martians; Linux lets
an interface opt in). So the lab's zones, its root hints and its front door stay as they
are: the client simply reaches them over the slow link, and every tier sees the client as
100.127.<N>.2.

The relay moves whole IP packets, whatever they carry: UDP crosses the delay line exactly as
TCP does — the lab's DNS queries from the client, and QUIC to the Caddy POP (HTTP/3 on UDP
443), each datagram delayed rtt/2 each way and dropped by ``--loss`` like any segment
(tests/test_lab_pop.py times a QUIC handshake at ≈ 1 RTT through it).

The relay creates everything it needs and removes it on SIGTERM (``lab down``): the
namespace (which takes ``whc<N>`` with it) and the TUN devices (non-persistent: gone when
their fds close). The tier is ready when the relay has built all that and written its
ready file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import random
import re
import signal
import struct
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from whathappens.lab.tier import LabContext, SpecTier
from whathappens.lab.topology import WanNames

if TYPE_CHECKING:
    from whathappens.lab.topology import TierSpec, Topology

TO_LAB = 0        # client namespace → lab
TO_CLIENT = 1     # lab → client namespace
MTU = 65535
EARLY = 0.0015    # seconds: how much before a deadline the relay wakes

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


# ------------------------------------------------------------------ parsing options
def parse_duration(text: str) -> float:
    """``40ms``, ``0.04s``, ``40`` (milliseconds) → seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|us)?\s*", text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (e.g. 40ms, 0.04s)")
    value, unit = float(m.group(1)), m.group(2) or "ms"
    return value * {"ms": 1e-3, "s": 1.0, "us": 1e-6}[unit]


def parse_loss(text: str) -> float:
    """``0.5%`` → 0.005; ``0.005`` → 0.005."""
    t = text.strip()
    value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    if not 0 <= value < 1:
        raise ValueError(f"loss must be between 0 and 100%: {text!r}")
    return value


# ------------------------------------------------------------------ the pure core
class DelayLine:
    """Packets in, the same packets out one-way delay later; no I/O, the caller says ``now``.

    One-way delay is ``rtt / 2`` plus a uniform jitter in ``[-jitter, +jitter]`` (never
    below zero), and a packet never overtakes an earlier one in its direction (TCP would
    read reordering as loss): its release is at least the previous one's. ``loss`` drops
    that fraction of packets, decided by a seeded RNG so a run can be replayed.
    """

    def __init__(self, rtt: float, jitter: float = 0.0, loss: float = 0.0,
                 seed: int | None = None) -> None:
        if rtt < 0 or jitter < 0 or not 0 <= loss < 1:
            raise ValueError("rtt and jitter must be >= 0, loss in [0, 1)")
        self.one_way = rtt / 2
        self.jitter = jitter
        self.loss = loss
        self.rng = random.Random(seed)
        self.queues: tuple[deque[tuple[float, bytes]], ...] = (deque(), deque())
        self.last = [float("-inf"), float("-inf")]
        self.dropped = [0, 0]
        self.passed = [0, 0]

    def push(self, direction: int, packet: bytes, now: float) -> float | None:
        """Queue ``packet``; its release time, or None when it is lost."""
        if self.loss and self.rng.random() < self.loss:
            self.dropped[direction] += 1
            return None
        delay = self.one_way
        if self.jitter:
            delay = max(0.0, delay + self.rng.uniform(-self.jitter, self.jitter))
        release = max(now + delay, self.last[direction])
        self.last[direction] = release
        self.queues[direction].append((release, packet))
        return release

    def due(self, now: float) -> list[tuple[int, bytes]]:
        """Packets whose time has come, each direction in the order they were pushed."""
        out: list[tuple[int, bytes]] = []
        for direction, queue in enumerate(self.queues):
            while queue and queue[0][0] <= now:
                out.append((direction, queue.popleft()[1]))
                self.passed[direction] += 1
        return out

    def next_deadline(self) -> float | None:
        heads = [q[0][0] for q in self.queues if q]
        return min(heads) if heads else None


# ------------------------------------------------------------------ the tier
class WanLink(SpecTier):
    kind = "wan"

    def __init__(self, topo: Topology, spec: TierSpec) -> None:
        super().__init__(topo, spec)
        self.options = spec.options
        self.names = WanNames(int(str(spec.options.get("subnet", 0))))
        self.depends = tuple(s.name for s in topo.tiers if s.name != spec.name)

    def ready_file(self, ctx: LabContext) -> Path:
        return ctx.dir(self.name) / "ready"

    def prepare(self, ctx: LabContext) -> None:
        if os.geteuid() != 0:
            raise PermissionError("lab up --rtt needs root (network namespace, TUN devices)")
        if not os.path.exists("/dev/net/tun"):
            raise FileNotFoundError("lab up --rtt needs /dev/net/tun")
        self.ready_file(ctx).unlink(missing_ok=True)

    def command(self, ctx: LabContext) -> list[str]:
        o = self.options
        argv = [sys.executable, "-m", "whathappens.lab.tiers.wan",
                "--subnet", str(self.names.subnet), "--rtt", str(o.get("rtt", "40ms")),
                "--jitter", str(o.get("jitter", "0ms")), "--loss", str(o.get("loss", "0")),
                "--ready-file", str(self.ready_file(ctx))]
        if o.get("seed") is not None:
            argv += ["--seed", str(o["seed"])]
        return argv

    def ready(self, ctx: LabContext) -> bool:
        return self.ready_file(ctx).exists() and namespace_exists(self.names.namespace)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "kind": self.kind, "namespace": self.names.namespace,
                "rtt": self.options.get("rtt"), "jitter": self.options.get("jitter"),
                "loss": self.options.get("loss"), "lab_tun": self.names.lab_tun,
                "client_tun": self.names.client_tun}


# ------------------------------------------------------------------ the relay (root)
def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    if done.returncode != 0:
        raise OSError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")


def namespace_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def teardown(names: WanNames) -> None:
    """Remove the namespace (and the client TUN inside it). Safe to call twice."""
    if namespace_exists(names.namespace):
        subprocess.run(["ip", "netns", "del", names.namespace], capture_output=True,
                       check=False, timeout=10)


def setup(names: WanNames) -> tuple[int, int]:
    """Both TUN devices, the namespace, addresses, routes; (lab fd, client fd)."""
    teardown(names)          # a namespace left by a relay killed with SIGKILL
    lab_fd = open_tun(names.lab_tun)
    client_fd = open_tun(names.client_tun)
    ns, lab, client = names.namespace, names.lab_tun, names.client_tun
    _run("ip", "netns", "add", ns)
    _run("ip", "link", "set", client, "netns", ns)
    _run("ip", "addr", "add", f"{names.lab_address}/30", "dev", lab)
    Path(f"/proc/sys/net/ipv4/conf/{lab}/route_localnet").write_text("1\n")
    Path(f"/proc/sys/net/ipv4/conf/{lab}/rp_filter").write_text("0\n")
    _run("ip", "link", "set", lab, "up")
    _run("ip", "-n", ns, "link", "set", "lo", "up")
    # 127.0.0.1 stays local; the rest of 127/8 is no longer this namespace's own loopback.
    _run("ip", "-n", ns, "route", "del", "table", "local", "127.0.0.0/8", "dev", "lo")
    _run("ip", "-n", ns, "addr", "add", f"{names.client_address}/30", "dev", client)
    _run("ip", "netns", "exec", ns, "sysctl", "-qw",
         f"net.ipv4.conf.{client}.route_localnet=1", f"net.ipv4.conf.{client}.rp_filter=0")
    _run("ip", "-n", ns, "link", "set", client, "up")
    _run("ip", "-n", ns, "route", "add", names.lab_prefix, "dev", client,
         "src", names.client_address)
    return lab_fd, client_fd


async def relay(lab_fd: int, client_fd: int, line: DelayLine) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    fds = {TO_LAB: lab_fd, TO_CLIENT: client_fd}     # where each direction is written
    timer: asyncio.TimerHandle | None = None

    def release() -> None:
        # Woken EARLY (epoll rounds its timeout up to the next millisecond), then a short
        # precise sleep to each deadline: packets leave within ~0.1 ms of their time.
        nonlocal timer
        timer = None
        while True:
            for direction, packet in line.due(loop.time()):
                with contextlib.suppress(BlockingIOError, OSError):
                    os.write(fds[direction], packet)
            deadline = line.next_deadline()
            if deadline is None or deadline - loop.time() > EARLY:
                break
            time.sleep(max(0.0, deadline - loop.time()))
        arm()

    def arm() -> None:
        nonlocal timer
        deadline = line.next_deadline()
        if deadline is None:
            return
        if timer is not None:
            if timer.when() <= deadline - EARLY:
                return
            timer.cancel()
        timer = loop.call_at(deadline - EARLY, release)

    def readable(fd: int, direction: int) -> None:
        now = loop.time()
        for _ in range(64):
            try:
                packet = os.read(fd, MTU)
            except (BlockingIOError, InterruptedError):
                break
            line.push(direction, packet, now)
        arm()

    loop.add_reader(client_fd, readable, client_fd, TO_LAB)
    loop.add_reader(lab_fd, readable, lab_fd, TO_CLIENT)
    try:
        await stop.wait()
    finally:
        loop.remove_reader(client_fd)
        loop.remove_reader(lab_fd)
        if timer is not None:
            timer.cancel()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m whathappens.lab.tiers.wan",
                                description="The lab's WAN link: a client namespace behind "
                                            "a userspace delay line (run as root).")
    p.add_argument("--subnet", type=int, default=0)
    p.add_argument("--rtt", default="40ms")
    p.add_argument("--jitter", default="0ms")
    p.add_argument("--loss", default="0")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--ready-file", type=Path, default=None)
    args = p.parse_args(argv)
    names = WanNames(args.subnet)
    line = DelayLine(parse_duration(args.rtt), parse_duration(args.jitter),
                     parse_loss(args.loss), args.seed)
    # SIGTERM before the loop's handler is in place must still clean up.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    fds: tuple[int, int] | None = None
    try:
        fds = setup(names)
        if args.ready_file:
            args.ready_file.write_text(f"{os.getpid()}\n")
        print(f"wan: namespace {names.namespace} ({names.client_tun} {names.client_address})"
              f" ⇄ {names.lab_tun} {names.lab_address}: rtt {args.rtt}, jitter "
              f"{args.jitter}, loss {args.loss}", file=sys.stderr, flush=True)
        asyncio.run(relay(fds[0], fds[1], line))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"wan: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if args.ready_file:
            args.ready_file.unlink(missing_ok=True)
        teardown(names)
        if fds:
            for fd in fds:
                os.close(fd)
        print(f"wan: down; passed {line.passed}, dropped {line.dropped} "
              "(to lab, to client)", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
