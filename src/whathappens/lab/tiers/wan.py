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

Random loss cannot promise *which* packet is lost, and a test of a lost QUIC Initial needs
exactly that. So the relay also drops on request: ``--drop-udp PORT[:N]`` (``lab up
--drop-udp``) drops the first N UDP datagrams the client sends to PORT, and ``lab wan
--drop-udp PORT[:N]`` asks the running relay for the same from now on (it writes the tier's
``drop-udp`` file and sends SIGUSR1; the relay reads the file, removes it and logs each
datagram it drops). Only client → lab datagrams to that port are counted, so the lab's DNS
(port 53) and TCP pass untouched; ``--loss`` works on everything as before.

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
from whathappens.lab.topology import WAN_TIER, WanNames

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


def parse_drop_udp(text: str) -> tuple[int, int]:
    """``443`` → (443, 1); ``443:2`` → (443, 2): a UDP port and how many datagrams to it."""
    m = re.fullmatch(r"\s*(\d{1,5})(?::(\d{1,3}))?\s*", text)
    port, count = (int(m.group(1)), int(m.group(2) or 1)) if m else (0, 0)
    if not 1 <= port <= 65535 or not 1 <= count <= 100:
        raise ValueError(f"--drop-udp takes PORT[:N] (a port 1-65535, N 1-100): {text!r}")
    return port, count


def parse_loss(text: str) -> float:
    """``0.5%`` → 0.005; ``0.005`` → 0.005."""
    t = text.strip()
    value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    if not 0 <= value < 1:
        raise ValueError(f"loss must be between 0 and 100%: {text!r}")
    return value


# ------------------------------------------------------------------ the pure core
def udp_destination(packet: bytes) -> int | None:
    """The destination port of the UDP datagram in an IP packet, or None (not UDP, a later
    fragment, too short). IPv4 (RFC 791: protocol 17 at octet 9, header length in the first
    octet's low nibble) or IPv6 without extension headers (RFC 8200: next header at octet 6,
    a fixed 40-octet header); the UDP header's destination port is its octets 2-3 (RFC 768)."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4:
        start = (packet[0] & 0x0F) * 4
        fragment_offset = int.from_bytes(packet[6:8], "big") & 0x1FFF
        if len(packet) < start + 4 or packet[9] != 17 or fragment_offset:
            return None
    elif version == 6:
        start = 40
        if len(packet) < start + 4 or packet[6] != 17:
            return None
    else:
        return None
    return int.from_bytes(packet[start + 2:start + 4], "big")


class DelayLine:
    """Packets in, the same packets out one-way delay later; no I/O, the caller says ``now``.

    One-way delay is ``rtt / 2`` plus a uniform jitter in ``[-jitter, +jitter]`` (never
    below zero), and a packet never overtakes an earlier one in its direction (TCP would
    read reordering as loss): its release is at least the previous one's. ``loss`` drops
    that fraction of packets, decided by a seeded RNG so a run can be replayed.
    ``drop_udp(port, n)`` drops the next ``n`` UDP datagrams towards the lab to ``port``,
    whatever the RNG says (counted in ``dropped_on_request``, not in ``dropped``).
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
        self.drop_port: int | None = None
        self.drop_left = 0
        self.dropped_on_request = 0

    def drop_udp(self, port: int, count: int) -> None:
        """From now on, drop the next ``count`` UDP datagrams the client sends to ``port``."""
        self.drop_port, self.drop_left = port, count

    def _requested_drop(self, direction: int, packet: bytes) -> bool:
        if not self.drop_left or direction != TO_LAB or \
                udp_destination(packet) != self.drop_port:
            return False
        self.drop_left -= 1
        self.dropped_on_request += 1
        return True

    def push(self, direction: int, packet: bytes, now: float) -> float | None:
        """Queue ``packet``; its release time, or None when it is lost."""
        if self._requested_drop(direction, packet):
            return None
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

    def control_file(self, ctx: LabContext) -> Path:
        return control_file(ctx)

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
        if o.get("drop_udp"):
            argv += ["--drop-udp", str(o["drop_udp"])]
        return [*argv, "--control", str(self.control_file(ctx))]

    def ready(self, ctx: LabContext) -> bool:
        return self.ready_file(ctx).exists() and namespace_exists(self.names.namespace)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "kind": self.kind, "namespace": self.names.namespace,
                "rtt": self.options.get("rtt"), "jitter": self.options.get("jitter"),
                "loss": self.options.get("loss"), "drop_udp": self.options.get("drop_udp"),
                "lab_tun": self.names.lab_tun,
                "client_tun": self.names.client_tun}


