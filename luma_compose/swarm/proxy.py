"""The proxy on a swarm: an edge on every node, a gateway per project, a config server.

* **edge** (service ``luma-proxy``, ``mode: global`` on every node or the nodes with a label):
  Caddy publishing its port with ``mode: host`` (the routing mesh needs IPVS, and a host port
  keeps the client's address). It joins only ``luma-proxy_edge``. Its Swarm config is a fixed boot
  file; its routes it pulls every second from the config server over TLS, pinned to the swarm's
  own certificate. An unchanged config is not reloaded; a changed one is loaded in place, like
  on one host (WebSockets kept by ``stream_close_delay``). So a route change restarts nothing.
* **gateway** of project P (``luma-proxy-gw-P``, 2 replicas, ``dnsrr``): on the edge network
  and on P_luma, nothing else. It forwards what the edge sends it to ``P-S:port`` and refuses
  any other target, so it resolves no other project's names. Adding or removing a project adds
  or removes its gateway; no other project's path changes.
* **config server** (``luma-proxy-config``, 1 replica, managers only): serves the edge config, a
  Swarm config object; a route change replaces that task (stop-first: the edges never see two
  versions; while it is away they keep the config they have).

No part has the Docker socket or an admin API. The controller (``sync``/``run``, on a manager:
the only place that knows every service) reads the services' labels and converges the gateways
and the config. Task changes (deploys, rescheduling, drained nodes) change neither.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Callable

from .. import contract
from ..proxy import handover
from ..routing import maintenance, services as swarm_claims
from ..routing.claims import RouteTable, SyncResult
from . import certs as swarm_certs, control_tls, shadow
from . import metrics as swarm_metrics
from .options import placement, storage_mount, tls_labels, tls_of
from .converge import wait_converged
from .watch import ROLE as WATCH_ROLE, Watch
from . import routes as swarm_routes
from . import observe as swarm_observe
from ..errors import SwarmError, UsageError
from ..records import Publish, ServiceRecord, ServiceSpec, ServiceUpdate

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.protocols import SwarmEngineProtocol

DEFAULT_NAME = "luma-proxy"
DEFAULT_IMAGE = "caddy:2"
ROLE_LABEL = contract.SWARM_ROLE_LABEL
PROXY_LABEL = contract.SWARM_PROXY_LABEL
GATEWAY_OF_LABEL = contract.SWARM_GATEWAY_OF_LABEL
CONFIG_LABEL = contract.SWARM_CONFIG_LABEL
HTTP_PORT_LABEL = contract.PROXY_HTTP_LABEL
NODES_LABEL = contract.SWARM_NODES_LABEL
STORAGE_LABEL = contract.SWARM_STORAGE_LABEL
GATEWAY_REPLICAS = 2
GATEWAY_CONFIG_TARGET = "/etc/luma/gateway.json"
CONTROL_CONFIG_TARGET = "/etc/luma/control.json"
#: After the config server serves a new config, every edge has pulled it within this: LOAD_DELAY
#: (1 s), plus at most one pull that timed out (1 s) on the task just replaced.
PROPAGATION = 3.0


class SwarmProxy:
    def __init__(self, engine: SwarmEngineProtocol, name: str = DEFAULT_NAME, log: Callable[[str], None] | None = None):
        self.engine = engine
        self.name = name
        self._kernel: str | None = None
        self.log = log or (lambda s: print(s, file=sys.stderr))
        #: overlay id -> name, as read by the current pass (desired)
        self._net_names: dict[str, str] = {}

    # ------------------------------------------------------------------ names

    @property
    def edge(self) -> str:
        """The edge network: edges, gateways and the config server; no project's service joins it."""
        return f"{self.name}_edge"

    @property
    def config_server(self) -> str:
        return swarm_routes.config_server_name(self.name)

    def gateway(self, project: str) -> str:
        return swarm_routes.gateway_name(self.name, project)

    def _labels(self, role: str) -> dict[str, str]:
        return {ROLE_LABEL: role, PROXY_LABEL: self.name}

    # ------------------------------------------------------------------ state

    def desired(self, http_port: int, tls: swarm_routes.EdgeTLS = swarm_routes.EdgeTLS(), image: str | None = None,
                metrics: swarm_metrics.EdgeMetrics = swarm_metrics.EdgeMetrics(),
                access_log: bool = True, edge: ServiceRecord | None = None) -> tuple[RouteTable, str]:
        """``edge``: the running edge service, whose storage holds the certificates (their expiry is a metric)."""
        table = self.served(image)
        cfg = swarm_observe.edge(swarm_routes.edge_config(table, http_port, self.name, tls), table, access_log)
        ranges = self.engine.address_ranges() if metrics.on else {}  # read at every sync: fail closed
        expiry = swarm_certs.expiry(self.engine, edge, table.serving) if metrics.on and tls.on and edge else {}
        return table, swarm_routes.dumps(swarm_metrics.apply(cfg, table, self.name, metrics, ranges, expiry))

    def desired_of(self, edge: ServiceRecord, watch: bool = True) -> tuple[RouteTable, str]:
        """:meth:`desired` with the settings the edge service ``edge`` keeps as labels; ``watch``: the
        watch joins the routed overlays first (a sync), else nothing is changed (a read)."""
        return self.desired(int(edge.labels.get(HTTP_PORT_LABEL, "80")), tls_of(edge),
                            edge.image if watch else None, swarm_metrics.of(edge),
                            swarm_observe.access_log_of(edge.labels), edge)

    def served(self, image: str | None = None) -> RouteTable:
        """The route table the edges are to serve: what ``swarm routes``, ``deploy``'s refusal and every
        sync read (with ``image``, the watch joins the routed overlays first)."""
        everything = self.engine.services()
        overlays = self.engine.networks("driver=overlay")
        self._net_names = {n.id: n.name for n in overlays}  # for this pass: no inspect per service
        table = maintenance.apply(swarm_claims.table(everything, {n.name for n in overlays}),
                                  self.engine.maintenance_states())
        plain = Watch(self.engine, self.name, self._labels(WATCH_ROLE), self.log).look(_networks(table), image)
        return shadow.drop_shadowed(table, everything, self._net_names, self.name, plain)

    def gateways(self) -> dict[str, ServiceRecord]:
        """Our gateway services by name."""
        return {s.name: s for s in self.engine.services(f"label={ROLE_LABEL}=gateway",
                                                        f"label={PROXY_LABEL}={self.name}")}

    def _network_names(self, svc: ServiceRecord) -> set[str]:
        ids = [n.target for n in svc.networks]
        if all(i in self._net_names for i in ids):
            return {self._net_names[i] for i in ids}
        return set(self.engine.network_names(ids).values()) if ids else set()

    # ------------------------------------------------------------------ operations

    def up(self, image: str = DEFAULT_IMAGE, http_port: int = 80, nodes: str = "all",
           tls: swarm_routes.EdgeTLS = swarm_routes.EdgeTLS(), storage: str = "",
           acme_root_pem: str | None = None, metrics: swarm_metrics.EdgeMetrics | None = None,
           access_log: str | None = None) -> SyncResult:
        """Create (or bring up to date) the edge, the config server and the gateways.

        With TLS, ``storage`` is what every edge mounts at /data: an absolute path that is the same
        shared directory on every node (NFS, ...), or the name of a volume whose driver shares it.
        ``access_log`` on | off (None: as the running edge has it, on for a new one)."""
        if tls.on and not storage:
            raise UsageError(f"--tls {tls.mode} on a swarm needs storage every edge shares (certificates, the "
                             "ACME account, challenge tokens, locks): without it each node would get its own "
                             "certificates, and an HTTP-01 challenge reaching another node would fail",
                             "--storage /shared/path (the same directory on every node, e.g. NFS) or "
                             "--storage VOLUME (a volume driver every node shares); or terminate TLS at your "
                             "load balancer and keep --tls off")
        if tls.acme_root and not acme_root_pem:
            raise SwarmError("acme_root set without the root's PEM")
        constraints = placement(nodes)  # the user's options: a usage error before any change
        mounts = (storage_mount(storage),) if tls.on else ()
        existing = self.engine.service(self.name)
        had = swarm_metrics.of(existing) if existing is not None else swarm_metrics.EdgeMetrics()
        want = had if metrics is None else metrics  # left out: the running proxy's
        if metrics is not None:
            swarm_metrics.check(want, (http_port, *((tls.https_port,) if tls.on else ())),
                                self.engine.address_ranges() if want.on else {})
        if existing is not None:
            labels = existing.labels
            if labels.get(PROXY_LABEL) != self.name:
                raise SwarmError(f"the service {self.name} is not a luma-compose proxy of this version",
                                 "luma-compose proxy down --swarm, then proxy up --swarm")
            have = (int(labels.get(HTTP_PORT_LABEL, "80")), tls_of(existing), labels.get(STORAGE_LABEL, ""))
            if have != (http_port, tls, storage):
                raise SwarmError(f"the proxy {self.name} runs with other ports, TLS or storage settings "
                                 f"(port {have[0]}, tls {have[1].mode}); they are fixed while it runs",
                                 "luma-compose proxy down --swarm, then proxy up --swarm with the new settings")
        if access_log is None:
            access_log = "on" if existing is None or swarm_observe.access_log_of(existing.labels) else "off"
        self._ensure_edge_network()
        cert_cfg, key_secret = self._ensure_control_tls()
        table, text = self.desired(http_port, tls, image, want, access_log == "on", existing)
        for c in table.messages:
            self.log(f"conflict: {c}")
        self._ensure_config_server(image, cert_cfg, key_secret, text)
        self._converge_gateways(table, image)
        boot = self._ensure_config(swarm_routes.dumps(swarm_routes.boot_config(http_port, self.name)), "boot")
        configs = {swarm_routes.BOOT_TARGET: boot, swarm_routes.CONTROL_CERT_TARGET: cert_cfg}
        if acme_root_pem:
            configs[swarm_routes.ACME_ROOT_TARGET] = self._ensure_config(acme_root_pem, "acme-root")
        if existing is None:
            labels = {**self._labels("edge"), HTTP_PORT_LABEL: str(http_port), NODES_LABEL: nodes, **tls_labels(tls),
                      swarm_observe.ACCESS_LOG_LABEL: access_log, **swarm_metrics.labels(want)}
            publish = [Publish(http_port, http_port), *swarm_metrics.publish(want)]
            if tls.on:
                labels[STORAGE_LABEL] = storage
                publish += [Publish(tls.https_port, tls.https_port, proto) for proto in ("tcp", "udp")]  # udp: HTTP/3
            self.engine.create_service(ServiceSpec(
                self.name, image, ("caddy", "run", "--config", swarm_routes.BOOT_TARGET), labels, mode="global",
                publish=tuple(publish), networks=(self.edge,), configs=configs,
                mounts=mounts, sysctls=self._sysctls(),
                constraints=constraints, update_order="stop-first", update_parallelism=1, update_delay="1s",
                update_failure_action="rollback", restart_condition="any",
                log_driver=swarm_observe.LOG_DRIVER, log_opts=swarm_observe.LOG_OPTIONS))
            self.log(f"proxy: created global service {self.name} ({len(table.serving)} routes, tls {tls.mode})")
            wait_converged(self.engine, self.name)
        else:
            if existing.labels.get(swarm_observe.ACCESS_LOG_LABEL, "on") != access_log:  # a label: no task restarts
                self.engine.update_service(self.name, ServiceUpdate(label_add={
                    swarm_observe.ACCESS_LOG_LABEL: access_log}))
                existing = self.engine.service(self.name) or existing
            self._update(existing, image, configs, {self.edge}, nodes, sysctls=self._sysctls())
            self._update_metrics(had, want)
        wait_converged(self.engine, self.config_server)
        time.sleep(PROPAGATION)
        self._gc()
        return SyncResult(table, True, config=text)

    def sync(self, wait: bool = True) -> SyncResult:
        svc = self.engine.service(self.name)
        if svc is None:
            raise SwarmError(f"no proxy service {self.name} on this swarm", "luma-compose proxy up --swarm")
        image = svc.image
        table, text = self.desired_of(svc)
        for c in table.messages:
            self.log(f"conflict: {c}")
        # New projects' gateways first (served before the edges route to them), then the config,
        # then the gateways of projects no longer routed (the edges have stopped using them).
        created = self._converge_gateways(table, image, remove=False, wait=wait)
        repaired = self._repair(svc, image, text, wait)
        published = self._publish(text, wait=wait)
        removed = self._converge_gateways(table, image, remove=True, wait=wait)
        changed = bool(created or repaired or published or removed)
        if changed:
            self.log(f"proxy: {len(table.serving)} routes; gateways +{created} -{removed}"
                     + (f"; recreated {', '.join(repaired)}" if repaired else "")
                     + ("; config published" if published else ""))
            self._gc()
        return SyncResult(table, changed, removed_networks=self._gc_networks(_networks(table)), config=text)

    def _repair(self, edge: ServiceRecord, image: str, text: str, wait: bool) -> list[str]:
        """Parts of the proxy gone missing, made again (without the config server a starting edge answers
        503 for good). The edge holds the proxy's settings: without it, ``proxy up --swarm``."""
        done = []
        if not self.engine.networks(f"name={self.edge}", "driver=overlay"):
            self._ensure_edge_network()
            done.append(self.edge)
        cert_cfg, key_secret = self._ensure_control_tls()
        if self.engine.service(self.config_server) is None:
            self._ensure_config_server(image, cert_cfg, key_secret, text)
            done.append(self.config_server)
            if wait:
                wait_converged(self.engine, self.config_server)
        if edge.configs.get(swarm_routes.CONTROL_CERT_TARGET) != cert_cfg:  # a new key pair
            self._update(edge, image, {swarm_routes.CONTROL_CERT_TARGET: cert_cfg}, None, wait=wait)
            done.append(self.name)
        return done

    def _update_metrics(self, had: swarm_metrics.EdgeMetrics, want: swarm_metrics.EdgeMetrics) -> None:
        """A new metrics port (or none) is a new host-mode publish: Swarm recreates the edges one node
        at a time; a new allow list only changes the labels (and the config the edges pull)."""
        change = swarm_metrics.change(had, want)
        if not change:
            return
        before = self.engine.service(self.name)
        self.engine.update_service(self.name, change)
        self.log(f"proxy: metrics {f'on port {want.port}' if want.on else 'off'}")
        if change.publish_add or change.publish_rm:
            wait_converged(self.engine, self.name, previous=before.update_started if before else "")

    def run(self, interval: float = 1.0) -> None:  # pragma: no cover - exercised by the e2e tests
        """Converge forever: polling a manager survives its restarts and needs no event stream."""
        while True:
            try:
                self.sync()
            except Exception as e:  # keep running: the next pass retries
                self.log(f"sync failed: {e}")
            time.sleep(interval)

    def down(self) -> None:
        jobs = self.engine.services(f"label={ROLE_LABEL}={swarm_certs.ROLE}", f"label={PROXY_LABEL}={self.name}")
        for name in [self.name, self.config_server, *self.gateways(), *(j.name for j in jobs)]:  # a job left over
            self.engine.remove_service(name)
        Watch(self.engine, self.name, {}, self.log).remove()
        time.sleep(1)
        for _ in range(20):
            self._gc(everything=True)
            if self.engine.remove_network(self.edge):
                break
            time.sleep(0.5)
        for s in self.engine.secrets(f"label={CONFIG_LABEL}={self.name}"):
            self.engine.remove_secret(s)

    # ------------------------------------------------------------------ parts

    def _ensure_edge_network(self) -> None:
        if not self.engine.networks(f"name={self.edge}", "driver=overlay"):
            self.engine.create_network(self.edge, {ROLE_LABEL: self.name})

    def _ensure_control_tls(self) -> tuple[str, str]:
        """(config name of the certificate, secret name of the key), made once per proxy."""
        label = f"{CONFIG_LABEL}.control={self.name}"
        certs = self.engine.configs(f"label={label}")
        secrets = self.engine.secrets(f"label={label}")
        for c in sorted(certs, key=lambda c: c.created, reverse=True):
            if f"{c.name}-key" in secrets:  # a certificate with its key (each made with one)
                return c.name, f"{c.name}-key"
        cert, key = control_tls.make(self.config_server)
        name = swarm_routes.config_name(f"{self.name}-control", cert)
        labels = {CONFIG_LABEL: self.name, f"{CONFIG_LABEL}.control": self.name}
        self.engine.create_config(name, cert, labels)
        self.engine.create_secret(f"{name}-key", key, labels)
        return name, f"{name}-key"

    def _ensure_config_server(self, image: str, cert_cfg: str, key_secret: str, text: str) -> None:
        edge_cfg = self._ensure_config(text, "edge")
        own = self._ensure_config(swarm_routes.dumps(swarm_routes.config_server_config()), "control-server")
        configs = {swarm_routes.EDGE_CONFIG_TARGET: edge_cfg, CONTROL_CONFIG_TARGET: own,
                   swarm_routes.CONTROL_CERT_TARGET: cert_cfg}
        svc = self.engine.service(self.config_server)
        if svc is None:
            self.engine.create_service(ServiceSpec(
                self.config_server, image, ("caddy", "run", "--config", CONTROL_CONFIG_TARGET), self._labels("config"),
                replicas=1, endpoint_mode="dnsrr", networks=(self.edge,), constraints=("node.role==manager",),
                configs=configs, secrets={swarm_routes.CONTROL_KEY_SECRET: key_secret}, update_order="stop-first",
                # the new task serving is all we wait for (Swarm's default watches it for 5 s)
                update_monitor="200ms",
                # nothing in flight matters here (an edge retries its pull a second later); a
                # graceful stop waited ~3 s for the edges' idle connections (measured)
                stop_grace_period="1s", restart_condition="any"))
            self.log(f"proxy: created the config server {self.config_server}")
        else:
            self._update(svc, image, configs, {self.edge})

    def _publish(self, text: str, wait: bool) -> bool:
        """Serve ``text`` to the edges; True if it was not served yet."""
        svc = self.engine.service(self.config_server)
        if svc is None:
            raise SwarmError(f"the proxy's config server {self.config_server} is missing",
                             "luma-compose proxy up --swarm")
        name = swarm_routes.config_name(f"{self.name}-edge", text)
        if svc.configs.get(swarm_routes.EDGE_CONFIG_TARGET) == name:
            return False
        self._ensure_config(text, "edge")
        self._update(svc, svc.image, {swarm_routes.EDGE_CONFIG_TARGET: name}, None, wait=wait)
        if wait:
            time.sleep(PROPAGATION)
        return True

    def _converge_gateways(self, table: RouteTable, image: str, remove: bool | None = None,
                           wait: bool = True) -> list[str]:
        """Create (remove is not True) / update / remove (remove is not False) the gateways; the
        names created or removed."""
        want = {self.gateway(r.project): r for r in table.serving}
        have = self.gateways()
        done: list[str] = []
        if remove is not True:
            for name, r in sorted(want.items()):
                cfg = self._ensure_config(swarm_routes.dumps(swarm_routes.gateway_config(r.project)), "gateway")
                configs = {GATEWAY_CONFIG_TARGET: cfg}
                if name in have:
                    self._update(have[name], image, configs, {self.edge, r.network}, wait=wait)
                    continue
                self.engine.create_service(ServiceSpec(
                    name, image, ("caddy", "run", "--config", GATEWAY_CONFIG_TARGET),
                    {**self._labels("gateway"), GATEWAY_OF_LABEL: r.project}, replicas=GATEWAY_REPLICAS,
                    placement_prefs=("spread=node.id",), endpoint_mode="dnsrr", update_order="start-first",
                    update_failure_action="rollback", restart_condition="any", networks=(self.edge, r.network),
                    sysctls=self._sysctls(), configs=configs))
                done.append(name)
            if wait:
                for name in done:
                    wait_converged(self.engine, name)
        if remove is not False:
            for name in sorted(set(have) - set(want)):
                self.engine.remove_service(name)
                done.append(name)
        return done

    def _update(self, svc: ServiceRecord, image: str, configs: dict[str, str], networks: set[str] | None,
                nodes: str | None = None, wait: bool = True, sysctls: dict[str, str] | None = None) -> bool:
        """Bring one of our services to this image / these configs (by target) / networks / sysctls."""
        change = self._change(svc, image, configs, networks, nodes, sysctls or {})
        if not change:
            return False
        self.engine.update_service(svc.name, change)
        if wait:
            wait_converged(self.engine, svc.name, previous=svc.update_started)
        return True

    def _change(self, svc: ServiceRecord, image: str, configs: dict[str, str], networks: set[str] | None,
                nodes: str | None, sysctls: dict[str, str]) -> ServiceUpdate:
        """What differs between ``svc`` and what it should be (an empty update when nothing does)."""
        stale = {t: c for t, c in configs.items() if svc.configs.get(t) != c}
        have_nets = self._network_names(svc) if networks is not None else set()
        moved = nodes is not None and svc.labels.get(NODES_LABEL, "all") != nodes
        return ServiceUpdate(
            image=image if svc.image != image else None,
            config_rm=tuple(svc.configs[t] for t in stale if t in svc.configs), config_add=stale,
            network_add=tuple(sorted((networks or set()) - have_nets)),
            network_rm=tuple(sorted(have_nets - networks)) if networks is not None else (),
            sysctl_add={k: v for k, v in sorted(sysctls.items()) if svc.sysctls.get(k) != v},
            constraint_rm=tuple(c for c in svc.constraints if c.startswith("node.labels.")) if moved else (),
            constraint_add=placement(nodes) if moved and nodes is not None else (),
            label_add={NODES_LABEL: nodes} if moved and nodes is not None else {})

    # ------------------------------------------------------------------ helpers

    def _sysctls(self) -> dict[str, str]:
        """The edges' and gateways' kernel settings: a config load resets no waiting connection
        (proxy/handover.py). Decided by the manager's kernel: give every node the same one."""
        if self._kernel is None:
            self._kernel = self.engine.kernel_version()
        return handover.listener_sysctls(self._kernel)

    def _ensure_config(self, text: str, kind: str) -> str:
        name = swarm_routes.config_name(f"{self.name}-{kind}", text)
        if not self.engine.configs(f"name={name}"):
            self.engine.create_config(name, text, {CONFIG_LABEL: self.name})
        return name

    def _gc(self, everything: bool = False) -> None:
        """Remove our config objects that no part of this proxy uses (in use by a task still
        stopping: removed next time)."""
        keep: set[str] = set()
        if not everything:
            for svc in self.engine.services(f"label={PROXY_LABEL}={self.name}"):
                keep |= set(svc.configs.values())
        for c in self.engine.configs(f"label={CONFIG_LABEL}={self.name}"):
            control = f"{CONFIG_LABEL}.control" in c.labels  # kept while the proxy is
            if everything or (c.name not in keep and not control):
                self.engine.remove_config(c.name)

    def _gc_networks(self, routed: set[str]) -> list[str]:
        """Ingress networks whose stack has no service left (``docker stack rm`` could not remove them
        while a gateway was attached): removed now that the gateway has left them."""
        removed = []
        for n in self.engine.networks(f"label={contract.NETWORK_OWNER_LABEL}=true", "driver=overlay"):
            stack = n.labels.get(contract.STACK_NAMESPACE_LABEL)
            if n.name in routed or not stack:
                continue
            if self.engine.services(f"label={contract.STACK_NAMESPACE_LABEL}={stack}"):
                continue
            if self.engine.remove_network(n.name):
                removed.append(n.name)
        return removed


def _networks(table: RouteTable) -> set[str]:
    """The overlays of the routes served: the gateways' and the watch's."""
    return {r.network for r in table.serving}
