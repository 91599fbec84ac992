"""The swarm's Caddy layout: a route table (routing.services) -> the edges' config. Pure: no Docker.

A route depends only on a service's labels (hosts -> ``P-S:port``): project P's gateway resolves
the alias ``P-S`` on ``P_luma`` at request time (Caddy's ``dynamic_upstreams`` of source ``a``, re-resolved
every second). With ``endpoint_mode: dnsrr`` the alias answers with the IP of every running,
healthy task on any node (Swarm leaves a task out of DNS until its health check passes), so tasks
starting, stopping or moving between nodes change no config at all. With Swarm's default VIP mode
it answers with the service's virtual IP and IPVS spreads the connections (needs IPVS in the
kernel of every node).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from ..proxy import caddy_config, caddy_routes, guards, maintenance
from ..routing.claims import Route, RouteTable

#: DNS re-resolution interval of a route's upstreams.
REFRESH = "1s"


# --------------------------------------------------------------------------- the proxy's parts
#
# edge (global, host port, on ``<proxy>_edge`` only) --Host--> gateway of project P (on the edge
# network and P_luma) --``P-S``--> the service's tasks. The edge's routes are pulled every
# LOAD_DELAY from the config server over TLS; none of the three ever needs a restart for a route
# change, and a project's gateway is its own (docs/swarm.md).

#: Where a project's gateway listens, on the edge network and on P_luma.
GATEWAY_PORT = 8080
#: Where the config server answers the edges (TLS, on the edge network).
CONTROL_PORT = 8443
#: How often an edge asks the config server for its config (an unchanged config is not reloaded).
LOAD_DELAY = "1s"
BOOT_TARGET = "/etc/luma/boot.json"
CONTROL_CERT_TARGET = "/etc/luma/control.pem"
#: The key's secret file name under /run/secrets (only the config server gets it).
CONTROL_KEY_SECRET = "luma-control.key"
EDGE_CONFIG_TARGET = "/srv/edge.json"
#: What the edge tells a gateway: the target alias and port, set by the edge (a client's own
#: values are overwritten), checked by the gateway against its project, removed before the app.
HEADER_ALIAS = "Luma-Alias"
HEADER_PORT = "Luma-Port"
#: What a gateway answers the edge with: the task address it dialled (set, so an app's own value is
#: replaced), logged by the edge and removed before the client (swarm/observe.py).
HEADER_UPSTREAM = "Luma-Upstream"
#: The version of the edge config, on every 404 (unknown host): which config an edge runs.
HEADER_VERSION = "Luma-Config"
#: Networks a gateway takes X-Forwarded-* from (overlay subnets are private ranges): the edge.
PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
_QUIET = {"logs": {"default": {"level": "WARN"}}}
#: Addresses an edge refuses for allow-listed hosts as relayed (proxy/guards.py). None: an edge's
#: port is published in host mode, and a client in another network reaches it by NAT with its own
#: address (measured, docs/access.md); the node's docker_gwbridge gateway differs per node.
EDGE_RELAYS: tuple[str, ...] = ()


def gateway_name(proxy: str, project: str) -> str:
    """The service name of project P's gateway (a DNS name on the edge network; <= 63 chars)."""
    name = f"{proxy}-gw-{project}"
    if len(name) <= 63:
        return name
    return f"{proxy}-gw-{hashlib.sha256(project.encode()).hexdigest()[:16]}"[:63]


def config_server_name(proxy: str) -> str:
    return f"{proxy}-config"


def _loader(proxy: str) -> dict[str, Any]:
    """The edge's admin block: no admin API, but pull the config from the config server, verified
    against the swarm's own certificate (a service posing as the config server cannot feed it)."""
    return {"disabled": True, "config": {
        "persist": False,
        "load": {"module": "http", "url": f"https://{config_server_name(proxy)}:{CONTROL_PORT}/edge.json",
                 # the config server is one overlay hop away: a pull that hangs is a task just
                 # stopped (its address gone), and the next pull, a second later, finds the new one
                 "timeout": "1s", "tls": {"root_ca_pem_files": [CONTROL_CERT_TARGET]}},
        "load_delay": LOAD_DELAY}}


def _edge_route(proxy: str, e: caddy_routes.Entry, redirect: tuple[str, int]) -> dict[str, Any]:
    r = e.route
    if e.redirect:
        handle = [caddy_routes.redirect_handler(e, *redirect, caddy_config.safe)]
    else:
        handle = [caddy_routes.strip(h, e, caddy_config.safe) for h in guards.wrap(r, maintenance.handler(
            r.maintenance) if r.maintenance else _dynamic_proxy(
            gateway_name(proxy, r.project), str(GATEWAY_PORT),
            {"set": {HEADER_ALIAS: [caddy_config.safe(r.alias)], HEADER_PORT: [str(r.port)]}}), EDGE_RELAYS)]
    return {"@id": _entry_id(e), "match": e.match(caddy_config.safe), "handle": handle, "terminal": True}