def control_file(ctx: LabContext) -> Path:
    """Where ``lab wan --drop-udp`` writes what the running relay should drop."""
    return ctx.dir(WAN_TIER) / "drop-udp"


def ask_drop(ctx: LabContext, port: int, count: int = 1, timeout: float = 5.0) -> None:
    """Ask the running relay to drop the next ``count`` UDP datagrams the client sends to
    ``port``; returns once the relay has read the request (it removes the file)."""
    from whathappens.lab.process import alive, records

    running = (ctx.state / "run").is_dir()       # records() would create it
    pid = next((r.pid for r in records(ctx) if r.tier == WAN_TIER and alive(r.pid)), None) \
        if running else None
    if pid is None:
        raise LookupError(f"no WAN link is running in {ctx.state} (lab up --rtt …)")
    request = control_file(ctx)
    written = request.with_suffix(".new")
    written.write_text(f"{port}:{count}\n")
    written.replace(request)       # whole, never half-written when the relay reads it
    end = time.monotonic() + timeout
    while request.exists():
        if time.monotonic() > end:
            request.unlink(missing_ok=True)
            raise TimeoutError(f"the WAN relay (pid {pid}) did not take the request in "
                               f"{timeout:g} s")
        os.kill(pid, signal.SIGUSR1)   # again: one sent before its handler was set is lost
        time.sleep(0.05)


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


def take_request(control: Path | None, line: DelayLine) -> None:
    """SIGUSR1: read what ``lab wan --drop-udp`` asked for, arm it, remove the file."""
    if control is None or not control.exists():
        return
    try:
        port, count = parse_drop_udp(control.read_text()[:64])
    except (OSError, ValueError) as exc:
        print(f"wan: ignored the request in {control}: {exc}", file=sys.stderr, flush=True)
    else:
        line.drop_udp(port, count)
        print(f"wan: dropping the next {count} UDP datagram(s) from the client to port "
              f"{port}", file=sys.stderr, flush=True)
    control.unlink(missing_ok=True)


async def relay(lab_fd: int, client_fd: int, line: DelayLine,
                control: Path | None = None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, take_request, control, line)
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
            asked = line.dropped_on_request
            line.push(direction, packet, now)
            if line.dropped_on_request > asked:
                print(f"wan: dropped a UDP datagram to port {line.drop_port} as asked "
                      f"({line.drop_left} more to drop)", file=sys.stderr, flush=True)
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
    p.add_argument("--drop-udp", default=None, metavar="PORT[:N]",
                   help="drop the first N (1) UDP datagrams the client sends to PORT")
    p.add_argument("--control", type=Path, default=None, metavar="FILE",
                   help="on SIGUSR1, read PORT[:N] from FILE: drop the next N from then")
    p.add_argument("--ready-file", type=Path, default=None)
    args = p.parse_args(argv)
    names = WanNames(args.subnet)
    line = DelayLine(parse_duration(args.rtt), parse_duration(args.jitter),
                     parse_loss(args.loss), args.seed)
    if args.drop_udp:
        line.drop_udp(*parse_drop_udp(args.drop_udp))
    # A request (SIGUSR1) before the loop's handler is set is ignored, not fatal; ask_drop
    # sends it again until the file is taken.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
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
        asyncio.run(relay(fds[0], fds[1], line, args.control))
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
              f"(to lab, to client), {line.dropped_on_request} more on request",
              file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
