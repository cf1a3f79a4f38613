"""HTTPS to the lab as its clients speak it: to an address, with the site's name.

The lab's certificate names www.example.com, not an address, so a client connects to the
front door's address and sends the site's name in SNI and checks the certificate for it
(curl's ``--resolve``): ``HTTPSTo``. The drills' browser and the load runs of drills and
experiments use it. ``server_timing`` reads the ``Server-Timing`` header the site (``app``,
``db``, ``dbconnect`` …) and the edge add to a response.
"""

from __future__ import annotations

import contextlib
import http.client
import ssl

from whathappens.lab.topology import SITE


class HTTPSTo(http.client.HTTPSConnection):
    """HTTPS to ``address`` with ``host`` in SNI and the certificate checked for ``host``."""

    def __init__(self, address: str, port: int, context: ssl.SSLContext, timeout: float,
                 *, host: str = SITE,
                 source_address: tuple[str, int] | None = None) -> None:
        super().__init__(address, port, timeout=timeout, context=context,
                         source_address=source_address)
        self._tls = context
        self._server_name = host

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self._server_name)


def server_timing(header: str) -> dict[str, float]:
    """``Server-Timing`` entries that give a duration: name → dur in ms (W3C Server Timing:
    ``name;dur=12.3;desc="…"``, entries separated by commas)."""
    out: dict[str, float] = {}
    for entry in header.split(","):
        name, *params = (p.strip() for p in entry.split(";"))
        for param in params:
            key, _, value = param.partition("=")
            if name and key.strip() == "dur":
                with contextlib.suppress(ValueError):
                    out[name] = float(value.strip().strip('"'))
    return out
