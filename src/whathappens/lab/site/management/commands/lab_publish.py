"""``django-admin lab_publish SLUG --title TITLE``: publish a change to a page, as an editor would.

The write goes through the site's own model and router (the primary); the page's readers go
to the replica. Prints one JSON object: the page, its title before and after, and when the
transaction committed (Unix seconds, this machine's clock), so whoever published it can time
how long the old copy is still served.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from whathappens.lab.site.models import Page


class Command(BaseCommand):
    help = "Change a page's title (on the primary) and print when it committed, as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--title", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        slug, title = str(options["slug"]), str(options["title"])[:200]
        with transaction.atomic(using="default"):
            page = Page.objects.using("default").select_for_update().filter(slug=slug).first()
            if page is None:
                raise CommandError(f"no page {slug!r}")
            before = page.title
            page.title = title
            page.save(using="default", update_fields=["title"])
        committed = time.time()
        self.stdout.write(json.dumps({"slug": slug, "before": before, "title": title,
                                      "committed": committed}))
