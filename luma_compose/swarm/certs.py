"""Certificates on a swarm: each host's certificate state and expiry, read through a manager's API alone.

The certificates are files in the storage every edge shares (``--storage``, mounted at /data); the
controller talks only to a manager (perhaps remote, through an SSH context) and cannot read them. So it
runs a short-lived Swarm job on a proxy node (``--mode replicated-job``, the edges' placement, the
proxy's image, the same storage mounted read-only, no network) that prints the public ``.crt`` files
(never a key: :data:`..proxy.certs.LIST_SCRIPT`) to its stdout; the controller reads them with
``docker service logs``, removes the job, and reads them with the same code as one host
(:mod:`..proxy.certs`). ``status --swarm`` reads them at every run; a sync with metrics on reads them at
most every :data:`CACHE_SECONDS` per process (``proxy run --swarm``, as one host's controller does) for
``luma_certificate_expiry_timestamp_seconds``. With ``--tls off`` nothing of this runs.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .. import contract
from ..errors import LumaError
from ..proxy import certs
from ..proxy.observe_inputs import CERT_CACHE_SECONDS
from ..records import Mount, ServiceRecord, ServiceSpec
from . import routes as swarm_routes

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.protocols import SwarmEngineProtocol

#: How long a read is used again by a sync (one host's value: renewals are 30 days before expiry).
CACHE_SECONDS = CERT_CACHE_SECONDS
#: The job's role (the swarm role label), beside edge, gateway, config and watch.
ROLE = "certs"
#: (engine, proxy name, edge service id) -> (read at, path -> PEM): what this process read last.
_cache: dict[tuple[int, str, str], tuple[float, dict[str, str]]] = {}


def job_spec(edge: ServiceRecord, name: str) -> ServiceSpec:
    """The job that lists the certificates in the storage of the edge service ``edge`` (its labels say
    which), on a node the edges may run on, with their image."""
    storage = edge.labels.get(contract.SWARM_STORAGE_LABEL, "")
    mount = Mount("bind" if storage.startswith("/") else "volume", storage, swarm_routes.STORAGE_TARGET,
                  readonly=True)
    return ServiceSpec(name, edge.image, ("sh", "-c", certs.LIST_SCRIPT),
                       {contract.SWARM_ROLE_LABEL: ROLE, contract.SWARM_PROXY_LABEL: edge.name},
                       mode="replicated-job", mounts=(mount,), constraints=tuple(edge.constraints),
                       restart_condition="none", log_driver="json-file")


def files(engine: SwarmEngineProtocol, edge: ServiceRecord, max_age: float = 0.0) -> dict[str, str]:
    """path -> PEM of every certificate in the edges' storage (a read at most ``max_age`` seconds old
    in this process is used again). Empty without storage; a failing job is a LumaError."""
    if not edge.labels.get(contract.SWARM_STORAGE_LABEL):
        return {}
    key = (id(engine), edge.name, edge.id)
    now = time.monotonic()
    if key in _cache and now - _cache[key][0] <= max_age:
        return _cache[key][1]
    out = certs.parse_listing(engine.run_job(job_spec(edge, f"{edge.name}-certs-{secrets.token_hex(4)}")))
    _cache[key] = (now, out)
    return out


def hosts_of(routes: Iterable[Any]) -> list[str]:
    """The hosts that get a certificate: every claimed name but wildcards (as one host's status)."""
    return sorted({h for r in routes for h in r.claimed if not h.startswith("*")})


def states(routes: Iterable[Any], found: dict[str, str], log_text: str = "") -> list[certs.CertState]:
    """Each claimed host's certificate state from the storage's files (:func:`files`) and the edges' log
    (its ACME errors say ``failing``), as on one host."""
    hosts = hosts_of(routes)
    return certs.states(hosts, found, log_text) if hosts else []


def expiry(engine: SwarmEngineProtocol, edge: ServiceRecord, routes: Iterable[Any]) -> dict[str, float]:
    """host -> its certificate's expiry (Unix time), for the edges' metrics: a read of this process at
    most :data:`CACHE_SECONDS` old. A job that fails leaves the series out (the sync goes on)."""
    hosts = hosts_of(routes)
    if not hosts:
        return {}
    try:
        found = files(engine, edge, max_age=CACHE_SECONDS)
    except LumaError:
        return {}
    return {s.host: datetime.fromisoformat(s.not_after.replace("Z", "+00:00")).timestamp()
            for s in certs.states(hosts, found, "") if s.not_after}
