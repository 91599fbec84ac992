"""The proxy controller: keeps one Caddy container's config equal to what the labels say.

The labels are the state; nothing else is stored:

* ``up``: create/reconcile the proxy container, then ``sync``.
* ``sync``: one pass: labels -> route table -> attach the proxy to the ingress
  networks it needs -> load the Caddy config (only when it changed) -> detach
  from ingress networks nothing routes through any more, and remove such a
  network once its compose project has no containers at all.
* ``down``: remove the proxy container (its certificate volume stays).

The data plane does not need this process: Caddy dials each container by its name on
the project's ingress network (Docker's DNS follows restarts and IP changes), routes stay
while their project lives, and Caddy resumes its last config (autosaved on the proxy's
volume, ``XDG_CONFIG_HOME=/data/config``) after a restart of itself or of the engine.

``run`` (follow Docker events) lives in :mod:`.watcher`. The controller takes its engine
as a parameter: the real one (:class:`luma_compose.engine.docker_engine.DockerEngine`) or
the fake one the unit tests use.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import contract
from ..contract import PROXY_LABEL, PROXY_LAYOUT_LABEL

#: Label on the proxy container: the layout of the container luma-compose creates. A proxy
#: of an older layout (no --resume, config not on the volume) is recreated by ``up``.
PROXY_LAYOUT = "4"  # 4: the rotated log (json-file max-size) of the access log
#: Where Caddy autosaves the config it runs: on the volume, so a recreated container resumes it.
CONFIG_HOME = "/data/config"
#: The name the old proxy container has while ``up`` tries its replacement.
KEPT_SUFFIX = "--luma-previous"
from ..errors import LumaError, UsageError
from ..records import COMPOSE_PROJECT_LABEL, ContainerRecord, ContainerSpec
from . import caddy_config, guards, handover
from .container import (
    ACME_ROOT_PATH,
    BOOTSTRAP_PATH,
    DEFAULT_IMAGE,
    ENV_IMAGE,
    ENV_VOLUME,
    HTTP_KEY,
    HTTPS_KEY,
    HTTPS_UDP_KEY,
    INTERNAL_HTTP_PORT,
    INTERNAL_HTTPS_PORT,
    ProxyContainer,
    Settings,
    parse_publish,
    proxy_name,
    settings_of,
)
from ..routing.claims import RouteTable, SyncResult
from ..routing.containers import build_table
from ..routing import maintenance
from .observe_inputs import ObserveInputs, access_log_setting, metrics_address

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.protocols import Engine


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ProxyStatus:
    name: str
    image: str
    state: str  # the container's status: running, restarting, ...
    tls: str
    ports: dict[str, str]  # container port -> published address
    in_sync: bool
    table: RouteTable
    endpoint: str = ""
    engine: dict[str, str] = field(default_factory=dict)  # Endpoint.to_json(): host, context, source
    certificates: list[Any] = field(default_factory=list)  # certs.CertState per routed host (TLS on)

    def to_json(self) -> dict[str, Any]:
        proxy: dict[str, Any] = {"name": self.name, "image": self.image, "status": self.state,
                                 "tls": self.tls, "ports": self.ports, "in_sync": self.in_sync}
        if self.engine:
            proxy["engine"] = self.engine
        if self.tls != "off":
            proxy["certificates"] = [c.to_json() for c in self.certificates]
        return {"version": 1, "proxy": proxy, **self.table.to_json()}


def bootstrap_config(tls: str) -> dict[str, Any]:
    """What Caddy runs before the first sync: the admin API and 404 for everything."""
    return caddy_config.build_config(RouteTable(), tls=tls, http_port=INTERNAL_HTTP_PORT,
                                     https_port=INTERNAL_HTTPS_PORT)


def proxy_spec(name: str, image: str, settings: Settings, volume: str, kernel: str = "") -> ContainerSpec:
    """The proxy container to create for these settings, on an engine with this kernel."""
    ports = {HTTP_KEY: parse_publish(settings.http, "--http-port")}
    if settings.tls != "off":
        ports[HTTPS_KEY] = parse_publish(settings.https, "--https-port")
        ports[HTTPS_UDP_KEY] = ports[HTTPS_KEY]  # HTTP/3 on the same address, over UDP
    # --resume: after any restart (of the container, the engine, the machine) Caddy serves the
    # last config it ran at once, with no luma-compose process; the bootstrap config only when
    # there is none yet.
    from .observe_inputs import LOG_DRIVER, LOG_OPTIONS, spec_ports

    ports.update(spec_ports(settings))  # --metrics: published there only
    return ContainerSpec(
        log_driver=LOG_DRIVER, log_options=LOG_OPTIONS,  # the access log is bounded (rotated by the engine)
        name=name, image=image, command=("caddy", "run", "--config", BOOTSTRAP_PATH, "--resume"),
        labels={PROXY_LABEL: "true", PROXY_LAYOUT_LABEL: PROXY_LAYOUT, **settings.labels()},
        environment={"XDG_DATA_HOME": "/data", "XDG_CONFIG_HOME": CONFIG_HOME},
        ports=ports, volumes={volume: "/data"}, restart="unless-stopped",
        # Upstreams are container names; while one is restarting Docker's DNS does not know it.
        # With ndots set, Docker answers such a single-label name at once (no such host: Caddy
        # retries until it is back) instead of forwarding it to the host's resolvers, which can
        # take seconds or never answer.
        dns_options=("ndots:1",),
        # a config load resets no connection waiting to be accepted (proxy/handover.py)
        sysctls=handover.listener_sysctls(kernel))


class Controller:
    def __init__(self, engine: "Engine", name: str | None = None):
        self.engine = engine
        self.proxy = ProxyContainer(engine, proxy_name(name))
        self._loaded: dict[str, Any] | None = None  # last config known to be in Caddy (for run)
        self._loaded_for: str = ""  # container id it was loaded into
        self._loaded_text: str = ""  # caddy_config.dumps(self._loaded): compared on every sync
        #: The proxy container's id as of the last look (the watcher skips the network events its
        #: own attaching and detaching cause: the sync that made them already accounted for them).
        self.proxy_id: str = ""
        self.settings = Settings()  # as of the last look at the proxy container
        self._ports: dict[str, tuple[str, int]] = {}  # its published ports, as of that look
        #: the host's addresses on the proxy's own (non-ingress) networks, as of that look: a
        #: connection to a published port that Docker relays (docker-proxy, NAT) comes from one
        self._relays: tuple[str, ...] = ()
        self.observe = ObserveInputs(engine, self.proxy)  # access log and metrics (proxy/observe.py)

    # -- up / down

    def up(self, image: str | None = None, http_port: str | None = None, https_port: str | None = None,
           tls: str | None = None, email: str | None = None, volume: str | None = None,
           select: str | None = None, acme_ca: str | None = None,
           acme_ca_root: str | None = None, access_log: str | None = None,
           metrics: str | None = None) -> tuple[ContainerRecord, bool]:
        """Create or reconcile the proxy container. Unset options keep the existing container's value.

        ``acme_ca_root``: the PEM text (not a path: the file is on this machine, the proxy may not be)."""
        c = self.proxy.container()
        cur = settings_of(c) if c is not None else Settings()
        want = Settings(  # Settings() holds the defaults: one place
            tls=tls or cur.tls,
            email=email if email is not None else cur.email,
            http=http_port or cur.http,
            https=https_port or cur.https,
            select=select if select is not None else cur.select,
            acme_ca=acme_ca if acme_ca is not None else cur.acme_ca,
            acme_ca_root=acme_ca_root if acme_ca_root is not None else cur.acme_ca_root,
            access_log=access_log_setting(access_log) if access_log is not None else cur.access_log,
            metrics=metrics_address(metrics) if metrics is not None else cur.metrics,
        )
        image = image or os.environ.get(ENV_IMAGE) or (c.image_ref if c is not None else DEFAULT_IMAGE)
        if want.select and not re.fullmatch(r"[^=\s]+=\S*", want.select):
            raise UsageError(f"--select {want.select!r} is not LABEL=VALUE")
        if want.tls not in caddy_config.TLS_MODES:
            raise UsageError(f"--tls {want.tls!r} is not one of {', '.join(caddy_config.TLS_MODES)}")
        vol = volume or os.environ.get(ENV_VOLUME) or f"{self.proxy.name}-data"
        spec = proxy_spec(self.proxy.name, image, want, vol, self.engine.kernel_version())  # validates the ports before anything changes
        missing_ports = c is not None and c.state == "running" and bool(set(spec.ports) - set(c.ports))
        same = (c is not None and c.image_ref == image and cur == want and vol in c.volumes and not missing_ports
                and c.labels.get(PROXY_LAYOUT_LABEL) == PROXY_LAYOUT)
        if c is not None and same:
            if c.state != "running":
                self.engine.start(self.proxy.name)
            self.proxy.wait_admin()
            self._loaded = None
            return self.proxy.running(), False
        if c is not None:
            log(f"proxy: settings changed, replacing {self.proxy.name} (volume {vol} kept)")
        self._replace(c, spec, vol)
        self._loaded = None
        return self.proxy.running(), True

    def _replace(self, old: ContainerRecord | None, spec: ContainerSpec, vol: str) -> None:
        """Create the proxy from ``spec``; never leave less than there was.

        The old container (if any) is renamed and stopped (its ports are needed), not removed,
        until the new one answers; if the new one cannot start (a port taken, a bad image) it is
        removed, the old one gets its name back and is started again, and a volume this attempt
        created is removed."""
        kept = ""
        if old is not None:
            kept = self.proxy.name + KEPT_SUFFIX
            self.engine.remove(kept)  # a leftover of an interrupted up
            self.engine.rename(old.id, kept)
            self.engine.stop(old.id, timeout=5)
        new_volume = not self.engine.volume_exists(vol)
        try:
            self._create(spec, vol)
            self.proxy.wait_admin()
        except LumaError as e:
            self.engine.remove(spec.name)
            if new_volume:
                self.engine.remove_volume(vol)
            if old is not None:
                self.engine.rename(old.id, self.proxy.name)
                self.engine.start(old.id)
                try:
                    self.proxy.wait_admin()
                except LumaError:
                    pass
                raise LumaError(f"{e.message}; the previous proxy {self.proxy.name} is serving again, unchanged",
                                e.hint) from e
            raise
        if old is not None:
            self.engine.remove(old.id)

    def _create(self, spec: ContainerSpec, vol: str) -> None:
        if not self.engine.volume_exists(vol):
            self.engine.create_volume(vol, labels={PROXY_LABEL: "true"})
        self.engine.create(spec)
        try:
            self.engine.put_file(spec.name, BOOTSTRAP_PATH,
                                 caddy_config.dumps(bootstrap_config(spec.labels[contract.PROXY_TLS_LABEL])).encode())
            root = spec.labels.get(contract.PROXY_ACME_ROOT_LABEL)
            if root:
                self.engine.put_file(spec.name, ACME_ROOT_PATH, root.encode(), mode=0o644)
            self.engine.start(spec.name)
        except LumaError:
            self.engine.remove(spec.name)
            raise

    def down(self) -> bool:
        self._loaded = None
        return self.engine.remove(self.proxy.name)

    # -- the route table

    def table(self, c: ContainerRecord | None = None,
              exclude_projects: frozenset[str] = frozenset()) -> tuple[RouteTable, dict[str, Any] | None]:
        """The route table from the labels, with the proxy's loaded routes as incumbents.

        ``exclude_projects``: leave these projects' containers out (``down`` unroutes a project
        before stopping it)."""
        current = None
        if c is not None:
            self.proxy_id = c.id
            self.settings = settings_of(c)
            self._ports = dict(c.ports)
            self._relays = guards.relays(c)
            if c.state == "running":
                current = self._current(c)
        select = self.settings.select
        labels = [f"{contract.LABEL_MANAGED}=true"] + ([select] if select else [])
        # Every state: a project's route stays while it lives (a restarting container is dialled
        # as standby, never a 404).
        records = [r for r in self.engine.containers(labels, all=True)
                   if r.labels.get(contract.LABEL_PROJECT) not in exclude_projects]
        networks = [n for n in self.engine.networks([f"{contract.NETWORK_OWNER_LABEL}=true"])
                    if n.compose_project not in exclude_projects]
        # Containers on ingress networks that are not managed (the proxy, or a hand-attached
        # one): read only to detect one that answers to a routed container's name.
        known = {r.id for r in records}
        others: dict[str, ContainerRecord] = {}
        for n in networks:
            for cid in n.containers:
                if cid not in known and cid not in others and (rec := self.engine.container(cid)) is not None:
                    others[cid] = rec
        served = {h: k for h, k in caddy_config.served_hosts(current).items()
                  if k.partition("/")[0] not in exclude_projects}
        # A served project with no routed container left holds its hosts while it lives (see
        # _project_down; when it is down, _prune removes its network).
        routed_projects = {r.labels.get(contract.LABEL_PROJECT) for r in records}
        for n in list(networks):
            p = n.compose_project
            if p and p not in routed_projects and any(k.partition("/")[0] == p for k in served.values()):
                if self._project_down(p, n.name):
                    networks.remove(n)
        table = build_table(records, served, networks, bystanders=others.values())
        return maintenance.apply(table, self.engine.maintenance_states()), current

    def desired(self, table: RouteTable) -> dict[str, Any]:
        s = self.settings
        udp = self._ports.get(HTTPS_UDP_KEY)
        try:
            https_published = parse_publish(s.https, "--https-port")[1]
        except UsageError:
            https_published = 0
        config = caddy_config.build_config(table, tls=s.tls, email=s.email or None,
                                         http_port=INTERNAL_HTTP_PORT, https_port=INTERNAL_HTTPS_PORT,
                                         acme_ca=s.acme_ca or None,
                                         acme_ca_root=ACME_ROOT_PATH if s.acme_ca_root else None,
                                         # TLS-ALPN-01 is validated on port 443 of the host
                                         tls_alpn=https_published == INTERNAL_HTTPS_PORT,
                                         # HTTP/3 only where UDP is published, advertised at that port
                                         http3=udp is not None, alt_svc_port=udp[1] if udp else None,
                                         # the HTTP -> HTTPS redirect names a published port other than 443
                                         public_https_port=self._ports.get(HTTPS_KEY, ("", 443))[1],
                                         # a redirect's port without TLS (redirect_from)
                                         public_http_port=self._ports.get(HTTP_KEY, ("", 80))[1],
                                         relays=self._relays)
        return self.observe.apply(config, table, s, self.proxy_id)

    def status(self) -> ProxyStatus:
        """The running proxy, its route table, and whether Caddy's loaded config matches the labels."""
        c = self.proxy.running()
        table, current = self.table(c)
        from .observe import comparable  # a certificate Caddy renewed since the last sync is no drift

        in_sync = current is not None and (caddy_config.dumps(comparable(current))
                                           == caddy_config.dumps(comparable(self.desired(table))))
        ports = {k: f"{ip or '*'}:{port}" for k, (ip, port) in c.ports.items()}
        certificates = []
        if self.settings.tls != "off":
            from . import certs

            hosts = [h for r in table.routes for h in r.claimed if not h.startswith("*")]  # redirect hosts too
            certificates = certs.states(hosts, self.proxy.certificate_files(),
                                        self.engine.logs(self.proxy.name, tail=400, stdout=False) if hosts else "")
        return ProxyStatus(self.proxy.name, c.image_ref, c.state, self.settings.tls, ports, in_sync, table,
                           self.engine.endpoint.describe(), self.engine.endpoint.to_json(), certificates)

    def _current(self, c: ContainerRecord) -> dict[str, Any] | None:
        if self._loaded is not None and self._loaded_for == c.id:
            return self._loaded
        cfg = self.proxy.get_config()
        self._loaded, self._loaded_for = cfg, c.id
        self._loaded_text = caddy_config.dumps(cfg) if cfg is not None else ""
        return cfg

    def _dumped(self, current: dict[str, Any]) -> str:
        """``caddy_config.dumps(current)``, without re-encoding the config this process loaded last."""
        if current is self._loaded:
            return self._loaded_text
        return caddy_config.dumps(current)

    def forget(self) -> None:
        self._loaded = None

    # -- sync

    def sync(self, exclude_projects: frozenset[str] = frozenset()) -> SyncResult:
        c = self.proxy.running()
        table, current = self.table(c, exclude_projects)
        desired = self.desired(table)
        res = SyncResult(table, changed=False)
        attached = set(c.networks)
        text = caddy_config.dumps(desired)
        staged = self._connect(sorted(table.networks() - attached), res,
                               text if current is None or self._dumped(current) != text else None)
        if res.connected and self._ephemeral():
            # Docker may publish ephemeral ports anew when a network is connected: the alt-svc port follows.
            again = self.proxy.container()
            if again is not None and dict(again.ports) != self._ports:
                self._ports = dict(again.ports)
                desired = self.desired(table)
                text = caddy_config.dumps(desired)
        if current is None or self._dumped(current) != text:
            self.proxy.load(desired, staged=staged)
            self._loaded, self._loaded_for, self._loaded_text = json.loads(text), c.id, text
            res.changed = True
        self._prune(table, attached, res)
        return res

    def _connect(self, networks: list[str], res: SyncResult, text: str | None) -> tuple[str, str] | None:
        """Attach the proxy to ``networks``; meanwhile copy ``text`` (the config to load, if any) into
        it: the copy changes nothing Caddy serves. The load itself waits for the attaches: on a route
        with probes (x-luma ``health_interval``) Caddy's first probe of a new upstream runs at the load,
        and one that finds no container yet leaves it unhealthy until the next probe; on any route a
        dial before the attach would fail and be retried. Returns what ``stage`` did."""
        if not networks or text is None:
            self._attach(networks, res)
            return None
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            copy = pool.submit(self.proxy.stage, text)
            self._attach(networks, res)
            staged = copy.result()
        return staged

    def _ephemeral(self) -> bool:
        """Does the proxy publish a port Docker picks (0)? Only such a port moves on a network attach."""
        s = self.settings
        try:
            return any(parse_publish(v, "port")[1] == 0 for v in (s.http, s.https, s.metrics) if v)
        except UsageError:
            return True

    def _attach(self, networks: list[str], res: SyncResult) -> None:
        for net in networks:
            try:
                self.engine.connect(net, self.proxy.name)
                res.connected.append(net)
            except LumaError as e:
                res.warnings.append(e.message)

    def _project_down(self, project: str, ingress: str) -> bool:
        """Whether ``project`` was brought down: it has no container (any state) and no network
        but its ingress network ``P_luma``.

        ``docker compose down`` removes the containers, then the networks; ``P_luma`` stays
        while the proxy is attached, every other network of the project goes. A container
        removed by hand (``docker rm -f``) leaves the networks: the project is still up and
        keeps its hosts (held, 503) until it is redeployed or brought down."""
        if self.engine.containers([f"{COMPOSE_PROJECT_LABEL}={project}"], all=True):
            return False
        return not any(n.name != ingress for n in self.engine.networks([f"{COMPOSE_PROJECT_LABEL}={project}"]))

    def attach(self, network: str) -> None:
        """Attach the proxy to one ingress network now (deploy's health probes run from there)."""
        self.engine.connect(network, self.proxy.name)

    def _prune(self, table: RouteTable, attached: set[str], res: SyncResult) -> None:
        for net in sorted(attached - table.networks()):
            n = self.engine.network(net)
            if n is None:
                continue
            ours = n.labels.get(contract.NETWORK_OWNER_LABEL) == "true"
            if not ours and not net.endswith("_" + contract.NETWORK_KEY):
                continue  # not an ingress network: someone attached it on purpose
            try:
                self.engine.disconnect(net, self.proxy.name)
                res.disconnected.append(net)
            except LumaError as e:
                res.warnings.append(e.message)
                continue
            project = n.labels.get(COMPOSE_PROJECT_LABEL)
            if not ours or not project:
                continue
            if not self._project_down(project, net):
                continue  # the project still exists (stopped, starting, rm -f'd): leave its network to compose
            n = self.engine.network(net)
            if n is None or n.containers:
                continue
            try:
                if self.engine.remove_network(net):
                    res.removed_networks.append(net)
            except LumaError as e:
                res.warnings.append(e.message)
