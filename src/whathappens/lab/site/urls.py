from __future__ import annotations

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
