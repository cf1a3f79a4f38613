"""Django's line of the span log, as server spans: the request, its phases, its queries.

One line per request (``site/tracing.py``) becomes the Django span with, beneath it: the
middleware's request half, the view (and inside it every SQL query, Redis call, new database
connection, published task and template render that happened while it ran), the middleware's
response half. Each SQL span is labelled with where its connection really went, read from
the running lab's topology (the address the site connected to is in the span), never a fixed
string: the single profile has no PgBouncer and no replica.

Typed facts come out of the line here: the main query step by step (``X-Explain: 1``,
``site/explain.py``) and the connection of each hop the site opened or reused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from whathappens.contract.facts import DbExplainFacts, DbPlanFacts, HopConnectionFacts
from whathappens.lab.logs import ServerSpan

if TYPE_CHECKING:
    from whathappens.lab.topology import TierSpec, Topology

# Who a span of the site stands for, by the span's name (site/tracing.py); "sql" and
# "connect" are named from the topology (db_actor).
INNER_ACTORS = {"redis": "Redis", "queue": "Celery task published (Redis broker)",
                "middleware": "Django middleware ({phase} half)", "view": "Django view {view}",
                "template": "Django template {template}",
                "explain": "X-Explain's extra statements (not part of a normal request)"}
# Spans that happen while the view runs go under the view's span.
IN_VIEW = ("sql", "redis", "connect", "queue", "template", "explain")
PLAN_TREE_MAX = 12
TEXT_MAX = 300


def tier_at(topo: Topology, server: object) -> TierSpec | None:
    """The tier listening at ``host:port`` in the lab's topology."""
    for spec in topo.tiers:
        if spec.port is not None and f"{topo.address(spec.host)}:{spec.port}" == server:
            return spec
    return None


def db_actor(topo: Topology, server: object, database: object, alias: object) -> str:
    """Where a query of the site went, from the topology: through PgBouncer to the primary
    or the replica, or straight to a PostgreSQL."""
    spec = tier_at(topo, server) if server else routed(topo, alias)
    if spec is None:
        return f"PostgreSQL at {server} ({alias} alias)"
    if spec.kind == "pgbouncer":
        reads = str(database).endswith("_ro") if database else alias == "replica"
        role = "replica" if reads else "primary"
        return f"PostgreSQL {role} ({spec.options.get(role)}) via PgBouncer ({spec.name})"
    role = "replica" if spec.kind == "postgres-replica" else "primary"
    return f"PostgreSQL {role} ({spec.name}), direct"


def routed(topo: Topology, alias: object) -> TierSpec | None:
    """Where an alias goes when the span does not say (a log from before it did): as
    ``gunicorn.site_env`` routes it, through the pool if the lab has one, else straight to
    the primary (both aliases: the single profile has no replica)."""
    for kind in ("pgbouncer", "postgres-primary"):
        found = topo.of_kind(kind)
        if found:
            return found[0]
    return None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return str(value)[:TEXT_MAX] if isinstance(value, str) and value else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def plan_facts(raw: Any) -> DbPlanFacts | None:
    if not isinstance(raw, dict):
        return None
    tree = raw.get("tree")
    return DbPlanFacts(
        node=_str(raw.get("node")), relation=_str(raw.get("relation")),
        index=_str(raw.get("index")), startup_cost=_num(raw.get("startup_cost")),
        total_cost=_num(raw.get("total_cost")), plan_rows=_int(raw.get("plan_rows")),
        actual_rows=_int(raw.get("actual_rows")), planning_ms=_num(raw.get("planning_ms")),
        execution_ms=_num(raw.get("execution_ms")), shared_hit=_int(raw.get("shared_hit")),
        shared_read=_int(raw.get("shared_read")),
        tree=[str(t)[:TEXT_MAX] for t in tree[:PLAN_TREE_MAX]] if isinstance(tree, list)
        else [])


