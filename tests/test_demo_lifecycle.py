"""Starting and stopping the demo internet: ready line, clean exit, ports given back."""

from __future__ import annotations

import contextlib
import errno
import random
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from whathappens.demo.internet import DemoInternet, DemoInternetError
from whathappens.demo.topology import BAD_TLS_SERVERS, NAME_SERVERS, WEB_ADDRESS


def listening_sockets(net: DemoInternet) -> list[tuple[int, str, int]]:
    """(socket type, address, port) of everything the demo listens on."""
    out = []
    for ns in NAME_SERVERS:
        out += [(socket.SOCK_DGRAM, ns.address, net.dns_port),
                (socket.SOCK_STREAM, ns.address, net.dns_port)]
    if net.resolver:
        out += [(socket.SOCK_DGRAM, net.resolver, net.dns_port),
                (socket.SOCK_STREAM, net.resolver, net.dns_port)]
    out += [(socket.SOCK_STREAM, WEB_ADDRESS, net.https_port),
            (socket.SOCK_STREAM, WEB_ADDRESS, net.http_port)]
    out += [(socket.SOCK_STREAM, bad.address, net.https_port) for bad in BAD_TLS_SERVERS]
    return out


def can_bind(kind: int, address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
            return False
    return True


Factory = Callable[..., DemoInternet]


def test_stop_exits_cleanly_and_gives_every_port_back(fresh_demo_internet: Factory) -> None:
    net = fresh_demo_internet()
    sockets = listening_sockets(net)
    assert net.ready["ready"] is True
    assert net.ready["startup_ms"] < 2000
    assert not any(can_bind(*s) for s in sockets)  # really listening
    net.stop()
    assert net.process.returncode == 0
    assert all(can_bind(*s) for s in sockets)
    log = net.log.read_text()
    assert "Traceback" not in log, log


def test_context_manager_stops(fresh_demo_internet: Factory) -> None:
    with fresh_demo_internet() as net:
        assert net.running
    assert not net.running


def test_second_start_reuses_the_ca(fresh_demo_internet: Factory, tmp_path: Path) -> None:
    with fresh_demo_internet(tmp_path / "state") as first:
        ca = first.ca.read_bytes()
    with fresh_demo_internet(tmp_path / "state") as second:
        assert second.ca.read_bytes() == ca


def test_no_delay_is_described(fresh_demo_internet: Factory) -> None:
    net = fresh_demo_internet(delays=False)
    assert net.delays is False
    assert net.info["delays_injected"] is False
    assert all(server["delay_ms"] == 0 for server in net.info["servers"])


def test_parent_going_away_stops_the_servers(fresh_demo_internet: Factory) -> None:
    net = fresh_demo_internet()
    assert net.process.stdin is not None
    net.process.stdin.close()  # what the kernel does when the parent process dies
    assert net.process.wait(5) == 0


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    dns_port, https_port, http_port = random.sample(range(20000, 60000), 3)
    with contextlib.ExitStack() as stack:
        blocker = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        try:
            blocker.bind((NAME_SERVERS[0].address, dns_port))
        except OSError:
            pytest.skip("random port happened to be taken")
        blocker.listen()
        with pytest.raises(DemoInternetError) as failure:
            DemoInternet.start(tmp_path, ports=(dns_port, https_port, http_port), delays=False)
    assert failure.value.address_in_use
    assert f"{NAME_SERVERS[0].address}:{dns_port}" in str(failure.value)
    assert "address already in use" in str(failure.value)
