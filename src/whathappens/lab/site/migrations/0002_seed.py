"""Seed data: the pages the seeds ask for (home, about) and ten products."""

# ruff: noqa: RUF012
from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import migrations

PAGES = [
    ("home", "Welcome to www.example.com",
     "You reached the home page: served by an app node behind a CDN edge and a load "
     "balancer, read from the PostgreSQL replica with SELECT id, title, content FROM pages "
     "WHERE slug='home'.\n\nEvery hop on the way here logged its part of the trace."),
    ("about", "About this site",
     "A small Django site run by the whathappens lab: pages by slug, products cached in "
     "Redis, sessions in Redis, a contact form handled by a Celery worker."),
]

PRODUCTS = [
    ("mechanical-keyboard", "Mechanical keyboard", "89.00"),
    ("usb-c-cable", "USB-C cable (1 m)", "9.90"),
    ("noise-cancelling-headphones", "Noise-cancelling headphones", "199.00"),
    ("4k-monitor", "27-inch 4K monitor", "329.00"),
    ("ergonomic-mouse", "Ergonomic mouse", "49.50"),
    ("laptop-stand", "Aluminium laptop stand", "39.00"),
    ("webcam", "1080p webcam", "59.00"),
    ("desk-lamp", "LED desk lamp", "29.90"),
    ("ssd-1tb", "1 TB NVMe SSD", "79.00"),
    ("router", "Wi-Fi 6 router", "129.00"),
]


def seed(apps: Any, schema_editor: Any) -> None:
    db = schema_editor.connection.alias
    page = apps.get_model("site", "Page")
    product = apps.get_model("site", "Product")
    for slug, title, content in PAGES:
        page.objects.using(db).update_or_create(
            slug=slug, defaults={"title": title, "content": content, "published": True})
    for slug, name, price in PRODUCTS:
        product.objects.using(db).update_or_create(
            slug=slug, defaults={"name": name, "price": Decimal(price),
                                 "description": f"{name}: a product of the lab's shop."})


def unseed(apps: Any, schema_editor: Any) -> None:
    db = schema_editor.connection.alias
    apps.get_model("site", "Page").objects.using(db).filter(
        slug__in=[p[0] for p in PAGES]).delete()
    apps.get_model("site", "Product").objects.using(db).filter(
        slug__in=[p[0] for p in PRODUCTS]).delete()


class Migration(migrations.Migration):
    dependencies = [("site", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
