"""Plain records of Docker objects: no Docker here.

The common language of the code that decides: :mod:`.engine.state` fills these from
inspect data, and the route table, the controller and deploy decide on them, so a
fake engine (tests/support) can feed the same decisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from . import contract

COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
CONFIG_HASH_LABEL = "com.docker.compose.config-hash"
DRAINING_SUFFIX = contract.DRAINING_SUFFIX


def is_draining(name: str) -> bool:
    return name.endswith(DRAINING_SUFFIX)


def draining_name(name: str) -> str:
    return name if is_draining(name) else name + DRAINING_SUFFIX


@dataclass(frozen=True)
class NetworkAttachment:
    ip: str
    aliases: tuple[str, ...] = ()
    #: the network's gateway: the host's own address on it (what a relayed connection comes from)
    gateway: str = ""


@dataclass(frozen=True)
class ContainerRecord:
    """What the route table needs to know about one container."""

    id: str
    name: str
    labels: Mapping[str, str]
    created: str  # RFC 3339 from the engine; compared as parsed time
    state: str = "running"
    health: str | None = None  # None: no health check; else starting|healthy|unhealthy
    networks: Mapping[str, NetworkAttachment] = field(default_factory=dict)
    image: str = ""  # image id ("sha256:..."); a rebuilt tag is a new generation
    image_ref: str = ""  # the image as asked for (Config.Image), e.g. "caddy:2"
    ports: Mapping[str, tuple[str, int]] = field(default_factory=dict)  # "80/tcp" -> (host ip, host port)
    volumes: tuple[str, ...] = ()  # names of the named volumes mounted
    exit_code: int | None = None
    error: str = ""  # the engine's State.Error (e.g. a port already allocated)
    health_log: str = ""  # output of the last health check
    hostname: str = ""  # Config.Hostname (Docker's DNS may answer to it on user networks)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def ready(self) -> bool:
        return self.state == "running" and self.health in (None, "healthy")

    @property
    def config_hash(self) -> str:
        return self.labels.get(CONFIG_HASH_LABEL, "")

    @property
    def generation(self) -> str:
        return f"{self.config_hash}@{self.image}" if self.image else self.config_hash

    @property
    def draining(self) -> bool:
        return is_draining(self.name)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def compose_project(self) -> str | None:
        return self.labels.get(COMPOSE_PROJECT_LABEL)

    @property
    def compose_service(self) -> str | None:
        return self.labels.get(COMPOSE_SERVICE_LABEL)

@dataclass(frozen=True)
class NetworkRecord:
    """What decisions need to know about one network."""

    name: str
    id: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    containers: tuple[str, ...] = ()  # ids of the attached containers
    #: RFC 3339 from the engine. An ingress network lives from a project's first ``up`` until
    #: its ``down``: its creation time is the durable age of the project's claim on its hosts
    #: (containers are recreated by every deploy and restart; the network is not).
    created: str = ""

    @property
    def compose_project(self) -> str:
        return self.labels.get(COMPOSE_PROJECT_LABEL, "")


@dataclass(frozen=True)
class ContainerSpec:
    """A container to create, as data (the controller decides it; tests assert on it)."""

    name: str
    image: str
    command: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    #: "80/tcp" -> (host ip or "", host port or 0 for any free port)
    ports: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    #: named volume -> mount point
    volumes: Mapping[str, str] = field(default_factory=dict)
    restart: str = "unless-stopped"
    #: resolv.conf options (``ndots:1``: Docker's DNS then answers an unknown single-label name
    #: at once instead of forwarding it to the host's resolvers)
    dns_options: tuple[str, ...] = ()
    #: namespaced kernel settings of the container (``net.*``)
    sysctls: Mapping[str, str] = field(default_factory=dict)
    #: the engine's log driver and its options (rotation: ``max-size``, ``max-file``); "": the engine's default
    log_driver: str = ""
    log_options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MaintenanceRecord:
    """A project (or one of its services) in maintenance, as the engine keeps it: the labels of one
    object (a volume on one host, a config on a swarm; :mod:`luma_compose.routing.maintenance`)."""

    project: str
    service: str = ""  # "": every routed service of the project
    message: str = ""
    page: str = ""  # an HTML page served as-is; "": the default page with the message
    since: str = ""  # RFC 3339, UTC
    name: str = ""  # the engine object that holds it

    @property
    def key(self) -> tuple[str, str]:
        return (self.project, self.service)

    def labels(self) -> dict[str, str]:
        return {contract.MAINTENANCE_PROJECT_LABEL: self.project, contract.MAINTENANCE_SERVICE_LABEL: self.service,
                contract.MAINTENANCE_MESSAGE_LABEL: self.message, contract.MAINTENANCE_PAGE_LABEL: self.page,
                contract.MAINTENANCE_SINCE_LABEL: self.since}

    @classmethod
    def from_labels(cls, name: str, labels: Mapping[str, str]) -> "MaintenanceRecord":
        def get(k: str) -> str:
            v = labels.get(k)
            return v if isinstance(v, str) else ""
        return cls(get(contract.MAINTENANCE_PROJECT_LABEL), get(contract.MAINTENANCE_SERVICE_LABEL),
                   get(contract.MAINTENANCE_MESSAGE_LABEL), get(contract.MAINTENANCE_PAGE_LABEL),
                   get(contract.MAINTENANCE_SINCE_LABEL), name)

    def to_json(self) -> dict[str, object]:
        """What ``routes``/``status --format json`` say (the page's size, not the page; message "": the
        default one)."""
        return {"since": self.since, "scope": "service" if self.service else "project", "message": self.message,
                "page_bytes": len(self.page.encode("utf-8", "surrogatepass"))}

    def object_name(self) -> str:
        """A name of its own for each state (labels are fixed once an object exists: a new state is a new
        object, and the older one of the same key is removed after it)."""
        import hashlib

        digest = hashlib.sha256("\0".join((self.project, self.service, self.message, self.page,
                                           self.since)).encode()).hexdigest()[:24]
        return contract.MAINTENANCE_PREFIX + digest


@dataclass(frozen=True)
class VolumeRecord:
    """A volume as deploy/releases.py reads it: its labels are the record of a release."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    created: str = ""


