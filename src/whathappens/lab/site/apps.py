from __future__ import annotations

from django.apps import AppConfig


class SiteConfig(AppConfig):
    name = "whathappens.lab.site"
    label = "site"
    verbose_name = "whathappens lab site"
    default_auto_field = "django.db.models.BigAutoField"
