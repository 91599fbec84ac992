"""The label contract and network naming: the one place that knows them.

Everything that reads or writes ``luma.*`` labels, the ingress network or the
project-prefixed alias goes through here: render writes them, the proxy and
deploy read them back from running containers.
"""

from __future__ import annotations

from typing import NamedTuple

LABEL_PREFIX = "luma."

LABEL_MANAGED = "luma.managed"
LABEL_PROJECT = "luma.project"
LABEL_SERVICE = "luma.service"
LABEL_HOSTS = "luma.hosts"
LABEL_PORT = "luma.port"
LABEL_TARGET = "luma.target"
LABEL_HEALTH_PATH = "luma.health.path"
LABEL_NETWORK = "luma.network"
#: Optional route labels (issue 22), written only when x-luma sets them: path prefixes
#: (comma-separated), "true" to strip the matched prefix, hosts answered with a 308 to the first host.
LABEL_PATHS = "luma.paths"
LABEL_STRIP_PREFIX = "luma.strip_prefix"
LABEL_REDIRECT_FROM = "luma.redirect_from"
#: Seconds the proxy holds a request while a stop-first service has no running container (x-luma
#: ``hold``, default DEFAULT_HOLD); written only for a stop-first service.
LABEL_HOLD = "luma.hold"
DEFAULT_HOLD = 30
MAX_HOLD = 600
#: Seconds between the proxy's own probes of each container's health path (x-luma
#: ``health_interval``); written only when x-luma sets it. Without it the proxy does not probe:
#: Docker's health check and the proxy's passive checks decide (docs/proxy.md, issue 19).
LABEL_HEALTH_INTERVAL = "luma.health.interval"
MAX_HEALTH_INTERVAL = 3600

#: Label order as render writes them.
ROUTE_LABELS = (
    LABEL_MANAGED,
    LABEL_PROJECT,
    LABEL_SERVICE,
    LABEL_HOSTS,
    LABEL_PORT,
    LABEL_TARGET,
    LABEL_HEALTH_PATH,
    LABEL_NETWORK,
)

#: Key of the ingress network in the compose file's top-level ``networks``.
NETWORK_KEY = "luma"
#: Label put on the ingress network so a re-render recognises it as ours.
NETWORK_OWNER_LABEL = "luma.ingress"

#: The key that marks a service as routed.
EXTENSION_KEY = "x-luma"

DEFAULT_HEALTH_PATH = "/up"

# Labels on the proxy container itself: its settings, so `proxy sync` and a later
# `proxy up` know them without any other store.
PROXY_LABEL = "luma.proxy"
PROXY_TLS_LABEL = "luma.proxy.tls"
PROXY_EMAIL_LABEL = "luma.proxy.email"
PROXY_HTTP_LABEL = "luma.proxy.http-port"
PROXY_HTTPS_LABEL = "luma.proxy.https-port"
#: Optional LABEL=VALUE: the proxy routes only managed containers that also carry it.
PROXY_SELECT_LABEL = "luma.proxy.select"
#: The ACME directory URL (``--acme-ca``; "" is Let's Encrypt, Caddy's default) and the PEM of the
#: root that signs its HTTPS certificate (``--acme-ca-root``, copied into the proxy at creation).
PROXY_ACME_CA_LABEL = "luma.proxy.acme-ca"
PROXY_ACME_ROOT_LABEL = "luma.proxy.acme-ca-root"
#: ``off``: no access log (default on); the metrics address (``--metrics``, absent: no metrics).
PROXY_ACCESS_LOG_LABEL = "luma.proxy.access-log"
PROXY_METRICS_LABEL = "luma.proxy.metrics"

#: Layout version of the single-host proxy container (a proxy of another layout is recreated).
PROXY_LAYOUT_LABEL = "luma.proxy.layout"

