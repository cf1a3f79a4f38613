"""PostgreSQL as Django has it, plus a ``connect`` span for every new connection.

Opening a connection (TCP, startup, auth, Django's session setup) is the cost a pool
(PgBouncer) and persistent connections (``CONN_MAX_AGE``) save; the span shows when a
request paid it.
"""

from __future__ import annotations

import time

from django.db.backends.postgresql.base import DatabaseWrapper as PostgresWrapper

from whathappens.lab.site.tracing import current


class DatabaseWrapper(PostgresWrapper):
    # When this connection opened, and how many requests have used it (tracing.py reports
    # both per request: a connection kept by CONN_MAX_AGE is reused, not opened again).
    lab_opened_ns: int | None = None
    lab_requests: int = 0

    def connect(self) -> None:
        trace = current()
        start = time.time_ns()
        error: str | None = None
        try:
            super().connect()
            self.lab_opened_ns, self.lab_requests = time.time_ns(), 0
        except Exception as e:
            error = f"{type(e).__name__}: {e}".strip()[:500]
            raise
        finally:
            if trace is not None:
                settings = self.settings_dict
                span = {"name": "connect", "start_ns": start, "end_ns": time.time_ns(),
                        "alias": self.alias, "server": f"{settings['HOST']}:{settings['PORT']}",
                        "database": settings["NAME"]}
                if error is not None:
                    span["error"] = error
                trace.add(span)
