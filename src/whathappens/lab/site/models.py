from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import models


class Page(models.Model):
    """A page by slug: the seeds' ``SELECT id, title, content FROM pages WHERE slug='home'``."""

    # Indexed below, by name; not unique=True, which would add a second, unnamed index.
    slug: models.SlugField[str, str] = models.SlugField(max_length=100, db_index=False)
    title: models.CharField[str, str] = models.CharField(max_length=200)
    content: models.TextField[str, str] = models.TextField()
    published: models.BooleanField[bool, bool] = models.BooleanField(default=True)

    class Meta:
        db_table = "pages"
        constraints = [  # noqa: RUF012
            # A B-tree unique index named as in the seeds' EXPLAIN: idx_pages_slug.
            models.UniqueConstraint(fields=["slug"], name="idx_pages_slug"),
        ]

    def __str__(self) -> str:
        return self.slug


class Product(models.Model):
    slug: models.SlugField[str, str] = models.SlugField(max_length=100, unique=True)
    name: models.CharField[str, str] = models.CharField(max_length=200)
    price: models.DecimalField[Decimal, Decimal] = models.DecimalField(max_digits=10,
                                                                      decimal_places=2)
    description: models.TextField[str, str] = models.TextField(blank=True)

    class Meta:
        db_table = "products"

    def __str__(self) -> str:
        return self.slug


class ContactMessage(models.Model):
    """Written by the contact POST (on the primary); the Celery task marks it sent."""

    name: models.CharField[str, str] = models.CharField(max_length=100)
    email: models.EmailField[str, str] = models.EmailField()
    message: models.TextField[str, str] = models.TextField()
    trace_id: models.CharField[str, str] = models.CharField(max_length=32, blank=True)
    task_id: models.CharField[str, str] = models.CharField(max_length=64, blank=True)
    created: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)
    # task runs: first delivery, retries and redeliveries
    attempts: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)
    sent_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        null=True, blank=True)
    worker: models.CharField[str, str] = models.CharField(max_length=100, blank=True)

    class Meta:
        db_table = "contact_messages"

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"
