"""A fake engine for the controller's and deploy's unit tests: the same interface as
:class:`luma_compose.engine.docker_engine.DockerEngine`, in memory, in milliseconds.

It keeps containers, networks, volumes and files as plain records, logs every operation
that changes something in ``calls`` (so tests assert on the order of a rollout), plays
Caddy's admin API inside a proxy container (``caddy reload`` loads the file written there,
``wget .../config/`` returns what is loaded), answers health probes through ``http_ok``,
and plays just enough of ``docker compose`` (``config``, ``up --scale``, ``down``) for deploy.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from luma_compose import contract
from luma_compose.engine.client import Endpoint
from luma_compose.engine.compose_cli import ComposeCommand
from luma_compose.engine.docker_engine import EngineError, SubnetTaken
from luma_compose.errors import LumaError
from luma_compose.records import (
    COMPOSE_PROJECT_LABEL,
    COMPOSE_SERVICE_LABEL,
    CONFIG_HASH_LABEL,
    ContainerRecord,
    ContainerSpec,
    MaintenanceRecord,
    NetworkAttachment,
    NetworkRecord,
    VolumeRecord,
)

_ids = itertools.count(1)


class FakeEngine:
    def __init__(self) -> None:
        self.endpoint = Endpoint("fake://engine")
        self.records: dict[str, ContainerRecord] = {}  # id -> record
        self.nets: dict[str, NetworkRecord] = {}
        self.volumes: set[str] = set()
        #: volume name -> its labels (volumes created with labels: the maintenance states)
        self.volume_labels: dict[str, dict[str, str]] = {}
        self.files: dict[tuple[str, str], bytes] = {}
        self.loaded: dict[str, Any] = {}  # proxy container id -> Caddy config loaded
        self.images: dict[str, str] = {}  # reference -> image id (an id is found while any reference has it)
        self.calls: list[tuple] = []
        self.compose_log: list[ComposeCommand] = []
        self.projects: dict[str, "FakeProject"] = {}
        self.taken_ports: set[int] = set()
        #: health probe from inside the proxy: (url, host header) -> ok?
        self.http_ok: Callable[[str, str | None], bool] = lambda url, host: True
        self.clock = itertools.count(1)
        #: network name -> its subnets (only the networks given one: create_network, add_network)
        self.subnets: dict[str, tuple[str, ...]] = {}
        #: what ``docker info`` reports as DefaultAddressPools (None: dockerd's built-in ones)
        self.pools: list[tuple[str, int]] | None = None
        self.kernel = "6.1.0-fake"
        #: how many more networks compose may take from the default pools (None: no limit, and compose's
        #: own networks are not modelled); at 0, compose's network creation fails as dockerd's does
        self.default_pools_left: int | None = None
        #: subnets taken on the engine but not listed by network_subnets (another deploy, a moment later)
        self.hidden_subnets: list[str] = []

    # ------------------------------------------------------------------ helpers for tests

    def add(self, rec: ContainerRecord) -> ContainerRecord:
        self.records[rec.id] = rec
        for net, att in rec.networks.items():
            n = self.nets.get(net) or NetworkRecord(net, f"net-{net}")
            self.nets[net] = dataclasses.replace(n, containers=tuple(dict.fromkeys((*n.containers, rec.id))))
        return rec

    def add_network(self, name: str, labels: dict[str, str] | None = None, subnet: str = "") -> None:
        self.nets[name] = NetworkRecord(name, f"net-{name}", dict(labels or {}))
        if subnet:
            self.subnets[name] = (subnet,)

    def _now(self) -> str:
        return f"2026-01-01T00:00:{next(self.clock):02d}.000000000Z"

    def _find(self, ref: str) -> ContainerRecord | None:
        if ref in self.records:
            return self.records[ref]
        return next((c for c in self.records.values() if c.name == ref), None)

    def _require(self, ref: str) -> ContainerRecord:
        c = self._find(ref)
        if c is None:
            raise EngineError(f"the container {ref} does not exist")
        return c

    def _set(self, c: ContainerRecord, **changes: Any) -> ContainerRecord:
        new = dataclasses.replace(c, **changes)
        self.records[c.id] = new
        return new

    # ------------------------------------------------------------------ the engine interface

    def container(self, ref: str) -> ContainerRecord | None:
        return self._find(ref)

    def containers(self, labels: Sequence[str] = (), all: bool = False) -> list[ContainerRecord]:
        def match(c: ContainerRecord) -> bool:
            for f in labels:
                k, eq, v = f.partition("=")
                if k not in c.labels or (eq and c.labels[k] != v):
                    return False
            return all or c.state == "running"

        return [c for c in self.records.values() if match(c)]

    def create(self, spec: ContainerSpec) -> ContainerRecord:
        if self._find(spec.name) is not None:
            raise EngineError(f"cannot create the container {spec.name}: name already in use")
        self.calls.append(("create", spec.name))
        ports = {k: (ip, port or 30000 + next(_ids)) for k, (ip, port) in spec.ports.items()}
        rec = ContainerRecord(id=f"c{next(_ids):04d}", name=spec.name, labels=dict(spec.labels), created=self._now(),
                              state="created", image_ref=spec.image, image=self.images.get(spec.image, "sha256:x"),
                              ports=ports, volumes=tuple(spec.volumes))
        return self.add(rec)

    def start(self, ref: str) -> None:
        c = self._require(ref)
        busy = [p for _, p in c.ports.values() if p in self.taken_ports]
        if busy:
            raise EngineError(f"cannot start the container {c.name}: port {busy[0]} is already allocated")
        self.calls.append(("start", c.name))
        self._set(c, state="running")

    def stop(self, ref: str, timeout: int = 10) -> None:
        c = self._find(ref)
        if c is not None:
            self.calls.append(("stop", c.name))
            self._set(c, state="exited")

    def remove(self, ref: str, volumes: bool = False) -> bool:
        c = self._find(ref)
        if c is None:
            return False
        self.calls.append(("remove", c.name))
        del self.records[c.id]
        self.loaded.pop(c.id, None)
        for name, n in self.nets.items():
            self.nets[name] = dataclasses.replace(n, containers=tuple(x for x in n.containers if x != c.id))
        return True

    def rename(self, ref: str, name: str) -> None:
        c = self._require(ref)
        if c.name == name or self._find(name) is not None:
            raise EngineError(f"cannot rename {c.name} to {name}: name already in use")
        self.calls.append(("rename", c.name, name))
        self._set(c, name=name)

    def logs(self, ref: str, tail: int = 20, stdout: bool = True) -> str:
        return "fake log line\n"

    def log_lines(self, ref: str, since: float | None = None, follow: bool = False, tail: int | None = None,
                  stdout: bool = True, stderr: bool = True) -> Iterator[str]:
        """The lines a test put in ``self.log_text[ref]`` (the access log, for ``logs``)."""
        self._require(ref)
        lines = getattr(self, "log_text", {}).get(ref, "").splitlines()
        yield from (lines[-tail:] if tail else lines)

    def exec(self, ref: str, argv: Sequence[str]) -> tuple[int, str, str]:
        c = self._require(ref)
        if c.state != "running":  # what the real engine answers (409), as DockerEngine raises it
            raise EngineError(f"could not run {argv[0]} in {c.name}: container {c.id} is not running")
        argv = list(argv)
        if argv[:1] == ["timeout"]:
            argv = argv[2:]
        if argv[:1] == ["caddy"] and argv[1] == "reload":
            path = argv[argv.index("--config") + 1]
            self.calls.append(("caddy reload", c.name))
            self.loaded[c.id] = json.loads(self.files[(c.id, path)])
            return 0, "", ""
        if argv[:2] == ["sh", "-c"] and "--post-file" in argv[2] and "/load" in argv[2]:
            path = argv[-1]  # a config load (proxy/container.py's post_load), as `caddy reload` does it
            self.calls.append(("caddy reload", c.name))
            self.loaded[c.id] = json.loads(self.files.pop((c.id, path)))
            return 0, "", ""
        if argv[:2] == ["rm", "-f"]:
            self.files.pop((c.id, argv[2]), None)
            return 0, "", ""
        if argv[:1] == ["wget"]:
            url = argv[-1]
            host = next((a.split(": ", 1)[1] for a in argv if a.startswith("Host: ")), None)
            if url.endswith("/config/"):
                if "-" in argv[argv.index("-O") + 1:argv.index("-O") + 2]:
                    return 0, json.dumps(self.loaded.get(c.id)), ""
                return 0, "", ""
            return (0, "", "") if self.http_ok(url, host) else (1, "", "wget: server returned error: HTTP/1.1 503")
        return 127, "", f"fake engine: unknown command {argv}"

    def put_file(self, ref: str, path: str, data: bytes, mode: int = 0o600) -> None:
        c = self._require(ref)
        self.files[(c.id, path)] = data

    def image_id(self, ref: str) -> str:
        if ref.startswith("sha256:"):
            return ref if ref in self.images.values() else ""
        return self.images.get(ref, "")

    def volume_exists(self, name: str) -> bool:
        return name in self.volumes

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        self.calls.append(("create volume", name))
        self.volumes.add(name)
        self.volume_labels[name] = dict(labels)

    def remove_volume(self, name: str) -> None:
        self.volumes.discard(name)
        self.volume_labels.pop(name, None)

    def maintenance_states(self) -> list[MaintenanceRecord]:
        return [MaintenanceRecord.from_labels(n, lb) for n, lb in sorted(self.volume_labels.items())
                if contract.MAINTENANCE_PROJECT_LABEL in lb]

    def keep_maintenance(self, rec: MaintenanceRecord) -> MaintenanceRecord:
        name = rec.object_name()
        self.create_volume(name, rec.labels())
        return dataclasses.replace(rec, name=name)

    def drop_maintenance(self, name: str) -> None:
        self.remove_volume(name)

    def volume_records(self, labels: Sequence[str] = ()) -> list[VolumeRecord]:
        return [VolumeRecord(n, lb, "") for n, lb in self.volume_labels.items()
                if all(k in lb and (not eq or lb[k] == v) for k, eq, v in (f.partition("=") for f in labels))]

    def create_volume_checked(self, name: str, labels: dict[str, str]) -> None:
        if name in self.volumes:
            raise EngineError(f"the volume {name} already exists")
        self.calls.append(("create volume", name))
        self.volumes.add(name)
        self.volume_labels[name] = dict(labels)

    def tag_image(self, image: str, repository: str, tag: str) -> None:
        iid = image if image.startswith("sha256:") else self.images.get(image, "")
        if not iid or iid not in self.images.values():
            raise EngineError(f"cannot tag {image} as {repository}:{tag}: No such image")
        self.calls.append(("tag", iid, f"{repository}:{tag}"))
        self.images[f"{repository}:{tag}"] = iid

    def untag_image(self, ref: str) -> bool:
        if ref not in self.images:
            return False
        self.calls.append(("untag", ref))
        del self.images[ref]
        return True

    def network(self, name: str) -> NetworkRecord | None:
        return self.nets.get(name)

    def networks(self, labels: Sequence[str] = ()) -> list[NetworkRecord]:
        def match(n: NetworkRecord) -> bool:
            for lb in labels:
                k, _, v = lb.partition("=")
                if k not in n.labels or ("=" in lb and n.labels[k] != v):
                    return False
            return True

        return [n for n in self.nets.values() if match(n)]

    def network_subnets(self, labels: Sequence[str] = ()) -> dict[str, tuple[str, ...]]:
        return {n.name: self.subnets.get(n.name, ()) for n in self.networks(labels)}

    def network_gateways(self) -> dict[str, tuple[str, ...]]:
        return {n: tuple(str(next(ipaddress.ip_network(s).hosts())) for s in subs) for n, subs in self.subnets.items()}

    def create_network(self, name: str, labels: dict[str, str], subnet: str) -> NetworkRecord:
        if name in self.nets:
            return self.nets[name]
        want = ipaddress.ip_network(subnet)
        taken = [*(s for subs in self.subnets.values() for s in subs), *self.hidden_subnets]
        if any(want.overlaps(ipaddress.ip_network(t)) for t in taken):
            raise SubnetTaken(f"cannot create network {name} on {subnet}: Pool overlaps with other one on this "
                              "address space")
        self.calls.append(("create network", name, subnet))
        self.add_network(name, labels, subnet)
        return self.nets[name]

    def address_pools(self) -> list[tuple[str, int]] | None:
        return self.pools

    def kernel_version(self) -> str:
        return self.kernel

    def connect(self, network: str, container: str) -> None:
        c = self._require(container)
        n = self.nets.get(network)
        if n is None:
            raise EngineError(f"cannot attach {container} to {network}: network not found")
        if network in c.networks:
            return
        self.calls.append(("connect", network, c.name))
        self._set(c, networks={**c.networks, network: NetworkAttachment(f"10.99.0.{next(_ids) % 250}")})
        self.nets[network] = dataclasses.replace(n, containers=(*n.containers, c.id))

    def disconnect(self, network: str, container: str, force: bool = False) -> None:
        c = self._find(container)
        n = self.nets.get(network)
        if c is None or n is None:
            return
        self.calls.append(("disconnect", network, c.name))
        self._set(c, networks={k: v for k, v in c.networks.items() if k != network})
        self.nets[network] = dataclasses.replace(n, containers=tuple(x for x in n.containers if x != c.id))

    def remove_network(self, name: str) -> bool:
        n = self.nets.get(name)
        if n is None:
            return False
        if n.containers:
            raise EngineError(f"cannot remove network {name}: it has active endpoints")
        self.calls.append(("remove network", name))
        del self.nets[name]
        self.subnets.pop(name, None)
        return True

    def events(self, stop: threading.Event, since: int) -> Iterator[dict[str, Any]]:
        return iter(())

    def compose(self, project: str, directory: str, text: str) -> "FakeCompose":
        return FakeCompose(self, project, directory, text)


@dataclasses.dataclass
class FakeService:
    """What the compose file says of one service, as the fake compose needs it."""

    replicas: int = 1
    config_hash: str = "h1"
    image: str = "app:latest"
    routed: contract.RoutedService | None = None
    health: str | None = None  # the Docker health a new container reports (None: no health check)
    container_name: str = ""
    aliases: tuple[str, ...] = ()  # extra network aliases on the ingress network
    update_order: str = ""  # deploy.update_config.order (stop-first: deploy/stopfirst.py)


@dataclasses.dataclass
class FakeProject:
    services: dict[str, FakeService]
    #: more keys of the ``luma`` network in ``docker compose config`` (a user's ipam, driver, ...)
    luma_network: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: more top-level networks of the file, as ``docker compose config`` shows them
    networks: dict[str, Any] = dataclasses.field(default_factory=dict)


class FakeCompose:
    """``docker compose -p P -f - ...`` for the fake engine: records each command, plays the few deploy uses."""

    def __init__(self, engine: FakeEngine, project: str, directory: str, text: str):
        self.engine = engine
        self.project = project
        self.directory = directory
        self.text = text

    def command(self, *args: str, with_file: bool = True) -> ComposeCommand:
        argv = ("docker", "compose", "-p", self.project, "--project-directory", self.directory,
                *(("-f", "-") if with_file else ()), *args)
        return ComposeCommand(argv, self.text if with_file else None, self.directory)

    def run(self, *args: str, timeout: float = 600, check: bool = True, with_file: bool = True) -> str:
        e = self.engine
        e.compose_log.append(self.command(*args, with_file=with_file))
        e.calls.append(("compose", *args))
        spec = e.projects.get(self.project)
        if args[:1] == ("version",):
            return "2.40.3\n"
        if args[:1] == ("config",):
            assert spec is not None, f"the test gave no FakeProject for {self.project}"
            if "--hash" in args:
                return "".join(f"{s} {v.config_hash}\n" for s, v in spec.services.items())
            # as Compose prints it: routed services join the ingress network (render puts them there)
            return json.dumps({"name": self.project, "services": {
                s: {"image": v.image, "deploy": {"replicas": v.replicas,
                                                  **({"update_config": {"order": v.update_order}}
                                                     if v.update_order else {})},
                    "networks": {"default": None, **({contract.NETWORK_KEY: {"aliases": list(v.aliases)} if v.aliases
                                                      else None} if v.routed else {})},
                    **({"container_name": v.container_name} if v.container_name else {})}
                for s, v in spec.services.items()}, "networks": self._networks(spec)})
        if args[:1] == ("up",):
            assert spec is not None
            self._up_networks(spec)
            scale = dict(a.split("=") for a in _values(args, "--scale"))
            names = [a for a in args[1:] if not a.startswith("-") and a not in _values(args, "--scale")]
            for s in names or list(spec.services):
                want = int(scale.get(s, spec.services[s].replicas))
                have = [c for c in e.containers([f"{COMPOSE_PROJECT_LABEL}={self.project}",
                                                 f"{COMPOSE_SERVICE_LABEL}={s}"], all=True)]
                for _ in range(want - len(have)):
                    self._new_container(s, spec.services[s], len(have) + 1 + _,
                                        "created" if "--no-start" in args else "running")
            return ""
        if args[:1] == ("down",):
            for c in e.containers([f"{COMPOSE_PROJECT_LABEL}={self.project}"], all=True):
                e.remove(c.id)
            return ""
        if check:
            raise LumaError(f"fake compose: {' '.join(args)} is not played")
        return ""

    def _networks(self, spec: FakeProject) -> dict[str, Any]:
        """``networks`` of ``docker compose config --format json`` for a rendered file."""
        nets: dict[str, Any] = {"default": {"name": f"{self.project}_default", "ipam": {}}}
        if any(v.routed for v in spec.services.values()):
            nets[contract.NETWORK_KEY] = {"name": contract.ingress_network(self.project), "ipam": {},
                                          "labels": {contract.NETWORK_OWNER_LABEL: "true"}, **spec.luma_network}
        return {**nets, **spec.networks}

    def _up_networks(self, spec: FakeProject) -> None:
        """Compose creates the project's missing networks first, each from the default pools (modelled only
        when the test sets ``default_pools_left``); out of pools, it fails as Compose does, leaving the ones made."""
        e = self.engine
        if e.default_pools_left is None:
            return
        for key, net in self._networks(spec).items():
            if net["name"] in e.nets:
                continue
            if e.default_pools_left == 0:
                raise LumaError(f"`docker compose up` failed (exit 1):\nfailed to create network {net['name']}: Error "
                                "response from daemon: could not find an available, non-overlapping IPv4 address "
                                "pool among the defaults to assign to the network", "fix what Compose reports")
            e.default_pools_left -= 1
            e.calls.append(("compose creates network", net["name"]))
            e.add_network(net["name"], {COMPOSE_PROJECT_LABEL: self.project, **net.get("labels", {})},
                          f"192.168.{e.default_pools_left * 16}.0/20")

    def _new_container(self, service: str, svc: FakeService, number: int, state: str = "running") -> None:
        e = self.engine
        labels = {COMPOSE_PROJECT_LABEL: self.project, COMPOSE_SERVICE_LABEL: service, CONFIG_HASH_LABEL: svc.config_hash}
        nets = {f"{self.project}_default": NetworkAttachment(f"10.1.0.{next(_ids) % 250}", (service,))}
        if svc.routed is not None:
            labels.update(svc.routed.labels(self.project))
            net = contract.ingress_network(self.project)
            if net not in e.nets:
                e.add_network(net, {contract.NETWORK_OWNER_LABEL: "true", COMPOSE_PROJECT_LABEL: self.project})
            nets[net] = NetworkAttachment(f"10.2.0.{next(_ids) % 250}",
                                          (contract.alias(self.project, service), service, *svc.aliases))
        name = f"{self.project}-{service}-{number}"
        while e._find(name) is not None:
            number += 1
            name = f"{self.project}-{service}-{number}"
        e.calls.append(("compose creates", name))
        e.add(ContainerRecord(id=f"c{next(_ids):04d}", name=name, labels=labels, created=e._now(), state=state,
                              health=svc.health, networks=nets, image=e.images.get(svc.image, "sha256:app"),
                              image_ref=svc.image))


def _values(args: Sequence[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag and i + 1 < len(args)]


__all__ = ["FakeCompose", "FakeEngine", "FakeProject", "FakeService"]