def explain_facts(raw: dict[str, Any]) -> DbExplainFacts:
    """The ``explain`` object of a SQL span (site/explain.py), read defensively: the log is
    another program's output."""
    btree, stats, errors = (_dict(raw.get(k)) for k in ("btree", "statements", "errors"))
    rejected_by = raw.get("rejected_by")
    return DbExplainFacts(
        chosen=plan_facts(raw), rejected=plan_facts(raw.get("rejected")),
        rejected_by=[str(s) for s in rejected_by][:5] if isinstance(rejected_by, list) else [],
        btree_index=_str(btree.get("index")), btree_level=_int(btree.get("level")),
        btree_depth=_int(btree.get("depth")),
        stmt_queryid=_str(stats.get("queryid")), stmt_calls=_int(stats.get("calls")),
        stmt_mean_ms=_num(stats.get("mean_ms")), stmt_rows=_int(stats.get("rows")),
        errors={str(k)[:40]: str(v)[:TEXT_MAX] for k, v in list(errors.items())[:5]})


def connection_facts(items: Any, tier: str, topo: Topology) -> list[HopConnectionFacts]:
    """The site's connections of this request (the line's ``connections``): per database
    alias and Redis, new (with Django's connect time) or kept from an earlier request."""
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        target = str(item.get("hop", "")).removeprefix("app → ").split(" ")[0]
        spec = tier_at(topo, target)
        alias = item.get("alias")
        evidence = ("redis-py's pool counter (a connection made for the first command, or "
                    "one kept by the worker's pool)" if alias == "redis" else
                    f"Django's connection for alias '{alias}': opened in this request (its "
                    f"connect span) or kept by CONN_MAX_AGE={item.get('conn_max_age_s')} s")
        out.append(HopConnectionFacts(
            hop=f"{tier} → {spec.name if spec is not None else target}",
            new=item.get("new") if isinstance(item.get("new"), bool) else None,
            connect_ms=_num(item.get("connect_ms")), requests=_int(item.get("requests")),
            age_ms=_num(item.get("age_ms")), evidence=evidence))
    return out


def _inner(s: dict[str, Any], tier: str, traceparent: str, topo: Topology,
           view_name: object) -> ServerSpan:
    kind = str(s.get("name", "span"))
    if kind in ("sql", "connect"):
        actor = db_actor(topo, s.get("server"), s.get("database"), s.get("alias"))
        if kind == "connect":
            actor = f"new database connection to {actor}"
    elif kind in INNER_ACTORS:
        actor = INNER_ACTORS[kind].format_map({"phase": s.get("phase"), "view": view_name,
                                               "template": s.get("template")})
    else:
        actor = kind
    attrs = {k: v for k, v in s.items() if k not in ("start_ns", "end_ns", "name")}
    if kind == "view" and view_name:
        attrs["view"] = view_name  # the explanation names it (explain/texts.py)
    span = ServerSpan(kind, tier, actor, int(s["start_ns"]), int(s["end_ns"]), traceparent,
                      attrs, span_id=str(s.get("span_id", "")))
    raw = attrs.get("explain")
    if isinstance(raw, dict):
        span.db_explain = explain_facts(raw)
        # the chosen plan's tree stays the span's "explain" text, as for the other queries
        attrs["explain"] = "\n".join(span.db_explain.chosen.tree) \
            if span.db_explain.chosen is not None else ""
    return span


def django_span(item: dict[str, Any], tier: str, node: str, trace_id: str,
                topo: Topology) -> ServerSpan:
    """One request's line of the site's span log: Django's span, with its phases, and a
    span per SQL query, Redis call, new connection, template render and published task."""
    traceparent = f"00-{trace_id}-{item.get('parent_id')}-01"
    top = ServerSpan("django", tier, f"{node} gunicorn → Django", int(item["start_ns"]),
                     int(item["end_ns"]), traceparent,
                     {k: item.get(k) for k in ("view", "status", "method", "path", "pid")},
                     span_id=str(item.get("span_id") or ""))
    top.connections = connection_facts(item.get("connections"), tier, topo)
    inner = [_inner(s, tier, traceparent, topo, item.get("view")) for s in item.get("spans") or []
             if isinstance(s, dict) and "start_ns" in s and "end_ns" in s]
    view = next((s for s in inner if s.kind == "view"), None)
    for span in sorted(inner, key=lambda s: s.start_wall_ns):
        if span is view:
            continue
        if view is not None and span.kind in IN_VIEW and \
                view.start_wall_ns <= span.start_wall_ns <= view.end_wall_ns:
            view.children.append(span)
        else:
            top.children.append(span)
    if view is not None:
        top.children.append(view)
        top.children.sort(key=lambda s: s.start_wall_ns)
    return top
