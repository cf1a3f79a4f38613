"""Reads go to the replica, writes to the primary: the seeds' database router."""

from __future__ import annotations

from typing import Any

from django.db.models import Model


class PrimaryReplicaRouter:
    """``replica`` answers reads, ``default`` takes writes and is the only one migrated.

    In the single profile both aliases reach the one primary, so nothing changes but the
    alias each span names.
    """

    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        return "replica"

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        return "default"

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool:
        return True          # one database, two ways in

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None,
                      **hints: Any) -> bool:
        return db == "default"