# Labels of the swarm proxy's parts (swarm/proxy.py). On every part: its role (edge, gateway,
# config) and the proxy it belongs to (not ``luma.proxy``, which marks the single-host proxy).
SWARM_ROLE_LABEL = "luma.proxy.swarm"
SWARM_PROXY_LABEL = "luma.proxy.name"
SWARM_GATEWAY_OF_LABEL = "luma.proxy.gateway-of"
#: On the proxy's config objects and secrets (``<this>.control`` on the control TLS pair).
SWARM_CONFIG_LABEL = "luma.proxy.config"
SWARM_NODES_LABEL = "luma.proxy.nodes"
SWARM_STORAGE_LABEL = "luma.proxy.storage"
#: The edge's TLS settings (``--acme-ca-root`` as a flag: the PEM is a Swarm config).
SWARM_ACME_ROOT_LABEL = "luma.proxy.acme-root"
#: The edges' metrics listener: its port is ``PROXY_METRICS_LABEL``, who may read it this (CIDRs, comma-separated).
SWARM_METRICS_ALLOW_LABEL = "luma.proxy.metrics-allow"

#: Docker's label on every service and network of a stack: the stack (project) name.
STACK_NAMESPACE_LABEL = "com.docker.stack.namespace"

# Labels of the per-project deploy lock (deploy/lock.py): a container created, never started.
LOCK_LABEL = "luma.lock.project"
LOCK_HOST_LABEL = "luma.lock.host"
LOCK_PID_LABEL = "luma.lock.pid"
LOCK_SINCE_LABEL = "luma.lock.since"


def lock_name(project: str) -> str:
    return f"luma-deploy-lock-{project}"


#: Suffix `deploy` gives (`docker rename`) to old containers it is draining: never routed.
DRAINING_SUFFIX = "--luma-draining"


def ingress_network(project: str) -> str:
    """The real (engine) name of a project's ingress network: compose prefixes the key."""
    return f"{project}_{NETWORK_KEY}"


def stack_service(project: str, service: str) -> str:
    """The name ``docker stack deploy P`` gives service S on a swarm."""
    return f"{project}_{service}"


def alias(project: str, service: str) -> str:
    """The project-prefixed DNS alias of a routed service on the ingress network."""
    return f"{project}-{service}"


def target(project: str, service: str, port: int) -> str:
    return f"{alias(project, service)}:{port}"


def route_labels(project: str, service: str, hosts: list[str], port: int, health: str,
                 paths: tuple[str, ...] = (), strip_prefix: bool = False,
                 redirect_from: tuple[str, ...] = ()) -> dict[str, str]:
    """The exact ``luma.*`` labels of a routed service, in write order (the optional ones last,
    only when set)."""
    return {**_base_labels(project, service, hosts, port, health), **feature_labels(paths, strip_prefix, redirect_from)}


def feature_labels(paths: tuple[str, ...] = (), strip_prefix: bool = False,
                   redirect_from: tuple[str, ...] = ()) -> dict[str, str]:
    """The optional route labels (paths, strip_prefix, redirect_from), only those that are set."""
    out = {}
    if paths:
        out[LABEL_PATHS] = ",".join(paths)
    if strip_prefix:
        out[LABEL_STRIP_PREFIX] = "true"
    if redirect_from:
        out[LABEL_REDIRECT_FROM] = ",".join(redirect_from)
    return out


def _base_labels(project: str, service: str, hosts: list[str], port: int, health: str) -> dict[str, str]:
    return {
        LABEL_MANAGED: "true",
        LABEL_PROJECT: project,
        LABEL_SERVICE: service,
        LABEL_HOSTS: ",".join(hosts),
        LABEL_PORT: str(port),
        LABEL_TARGET: target(project, service, port),
        LABEL_HEALTH_PATH: health,
        LABEL_NETWORK: ingress_network(project),
    }


