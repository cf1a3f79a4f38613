from __future__ import annotations

import time
import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods
from redis.exceptions import RedisError

from whathappens.lab.site.models import ContactMessage, Page, Product
from whathappens.lab.site.tracing import current

TASK_DELAY_MAX = 10.0     # seconds; below the broker's visibility timeout (30 s)
DB_SLEEP_MAX = 2.0        # seconds; X-Lab-DB-Sleep (the db-pool drill)

# Caching (RFC 9111). A page is the same for every visitor: a browser may keep it a minute,
# the CDN edge 10 s (s-maxage, the edge's own lifetime before), and serve it stale for 30 s
# while it checks again (RFC 5861); ConditionalGetMiddleware gives it an ETag and answers a
# matching If-None-Match with 304. What depends on the visitor (the contact form with its
# CSRF cookie and session) or on the moment (health) is private and never stored.
PAGE_CACHE = cache_control(public=True, max_age=60, s_maxage=10, stale_while_revalidate=30)
DYNAMIC_CACHE = cache_control(private=True, no_store=True)


@require_GET
@PAGE_CACHE
def home(request: HttpRequest) -> HttpResponse:
    return _page(request, "home")


@require_GET
@PAGE_CACHE
def page(request: HttpRequest, slug: str) -> HttpResponse:
    return _page(request, slug)


def _page(request: HttpRequest, slug: str) -> HttpResponse:
    _lab_db_sleep(request)
    # SELECT id, title, content FROM pages WHERE slug = … (on the replica, by the router)
    found = get_object_or_404(Page.objects.only("id", "title", "content"),
                              slug=slug, published=True)
    products: list[Product] = []
    if slug == "home":
        products = list(Product.objects.only("id", "name", "price").order_by("id")[:10])
    return render(request, "site/page.html", {"page": found, "products": products})


def _lab_db_sleep(request: HttpRequest) -> None:
    """LAB ONLY: ``X-Lab-DB-Sleep: SECONDS`` (at most ``DB_SLEEP_MAX``) runs ``SELECT
    pg_sleep(SECONDS)`` on the replica before the page's query: a slow query that holds one
    of PgBouncer's pooled server connections that long (the db-pool drill)."""
    try:
        seconds = min(float(request.headers.get("X-Lab-DB-Sleep", "0")), DB_SLEEP_MAX)
    except ValueError:
        return
    if seconds > 0:
        with connections["replica"].cursor() as cur:
            cur.execute("SELECT pg_sleep(%s)", [seconds])


@require_GET
@PAGE_CACHE
def product(request: HttpRequest, pk: int) -> HttpResponse:
    """A product from Redis if cached (TTL ``PRODUCT_TTL``), else from the replica."""
    key = f"product:{pk}"
    status = "miss"
    data: dict[str, Any] | None
    try:
        data = cache.get(key)
    except RedisError:          # Redis down: serve from the database, slower
        data, status = None, "bypass"
    if data is not None:
        status = "hit"
    else:
        item = get_object_or_404(Product, pk=pk)
        data = {"id": item.pk, "slug": item.slug, "name": item.name,
                "price": str(item.price), "description": item.description}
        if status == "miss":
            try:
                cache.set(key, data, settings.PRODUCT_TTL)
            except RedisError:
                status = "bypass"
    response = render(request, "site/product.html", {"product": data})
    response["X-Cache-Product"] = status
    return response


class ContactForm(forms.Form):
    name = forms.CharField(max_length=100)
    email = forms.EmailField()
    message = forms.CharField(max_length=5000)


@require_http_methods(["GET", "POST"])
@DYNAMIC_CACHE
@ensure_csrf_cookie
def contact(request: HttpRequest) -> HttpResponse:
    """GET: the form (and the CSRF cookie). POST: store the message, queue its sending, 202."""
    if request.method == "GET":
        initial = {"name": request.session.get("contact_name", "")}
        return render(request, "site/contact.html", {"form": ContactForm(initial=initial)})
    form = ContactForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    from whathappens.lab.site.tasks import send_contact_message  # loads Celery on first use

    trace = current()
    task_id = str(uuid.uuid4())
    try:                        # the write: on the primary (``default``), by the router
        msg = ContactMessage.objects.create(
            name=form.cleaned_data["name"], email=form.cleaned_data["email"],
            message=form.cleaned_data["message"], task_id=task_id,
            trace_id=trace.trace_id if trace else "")
    except DatabaseError as e:
        return JsonResponse({"error": "the database primary is unavailable: writes fail",
                             "detail": str(e).strip()[:300]}, status=503)
    headers: dict[str, Any] = {"enqueued_ns": time.time_ns()}
    if trace is not None:
        headers["traceparent"] = trace.traceparent
    start = time.time_ns()
    try:
        send_contact_message.apply_async(args=(msg.pk,), kwargs={"delay": _task_delay(request)},
                                         task_id=task_id, headers=headers)
        error = None
    except Exception as e:      # broker unreachable: kombu/redis raise their own kinds
        error = f"{type(e).__name__}: {e}".strip()[:300]
    if trace is not None:
        span: dict[str, Any] = {"name": "queue", "start_ns": start, "end_ns": time.time_ns(),
                                "alias": "broker", "command": "publish send_contact_message",
                                "task_id": task_id}
        if error:
            span["error"] = error
        trace.add(span)
    if error:
        return JsonResponse({"error": "the task queue is unavailable", "detail": error,
                             "message_id": msg.pk}, status=503)
    request.session["contact_name"] = form.cleaned_data["name"]
    return JsonResponse({"task_id": task_id, "message_id": msg.pk,
                         "trace_id": trace.trace_id if trace else None}, status=202)


def _task_delay(request: HttpRequest) -> float:
    """``X-Lab-Task-Delay: SECONDS`` makes the task take that long (the kill-mid-task drill)."""
    try:
        return max(0.0, min(float(request.headers.get("X-Lab-Task-Delay", "0")),
                            TASK_DELAY_MAX))
    except ValueError:
        return 0.0


@DYNAMIC_CACHE
def healthz(request: HttpRequest) -> HttpResponse:
    """The process answers. No database, no Redis: HAProxy asks every 500 ms."""
    return HttpResponse("ok", content_type="text/plain")


@DYNAMIC_CACHE
def readyz(request: HttpRequest) -> HttpResponse:
    """Both database aliases and Redis answer."""
    checks: dict[str, str] = {}
    for alias in ("default", "replica"):
        try:
            with connections[alias].cursor() as cur:
                cur.execute("SELECT 1")
            checks[alias] = "ok"
        except DatabaseError as e:
            checks[alias] = f"error: {str(e).strip()[:200]}"
    try:
        cache.get("readyz")
        checks["redis"] = "ok"
    except RedisError as e:
        checks["redis"] = f"error: {e}"
    ok = all(v == "ok" for v in checks.values())
    return JsonResponse(checks, status=200 if ok else 503)
