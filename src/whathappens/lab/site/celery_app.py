"""The Celery app: broker and results in Redis (db 1 and 2), configured from Django's settings.

``celery -A whathappens.lab.site.celery_app worker``; the worker sets Django up itself
(Celery's Django fix-up, from ``DJANGO_SETTINGS_MODULE``).
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whathappens.lab.site.settings")

app = Celery("whathappens_lab_site", include=["whathappens.lab.site.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")
