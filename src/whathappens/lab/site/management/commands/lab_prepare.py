"""``django-admin lab_prepare``: migrate ``default`` and collect static files, once at a time.

Every app node runs it before it starts: a file lock makes concurrent runs wait for one
another, and both steps are idempotent, so the second finds nothing to do.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Apply migrations on the primary and collect static files (idempotent, locked)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--lock", default="", help="lock file (default: beside STATIC_ROOT)")
        parser.add_argument("--no-static", action="store_true", help="migrate only")

    def handle(self, *args: Any, **options: Any) -> None:
        static_root = Path(settings.STATIC_ROOT)
        lock = Path(options["lock"] or static_root.parent / ".lab_prepare.lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            call_command("migrate", database="default", interactive=False,
                         verbosity=options["verbosity"])
            if not options["no_static"]:
                call_command("collectstatic", interactive=False, verbosity=options["verbosity"])
        finally:
            os.close(fd)
