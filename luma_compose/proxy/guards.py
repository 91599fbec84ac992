"""Access control in Caddy's JSON: the guard in front of a guarded route's handler (docs/access.md).

Both layouts use it: one host's proxy (``caddy_config``) and a swarm's edges (``swarm.routes``). A
route with ``allow`` or ``basic_auth`` gets a ``subroute`` before its handler, in this order:

1. a request from inside the proxy itself (loopback: ``deploy``'s own check through the proxy, and a
   request a config load cut short, replayed once it had passed these guards) goes on unguarded;
2. ``allow``: a request relayed by the host (the proxy's network gateway: Docker's userland proxy,
   hairpin NAT; the client's real address is gone) gets 403 saying so, then every address outside
   the list gets 403 (before any password is checked, so outsiders cost no bcrypt);
3. ``basic_auth``: Caddy's ``authentication`` handler with the ``http_basic`` provider (bcrypt hashes,
   base64, as in the labels; verified hashes cached). It fails with 401 (``WWW-Authenticate`` set),
   which the server's first error route (``AUTH_ERROR``) answers, before replay and 503.

Every denial carries ``Luma-Guard: allow|basic_auth``: which of the proxy's guards answered, not the
app. Health checks never pass through here: Caddy's active checks (one host) dial the containers
directly, a swarm's tasks are checked by Swarm, and ``deploy`` probes containers from inside the proxy.
Values reach this module validated (``routing.claims.access_problem``) and are checked again with
``safe`` (``caddy_config.safe``'s rule).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from .. import validate
from ..records import ContainerRecord

GUARD_HEADER = "Luma-Guard"
LOOPBACK = ["127.0.0.1/32", "::1/128"]
REALM = "restricted"
RELAYED_BODY = ("luma-compose: this host admits only listed addresses, and this request was relayed by the "
                "proxy's host (Docker's userland proxy or NAT), which hides the client's address; it cannot be "
                "admitted. Reach the proxy from another machine over IPv4, and on the server set "
                "\"userland-proxy\": false in /etc/docker/daemon.json (docs/access.md)\n")


def relays(c: ContainerRecord) -> tuple[str, ...]:
    """The addresses a relayed connection to the proxy container's published ports comes from: the
    gateways of its own networks (not the ingress networks it joins)."""
    from .. import contract

    return tuple(sorted({n.gateway for name, n in c.networks.items()
                         if n.gateway and not name.endswith("_" + contract.NETWORK_KEY)}))


def safe(value: str) -> str:
    """``caddy_config.safe``'s rule (no placeholder can reach Caddy), without importing it (it imports this)."""
    if not validate.safe_for_caddy(value):
        raise ValueError(f"refusing to put {value!r} into Caddy's config")
    return value


def _text(status: int, body: str, guard: str) -> dict[str, Any]:
    return {"handler": "static_response", "status_code": status, "body": body,
            "headers": {"Content-Type": ["text/plain; charset=utf-8"], GUARD_HEADER: [guard]}}


def _deny(match: dict[str, Any], body: str) -> dict[str, Any]:
    return {"match": [match], "handle": [_text(403, body, "allow")], "terminal": True}


def guard(allow: Sequence[str], basic_auth: Sequence[tuple[str, str]], relays: Sequence[str] = ()) -> dict[str, Any]:
    """The subroute that lets a request through to the next handler only when it passes."""
    routes: list[dict[str, Any]] = [{"match": [{"remote_ip": {"ranges": LOOPBACK}}], "terminal": True}]
    if allow:
        if relays:
            routes.append(_deny({"remote_ip": {"ranges": [safe(r) for r in relays]}}, RELAYED_BODY))
        routes.append(_deny({"not": [{"client_ip": {"ranges": [safe(a) for a in allow]}}]},
                            "luma-compose: your address is not admitted to this host\n"))
    if basic_auth:
        routes.append({"handle": [{"handler": "authentication", "providers": {"http_basic": {
            "accounts": [{"username": safe(u), "password": safe(h)} for u, h in basic_auth],
            "hash": {"algorithm": "bcrypt"}, "hash_cache": {}, "realm": REALM}}}]})
    # No error routes here: a subroute's error routes would also take the errors of the handlers
    # after it (the reverse_proxy), which the server's own error routes must see (replay, 503).
    return {"handler": "subroute", "routes": routes}


#: The server's first error route when any route has basic auth: the authentication handler's 401 (the
#: only handler that fails with 401; the handler already set ``WWW-Authenticate``).
AUTH_ERROR = {"match": [{"expression": "{http.error.status_code} == 401"}],
              "handle": [_text(401, "luma-compose: this host needs a user name and password\n", "basic_auth")],
              "terminal": True}


def with_auth_errors(server: dict[str, Any], routes: Iterable[Any]) -> None:
    """Put AUTH_ERROR first in ``server``'s error routes when one of ``routes`` has basic auth."""
    if any(r.basic_auth for r in routes):
        errors = server.get("errors", {})
        server["errors"] = {**errors, "routes": [AUTH_ERROR, *errors.get("routes", [])]}


def wrap(r: Any, handler: dict[str, Any], relays: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The handle list of route ``r`` (a ``routing.claims.Route``): its guard, if any, then ``handler``."""
    if not (r.allow or r.basic_auth):
        return [handler]
    return [guard(r.allow, r.basic_auth, relays), handler]
