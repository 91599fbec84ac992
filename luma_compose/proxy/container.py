"""The proxy container: its settings (kept as labels on itself) and Caddy's admin API inside it.

Caddy's admin API listens on loopback inside the container. It is reached through the
engine (``exec`` and file copies), so no project container can reach it, and the proxy
never mounts the Docker socket.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..contract import (  # the proxy container's own labels live with the others
    PROXY_ACCESS_LOG_LABEL,
    PROXY_ACME_CA_LABEL,
    PROXY_ACME_ROOT_LABEL,
    PROXY_METRICS_LABEL,
    PROXY_EMAIL_LABEL,
    PROXY_HTTP_LABEL,
    PROXY_HTTPS_LABEL,
    PROXY_SELECT_LABEL,
    PROXY_TLS_LABEL,
)
from ..errors import LumaError, UnavailableError, UsageError
from ..records import ContainerRecord
from . import caddy_config

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.protocols import Engine

DEFAULT_NAME = "luma-proxy"
DEFAULT_IMAGE = "caddy:2"
ENV_NAME = "LUMA_PROXY_NAME"
ENV_IMAGE = "LUMA_PROXY_IMAGE"
ENV_VOLUME = "LUMA_PROXY_VOLUME"

CONF_DIR = "/etc/luma"
BOOTSTRAP_PATH = f"{CONF_DIR}/bootstrap.json"
ACME_ROOT_PATH = f"{CONF_DIR}/acme-ca-root.pem"
ADMIN_URL = f"http://{caddy_config.ADMIN_LISTEN}"
INTERNAL_HTTP_PORT = 80
INTERNAL_HTTPS_PORT = 443
HTTP_KEY = f"{INTERNAL_HTTP_PORT}/tcp"
HTTPS_KEY = f"{INTERNAL_HTTPS_PORT}/tcp"
#: HTTP/3 (QUIC) is published on the same host address and port as HTTPS, over UDP.
HTTPS_UDP_KEY = f"{INTERNAL_HTTPS_PORT}/udp"
#: The metrics listener (proxy/observe.py), published only with --metrics.
METRICS_KEY = "9180/tcp"


def proxy_name(name: str | None = None) -> str:
    return name or os.environ.get(ENV_NAME) or DEFAULT_NAME


def parse_publish(value: str, what: str) -> tuple[str, int]:
    """``[IP:]PORT`` -> (ip, port); ip "" means all interfaces, port 0 means any free port."""
    m = re.fullmatch(r"(?:(\[[0-9a-fA-F:]+\]|[0-9.]+|localhost):)?(\d{1,5})", value.strip())
    if not m or int(m.group(2)) > 65535:
        raise UsageError(f"{what} {value!r} is not [IP:]PORT", "e.g. 80, 8080 or 127.0.0.1:8080 (0 picks a free port)")
    ip = (m.group(1) or "").strip("[]")
    if ip == "localhost":
        ip = "127.0.0.1"
    return ip, int(m.group(2))


@dataclass(frozen=True)
class Settings:
    """The proxy's settings, as kept in labels on its container."""

    tls: str = "acme"
    email: str = ""
    http: str = "80"
    https: str = "443"
    select: str = ""
    acme_ca: str = ""  # ACME directory URL; "" is Caddy's default (Let's Encrypt)
    acme_ca_root: str = ""  # PEM of the root the ACME server's HTTPS is signed with
    access_log: str = "on"  # on | off: one JSON line per request on the proxy's stdout
    metrics: str = ""  # [IP:]PORT the metrics are published on; "": no metrics

    @classmethod
    def of(cls, labels: Mapping[str, str]) -> "Settings":
        d = cls()
        return cls(labels.get(PROXY_TLS_LABEL, d.tls), labels.get(PROXY_EMAIL_LABEL, d.email),
                   labels.get(PROXY_HTTP_LABEL, d.http), labels.get(PROXY_HTTPS_LABEL, d.https),
                   labels.get(PROXY_SELECT_LABEL, d.select), labels.get(PROXY_ACME_CA_LABEL, d.acme_ca),
                   labels.get(PROXY_ACME_ROOT_LABEL, d.acme_ca_root), labels.get(PROXY_ACCESS_LOG_LABEL, d.access_log),
                   labels.get(PROXY_METRICS_LABEL, d.metrics))

    def labels(self) -> dict[str, str]:
        out = {PROXY_TLS_LABEL: self.tls, PROXY_EMAIL_LABEL: self.email, PROXY_HTTP_LABEL: self.http,
               PROXY_HTTPS_LABEL: self.https, PROXY_SELECT_LABEL: self.select}
        if self.acme_ca:
            out[PROXY_ACME_CA_LABEL] = self.acme_ca
        if self.acme_ca_root:
            out[PROXY_ACME_ROOT_LABEL] = self.acme_ca_root
        if self.access_log != "on":
            out[PROXY_ACCESS_LOG_LABEL] = self.access_log
        if self.metrics:
            out[PROXY_METRICS_LABEL] = self.metrics
        return out

    def selects(self, labels: Mapping[str, str]) -> bool:
        """Does a container with these labels belong to this proxy (``--select``)?"""
        if not self.select:
            return True
        k, _, v = self.select.partition("=")
        return labels.get(k) == v


