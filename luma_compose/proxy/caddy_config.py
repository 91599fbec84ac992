"""Route table -> Caddy JSON config. Pure: no Docker, no network.

One HTTP server (``luma``) matches each request's Host against the routes;
a route proxies to its pool, each request to the container with the fewest
requests in flight (active probes of ``luma.health.path`` only where x-luma's
``health_interval`` asks for them: :func:`_active_checks`), and retries a
failed dial at once on another upstream (passive failure tracking skips the
one that failed for a moment), or on the same one once it is back,
for ``TRY_DURATION``. Any other host gets 404. A route with no upstream at all
answers 503 rather than falling through to 404, and so does a route whose
upstreams did not answer within the retry window: a host never silently
reaches something else. A request whose retries a config load cut short (the old handler's
context is cancelled) is served again by the config that now runs (``REPLAY_MATCH``).

Upstreams are container *names* on the project's ingress network
(``gmail-web-1:3000``), resolved by Docker's DNS when Caddy dials: an address
that changed (restart, IP swap, engine restart) is followed without a config
load, so the data plane stays correct with no luma-compose process running.

Upgraded connections (WebSocket) survive config loads: ``stream_close_delay``
keeps them open when a load replaces the handler that proxied them, so one
project's deploy (or any ``sync``) never disconnects another's clients; a
drained container closes its own when deploy removes it.

Label values reach this module only after :mod:`luma_compose.validate` passed
them (``routing``); ``build_config`` checks again that no value it writes
where Caddy expands placeholders (host matchers, dial addresses, health URIs)
could hold one.

The admin API listens on loopback *inside* the proxy container only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from .. import validate
from ..routing.claims import Route, RouteTable
from . import caddy_routes, caddy_tls
from . import guards
from . import maintenance

TLS_MODES = ("acme", "internal", "off")
ADMIN_LISTEN = "localhost:2019"
SERVER_NAME = "luma"
HTTP_SERVER_NAME = "luma_http"
ROUTE_ID_PREFIX = "luma-route:"
#: Suffix of the @id of a route's wildcard part (build_config splits each route in two).
WILDCARD_ID_SUFFIX = "#wildcard"
#: Where Caddy keeps certificates and ACME state: the proxy's named volume.
STORAGE_ROOT = "/data/caddy"

#: An active probe (x-luma ``health_interval``) waits this long at most (and never longer than the interval).
HEALTH_TIMEOUT_MAX_S = 5
#: How long a request waits for an upstream that answers (a restarting single replica, a
#: booting one) before it gets 503: a `docker restart` of a busy machine's only replica took up
#: to ~6 s from the first failed request to the first answer (measured under hey load: 4 of
#: 3,043 requests got 503 with 5 s, none with 10 s).
TRY_DURATION_MS = 10_000
TRY_DURATION = f"{TRY_DURATION_MS}ms"
#: Wait between two tries of one request (after a failed dial, or while no container is up).
TRY_INTERVAL = "50ms"
#: Every upstream is a container on a bridge of this host: it answers a SYN in well under
#: a millisecond (measured: 0.1-1.4 ms at the SYN-ACK, under load). A SYN that gets no answer
#: was dropped, mostly because the container's listen queue was full, and the kernel would only
#: send it again after 1 s (then 3 s: Caddy's default dial timeout is 3 s). Giving up after
#: 100 ms and dialling again, on another container when there is one, turns that second into
#: ~150 ms (issue 14: 1 request in 1,000 waited 1.0 s behind a busybox httpd, listen backlog 9).
DIAL_TIMEOUT = "100ms"
#: Each request goes to the container with the fewest requests in flight (ties: at random).
#: Round-robin kept sending every other request to a container that had stalled for a moment,
#: so its requests piled up until its listen queue overflowed and SYNs were dropped (measured at
#: hey -c 16, 2 busybox replicas: 34-54 dropped SYNs in 20 s with round-robin, 0 with least_conn).
SELECTION_POLICY = "least_conn"
#: A container whose dial (or request) just failed is skipped for this long: long enough that
#: the retry, TRY_INTERVAL later, goes to another container (Caddy does not exclude the one that
#: failed: without this, a retry picked the same stalled container again about half the time,
#: up to 10 times in a row: 1.5 s). Short, because Caddy counts a single dropped SYN as a
#: failure: with the former 5 s, one drop on each of two replicas left no upstream, requests
#: waited try_duration (3 s) and got 502/503 (measured: 64 of 5,970 requests in 20 s).
FAIL_DURATION = "100ms"
DIAL_NETWORK = "tcp4"
#: Docker's embedded DNS, asked directly: a proxy created on the default bridge starts with the
#: host's resolvers in /etc/resolv.conf, and Go rereads that file only every few seconds after
#: Docker rewrites it at the first attach to an ingress network (measured: ~10 s of failed
#: lookups). Only this server knows container names, and only on the shared networks.
DOCKER_DNS = "127.0.0.11:53"
#: Upgraded connections (WebSocket) stay open this long after a config load replaced the
#: handler that proxied them (Caddy closes them at once by default). They end earlier when
#: either side closes them, e.g. when deploy removes a drained container.
STREAM_CLOSE_DELAY = "24h"
#: Idle upstream connections kept per container. Caddy's default (32) is below the
#: concurrency of a busy site: past it every response closes a connection to the
#: container and the next request dials a new one (measured at wrk -c256: 3,492 new
#: upstream connections for 6,190 requests; with this limit 196 for 9,937).
UPSTREAM_IDLE_CONNS_PER_HOST = 1024
#: Idle upstream connections are closed by the proxy before common app servers close them
#: (gunicorn 2 s, Node 5 s): a request sent on a connection the app has just closed fails,
#: and a non-idempotent one (POST) is not retried. Caddy's default is 2 minutes.
UPSTREAM_IDLE_TIMEOUT = "1500ms"


def upstream_transport() -> dict[str, Any]:
    """Plain HTTP/1.1 to the container with keep-alive sized for real concurrency, and a dial
    timeout that retries a dropped SYN long before the kernel would (``DIAL_TIMEOUT``).

    ``compression: false``: the proxy passes the client's Accept-Encoding through
    unchanged. Caddy's default adds ``Accept-Encoding: gzip`` when the client sent
    none, so the container compresses and the proxy decompresses again before
    answering: CPU spent twice for nothing.
    """
    return {
        "protocol": "http",
        "compression": False,
        "dial_timeout": DIAL_TIMEOUT,
        "keep_alive": {"enabled": True, "max_idle_conns_per_host": UPSTREAM_IDLE_CONNS_PER_HOST,
                       "idle_timeout": UPSTREAM_IDLE_TIMEOUT},
    }


def route_handle_id(route_key: str) -> str:
    return ROUTE_ID_PREFIX + route_key


def dial_address(upstream: str) -> str:
    """``name:port`` -> ``tcp4/name.:port``: an A query only, for the absolute name (no search
    domain is ever tried, so the query never leaves Docker's DNS); IP literals as they are."""
    import ipaddress

    host, _, port = upstream.rpartition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        host = host.rstrip(".") + "."
    return f"{DIAL_NETWORK}/{host}:{port}"


class UnsafeValue(ValueError):
    """A value that could be a Caddy placeholder reached the config builder (a bug upstream)."""


def _safe(value: str) -> str:
    if not validate.safe_for_caddy(value):
        raise UnsafeValue(f"refusing to put {value!r} into Caddy's config")
    return value


safe = _safe


def _active_checks(r: Route) -> dict[str, Any]:
    """Caddy's own probes of ``r.health_path``, only for a route whose x-luma asks for them
    (``health_interval``). Caddy starts every handler's checker anew at each config load, and each
    checker probes all its upstreams at once when it starts: probes on every route made each load
    (any project's deploy or sync) a burst of one request per container of the server, and the
    per-second probes a steady load on every app. At 100 projects that made other projects'
    requests wait over 0.5 s at loads (issue 19: 58-64 of ~40,000 across 3 redeploys of another
    project; none without the probes, bench/scale.py). Docker's health check (the route table
    leaves out ``starting``/``unhealthy``) and passive checks (a refused or timed-out dial) decide
    for every other route."""
    if not r.health_interval:
        return {}
    return {"active": {
        "uri": _safe(r.health_path),
        "interval": f"{int(r.health_interval)}s",
        "timeout": f"{min(int(r.health_interval), HEALTH_TIMEOUT_MAX_S)}s",
        "passes": 1,
        "fails": 1,
    }}


def _route(r: Route, hosts: tuple[str, ...] | None = None, wildcard: bool = False,
           relays: tuple[str, ...] = ()) -> dict[str, Any]:
    """The Caddy route of ``r`` for ``hosts`` (default: all of them); ``wildcard``: the part of
    a split route that matches its wildcard hosts (its own @id)."""
    upstreams = tuple(_safe(u) for u in r.upstreams)
    hosts = [_safe(h) for h in (r.hosts if hosts is None else hosts)]
    if r.maintenance:
        handler: dict[str, Any] = maintenance.handler(r.maintenance)
    elif upstreams:
        handler = {
            "handler": "reverse_proxy",
            # tcp4/: resolve the name with an A query only. Docker's DNS answers a container
            # name's A record itself but may forward the AAAA query to the host's resolvers,
            # which can take seconds (or never answer) on a server without outside DNS.
            "upstreams": [{"dial": dial_address(d)} for d in upstreams],
            "transport": {**upstream_transport(), "resolver": {"addresses": [DOCKER_DNS]}},
            "stream_close_delay": STREAM_CLOSE_DELAY,
            "load_balancing": {
                "selection_policy": {"policy": SELECTION_POLICY},
                # a stop-first service holds requests longer while it has no running container
                "try_duration": f"{int(r.hold)}s" if r.hold else TRY_DURATION,
                "try_interval": TRY_INTERVAL,
            },
            "health_checks": {**_active_checks(r), "passive": {"fail_duration": FAIL_DURATION, "max_fails": 1}},
        }
    else:
        handler = {
            "handler": "static_response",
            "status_code": 503,
            "headers": {"Content-Type": ["text/plain; charset=utf-8"], "Retry-After": ["1"]},
            "body": f"luma-compose: no healthy container behind {r.target}\n",
        }
    return {
        "@id": route_handle_id(r.key) + (WILDCARD_ID_SUFFIX if wildcard else ""),
        "match": [{"host": hosts}],
        # a held route names its window for the replay of a request a config load cut short (HOLD_VAR)
        "handle": ([{"handler": "vars", HOLD_VAR: str(int(r.hold))}] if r.hold else []) + guards.wrap(r, handler, relays),
        "terminal": True,
    }


#: What a request gets when its route's upstreams did not answer within TRY_DURATION
#: (Caddy would say 502 or 503 with an empty body).
UNAVAILABLE_ERRORS = {
    "routes": [{
        "handle": [{
            "handler": "static_response",
            "status_code": 503,
            "headers": {"Content-Type": ["text/plain; charset=utf-8"], "Retry-After": ["1"]},
            "body": "luma-compose: no container answered for this host in time\n",
        }],
        "terminal": True,
    }],
}

#: Replays a request whose proxying a config load cut short, through Caddy's own listener on
#: loopback, so the config that now runs serves it. Every load provisions every route's
#: reverse_proxy handler anew and then cancels the old config's context; a request still in the
#: old handler's retry loop (a dropped SYN, the only container skipped for FAIL_DURATION after
#: one) ends at once with its last error (``tryAgain`` selects on the handler's context). That
#: made 5-15 requests of *other* projects fail per load (issue 19). Replayed is what Caddy itself
#: would have tried again had the load not ended its loop: a GET after any transport error, any
#: method after a dial error or "no upstreams available" (the request never reached a container;
#: its body is unread), and only before TRY_DURATION ran out (a loop that ended earlier was cut
#: short; one that waited the whole window is not replayed). The error route runs only before
#: anything was written to the client (a failed response body aborts the connection instead).
REPLAY_WITHIN = ("{http.reverse_proxy.duration_ms} < %d.0 && ({http.request.method} == 'GET'"
                 " || {http.error.message} == 'no upstreams available' || {http.error.message}.startsWith('dial '))")
REPLAY_MATCH = REPLAY_WITHIN % TRY_DURATION_MS
LOOPBACK = "127.0.0.1"
#: The variable a held (stop-first) route sets to its window in seconds: which replay applies to it.
HOLD_VAR = "luma_hold"


def unavailable_errors(tls: str, http_port: int, https_port: int, holds: Iterable[int] = ()) -> dict[str, Any]:
    """The main server's error routes: replay what a config load cut short (``REPLAY_MATCH``),
    503 for the rest. With TLS the replay speaks TLS to Caddy itself (the host's own name as
    SNI; the peer is this process, so its certificate is not verified). ``holds``: the windows of
    stop-first routes (x-luma ``hold``, seconds): a request of such a route is replayed when it was cut
    short before its own window ran out (its route set ``HOLD_VAR``), first."""
    transport: dict[str, Any] = {"protocol": "http", "compression": False, "versions": ["1.1"]}
    if tls != "off":
        transport["tls"] = {"server_name": "{http.request.host}", "insecure_skip_verify": True}
    replay = {
        "match": [{"expression": REPLAY_MATCH}],
        "handle": [{
            "handler": "reverse_proxy",
            "upstreams": [{"dial": f"{LOOPBACK}:{http_port if tls == 'off' else https_port}"}],
            "transport": transport,
            # Caddy sets Host to the upstream's address when it speaks TLS to it: keep the client's.
            "headers": {"request": {"set": {"Host": ["{http.request.hostport}"]}}},
            "stream_close_delay": STREAM_CLOSE_DELAY,
        }],
        "terminal": True,
    }
    windows = sorted(set(holds))
    held = [{**replay, "match": [{"vars": {HOLD_VAR: [str(h)]}, "expression": REPLAY_WITHIN % (h * 1000)}]}
            for h in windows]
    if windows:  # a held request that waited its whole window is not replayed by the default either
        replay["match"][0]["not"] = [{"vars": {HOLD_VAR: [str(h) for h in windows]}}]
    return {"routes": [*held, replay, *UNAVAILABLE_ERRORS["routes"]]}


NOT_FOUND = {
    "handle": [
        {
            "handler": "static_response",
            "status_code": 404,
            "headers": {"Content-Type": ["text/plain; charset=utf-8"]},
            "body": "luma-compose: no route for this host\n",
        }
    ],
    "terminal": True,
}


def build_config(table: RouteTable, **options: Any) -> dict[str, Any]:
    """The complete Caddy config for a route table (load it with ``POST /load``); ``options`` are
    assemble's (tls, email, ports, ACME CA, HTTP/3), plus ``public_http_port`` (a redirect's port when
    TLS is off) and ``relays``: the addresses a connection the host relayed comes from (``guards``)."""
    relays = tuple(options.pop("relays", ()))
    redirect = caddy_routes.redirect_scheme(options)
    config = assemble(host_routes(table.routes, redirect, relays), caddy_routes.certificate_hosts(table.routes),
                      **options)
    caddy_routes.plain_http_redirects(config, HTTP_SERVER_NAME, table.routes, redirect, _safe, _entry_id)
    tls = options.get("tls", "acme")
    server = config["apps"]["http"]["servers"][SERVER_NAME]
    server["errors"] = unavailable_errors(tls, options.get("http_port", 80), options.get("https_port", 443),
                                          [r.hold for r in table.routes if r.hold])
    # A replayed request comes from loopback: keep the client's X-Forwarded-For it carries.
    server["trusted_proxies"] = {"source": "static", "ranges": [f"{LOOPBACK}/32"]}
    guards.with_auth_errors(server, table.routes)
    return config


def _entry_id(e: caddy_routes.Entry) -> str:
    return route_handle_id(e.route.key) + (WILDCARD_ID_SUFFIX if e.wildcard else "") + e.suffix


def host_routes(routes: Iterable[Route], redirect: tuple[str, int] = ("https", 443),
                relays: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Caddy routes for the table's routes in the order of :mod:`.caddy_routes`: every host named
    exactly before any wildcard, longer path prefixes first. A wildcard of one project never takes a
    host another project names, even a held (503) one; two different wildcards never match the same
    host (each stands for one label). ``redirect``: scheme and port of a redirect's ``Location``;
    ``relays``: see :mod:`.guards` (a guarded route's handle list starts with its guard)."""
    out = []
    for e in caddy_routes.entries(routes):
        if e.redirect:
            handle = [caddy_routes.redirect_handler(e, *redirect, _safe)]
        else:
            handle = [caddy_routes.strip(h, e, _safe) for h in _route(e.route, e.hosts, e.wildcard, relays)["handle"]]
        out.append({"@id": _entry_id(e), "match": e.match(_safe), "handle": handle, "terminal": True})
    return out


def assemble(
    host_routes: list[dict[str, Any]],
    hosts: list[str],
    *,
    tls: str = "acme",
    email: str | None = None,
    http_port: int = 80,
    https_port: int = 443,
    acme_ca: str | None = None,
    acme_ca_root: str | None = None,
    tls_alpn: bool = True,
    http3: bool = True,
    alt_svc_port: int | None = None,
    public_https_port: int | None = None,
    not_found: dict[str, Any] = NOT_FOUND,
    catch_all: bool = False,
) -> dict[str, Any]:
    """The config around a list of host routes (one proxy's, or a swarm edge's): listeners, the
    HTTP -> HTTPS redirect, certificates for ``hosts`` per ``tls``, 404 for other hosts. The single
    place that lays out TLS, so one host and a swarm behave alike.

    ``acme_ca``: ACME directory URL (default: Caddy's, Let's Encrypt); ``acme_ca_root``: path (in the
    proxy) of the PEM root its HTTPS is signed with. ``tls_alpn=False`` leaves HTTP-01 as the only
    challenge (the CA validates TLS-ALPN-01 on port 443, which reaches the proxy only when it publishes
    443). ``http3=False`` switches HTTP/3 off (``protocols: h1, h2``: no ``Alt-Svc``), so no client is
    sent to a UDP port nothing answers; ``alt_svc_port``: the UDP port HTTP/3 is published on when it
    is not the one Caddy listens on (Caddy advertises its own listener's port).

    ``public_https_port``: the port clients reach HTTPS on (the published port), when it
    is not ``https_port``; the HTTP -> HTTPS redirect names it unless it is 443.

    ``catch_all``: also an automation policy for every other name with the same issuer. It orders
    nothing (only listed hosts get certificates) but lets this Caddy answer an HTTP-01 challenge
    whose token another instance put in the shared storage (a swarm's edges)."""
    if tls not in TLS_MODES:
        raise ValueError(f"tls must be one of {', '.join(TLS_MODES)}, not {tls!r}")
    server: dict[str, Any] = {
        "routes": list(host_routes) + [not_found],
        "errors": UNAVAILABLE_ERRORS,
    }
    http_app: dict[str, Any] = {"http_port": http_port, "https_port": https_port, "servers": {SERVER_NAME: server}}
    config: dict[str, Any] = {
        "admin": {"listen": ADMIN_LISTEN},
        "storage": {"module": "file_system", "root": STORAGE_ROOT},
        "apps": {"http": http_app},
    }
    if tls == "off":
        server["listen"] = [f":{http_port}"]
        server["automatic_https"] = {"disable": True}
        return config
    # HTTPS on https_port; plain HTTP on its own server (caddy_tls.redirect_server).
    server["listen"] = [f":{https_port}"]
    server["automatic_https"] = {"disable_redirects": True}
    caddy_tls.http3(server, http3, alt_svc_port, https_port)
    hosts = sorted({_safe(h) for h in hosts})
    public = https_port if public_https_port is None else public_https_port
    http_app["servers"][HTTP_SERVER_NAME] = caddy_tls.redirect_server(hosts, http_port, public, not_found)
    issuer = caddy_tls.issuer(config, tls, email, acme_ca, acme_ca_root, tls_alpn)
    policies = [{"subjects": hosts, "issuers": [issuer]}] if hosts else []
    if catch_all:
        policies.append({"issuers": [issuer]})
    if policies:
        config["apps"]["tls"] = {"automation": {"policies": policies}}
    return config


def dumps(config: dict[str, Any]) -> str:
    """Canonical JSON: equal configs give equal bytes (Caddy skips an identical load)."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def _served_routes(config: dict[str, Any] | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(route id, route) of each luma route in a loaded config; anything else in it is skipped."""
    try:
        routes = config["apps"]["http"]["servers"][SERVER_NAME]["routes"]  # type: ignore[index]
    except (KeyError, TypeError):
        return
    for r in routes if isinstance(routes, list) else []:
        rid = r.get("@id", "") if isinstance(r, dict) else ""
        if isinstance(rid, str) and rid.startswith(ROUTE_ID_PREFIX):
            # the route id, without an entry's suffix (#wildcard, #redirect, #path/...)
            yield rid[len(ROUTE_ID_PREFIX):].split("#", 1)[0], r


def served_hosts(config: dict[str, Any] | None) -> dict[str, str]:
    """host -> route id of the routes in a loaded config (the incumbents)."""
    out: dict[str, str] = {}
    for rid, r in _served_routes(config):
        for m in r.get("match") or []:
            for h in (m.get("host") or []) if isinstance(m, dict) else []:
                if isinstance(h, str):
                    out.setdefault(h.lower(), rid)
    return out


def served_upstreams(config: dict[str, Any] | None) -> dict[str, list[str]]:
    """route id -> the dial addresses Caddy serves it with now ([] for a 503 route)."""
    out: dict[str, list[str]] = {}
    for rid, r in _served_routes(config):
        dials = []
        for h in r.get("handle") or []:
            if isinstance(h, dict) and h.get("handler") == "reverse_proxy":
                dials += [u.get("dial", "") for u in h.get("upstreams") or [] if isinstance(u, dict)]
        seen = out.setdefault(rid, [])  # a route split by path: the same dials in each part
        seen += [d for d in dials if d not in seen]
    return out
