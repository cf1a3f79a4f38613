from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def node(request: HttpRequest) -> dict[str, str]:
    """Which app node rendered the page (the footer says so)."""
    return {"node": settings.NODE, "site_version": settings.SITE_VERSION}
