"""Django's PostgreSQL backend, with each new connection timed as a ``connect`` span."""
