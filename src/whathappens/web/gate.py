"""How many journeys may run at once: per client and in total.

A journey holds sockets, a DNS walk and up to ``max_time`` seconds of a worker; a page that
lets anyone start as many as they like is a lever for flooding whatever they point it at.
Pure bookkeeping (single event loop, no locks needed): ``enter`` says why not, or takes a slot.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Gate:
    per_client: int = 2
    total: int = 4
    running: Counter[str] = field(default_factory=Counter)

    def enter(self, client: str) -> str | None:
        """Take a slot for ``client``, or say in plain words why there is none."""
        if self.running[client] >= self.per_client:
            return (f"{self.per_client} journeys from your address are already running; "
                    "wait for one to finish")
        if sum(self.running.values()) >= self.total:
            return f"the server is running {self.total} journeys already; try again shortly"
        self.running[client] += 1
        return None

    def leave(self, client: str) -> None:
        self.running[client] -= 1
        if self.running[client] <= 0:
            del self.running[client]
