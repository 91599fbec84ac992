"""Access logs and metrics in the proxy's Caddy config. Pure: no Docker, no network.

:func:`apply` adds to a config :mod:`.caddy_config` built (one host or a swarm edge):

* **access logs** (on unless switched off): Caddy writes one JSON line per request to its
  stdout (the engine keeps it: ``docker logs``, rotated by the proxy container's log options);
  every luma route first sets its project and service (``vars``) and appends them, the upstream
  it dialled and a request id to the line (``log_append``); the request id
  (``{http.request.uuid}``) is also sent to the container and back to the client as
  ``X-Request-Id`` (a client's own ``X-Request-Id`` is replaced: it is not trusted).
* **metrics** (off unless an address is given): Caddy's own Prometheus metrics
  (``metrics {per_host}``: requests, durations, sizes, in-flight by host; upstream health;
  config loads) on a server of their own at ``/metrics``, and the luma series at
  ``/luma/metrics``: ``luma_route_info{host,project,service} 1`` (join on ``host``),
  ``luma_upstream_info{upstream,project,service} 1`` (join on ``upstream``) and
  ``luma_certificate_expiry_timestamp_seconds{host}``, written into the config at each sync
  (a route change is a config load anyway), so Caddy serves them with no luma-compose process.
  Only the host reaches it: requests from any address outside the engine's default bridge
  (where published ports arrive from) and loopback get 403, so a project container, which
  reaches the proxy on its project's ingress network, never reads it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from . import caddy_config

#: The logger name of the access log (Caddy names it ``http.log.access.<this>``).
ACCESS_LOGGER = "luma_access"
ACCESS_LOG_NAME = f"http.log.access.{ACCESS_LOGGER}"
#: The server that serves the metrics, on its own listener.
METRICS_SERVER = "luma_metrics"
METRICS_PORT = 9180
METRICS_PATH = "/metrics"
LUMA_METRICS_PATH = "/luma/metrics"
REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID = "{http.request.uuid}"
#: Fields each luma route appends to its access log line (key -> Caddy placeholder).
LOG_FIELDS = {
    "luma_project": "{http.vars.luma_project}",
    "luma_service": "{http.vars.luma_service}",
    "luma_upstream": "{http.reverse_proxy.upstream.hostport}",
    "request_id": REQUEST_ID,
}
LOOPBACK_RANGES = ("127.0.0.0/8", "::1/128")
#: JSON, without the request's and the response's headers (Caddy logs them by default): a line is a
#: third as long, and no header an app or a client sets (API keys, tokens) is kept in the log.
ACCESS_ENCODER = {"format": "filter", "wrap": {"format": "json"},
                  "fields": {"request>headers": {"filter": "delete"}, "resp_headers": {"filter": "delete"},
                             "user_id": {"filter": "delete"}}}


def apply(config: dict[str, Any], routes: Iterable[Any], *, access_log: bool = True, metrics: bool = False,
          allow: Iterable[str] = (), cert_expiry: Mapping[str, float] | None = None,
          upstream: str = LOG_FIELDS["luma_upstream"]) -> dict[str, Any]:
    """``config`` with access logs and/or metrics added (a copy; ``config`` is left as it is).

    ``routes``: the route table's routes (``project``, ``service``, ``hosts``, ``upstreams``);
    ``allow``: the addresses that may read the metrics besides loopback (the gateways of the
    proxy's networks); ``cert_expiry``: host -> certificate expiry (Unix time); ``upstream``: the
    placeholder the line's upstream is (a swarm edge: the header its gateway answers with)."""
    if not access_log and not metrics:
        return config
    out = copy.deepcopy(config)
    servers = out["apps"]["http"]["servers"]
    main = servers[caddy_config.SERVER_NAME]
    if access_log:
        _access_log(out, servers, main, upstream)
    if metrics:
        add_metrics(out, routes, allow, cert_expiry or {})
    return out


def add_metrics(config: dict[str, Any], routes: Iterable[Any], allow: Iterable[str], cert_expiry: Mapping[str, float],
                deny: Iterable[str] = (), dial: Callable[[str], str] = caddy_config.dial_address) -> None:
    """Caddy's metrics (per host) and the metrics listener, in ``config`` (one host's or a swarm edge's):
    ``deny`` is refused even inside ``allow``; ``dial`` turns a route's upstream into Caddy's label."""
    config["apps"]["http"]["metrics"] = {"per_host": True}
    config["apps"]["http"]["servers"][METRICS_SERVER] = metrics_server(
        luma_metrics(list(routes), cert_expiry, dial), allow, deny)


def _access_log(config: dict[str, Any], servers: dict[str, Any], main: dict[str, Any], upstream: str) -> None:
    """One JSON line per request on stdout, only the access log (Caddy's own log stays on stderr)."""
    logging = config.setdefault("logging", {}).setdefault("logs", {})
    default = logging["default"] = dict(logging.get("default") or {})  # keeps its level (a swarm edge's WARN)
    default["exclude"] = sorted({*default.get("exclude", []), ACCESS_LOG_NAME})
    logging[ACCESS_LOGGER] = {"writer": {"output": "stdout"}, "encoder": ACCESS_ENCODER, "include": [ACCESS_LOG_NAME]}
    for name, server in servers.items():
        if name != METRICS_SERVER:
            server["logs"] = {"default_logger_name": ACCESS_LOGGER}
    for route in main.get("routes", []):
        rid = route.get("@id", "")
        if isinstance(rid, str) and rid.startswith(caddy_config.ROUTE_ID_PREFIX):
            # project/service, then an entry's suffix: #wildcard, #path/... (one host), /* (a swarm edge)
            project, _, service = rid[len(caddy_config.ROUTE_ID_PREFIX):].partition("#")[0].partition("/")
            service = service.partition("/")[0]
            for h in handlers([route]):
                _with_request_id(h)
            route["handle"] = route_handlers(project, service, upstream) + route["handle"]


def route_handlers(project: str, service: str, upstream: str = LOG_FIELDS["luma_upstream"]) -> list[dict[str, Any]]:
    """What a route runs before its proxy: its names as vars, and the log fields."""
    names = {"handler": "vars", "luma_project": caddy_config.safe(project),
             "luma_service": caddy_config.safe(service)}
    fields = {**LOG_FIELDS, "luma_upstream": upstream}
    return [names] + [{"handler": "log_append", "key": k, "value": v} for k, v in fields.items()]


def handlers(routes: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every handler of ``routes``, however deep (a ``subroute``'s routes, and theirs): what is done to
    each ``reverse_proxy`` is done wherever a layout puts it (one host's routes and a swarm edge's)."""
    for route in routes:
        for h in route.get("handle", []):
            yield h
            if h.get("handler") == "subroute":
                yield from handlers(h.get("routes", []))


def _with_request_id(handler: dict[str, Any]) -> None:
    """A reverse_proxy handler sends the request id to the container and back to the client."""
    if handler.get("handler") != "reverse_proxy":
        return
    headers = handler.setdefault("headers", {})
    headers.setdefault("request", {}).setdefault("set", {})[REQUEST_ID_HEADER] = [REQUEST_ID]
    headers.setdefault("response", {}).setdefault("set", {})[REQUEST_ID_HEADER] = [REQUEST_ID]


def metrics_server(luma_text: str, allow: Iterable[str], deny: Iterable[str] = ()) -> dict[str, Any]:
    """The metrics listener: 403 to anyone but ``allow`` and loopback (and to ``deny``, even inside
    ``allow``), then Caddy's metrics and ours."""
    ranges = sorted({*LOOPBACK_RANGES, *allow})
    denied = sorted(set(deny))
    forbidden = {"match": [{"not": [{"remote_ip": {"ranges": ranges}}]}]
                 + ([{"remote_ip": {"ranges": denied}}] if denied else []),
                 # Caddy's own placeholder: says which address was refused (to widen --metrics' reach knowingly)
                 "handle": [{"handler": "static_response", "status_code": 403,
                             "body": "luma-compose: metrics are not served to {http.request.remote.host}\n"}],
                 "terminal": True}
    caddy = {"match": [{"path": [METRICS_PATH]}], "handle": [{"handler": "metrics"}], "terminal": True}
    ours = {"match": [{"path": [LUMA_METRICS_PATH]}],
            "handle": [{"handler": "static_response", "status_code": 200, "body": luma_text,
                        "headers": {"Content-Type": ["text/plain; version=0.0.4; charset=utf-8"]}}],
            "terminal": True}
    return {"listen": [f":{METRICS_PORT}"], "automatic_https": {"disable": True}, "protocols": ["h1"],
            "routes": [forbidden, caddy, ours, caddy_config.NOT_FOUND]}


CERT_EXPIRY = "luma_certificate_expiry_timestamp_seconds"


def comparable(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """``config`` without the certificates' expiry: what tells whether Caddy runs what the labels say
    (a renewal Caddy made itself since the last sync is no drift)."""
    try:
        config["apps"]["http"]["servers"][METRICS_SERVER]["routes"]  # type: ignore[index]
    except (KeyError, TypeError):
        return config
    out = copy.deepcopy(config)
    for r in out["apps"]["http"]["servers"][METRICS_SERVER]["routes"]:
        for h in r.get("handle", []) if isinstance(r, dict) else []:
            if isinstance(h, dict) and isinstance(h.get("body"), str) and CERT_EXPIRY in h["body"]:
                h["body"] = "\n".join(x for x in h["body"].split("\n") if not x.startswith(CERT_EXPIRY + "{"))
    return out


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _series(name: str, labels: Mapping[str, str], value: float | int) -> str:
    inner = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
    return f"{name}{{{inner}}} {value}"


def luma_metrics(routes: Iterable[Any], cert_expiry: Mapping[str, float],
                 dial: Callable[[str], str] = caddy_config.dial_address) -> str:
    """The text of ``/luma/metrics`` (Prometheus text format 0.0.4)."""
    routes = sorted(routes, key=lambda r: (r.project, r.service))
    lines = ["# HELP luma_route_info A host the proxy routes, and the project and service it routes it to.",
             "# TYPE luma_route_info gauge"]
    lines += [_series("luma_route_info", {"host": h, "project": r.project, "service": r.service}, 1)
              for r in routes for h in sorted(r.hosts)]
    lines += ["# HELP luma_upstream_info An address the proxy dials (Caddy's upstream label), and its route.",
              "# TYPE luma_upstream_info gauge"]
    lines += [_series("luma_upstream_info", {"upstream": dial(u), "project": r.project,
                                             "service": r.service}, 1)
              for r in routes for u in sorted(set(r.upstreams))]
    lines += ["# HELP luma_route_upstreams Containers the proxy dials for a route (0: it answers 503).",
              "# TYPE luma_route_upstreams gauge"]
    lines += [_series("luma_route_upstreams", {"project": r.project, "service": r.service}, len(r.upstreams))
              for r in routes]
    lines += ["# HELP luma_certificate_expiry_timestamp_seconds When a host's certificate expires, as of the "
              "last sync (Unix time).", "# TYPE luma_certificate_expiry_timestamp_seconds gauge"]
    lines += [_series("luma_certificate_expiry_timestamp_seconds", {"host": h}, int(t))
              for h, t in sorted(cert_expiry.items())]
    return "\n".join(lines) + "\n"
