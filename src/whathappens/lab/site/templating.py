"""Django's template engine, with every render recorded as a span of the request.

``render(request, "site/page.html", …)`` in a view loads the template and renders it; the
span covers the render (context processors, the template's own tags such as ``{% static %}``,
and any query a lazy queryset runs while it is drawn, which then shows as a SQL span inside).
Loading is not in it: the cached loader (on whenever DEBUG is off) parses a template once per
worker process. https://docs.djangoproject.com/en/5.0/topics/templates/#django.template.backends.django.DjangoTemplates
"""

from __future__ import annotations

import time
from typing import Any

from django.template.backends.django import DjangoTemplates, Template

from whathappens.lab.site.tracing import current


class TracedTemplate(Template):
    def render(self, context: Any = None, request: Any = None) -> Any:
        trace = current()
        start = time.time_ns()
        error: str | None = None
        try:
            return super().render(context, request)
        except Exception as e:
            error = f"{type(e).__name__}: {e}".strip()[:300]
            raise
        finally:
            if trace is not None:
                span: dict[str, Any] = {"name": "template", "start_ns": start,
                                        "end_ns": time.time_ns(),
                                        "template": str(self.origin.template_name)}
                if error is not None:
                    span["error"] = error
                trace.add(span)


class TracedDjangoTemplates(DjangoTemplates):
    def from_string(self, template_code: str) -> Any:
        return TracedTemplate(self.engine.from_string(template_code), self)

    def get_template(self, template_name: str) -> Any:
        found = super().get_template(template_name)
        return TracedTemplate(found.template, self)