class RoutedService(NamedTuple):  # not a dataclass: render must not pay for importing dataclasses
    """A service routed by ``x-luma``, as plain data: what render found and deploy rolls."""

    service: str
    hosts: tuple[str, ...]
    port: int
    health_path: str
    paths: tuple[str, ...] = ()
    strip_prefix: bool = False
    redirect_from: tuple[str, ...] = ()
    #: access control (docs/access.md): (user, bcrypt hash) and the admitted networks
    basic_auth: tuple[tuple[str, str], ...] = ()
    allow: tuple[str, ...] = ()
    rollout: str = "start-first"  # x-luma `rollout` (deploy/stopfirst.py)
    hold: int = 0  # seconds the proxy holds requests during a stop-first roll (0: not stop-first)
    health_interval: int = 0  # seconds between the proxy's probes (x-luma `health_interval`); 0: no probes

    def labels(self, project: str) -> dict[str, str]:
        return {**route_labels(project, self.service, list(self.hosts), self.port, self.health_path,
                               self.paths, self.strip_prefix, self.redirect_from),
                **access_labels(self.basic_auth, self.allow), **hold_labels(self.hold),
                **health_interval_labels(self.health_interval)}


def hold_labels(hold: int) -> dict[str, str]:
    """``luma.hold`` of a stop-first service (nothing for any other)."""
    return {LABEL_HOLD: str(int(hold))} if hold else {}


def health_interval_labels(interval: int) -> dict[str, str]:
    """``luma.health.interval`` of a service whose x-luma sets ``health_interval`` (nothing for any other)."""
    return {LABEL_HEALTH_INTERVAL: str(int(interval))} if interval else {}


def parse_hosts(value: str) -> list[str]:
    return [h.strip() for h in value.split(",") if h.strip()]


# Access control (docs/access.md): written only for a service whose x-luma has `basic_auth` / `allow`.
#: ``user:BASE64,user:BASE64``: each user's bcrypt hash, base64 (what Caddy's http_basic takes, and no
#: ``$`` for Compose or a stack to interpolate).
LABEL_BASIC_AUTH = "luma.auth.basic"
#: ``CIDR,CIDR``: the networks admitted; everyone else gets 403.
LABEL_ALLOW = "luma.allow"


def access_labels(basic_auth: tuple[tuple[str, str], ...] = (), allow: tuple[str, ...] = ()) -> dict[str, str]:
    """The access labels of a route: ``basic_auth`` as (user, bcrypt hash), ``allow`` as networks."""
    import base64

    out = {}
    if basic_auth:
        out[LABEL_BASIC_AUTH] = ",".join(f"{u}:{base64.b64encode(h.encode()).decode()}" for u, h in basic_auth)
    if allow:
        out[LABEL_ALLOW] = ",".join(allow)
    return out


# Maintenance (``luma-compose maintenance on|off``, routing/maintenance.py): one engine object per
# project (or per service) in maintenance, found by these labels: a volume on one host, a config on a
# swarm. Its labels are the whole state (the object holds no data anyone reads).
MAINTENANCE_PROJECT_LABEL = "luma.maintenance.project"
#: The service in maintenance; "" for every routed service of the project.
MAINTENANCE_SERVICE_LABEL = "luma.maintenance.service"
MAINTENANCE_MESSAGE_LABEL = "luma.maintenance.message"
#: An HTML page served as-is ("" for the default page with the message).
MAINTENANCE_PAGE_LABEL = "luma.maintenance.page"
MAINTENANCE_SINCE_LABEL = "luma.maintenance.since"
#: Name prefix of those objects (the labels, not the name, say what one holds).
MAINTENANCE_PREFIX = "luma-maintenance-"

# Labels of a release (deploy/releases.py): one docker volume per release, named release_volume(),
# holding nothing; its labels are the record.
RELEASE_PROJECT_LABEL = "luma.release.project"
RELEASE_NUMBER_LABEL = "luma.release.number"
RELEASE_TIME_LABEL = "luma.release.time"
RELEASE_BY_LABEL = "luma.release.by"
RELEASE_SOURCE_LABEL = "luma.release.source"
RELEASE_COMMIT_LABEL = "luma.release.commit"
RELEASE_IMAGES_LABEL = "luma.release.images"
RELEASE_ROUTES_LABEL = "luma.release.routes"
RELEASE_FILE_LABEL = "luma.release.file"
RELEASE_NOTE_LABEL = "luma.release.note"
#: Repository of the tags that keep each release's images referenced: luma-release/<project>:<n>-<service>.
RELEASE_REPOSITORY = "luma-release"


def release_volume(project: str, number: int) -> str:
    return f"luma-release-{project}-{number}"