def _entry_id(e: caddy_routes.Entry) -> str:
    return caddy_config.route_handle_id(e.route.key + ("/*" if e.wildcard else "") + e.suffix)


def _edge_routes(proxy: str, t: RouteTable, not_found: dict[str, Any],
                 redirect: tuple[str, int] = ("http", 80)) -> list[dict[str, Any]]:
    """Every exact host before any wildcard, longer path prefixes first, whatever route they are in
    (:mod:`..proxy.caddy_routes`): a wildcard never covers a host another project owns, even one whose
    route is withheld (its hosts answer 404 while it is; its redirects still answer)."""
    withheld = {r.key for r in t.withheld}
    out: list[dict[str, Any]] = []
    for e in caddy_routes.entries(t.routes):
        if e.route.key in withheld and not e.redirect:
            out.append({"match": e.match(caddy_config.safe), "handle": not_found["handle"], "terminal": True})
        else:
            out.append(_edge_route(proxy, e, redirect))
    return out


def _dynamic_proxy(name: str, port: str, request_headers: dict[str, Any]) -> dict[str, Any]:
    """A reverse_proxy to every address ``name`` has in DNS (re-resolved each REFRESH), with the
    single host's transport, retries and keep-alive. Active health checks need a static upstream
    list; Swarm's own health check keeps unhealthy tasks out of DNS, and a task failing anyway is
    skipped for a while (passive)."""
    return {
        "handler": "reverse_proxy",
        # the absolute name (trailing dot): no search domain of the node's resolv.conf is ever tried,
        # so the query never leaves Docker's DNS for a name someone else answers (as dial_address)
        "dynamic_upstreams": {"source": "a", "name": name + ".", "port": port, "refresh": REFRESH},
        "headers": {"request": request_headers},
        "transport": caddy_config.upstream_transport(),
        "stream_close_delay": caddy_config.STREAM_CLOSE_DELAY,
        "load_balancing": {
            "selection_policy": {"policy": caddy_config.SELECTION_POLICY},
            "try_duration": caddy_config.TRY_DURATION,
            "try_interval": caddy_config.TRY_INTERVAL,
        },
        "health_checks": {"passive": {"fail_duration": caddy_config.FAIL_DURATION, "max_fails": 1}},
    }


def _server(http_port: int, routes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"listen": [f":{http_port}"], "automatic_https": {"disable": True}, "routes": routes,
            "errors": caddy_config.UNAVAILABLE_ERRORS}


def _not_found(version: str) -> dict[str, Any]:
    nf = json.loads(json.dumps(caddy_config.NOT_FOUND))
    nf["handle"][0]["headers"][HEADER_VERSION] = [version]
    return nf


#: Where an edge finds the root certificate of a private ACME CA (``--acme-ca-root``): a Swarm config.
ACME_ROOT_TARGET = "/etc/luma/acme-root.pem"
#: Where an edge's storage (certificates, ACME account, challenge tokens, locks) is mounted.
STORAGE_TARGET = "/data"


@dataclass(frozen=True)
class EdgeTLS:
    """HTTPS on the edges. Every edge uses the same storage (``--storage``): one certificate per host
    for the whole swarm, obtained once (Caddy's storage locks), and an HTTP-01 challenge is answered
    by whichever node the CA reaches (the token is in the storage)."""
    mode: str = "off"
    https_port: int = 443
    email: str = ""
    acme_ca: str = ""
    acme_root: bool = False

    @property
    def on(self) -> bool:
        return self.mode != "off"


