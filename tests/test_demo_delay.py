"""Per-role injected delays (--delay ROLE=MS) reach the servers and are measured as such."""

from __future__ import annotations

import time
from pathlib import Path

import dns.message
import dns.query
import pytest

from conftest import random_ports
from whathappens.demo.internet import DemoInternet, DemoInternetError
from whathappens.demo.topology import parse_delay


def test_a_delay_override_slows_that_role_only(tmp_path: Path) -> None:
    for _ in range(5):
        try:
            net = DemoInternet.start(tmp_path, ports=random_ports(), delays=False,
                                     delay_overrides={"root": 80})
            break
        except DemoInternetError as e:
            if not e.address_in_use:
                raise
    else:
        pytest.skip("no free ports")
    with net:
        by_role = {s["role"]: s["delay_ms"] for s in net.info["servers"]}
        assert by_role["root"] == 80
        assert by_role["tld"] == 0
        q = dns.message.make_query("www.example.com", "A")

        def took(address: str) -> float:
            t = time.perf_counter()
            dns.query.udp(q, address, port=net.dns_port, timeout=2)
            return (time.perf_counter() - t) * 1000

        assert took("127.0.53.1") >= 80
        assert took("127.0.53.2") < 80


@pytest.mark.parametrize("text", ["root", "nobody=5", "root=-1", "root=99999"])
def test_bad_delay_is_refused_with_the_roles_named(text: str) -> None:
    with pytest.raises(ValueError, match=r"ROLE=MS|between"):
        parse_delay(text)
