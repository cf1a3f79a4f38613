"""Session tickets for www.example.com's HTTP/3 in the demo internet, so that a second QUIC
connection can resume the first one's session and send its request as 0-RTT data
(``whathappens https://www.example.com/ --http3 --resume``).

An aioquic server sends a NewSessionTicket only when its connection was given a
``session_ticket_handler`` to keep the ticket, and resumes only when a
``session_ticket_fetcher`` finds it again (aioquic keeps no tickets of its own: the ticket it
sends is an opaque label for the resumption secret the server stored, RFC 8446 §4.6.1).
hypercorn 0.18 builds each server connection (``hypercorn/protocol/quic.py``,
``QuicProtocol.handle``) as ``QuicConnection(configuration=…,
original_destination_connection_id=…)`` with neither, and has no setting for them: behind
hypercorn, every QUIC connection is a full handshake. :func:`keep_tickets` therefore puts a
subclass of aioquic's QuicConnection in that module's namespace, one that hands both
callbacks of one bounded :class:`TicketStore` to every connection. It is done only inside the
demo's server process (demo/serve.py runs there, started by demo/internet.py; nothing else
in that process builds a hypercorn QUIC connection), once, and undone by nothing: the
process ends with the demo. Copying hypercorn's 100-line ``handle`` to add two arguments
would drift from hypercorn with every release; this replaces one name.

Each ticket is used once (popped when fetched): a replayed ClientHello with the same ticket
finds nothing and falls back to a full handshake, so 0-RTT data is not accepted twice
(RFC 8446 §8.1, single-use tickets; RFC 9001 §9.2). What clients send early is meant to be
safe requests such as the demo's GETs (RFC 8470 §2).
"""

from __future__ import annotations

import importlib
import sys
from collections import OrderedDict
from types import ModuleType
from typing import Any

from aioquic.quic.connection import QuicConnection
from aioquic.tls import SessionTicket

# A demo serves a handful of clients: a few hundred tickets is plenty, and the bound keeps a
# client that connects in a loop from growing the server's memory (oldest dropped first).
MAX_TICKETS = 512
# Where hypercorn builds its server connections, and the name it builds them by.
HYPERCORN_MODULE = "hypercorn.protocol.quic"
HYPERCORN_NAME = "QuicConnection"


class TicketStore:
    """The server's session tickets by their label, bounded, each handed out once."""

    def __init__(self, limit: int = MAX_TICKETS) -> None:
        self.limit = max(1, limit)
        self._tickets: OrderedDict[bytes, SessionTicket] = OrderedDict()
        self.issued = 0
        self.resumed = 0

    def __len__(self) -> int:
        return len(self._tickets)

    def add(self, ticket: SessionTicket) -> None:
        """aioquic's ``session_ticket_handler``: a ticket the server just sent a client."""
        self._tickets[ticket.ticket] = ticket
        self._tickets.move_to_end(ticket.ticket)
        self.issued += 1
        while len(self._tickets) > self.limit:
            self._tickets.popitem(last=False)

    def pop(self, label: bytes) -> SessionTicket | None:
        """aioquic's ``session_ticket_fetcher``: the ticket a ClientHello offers, at most once."""
        ticket = self._tickets.pop(label, None)
        if ticket is not None:
            self.resumed += 1
        return ticket


def ticket_keeping(store: TicketStore) -> type[QuicConnection]:
    """A QuicConnection that gives every server connection ``store``'s two callbacks."""

    class TicketKeepingConnection(QuicConnection):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("session_ticket_fetcher", store.pop)
            kwargs.setdefault("session_ticket_handler", store.add)
            super().__init__(**kwargs)

    return TicketKeepingConnection


_installed: TicketStore | None = None


def keep_tickets(limit: int = MAX_TICKETS) -> TicketStore | None:
    """Make hypercorn's QUIC server connections keep tickets in one store (this process
    only; idempotent). None, with a line on stderr, when hypercorn's module has changed
    shape: HTTP/3 then still works, without resumption."""
    global _installed
    if _installed is not None:
        return _installed
    try:
        module: ModuleType | None = importlib.import_module(HYPERCORN_MODULE)
    except ImportError:
        module = None
    if getattr(module, HYPERCORN_NAME, None) is not QuicConnection:
        print("demo: hypercorn's QUIC module has changed; HTTP/3 sessions will not resume",
              file=sys.stderr)
        return None
    store = TicketStore(limit)
    setattr(module, HYPERCORN_NAME, ticket_keeping(store))
    _installed = store
    return store
