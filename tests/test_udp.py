"""net/udp.py: the kernel's receive stamp placed on the journey's clock, with real sockets on
127.0.0.1: a datagram that arrived while the loop was busy keeps its arrival time."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest

from whathappens.clock import Clock
from whathappens.net.udp import SO_TIMESTAMPNS, UdpSocket, arrival_ns, keep_stamping


def test_the_stamp_is_moved_onto_the_journey_clock() -> None:
    clock = Clock(origin_ns=1_000, wall_origin_ns=0)
    offset = 5_000_000_000           # realtime − monotonic
    # 40 ms after t0, in realtime: 5 s + 40.001 ms
    cmsg = [(socket.SOL_SOCKET, SO_TIMESTAMPNS or 35, struct.pack("@ll", 5, 40_001_000))]
    assert arrival_ns(cmsg, 45_000_000, clock, offset) == 40_000_000
    # No stamp, or one after the read (not possible): the read time stands in.
    assert arrival_ns([], 45_000_000, clock, offset) == 45_000_000
    assert arrival_ns(cmsg, 39_000_000, clock, offset) == 39_000_000


@pytest.mark.skipif(SO_TIMESTAMPNS is None, reason="SO_TIMESTAMPNS is Linux's")
def test_a_datagram_read_late_keeps_the_time_it_arrived() -> None:
    # As the journey's setup step does: the kernel turns stamping on from a work queue, so a
    # datagram landing right after the first stamping socket opened could have none.
    assert keep_stamping()
    time.sleep(0.02)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    got: list[tuple[bytes, int, int]] = []
    clock = Clock()

    async def main() -> int:
        udp = UdpSocket("127.0.0.1", peer.getsockname()[1], clock,
                        lambda d, a, r: got.append((d, a, r)), lambda e: None)
        udp.send(b"ping")
        _, addr = peer.recvfrom(100)
        sent = clock.now()
        peer.sendto(b"pong", addr)
        time.sleep(0.05)              # the loop is busy: the datagram waits in the socket
        await asyncio.sleep(0.01)
        udp.close()
        return sent

    sent = asyncio.run(main())
    peer.close()
    [(data, arrived, read)] = got
    assert data == b"pong"
    assert sent <= arrived < sent + 5_000_000            # within 5 ms of its sending
    assert read - arrived >= 45_000_000                  # read ≥ 45 ms later
