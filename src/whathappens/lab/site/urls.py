from __future__ import annotations

from django.conf import settings
from django.urls import path

from whathappens.lab.site import views

urlpatterns = [
    path("", views.home, name="home"),
    path("p/<slug:slug>/", views.page, name="page"),
    path("product/<int:pk>/", views.product, name="product"),
    path("contact/", views.contact, name="contact"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
]

if settings.DRILL_VIEWS:
    # LAB ONLY: a slow view and a leaking one, for the app-timeout and app-leak drills; they
    # exist only in a gunicorn a drill started with WHATHAPPENS_DRILL_VIEWS=1.
    from whathappens.lab.site import drill_views

    urlpatterns += [
        path("drill/slow", drill_views.slow, name="drill-slow"),
        path("drill/leak", drill_views.leak, name="drill-leak"),
    ]
