"""Settings for the lab's Django site, all from environment variables the lab's tiers set.

=========================== ========================================================== ==========
variable                    meaning                                                    default
=========================== ========================================================== ==========
WHATHAPPENS_NODE            the app node's name, logged as every span's ``tier``       ``local``
WHATHAPPENS_DB_HOST, _PORT  where writes go (``default``: PgBouncer, or the primary)    127.0.0.1,
                                                                                       5432
WHATHAPPENS_DB_NAME         database name there (PgBouncer's ``site``)                 ``site``
WHATHAPPENS_DB_REPLICA_HOST where reads go (``replica``), also ``_PORT`` and ``_NAME``  as default
                            (PgBouncer's ``site_ro``)
WHATHAPPENS_DB_USER         the role for both                                          ``site``
WHATHAPPENS_DB_CONN_MAX_AGE seconds a connection is kept (0: a new one per request)    60
WHATHAPPENS_REDIS_URL       cache and sessions                                         see below
WHATHAPPENS_BROKER_URL      Celery's broker                                            db 1 there
WHATHAPPENS_RESULT_URL      Celery's results                                           db 2 there
WHATHAPPENS_STATIC_ROOT     where collectstatic writes (nginx serves /static/ there)   ./static
WHATHAPPENS_SPAN_LOG        the JSON span log (one line per request or task)           stderr
WHATHAPPENS_SECRET_KEY      Django's secret key (the same on every app node)           a lab one
WHATHAPPENS_PRODUCT_TTL     seconds a product stays in the Redis cache                 30
WHATHAPPENS_THINK_MS        LAB ONLY: milliseconds every request but /healthz sleeps   0
                            (the slow node of ``lab experiment lb-algorithms``)
WHATHAPPENS_DRILL_VIEWS     LAB ONLY: ``1`` adds the drills' views ``/drill/slow`` and  off
                            ``/drill/leak`` (only a gunicorn a drill restarted has it)
WHATHAPPENS_SITE_VERSION    the site's version, sent as ``X-Site-Version`` and shown    ``v1``
                            in the footer (``lab deploy`` starts gunicorns with ``v2``)
=========================== ========================================================== ==========

The Redis URL defaults to ``redis://127.0.0.1:6379/0``; ``WHATHAPPENS_CSRF_TRUSTED_ORIGINS``
(comma-separated, e.g. ``https://www.example.com``) is empty unless set;
``DJANGO_SETTINGS_MODULE`` is ``whathappens.lab.site.settings``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.backoff import NoBackoff
from redis.retry import Retry


def _env(name: str, default: str) -> str:
    return os.environ.get(f"WHATHAPPENS_{name}") or default


def _redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


NODE = _env("NODE", "local")
SPAN_LOG = os.environ.get("WHATHAPPENS_SPAN_LOG", "")
PRODUCT_TTL = int(_env("PRODUCT_TTL", "30"))
THINK_MS = float(_env("THINK_MS", "0"))
DRILL_VIEWS = _env("DRILL_VIEWS", "0") == "1"
SITE_VERSION = _env("SITE_VERSION", "v1")

SECRET_KEY = _env("SECRET_KEY", "lab-only-not-secret-" + "x" * 40)
DEBUG = False
ALLOWED_HOSTS = ["*"]
# TLS ends at the edge; the proxies in front pass on X-Forwarded-Proto, so a form posted over
# https passes CSRF's origin check (which compares the scheme too).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = [o for o in _env("CSRF_TRUSTED_ORIGINS", "").split(",") if o]
# Cookies as a production site sets them (RFC 6265bis): Secure, since visitors reach the site
# over https at the edge (the proxies behind it speak http, cookies only ride along); the
# session cookie HttpOnly (Django's default); both SameSite=Lax.
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
ROOT_URLCONF = "whathappens.lab.site.urls"
WSGI_APPLICATION = "whathappens.lab.site.wsgi.application"
USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "whathappens.lab.site.apps.SiteConfig",
]

MIDDLEWARE = [
    "whathappens.lab.site.tracing.TracingMiddleware",   # outermost: times everything below
    "whathappens.lab.site.version.SiteVersionMiddleware",   # X-Site-Version (lab deploy)
    # ETag from the body, and 304 to a matching If-None-Match (RFC 9110 §13.1.2); before
    # anything that changes the body. A no-store response gets none.
    "django.middleware.http.ConditionalGetMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "whathappens.lab.site.tracing.ViewBoundary",        # innermost: where the view starts
]

TEMPLATES = [
    {
        # Django's own template engine; every render is a span (templating.py).
        "BACKEND": "whathappens.lab.site.templating.TracedDjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.csrf",
                                           "whathappens.lab.site.context.node"]},
    },
]


def _database(prefix: str, default_name: str) -> dict[str, Any]:
    return {
        "ENGINE": "whathappens.lab.site.db",    # postgresql + a span per connect
        "NAME": _env(f"{prefix}_NAME", default_name),
        "USER": _env("DB_USER", "site"),
        "HOST": _env(f"{prefix}_HOST", _env("DB_HOST", "127.0.0.1")),
        "PORT": _env(f"{prefix}_PORT", _env("DB_PORT", "5432")),
        "CONN_MAX_AGE": int(_env("DB_CONN_MAX_AGE", "60")),
        "CONN_HEALTH_CHECKS": True,          # a drill restarts the DB: reconnect, not 500
        # PgBouncer pools by transaction: no server-side cursors; psycopg binds client-side.
        "DISABLE_SERVER_SIDE_CURSORS": True,
        "OPTIONS": {"connect_timeout": 3, "application_name": f"site@{NODE}"},
    }


DATABASES = {
    "default": _database("DB", "site"),
    "replica": _database("DB_REPLICA", _env("DB_NAME", "site")),
}
DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["whathappens.lab.site.router.PrimaryReplicaRouter"]

REDIS_URL = _env("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        # Django's RedisCache, with a client whose every command is a span (cache.py).
        "BACKEND": "whathappens.lab.site.cache.TracedRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "site",
        "OPTIONS": {
            # Redis down must cost milliseconds, not redis-py's ten retries with backoff.
            "socket_connect_timeout": 0.5,
            "socket_timeout": 0.5,
            "retry": Retry(NoBackoff(), 0),
        },
    },
}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
SESSION_CACHE_ALIAS = "default"

STATIC_URL = "/static/"
STATIC_ROOT = Path(_env("STATIC_ROOT", "static")).resolve()
# Static files are served by the app node's nginx from STATIC_ROOT (Django never sees them)
# and cached by the edge. collectstatic writes each under a name holding a hash of its
# content (site.3d2b1c0a9e8f.css) and {% static %} links that name, so a changed file gets a
# new URL: nginx can then say "immutable" for a day without a browser keeping a stale copy.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}

# Celery (celery_app.py reads the CELERY_ names).
CELERY_BROKER_URL = _env("BROKER_URL", _redis_db(REDIS_URL, 1))
CELERY_RESULT_BACKEND = _env("RESULT_URL", _redis_db(REDIS_URL, 2))
CELERY_RESULT_EXPIRES = 3600
# Nothing reads task results back (the task records its work in contact_messages), so the
# web side never subscribes to them: with Redis down, a publish then fails within its own
# bounded retry policy instead of hanging in the result backend's client retries.
CELERY_TASK_IGNORE_RESULT = True
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 1
CELERY_REDIS_SOCKET_TIMEOUT = 2
CELERY_TASK_ACKS_LATE = True                 # acknowledged after it ran, not when received
CELERY_TASK_REJECT_ON_WORKER_LOST = True     # a killed worker's task goes back to the queue
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Unacknowledged tasks come back after this long: the "worker killed mid-task" drill.
    "visibility_timeout": 30,
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0,
                                    "interval_step": 0.2, "interval_max": 0.5}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    # With DEBUG off Django would send a 500's traceback nowhere: gunicorn's log gets it.
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
}