def edge_config(t: RouteTable, http_port: int = 80, proxy: str = "luma-proxy",
                tls: EdgeTLS = EdgeTLS()) -> dict[str, Any]:
    """What every edge pulls: host -> the owning project's gateway, unknown hosts 404; with TLS,
    the same certificates and redirects as one host's proxy (``caddy_config.assemble``)."""
    redirect = ("https", tls.https_port) if tls.on else ("http", http_port)
    body = _edge_routes(proxy, t, caddy_config.NOT_FOUND, redirect)
    version = hashlib.sha256(dumps({"r": body, "p": http_port, "tls": tls.__dict__}).encode()).hexdigest()[:12]
    cfg = caddy_config.assemble(
        body, caddy_routes.certificate_hosts(t.serving), tls=tls.mode, email=tls.email or None,
        http_port=http_port, https_port=tls.https_port, acme_ca=tls.acme_ca or None,
        acme_ca_root=ACME_ROOT_TARGET if tls.acme_root else None,
        # the CA validates TLS-ALPN-01 on 443 only
        tls_alpn=tls.https_port == 443, not_found=_not_found(version),
        # The edges load a new config within about a second of each other. One that has not loaded
        # it yet must still answer the CA's HTTP-01 request for a new host, whose token another edge
        # put in the shared storage: so every edge config, even one with no host yet, has a policy
        # for every name with the same issuer.
        catch_all=tls.on)
    caddy_routes.plain_http_redirects(cfg, caddy_config.HTTP_SERVER_NAME, t.routes, redirect, caddy_config.safe,
                                      _entry_id)
    guards.with_auth_errors(cfg["apps"]["http"]["servers"][caddy_config.SERVER_NAME], t.serving)
    cfg["admin"] = _loader(proxy)
    cfg["logging"] = _QUIET
    if tls.on:
        cfg["storage"] = {"module": "file_system", "root": f"{STORAGE_TARGET}/caddy"}
    else:
        cfg.pop("storage", None)
    return cfg


def edge_version(config: dict[str, Any]) -> str:
    nf = config["apps"]["http"]["servers"][caddy_config.SERVER_NAME]["routes"][-1]
    return nf["handle"][0]["headers"][HEADER_VERSION][0]


def boot_config(http_port: int = 80, proxy: str = "luma-proxy") -> dict[str, Any]:
    """An edge's config until its first pull (a second): every host answers 503, none another's."""
    starting = {"handle": [{"handler": "static_response", "status_code": 503,
                            "headers": {"Content-Type": ["text/plain; charset=utf-8"], "Retry-After": ["1"]},
                            "body": "luma-compose: this proxy is starting\n"}], "terminal": True}
    return {"admin": _loader(proxy), "logging": _QUIET, "apps": {"http": {"http_port": http_port, "servers": {
        caddy_config.SERVER_NAME: _server(http_port, [starting])}}}}


def gateway_config(project: str) -> dict[str, Any]:
    """Project P's gateway: forwards to ``P-S:port`` named by the edge, nothing else. It resolves
    names on P_luma and the edge network only, so no other project's service is in its reach."""
    alias_re = "^" + re.escape(project) + "-[a-zA-Z0-9._-]+$"
    forward = {
        "match": [{"header_regexp": {HEADER_ALIAS: {"pattern": alias_re},
                                     HEADER_PORT: {"pattern": "^[1-9][0-9]{0,4}$"}}}],
        "handle": [_dynamic_proxy("{http.request.header.%s}" % HEADER_ALIAS, "{http.request.header.%s}" % HEADER_PORT,
                                  {"delete": [HEADER_ALIAS, HEADER_PORT]})],
        "terminal": True,
    }
    forward["handle"][0]["headers"]["response"] = {"set": {HEADER_UPSTREAM: ["{http.reverse_proxy.upstream.hostport}"]}}
    refuse = {"handle": [{"handler": "static_response", "status_code": 421,
                          "body": "luma-compose: not a target of this project\n"}], "terminal": True}
    server = _server(GATEWAY_PORT, [forward, refuse])
    # the edge's X-Forwarded-For/-Proto are passed on (the client's address reaches the app)
    server["trusted_proxies"] = {"source": "static", "ranges": PRIVATE_RANGES}
    return {"admin": {"disabled": True, "config": {"persist": False}}, "logging": _QUIET,
            "apps": {"http": {"servers": {"gateway": server}}}}


def config_server_config() -> dict[str, Any]:
    """Serves the edge config (a Swarm config object mounted at EDGE_CONFIG_TARGET) over TLS."""
    import posixpath

    root, name = posixpath.split(EDGE_CONFIG_TARGET)
    serve = {"match": [{"path": [f"/{name}"]}],
             "handle": [{"handler": "file_server", "root": root}], "terminal": True}
    nf = {"handle": [{"handler": "static_response", "status_code": 404}], "terminal": True}
    return {"admin": {"disabled": True, "config": {"persist": False}}, "logging": _QUIET, "apps": {
        "tls": {"certificates": {"load_files": [{"certificate": CONTROL_CERT_TARGET,
                                                 "key": f"/run/secrets/{CONTROL_KEY_SECRET}"}]}},
        "http": {"servers": {"control": {"listen": [f":{CONTROL_PORT}"], "automatic_https": {"disable": True},
                                         "tls_connection_policies": [{}], "routes": [serve, nf]}}}}}


def dumps(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, indent=1)


def config_name(prefix: str, text: str) -> str:
    """Swarm configs are immutable: each content gets its own name."""
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
