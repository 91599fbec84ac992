"""What the access log and metrics parts of the config need from the engine (:mod:`.observe`
builds them): the proxy container's log options, the metrics address, who may read the metrics,
and the certificates' expiry. Read through the engine only, cached where they rarely change."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..errors import LumaError, UsageError
from . import certs, observe
from .container import METRICS_KEY, ProxyContainer, Settings, parse_publish

if TYPE_CHECKING:  # pragma: no cover
    from ..routing.claims import RouteTable

#: The proxy's log: Docker's json-file driver, rotated (at most LOG_MAX_FILES x LOG_MAX_SIZE).
LOG_DRIVER = "json-file"
LOG_MAX_SIZE = "20m"
LOG_MAX_FILES = "5"
LOG_OPTIONS = {"max-size": LOG_MAX_SIZE, "max-file": LOG_MAX_FILES}
#: The engine's default bridge: the proxy container's first network, where published ports arrive from.
DEFAULT_BRIDGE = "bridge"
#: How long a read of the certificates' expiry is used again (renewals are 30 days before expiry).
CERT_CACHE_SECONDS = 600.0


def metrics_address(value: str) -> str:
    """``--metrics [IP:]PORT`` -> ``IP:PORT`` (loopback when no IP is given); "" or off: no metrics."""
    if value.strip() in ("", "off"):
        return ""
    ip, port = parse_publish(value, "--metrics")
    if port == 0:
        raise UsageError(f"--metrics {value!r}: give a port", "e.g. --metrics 127.0.0.1:9180")
    ip = ip or "127.0.0.1"
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def access_log_setting(value: str) -> str:
    if value not in ("on", "off"):
        raise UsageError(f"--access-log {value!r} is not on or off")
    return value


def spec_ports(settings: Settings) -> dict[str, tuple[str, int]]:
    """The metrics port to publish (none without --metrics)."""
    if not settings.metrics:
        return {}
    return {METRICS_KEY: parse_publish(settings.metrics, "--metrics")}


class ObserveInputs:
    """The engine reads behind :func:`observe.apply`, for one controller."""

    def __init__(self, engine: Any, proxy: ProxyContainer):
        self.engine = engine
        self.proxy = proxy
        self._certs: tuple[float, str, dict[str, float]] | None = None  # (read at, proxy id, host -> expiry)

    def allow(self, table: "RouteTable") -> tuple[str, ...]:
        """The host's own addresses on the networks the proxy is on (the default bridge and the ingress
        networks it routes): a connection to a published port arrives from one of them (Docker's port
        forwarding), a project container never has one (the engine keeps a network's gateway for the
        host, and a spoofed source gets no TCP handshake). Read at every config build: fail closed."""
        gateways = self.engine.network_gateways()
        nets = {DEFAULT_BRIDGE, *table.networks()}
        return tuple(sorted({f"{g}/{128 if ':' in g else 32}" for n in nets for g in gateways.get(n, ())}))

    def cert_expiry(self, proxy_id: str, hosts: list[str]) -> dict[str, float]:
        now = time.monotonic()
        if self._certs is None or self._certs[1] != proxy_id or now - self._certs[0] > CERT_CACHE_SECONDS:
            try:
                files = self.proxy.certificate_files()
            except LumaError:
                files = {}
            states = certs.states(hosts, files, "")
            expiry = {s.host: _unix(s.not_after) for s in states if s.not_after}
            self._certs = (now, proxy_id, expiry)
        return {h: t for h, t in self._certs[2].items() if h in hosts}

    def apply(self, config: dict[str, Any], table: "RouteTable", settings: Settings, proxy_id: str) -> dict[str, Any]:
        metrics = bool(settings.metrics)
        hosts = sorted({h for r in table.routes for h in r.hosts if not h.startswith("*")})
        expiry = self.cert_expiry(proxy_id, hosts) if metrics and settings.tls != "off" and hosts else {}
        return observe.apply(config, table.routes, access_log=settings.access_log != "off", metrics=metrics,
                             allow=self.allow(table) if metrics else (), cert_expiry=expiry)


def _unix(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()

