"""The WSGI application gunicorn serves: ``whathappens.lab.site.wsgi:application``.

Each worker pays its import costs as it starts (the database backend and psycopg, the views,
the templates, Celery), not in its first request: otherwise the first traced request of
every worker would show some 200 ms of imports as "app" time.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whathappens.lab.site.settings")

application = get_wsgi_application()

TEMPLATES = ("site/page.html", "site/product.html", "site/contact.html")


def warm_up() -> None:
    from django.db import connections
    from django.template.loader import get_template
    from django.urls import get_resolver

    for alias in connections:
        connections[alias].ops  # noqa: B018 (loads the backend: psycopg; no connection yet)
    get_resolver().url_patterns  # noqa: B018 (imports the views)
    for name in TEMPLATES:
        get_template(name)
    import whathappens.lab.site.tasks  # noqa: F401 (Celery, for the contact form)


if os.environ.get("WHATHAPPENS_WARM_UP", "1") != "0":
    warm_up()
