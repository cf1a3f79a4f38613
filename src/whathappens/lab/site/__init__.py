"""The lab's Django site: the app the seeds put behind gunicorn.

Pages by slug (``SELECT … FROM pages WHERE slug='home'`` with a real index), product details
cached in Redis with a TTL, sessions in Redis, a contact form whose POST enqueues a Celery
task, and a router sending reads to the replica and writes to the primary. Every request is
traced (``tracing.py``): one JSON line per request with a span for each SQL query and Redis
call, and a ``Server-Timing`` header. Configured from environment variables the lab's tiers
set (``settings.py`` lists them).
"""