def settings_of(c: ContainerRecord) -> Settings:
    return Settings.of(c.labels)


def published(c: ContainerRecord) -> tuple[str, int | None, int | None]:
    """(host ip, published HTTP port, published HTTPS port) of the proxy container."""
    http = c.ports.get(HTTP_KEY)
    https = c.ports.get(HTTPS_KEY)
    ip = (https or http or ("", 0))[0]
    return ip, http[1] if http else None, https[1] if https else None


class ProxyContainer:
    """One proxy container, reached through the engine."""

    def __init__(self, engine: "Engine", name: str):
        self.engine = engine
        self.name = name

    def container(self) -> ContainerRecord | None:
        return self.engine.container(self.name)

    def running(self) -> ContainerRecord:
        c = self.container()
        if c is None:
            raise UnavailableError(f"the proxy container {self.name} does not exist",
                                   "start it with: luma-compose proxy up")
        if c.state != "running":
            raise UnavailableError(f"the proxy container {self.name} is {c.state}, not running",
                                   "start it with: luma-compose proxy up")
        return c

    def exec(self, argv: list[str]) -> tuple[int, str, str]:
        return self.engine.exec(self.name, argv)

    def fetch(self, url: str, host: str | None = None, timeout: int = 5) -> tuple[bool, str]:
        """GET ``url`` from inside the proxy container (its network namespace): (2xx/3xx?, why not).

        Busybox ``wget`` follows no certificate checks here: only plain HTTP URLs are fetched."""
        argv = ["wget", "-q", "-O", "/dev/null"] + (["--header", f"Host: {host}"] if host else []) + [url]
        code, out, err = self.exec(["timeout", str(timeout), *argv])
        if code == 127 or "timeout: not found" in err or "executable file not found" in (out + err):
            code, out, err = self.exec(argv)
        if code == 0:
            return True, ""
        if code == 143:
            return False, f"no answer within {timeout}s"
        msg = (err or out).strip().splitlines()
        return False, msg[-1] if msg else f"exit {code}"

    def certificate_files(self) -> dict[str, str]:
        """path -> PEM of every certificate in Caddy's storage (one exec)."""
        from .certs import LIST_SCRIPT, parse_listing

        code, out, err = self.exec(["sh", "-c", LIST_SCRIPT])
        return parse_listing(out.splitlines())

    def get_config(self) -> dict[str, Any] | None:
        code, out, err = self.exec(["wget", "-q", "-O", "-", f"{ADMIN_URL}/config/"])
        if code != 0:
            raise UnavailableError(f"Caddy's admin API in {self.name} does not answer: {(err or out).strip()}",
                                   "see: docker logs " + self.name)
        try:
            cfg = json.loads(out or "null")
        except json.JSONDecodeError as e:
            raise UnavailableError(f"Caddy's admin API in {self.name} returned no JSON: {e}") from e
        return cfg if isinstance(cfg, dict) else None

    def stage(self, text: str) -> tuple[str, str]:
        """Copy a config (``caddy_config.dumps``) into the container for :meth:`load`: (text, path).
        It changes nothing Caddy serves, so it may run beside other work (a network attach). Each
        load has its own file (removed by the load), so another process's load of its own config
        (a deploy beside ``proxy run``) never posts this one or has its own posted by this."""
        path = f"{CONF_DIR}/load-{uuid.uuid4().hex}.json"
        self.engine.put_file(self.name, path, text.encode())
        return text, path

    def load(self, config: dict[str, Any], attempts: int = 3, staged: tuple[str, str] | None = None) -> None:
        """Atomic ``POST /load`` of a whole config; ``staged``: what :meth:`stage` returned for it.

        One ``wget`` posts the file to the admin API (starting the caddy CLI in the container cost
        0.2-0.3 s more per load, measured at 200 routes). When it fails, ``caddy reload`` does the
        load: it prints Caddy's reason when Caddy rejects the config, and works with a ``wget``
        that cannot post. Caddy replaces its admin server on every load and closes the old one's
        connections: a load from another process (a deploy beside ``proxy run``) can see its request
        reset unanswered. Such a load is sent again (an identical config is a no-op for Caddy)."""
        text = caddy_config.dumps(config)
        if staged is None or staged[0] != text:
            staged = self.stage(text)
        path = staged[1]
        code, out, err = self.exec(post_load(path))  # removes the file once loaded
        if code == 0:
            return
        for attempt in range(attempts):
            code, out, err = self.exec(["caddy", "reload", "--config", path, "--address", caddy_config.ADMIN_LISTEN])
            if code == 0 or not _unanswered(err or out) or attempt == attempts - 1:
                break
            time.sleep(0.2)
        self.exec(["rm", "-f", path])
        if code != 0:
            msg = (err or out).strip().splitlines()
            raise LumaError(f"Caddy in {self.name} rejected the config: {msg[-1] if msg else f'exit {code}'}",
                            "this is a bug in luma-compose; the previous config stays active")

    def wait_admin(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            c = self.container()
            if c is None or c.state != "running":
                logs = self.engine.logs(self.name, tail=20, stdout=False)  # Caddy's own log, not the access log
                raise UnavailableError(f"the proxy container {self.name} stopped "
                                       f"({c.state if c else 'removed'}):\n{logs}")
            ok, last = self.fetch(f"{ADMIN_URL}/config/", timeout=2)
            if ok:
                return
            time.sleep(0.1)
        raise UnavailableError(f"Caddy's admin API in {self.name} did not come up within {timeout:.0f}s: {last}",
                               "see: docker logs " + self.name)


#: How ``caddy reload`` reports a request that got no answer (the admin server it reached was being
#: replaced by another process's load): "performing request: ... <one of these>".
_UNANSWERED = ("connection reset by peer", "connection refused", "EOF")


#: A staged config file older than this (minutes) belongs to no live load: a process killed between
#: :meth:`ProxyContainer.stage` and its load left it. The next load removes it.
STALE_LOAD_MINUTES = 10


def post_load(path: str) -> list[str]:
    """``POST /load`` of the file at ``path`` with the container's own wget (busybox, as ``fetch``
    uses), then the file removed, and any staged file a killed process left (older than
    STALE_LOAD_MINUTES); the exit status is the load's."""
    return ["sh", "-c", f'wget -q -O /dev/null --header "Content-Type: application/json" --post-file "$1" '
            f'{ADMIN_URL}/load && rm -f "$1"; rc=$?; find {CONF_DIR} -maxdepth 1 -name "load-*.json" '
            f'-mmin +{STALE_LOAD_MINUTES} -exec rm -f {{}} + 2>/dev/null; exit $rc', "sh", path]


def _unanswered(text: str) -> bool:
    return "performing request" in text and any(w in text for w in _UNANSWERED)
