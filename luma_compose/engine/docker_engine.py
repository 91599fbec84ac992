"""The engine: every operation proxy/ and deploy/ need from Docker, on one endpoint.

Records in and out (:mod:`luma_compose.records`), never SDK objects, so the controller and
deploy decide on plain data and a fake engine (tests/support/fake_engine.py) can stand in
for this class in their unit tests. Docker's errors become :class:`EngineError` (or
``None`` for "no such object") here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import io
import tarfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .. import contract
from ..errors import UnavailableError, short_error
from ..records import ContainerRecord, ContainerSpec, MaintenanceRecord, NetworkRecord, VolumeRecord
from . import compose_cli, state
from .client import Endpoint, connect, resolve

if TYPE_CHECKING:  # pragma: no cover
    import docker


#: Networks on which a container's aliases matter (the proxy's ingress networks): a listed
#: container on one is inspected once per set of network endpoints.
INGRESS_SUFFIX = "_" + contract.NETWORK_KEY
#: Inspects in flight at once (the SDK's connection pool holds 10).
INSPECT_WORKERS = 8


class EngineError(UnavailableError):
    """The engine refused an operation (exit 3, like every "Docker unavailable")."""


class SubnetTaken(EngineError):
    """The subnet asked for overlaps one of the engine's networks (one created meanwhile, maybe)."""


def _errors():
    from docker import errors

    return errors