# ---------------------------------------------------------------------- a swarm (engine/swarm.py)


@dataclass(frozen=True)
class ServiceNetwork:
    target: str  # the network's id, as a service spec names it
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceRecord:
    """What decisions need to know about one swarm service (``docker service inspect``)."""

    name: str
    id: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    created: str = ""  # RFC 3339; kept through every update
    version: int = 0  # changes with every update of the spec
    image: str = ""
    configs: Mapping[str, str] = field(default_factory=dict)  # target path -> config name
    networks: tuple[ServiceNetwork, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)
    constraints: tuple[str, ...] = ()
    replicas: int | None = None  # None: not replicated (global)
    update_state: str = ""  # "" (never updated), updating, completed, paused, rollback_* ...
    update_started: str | None = None  # None: never updated
    update_message: str = ""
    updated: str = ""  # RFC 3339: the last change of the spec (a deploy, a scale, ...)
    healthcheck: bool = False  # the spec has a health check (Swarm runs a task only once it passes)

    @property
    def stack(self) -> str | None:
        return self.labels.get(contract.STACK_NAMESPACE_LABEL)


@dataclass(frozen=True)
class TaskRecord:
    desired: str  # the state Swarm wants (running, shutdown, ...)
    state: str  # the state it is in
    container_id: str = ""


@dataclass(frozen=True)
class ConfigRecord:
    """A Swarm config object (its data is not read back)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    created: str = ""


@dataclass(frozen=True)
class PlainEndpoint:
    """A plain container's (not a task's) endpoint on an overlay, on any node."""

    name: str
    endpoint: str
    host_ip: str = ""


@dataclass(frozen=True)
class OverlayView:
    """What a manager sees of an overlay: its own endpoints there, and every node's plain containers
    (known only while it has an endpoint there itself)."""

    local_endpoints: tuple[str, ...] = ()
    plain: tuple[PlainEndpoint, ...] = ()


@dataclass(frozen=True)
class PlainContainer:
    """A container on the manager itself (the swarm proxy's watch): running, and its endpoint per network."""

    name: str
    running: bool
    endpoints: Mapping[str, str] = field(default_factory=dict)  # network name -> endpoint id


@dataclass(frozen=True)
class Publish:
    target: int
    published: int
    protocol: str = "tcp"
    mode: str = "host"


@dataclass(frozen=True)
class Mount:
    type: str  # bind or volume
    source: str
    target: str
    readonly: bool = False


@dataclass(frozen=True)
class ServiceSpec:
    """A swarm service to create, as data (the swarm proxy decides it; tests assert on it)."""

    name: str
    image: str
    command: tuple[str, ...] = ()  # the arguments after the image
    labels: Mapping[str, str] = field(default_factory=dict)
    mode: str = "replicated"  # or global, or replicated-job (run once: SwarmEngine.run_job)
    replicas: int | None = None
    endpoint_mode: str = ""  # "" (Swarm's vip) or dnsrr
    publish: tuple[Publish, ...] = ()
    networks: tuple[str, ...] = ()  # network names
    configs: Mapping[str, str] = field(default_factory=dict)  # target path -> config name (mode 0444)
    secrets: Mapping[str, str] = field(default_factory=dict)  # target name -> secret name (mode 0400)
    mounts: tuple[Mount, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)
    constraints: tuple[str, ...] = ()
    placement_prefs: tuple[str, ...] = ()
    update_order: str = ""
    update_parallelism: int | None = None
    update_delay: str = ""
    update_monitor: str = ""
    update_failure_action: str = ""
    stop_grace_period: str = ""
    restart_condition: str = ""
    log_driver: str = ""  # "": the engine's default
    log_opts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceUpdate:
    """A change to one swarm service, as data: only what differs is named."""

    image: str | None = None
    config_rm: tuple[str, ...] = ()  # config names
    config_add: Mapping[str, str] = field(default_factory=dict)  # target path -> config name
    network_add: tuple[str, ...] = ()  # network names
    network_rm: tuple[str, ...] = ()
    sysctl_add: Mapping[str, str] = field(default_factory=dict)
    constraint_rm: tuple[str, ...] = ()
    constraint_add: tuple[str, ...] = ()
    label_add: Mapping[str, str] = field(default_factory=dict)
    label_rm: tuple[str, ...] = ()
    publish_add: tuple[Publish, ...] = ()
    publish_rm: tuple[int, ...] = ()  # target ports

    def __bool__(self) -> bool:
        return self != ServiceUpdate()
