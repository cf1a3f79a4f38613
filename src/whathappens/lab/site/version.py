"""The site's version, as the running gunicorn was started with it (``WHATHAPPENS_SITE_VERSION``).

A deploy (``whathappens lab deploy``) starts a new gunicorn with another version; every
response then says which version answered it in ``X-Site-Version``, and the page's footer
too, so a client (and the load runs of the deploys) can count the versions over time.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "X-Site-Version"


class SiteVersionMiddleware:
    """Adds ``X-Site-Version`` to every response Django makes (health checks included)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response[HEADER] = settings.SITE_VERSION
        return response