class DockerEngine:
    def __init__(self, endpoint: Endpoint | None = None, client: "docker.DockerClient | None" = None):
        self.endpoint = endpoint or resolve()
        self.dc = client or connect(self.endpoint)
        # container id -> (row_signature, record from its inspect): what the list cannot give
        self._details: dict[str, tuple[Any, ContainerRecord]] = {}

    # ------------------------------------------------------------------ containers

    def _get(self, ref: str):
        try:
            return self.dc.containers.get(ref)
        except _errors().NotFound:
            return None

    def container(self, ref: str) -> ContainerRecord | None:
        c = self._get(ref)
        return state.container_record(c.attrs) if c is not None else None

    def containers(self, labels: Sequence[str] = (), all: bool = False) -> list[ContainerRecord]:
        """One list call; an inspect only for a container on an ingress network that this engine
        object has not inspected with the same network endpoints yet (aliases are not in the list)."""
        filters: dict[str, Any] = {"label": list(labels)}
        if not all:
            filters["status"] = "running"
        return self._records(self.dc.api.containers(all=all, filters=filters))

    def _records(self, rows: list[dict[str, Any]]) -> list[ContainerRecord]:
        if len(self._details) > 20000:  # a long-running process: forget containers long gone
            self._details.clear()
        todo = [row["Id"] for row in rows
                if self._detail(row) is None and any(n.endswith(INGRESS_SUFFIX) for n in state.row_networks(row))]
        fresh = {}
        if todo:  # a few inspects at once: round trips the engine answers in parallel
            with ThreadPoolExecutor(max_workers=min(INSPECT_WORKERS, len(todo))) as pool:
                fresh = dict(zip(todo, pool.map(self._get, todo)))
        out = []
        for row in rows:
            if row["Id"] in fresh:
                c = fresh[row["Id"]]
                if c is None:
                    continue  # removed since the list
                self._details[row["Id"]] = (state.row_signature(row), state.container_record(c.attrs))
            out.append(state.row_record(row, self._detail(row)))
        return out

    def _detail(self, row: dict[str, Any]) -> ContainerRecord | None:
        """The inspect of this listed container, if one was made with its current endpoints."""
        cached = self._details.get(row["Id"])
        return cached[1] if cached is not None and cached[0] == state.row_signature(row) else None

    def create(self, spec: ContainerSpec) -> ContainerRecord:
        errors = _errors()
        ports = {k: ((ip, port or None) if ip else (port or None)) for k, (ip, port) in spec.ports.items()}
        kw = dict(name=spec.name, command=list(spec.command), labels=dict(spec.labels),
                  restart_policy={"Name": spec.restart} if spec.restart else None,
                  volumes={v: {"bind": m, "mode": "rw"} for v, m in spec.volumes.items()},
                  ports=ports, environment=dict(spec.environment), detach=True)
        if spec.dns_options:
            kw["dns_opt"] = list(spec.dns_options)
        if spec.sysctls:
            kw["sysctls"] = dict(spec.sysctls)
        if spec.log_driver:
            kw["log_config"] = {"Type": spec.log_driver, "Config": dict(spec.log_options)}
        try:
            c = self.dc.containers.create(spec.image, **kw)
        except errors.ImageNotFound:
            try:
                self.dc.images.pull(spec.image)
            except errors.APIError as e:
                raise EngineError(f"cannot pull the image {spec.image}: {short_error(e)}",
                                  "build or load it locally, or choose another image") from e
            c = self.dc.containers.create(spec.image, **kw)
        except errors.APIError as e:
            raise EngineError(f"cannot create the container {spec.name}: {short_error(e)}") from e
        return state.container_record(c.attrs)

    def start(self, ref: str) -> None:
        c = self._require(ref)
        try:
            c.start()
        except _errors().APIError as e:
            raise EngineError(f"cannot start the container {c.name}: {short_error(e)}",
                              "is a host port already in use?") from e

    def stop(self, ref: str, timeout: int = 10) -> None:
        c = self._get(ref)
        if c is not None:
            try:
                c.stop(timeout=timeout)
            except _errors().APIError as e:
                raise EngineError(f"cannot stop {c.name}: {short_error(e)}") from e

    def remove(self, ref: str, volumes: bool = False) -> bool:
        """Remove a container (running or not); False when there was none."""
        errors = _errors()
        c = self._get(ref)
        if c is None:
            return False
        try:
            c.remove(force=True, v=volumes)
        except errors.NotFound:
            return False
        except errors.APIError as e:
            raise EngineError(f"cannot remove {c.name}: {short_error(e)}") from e
        return True

    def rename(self, ref: str, name: str) -> None:
        c = self._require(ref)
        try:
            c.rename(name)
        except _errors().APIError as e:
            raise EngineError(f"cannot rename {c.name} to {name}: {short_error(e)}") from e

    def logs(self, ref: str, tail: int = 20, stdout: bool = True) -> str:
        """The last lines of a container's log (``stdout=False``: its stderr only)."""
        c = self._get(ref)
        return c.logs(tail=tail, stdout=stdout, stderr=True).decode(errors="replace") if c is not None else ""

    def log_lines(self, ref: str, since: float | None = None, follow: bool = False, tail: int | None = None,
                  stdout: bool = True, stderr: bool = True) -> Iterator[str]:
        """A container's log, line by line (``since``: Unix time; ``follow``: until it stops)."""
        c = self._require(ref)
        kw: dict[str, Any] = {"stdout": stdout, "stderr": stderr, "stream": True, "follow": follow}
        if since is not None:
            kw["since"] = since
        if tail is not None:
            kw["tail"] = tail
        try:
            buf = b""
            for chunk in c.logs(**kw):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
            if buf:
                yield buf.decode(errors="replace")
        except _errors().APIError as e:
            raise EngineError(f"cannot read the log of {c.name}: {short_error(e)}") from e

    def exec(self, ref: str, argv: Sequence[str]) -> tuple[int, str, str]:
        """Run ``argv`` in a running container: (exit code, stdout, stderr). By name, with no
        inspect first (the proxy's container, inspected, is large: one object per network)."""
        errors, api = _errors(), self.dc.api
        try:
            eid = api.exec_create(ref, list(argv))["Id"]
            out, err = api.exec_start(eid, demux=True) or (b"", b"")
            code = api.exec_inspect(eid).get("ExitCode")
        except errors.NotFound:
            raise EngineError(f"the container {ref} does not exist") from None
        except errors.APIError as e:  # 409: the container stopped (or was killed) meanwhile
            raise EngineError(f"could not run {argv[0]} in {ref}: {getattr(e, 'explanation', None) or e}") from None
        return code, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")

    def put_file(self, ref: str, path: str, data: bytes, mode: int = 0o600) -> None:
        """Write one file into a container (created or running), parent directories included."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                d = tarfile.TarInfo("/".join(parts[:i]))
                d.type, d.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(d)
            info = tarfile.TarInfo(path.strip("/"))
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
        try:  # by name, with no inspect first
            ok = self.dc.api.put_archive(ref, "/", buf.getvalue())
        except _errors().NotFound:
            raise EngineError(f"the container {ref} does not exist") from None
        if not ok:
            raise EngineError(f"could not write {path} into {ref}")

    def _require(self, ref: str):
        c = self._get(ref)
        if c is None:
            raise EngineError(f"the container {ref} does not exist")
        return c

    # ------------------------------------------------------------------ images and volumes

    def image_id(self, ref: str) -> str:
        """The id of a local image, "" when it is not here (not built or pulled yet)."""
        try:
            return self.dc.images.get(ref).id
        except _errors().DockerException:
            return ""

    def volume_exists(self, name: str) -> bool:
        try:
            self.dc.volumes.get(name)
            return True
        except _errors().NotFound:
            return False

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        self.dc.volumes.create(name, labels=labels)

    def remove_volume(self, name: str) -> None:
        try:
            self.dc.volumes.get(name).remove()
        except _errors().NotFound:
            pass

    # ------------------------------------------------------------------ maintenance (routing/maintenance.py)

    def maintenance_states(self) -> list[MaintenanceRecord]:
        """Every maintenance state on the engine: the labels of the volumes that carry them (one list call)."""
        try:
            vols = self.dc.api.volumes(filters={"label": [contract.MAINTENANCE_PROJECT_LABEL]}) or {}
        except _errors().APIError as e:
            raise EngineError(f"cannot list volumes: {short_error(e)}") from e
        return [MaintenanceRecord.from_labels(v.get("Name") or "", v.get("Labels") or {})
                for v in vols.get("Volumes") or []]

    def keep_maintenance(self, rec: MaintenanceRecord) -> MaintenanceRecord:
        """Keep one state: a new volume named after it, its labels the state (deploy/maintenance.set_state)."""
        name = rec.object_name()
        try:
            self.dc.volumes.create(name, labels=rec.labels())
        except _errors().APIError as e:
            raise EngineError(f"cannot create the volume {name} that keeps the maintenance state: "
                              f"{short_error(e)}") from e
        return dataclasses.replace(rec, name=name)

    def drop_maintenance(self, name: str) -> None:
        """Remove the volume that keeps one state (gone already is fine)."""
        try:
            self.dc.volumes.get(name).remove()
        except _errors().NotFound:
            pass
        except _errors().APIError as e:
            raise EngineError(f"cannot remove the volume {name}: {short_error(e)}") from e

    def volume_records(self, labels: Sequence[str] = ()) -> list[VolumeRecord]:
        """Volumes carrying these labels (one list call)."""
        rows = self.dc.api.volumes(filters={"label": list(labels)}).get("Volumes") or []
        return [VolumeRecord(v["Name"], dict(v.get("Labels") or {}), v.get("CreatedAt") or "") for v in rows]

    def create_volume_checked(self, name: str, labels: dict[str, str]) -> None:
        """A new volume; EngineError when one of that name exists (Docker would return it silently)."""
        if self.volume_exists(name):
            raise EngineError(f"the volume {name} already exists")
        try:
            self.dc.volumes.create(name, labels=labels)
        except _errors().APIError as e:
            raise EngineError(f"cannot create the volume {name}: {short_error(e)}") from e

    def tag_image(self, image: str, repository: str, tag: str) -> None:
        """Tag a local image (by id or reference) as repository:tag."""
        try:
            self.dc.api.tag(image, repository, tag, force=True)
        except _errors().APIError as e:
            raise EngineError(f"cannot tag {image} as {repository}:{tag}: {short_error(e)}") from e

    def untag_image(self, ref: str) -> bool:
        """Remove one tag (the image goes too when nothing else references it); False when the engine
        keeps it (no such tag, or a container still uses an image this is the last tag of)."""
        try:
            self.dc.api.remove_image(ref, noprune=False)
            return True
        except _errors().APIError:
            return False

    # ------------------------------------------------------------------ networks

    def network(self, name: str) -> NetworkRecord | None:
        try:
            return state.network_record(self.dc.networks.get(name).attrs)
        except _errors().NotFound:
            return None

    def networks(self, labels: Sequence[str] = ()) -> list[NetworkRecord]:
        """Networks carrying these labels, with their attached containers: one list of the networks
        and one of the containers on them (no inspect of each network)."""
        nets = self.dc.api.networks(filters={"label": list(labels)})
        if not nets:
            return []
        members: dict[str, list[str]] = {n["Id"]: [] for n in nets}
        for row in self.dc.api.containers(all=True, filters={"network": list(members)}):
            for n in ((row.get("NetworkSettings") or {}).get("Networks") or {}).values():
                if (n or {}).get("EndpointID") and n.get("NetworkID") in members:  # attached now
                    members[n["NetworkID"]].append(row["Id"])
        return [state.network_record({**n, "Containers": dict.fromkeys(members[n["Id"]], {})}) for n in nets]

    def network_subnets(self, labels: Sequence[str] = ()) -> dict[str, tuple[str, ...]]:
        """Each network's subnets by name, of the networks carrying these labels (one list call,
        no inspect per network)."""
        nets = self.dc.api.networks(filters={"label": list(labels)} if labels else None)
        return {n.get("Name") or "": tuple(c["Subnet"] for c in ((n.get("IPAM") or {}).get("Config") or [])
                                            if c.get("Subnet")) for n in nets}

    def network_gateways(self) -> dict[str, tuple[str, ...]]:
        """Each network's gateway addresses (the host's own address on it) by name; one list call."""
        out = {}
        for n in self.dc.api.networks():
            gws = []
            for c in (n.get("IPAM") or {}).get("Config") or []:
                gw = c.get("Gateway") or ""
                if not gw and c.get("Subnet"):  # Docker's default: the subnet's first address
                    import ipaddress

                    gw = str(next(ipaddress.ip_network(c["Subnet"], strict=False).hosts(), ""))
                if gw:
                    gws.append(gw.split("/")[0])
            out[n.get("Name") or ""] = tuple(gws)
        return out

    def create_network(self, name: str, labels: dict[str, str], subnet: str) -> NetworkRecord:
        """A bridge network on ``subnet`` (the engine's default driver, as Compose creates it); one of
        that name already there is returned as it is. SubnetTaken when the subnet overlaps another."""
        from docker.types import IPAMConfig, IPAMPool

        errors = _errors()
        try:
            self.dc.networks.create(name, labels=dict(labels), check_duplicate=True,
                                    ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=subnet)]))
        except errors.APIError as e:
            text = str(e).lower()
            if "overlap" in text:
                raise SubnetTaken(f"cannot create network {name} on {subnet}: {short_error(e)}") from e
            if "already exists" not in text:
                raise EngineError(f"cannot create network {name}: {short_error(e)}") from e
        rec = self.network(name)
        if rec is None:
            raise EngineError(f"network {name} vanished right after it was created")
        return rec

    def address_pools(self) -> list[tuple[str, int]] | None:
        """The engine's default address pools as (base, size), as ``docker info`` reports them; None when
        it reports none (an engine on dockerd's built-in pools)."""
        pools = self.dc.info().get("DefaultAddressPools")
        return [(p["Base"], int(p["Size"])) for p in pools] if pools else None

    def kernel_version(self) -> str:
        """The engine's kernel version, as ``docker info`` reports it."""
        return str(self.dc.info().get("KernelVersion") or "")

    def connect(self, network: str, container: str) -> None:
        """Attach a container to a network; already attached is fine."""
        errors = _errors()
        try:
            self.dc.api.connect_container_to_network(container, network)  # no network inspect first
        except errors.APIError as e:
            if "already exists" in str(e):
                return
            raise EngineError(f"cannot attach {container} to {network}: {short_error(e)}") from e

    def disconnect(self, network: str, container: str, force: bool = False) -> None:
        errors = _errors()
        try:
            self.dc.networks.get(network).disconnect(container, force=force)
        except errors.NotFound:
            pass
        except errors.APIError as e:
            raise EngineError(f"cannot detach {container} from {network}: {short_error(e)}") from e

    def remove_network(self, name: str) -> bool:
        errors = _errors()
        try:
            self.dc.networks.get(name).remove()
            return True
        except errors.NotFound:
            return False
        except errors.APIError as e:
            raise EngineError(f"cannot remove network {name}: {short_error(e)}") from e

    # ------------------------------------------------------------------ events and compose

    def events(self, stop: threading.Event, since: int) -> Iterator[dict[str, Any]]:
        """Container and network events from ``since`` (unix time) on, on a connection of their own
        (no timeout)."""
        dc = connect(self.endpoint, timeout=None)
        stream = dc.events(decode=True, filters={"type": ["container", "network"]}, since=since)
        try:
            for ev in stream:
                if stop.is_set():
                    return
                yield ev
        finally:
            stream.close()
            dc.close()

    def compose(self, project: str, directory: str, text: str) -> compose_cli.Compose:
        """``docker compose`` for one project, on this engine."""
        return compose_cli.Compose(project, directory, text, docker=self.endpoint.docker_cli())
