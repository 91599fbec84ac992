"""Which Caddy route comes first: hosts, path prefixes and redirects, for both layouts. Pure.

Caddy tries a server's routes in order and the first that matches wins, so the table's routes
become *entries* in this order (the one host's proxy, ``caddy_config``, and a swarm's edges,
``swarm/routes.py``, give each entry their own handler):

1. every host named exactly before any wildcard: a wildcard of one project never takes a host
   another project names, or a path of it;
2. inside each, longer path prefixes first (the longest prefix wins), then whole hosts (a route
   without ``paths``) and redirect hosts (``redirect_from``: a 308 to the route's first host).

A prefix ``/api`` matches the path ``/api`` and every path under ``/api/``, never ``/apix``
(Caddy's matcher ``path: ["/api", "/api/*"]``, which ignores case and matches the cleaned path).
``strip_prefix`` makes the proxy send ``/x`` for ``/api/x`` (``/`` for ``/api``), on the copy of
the request it proxies: a request replayed after a config load still carries its own path.

Every value written here passed :mod:`luma_compose.validate` (a prefix has no ``*``, ``%``, ``{``,
``}``); :func:`caddy_config.safe` checks again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..routing.claims import Route


@dataclass(frozen=True)
class Entry:
    """One Caddy route: some hosts of ``route`` (all exact or all wildcards), one prefix of its
    paths ("" = every path), or its redirect hosts."""

    route: Route
    hosts: tuple[str, ...]
    wildcard: bool
    prefix: str = ""
    redirect: bool = False

    @property
    def suffix(self) -> str:
        """What makes the entry's ``@id`` unique among its route's entries (after the route's own id)."""
        return ("#redirect" if self.redirect else "") + (f"#path{self.prefix}" if self.prefix else "")

    def match(self, safe) -> list[dict[str, Any]]:
        m: dict[str, Any] = {"host": [safe(h) for h in self.hosts]}
        if self.prefix:
            m["path"] = [safe(self.prefix), safe(self.prefix) + "/*"]
        return [m]


def _wild(h: str) -> bool:
    return h.startswith("*")


def entries(routes: Iterable[Route]) -> list[Entry]:
    """The entries of ``routes`` in the order Caddy must try them (module docstring)."""
    out: list[Entry] = []
    for r in routes:
        for wild in (False, True):
            hosts = tuple(h for h in r.hosts if _wild(h) == wild)
            if hosts:
                out += [Entry(r, hosts, wild, p) for p in (r.paths or ("",))]
            redirects = tuple(h for h in r.redirect_from if _wild(h) == wild)
            if redirects and r.redirect_to:
                out.append(Entry(r, redirects, wild, redirect=True))
    return sorted(out, key=lambda e: (e.wildcard, -len(e.prefix), e.route.key, e.redirect, e.prefix))


def strip(handler: dict[str, Any], e: Entry, safe) -> dict[str, Any]:
    """``handler`` (a reverse_proxy) with the entry's prefix stripped from the proxied copy of the
    request, when its route asks for it."""
    if e.prefix and e.route.strip_prefix and handler.get("handler") == "reverse_proxy":
        handler = {**handler, "rewrite": {"strip_path_prefix": safe(e.prefix)}}
    return handler


def location(target: str, scheme: str, port: int, safe) -> str:
    """The ``Location`` of a redirect to ``target``: path and query kept; the port unless it is the
    scheme's default. ``{http.request.uri}`` is Caddy's own placeholder, never a label value."""
    default = 443 if scheme == "https" else 80
    port_part = "" if port in (default, 0) else f":{int(port)}"
    return f"{scheme}://{safe(target)}{port_part}{{http.request.uri}}"


def redirect_handler(e: Entry, scheme: str, port: int, safe) -> dict[str, Any]:
    """308 (permanent, method and body kept) to the route's first host."""
    return {"handler": "static_response", "status_code": 308,
            "headers": {"Location": [location(e.route.redirect_to, scheme, port, safe)]}}


def redirect_routes(routes: Iterable[Route], scheme: str, port: int, safe, route_id) -> list[dict[str, Any]]:
    """The redirect entries alone, in order (the plain-HTTP server's, when TLS is on: straight to
    ``https://first-host``, one redirect instead of two). ``route_id(entry)``: the entry's ``@id``."""
    return [{"@id": route_id(e), "match": e.match(safe), "handle": [redirect_handler(e, scheme, port, safe)],
             "terminal": True} for e in entries(routes) if e.redirect]


def certificate_hosts(routes: Iterable[Route]) -> list[str]:
    """Every host the proxy answers over HTTPS: served and redirected ones."""
    return sorted({h for r in routes for h in r.hosts} | {h for r in routes if r.redirect_to for h in r.redirect_from})


def redirect_scheme(options: dict[str, Any]) -> tuple[str, int]:
    """(scheme, port) of a redirect's ``Location`` for ``assemble``'s options: https and the public
    HTTPS port with TLS; http and ``public_http_port`` (popped: assemble does not take it) without."""
    public_http = options.pop("public_http_port", None)
    if options.get("tls", "acme") == "off":
        return "http", public_http or options.get("http_port", 80)
    return "https", options.get("public_https_port") or options.get("https_port", 443)


def plain_http_redirects(config: dict[str, Any], server_name: str, routes: Iterable[Route],
                         redirect: tuple[str, int], safe, route_id) -> None:
    """With TLS, put the redirect entries first on the plain-HTTP server ``server_name``, so
    ``http://www.example.com`` goes straight to ``https://example.com`` (one redirect, not two)."""
    server = config["apps"]["http"]["servers"].get(server_name)
    if server is not None:
        # @ids are unique in a whole config: the plain-HTTP copies get their own
        server["routes"][:0] = redirect_routes(routes, *redirect, safe, lambda e: route_id(e) + "#http")
