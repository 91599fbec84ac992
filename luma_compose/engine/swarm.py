"""The swarm operations, through the ``docker`` CLI of the one endpoint (which must be a manager).

Argv as data; JSON in, plain dicts out. ``DOCKER_HOST`` / ``--host`` pick the manager, exactly as
for the single-host engine (:mod:`luma_compose.engine.client`).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from typing import Any, Sequence

from .client import Endpoint, resolve
from .. import contract
from ..errors import LumaError, UnavailableError
from ..records import MaintenanceRecord


class SwarmError(LumaError):
    pass


class SwarmEngine:
    def __init__(self, endpoint: Endpoint | None = None) -> None:
        self.endpoint = endpoint or resolve()

    # ------------------------------------------------------------------ plumbing

    def run(self, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        cmd = [*self.endpoint.docker_cli(), *args]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout)
        except FileNotFoundError as e:
            raise UnavailableError("the docker CLI is not installed", "install docker (the CLI)") from e
        except subprocess.TimeoutExpired as e:
            raise SwarmError(f"timed out after {timeout:.0f}s: {' '.join(cmd)}") from e
        if check and p.returncode != 0:
            raise SwarmError(f"{' '.join(args[:3])} failed: {p.stderr.strip() or p.stdout.strip()}")
        return p

    def inspect(self, kind: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The objects among ``ids`` that still exist: one listed a moment ago may be gone now
        (a stack being removed), and docker then prints the others and fails."""
        if not ids:
            return []
        p = self.run(kind, "inspect", *ids, check=False)
        found = json.loads(p.stdout or "[]")
        if p.returncode != 0 and "not found" not in p.stderr.lower() and "no such" not in p.stderr.lower():
            raise SwarmError(f"{kind} inspect failed: {p.stderr.strip()}")
        return found

    # ------------------------------------------------------------------ reads

    def require_manager(self) -> None:
        p = self.run("info", "--format", "{{json .Swarm}}", check=False, timeout=30)
        if p.returncode != 0:
            raise UnavailableError(f"cannot reach the Docker engine ({self.endpoint.describe()}): "
                                   f"{p.stderr.strip()}", "is dockerd running (or DOCKER_HOST right)?")
        info = json.loads(p.stdout or "{}")
        if info.get("LocalNodeState") != "active":
            raise UnavailableError(f"{self.endpoint.describe()} is not part of a swarm",
                                   "docker swarm init (or join), or point DOCKER_HOST at a manager")
        if not info.get("ControlAvailable"):
            raise UnavailableError(f"{self.endpoint.describe()} is a swarm worker: services are read and "
                                   "changed on a manager", "point DOCKER_HOST (or the docker context) at a manager")

    def kernel_version(self) -> str:
        """The kernel of the engine we talk to (a manager), as ``docker info`` reports it."""
        p = self.run("info", "--format", "{{.KernelVersion}}", check=False, timeout=30)
        return p.stdout.strip() if p.returncode == 0 else ""

    def services(self, *filters: str) -> list[dict[str, Any]]:
        args = ["service", "ls", "-q"]
        for f in filters:
            args += ["--filter", f]
        ids = self.run(*args).stdout.split()
        return self.inspect("service", ids)

    def service(self, name: str) -> dict[str, Any] | None:
        p = self.run("service", "inspect", name, check=False)
        if p.returncode != 0:
            return None
        data = json.loads(p.stdout or "[]")
        return data[0] if data else None

    def tasks(self, service: str) -> list[dict[str, Any]]:
        ids = self.run("service", "ps", "-q", "--no-trunc", service, check=False).stdout.split()
        return json.loads(self.run("inspect", *ids).stdout) if ids else []

    def networks(self, *filters: str) -> list[dict[str, Any]]:
        args = ["network", "ls", "-q"]
        for f in filters:
            args += ["--filter", f]
        return self.inspect("network", self.run(*args).stdout.split())

    def network_names(self, ids: Sequence[str]) -> dict[str, str]:
        """network id -> name."""
        out: dict[str, str] = {}
        for n in self.inspect("network", list(ids)):
            out[n["Id"]] = n["Name"]
        return out

    def configs(self, *filters: str) -> list[dict[str, Any]]:
        args = ["config", "ls", "-q"]
        for f in filters:
            args += ["--filter", f]
        return self.inspect("config", self.run(*args).stdout.split())

    def network_endpoints(self, name: str) -> dict[str, Any] | None:
        """``docker network inspect --verbose NAME``: ``Containers``, this node's endpoints, and
        ``Services``, service name -> its tasks on every node (plain containers under ""), known
        only while this node has an endpoint there itself; None if the network is gone."""
        p = self.run("network", "inspect", "--verbose", name, check=False)
        if p.returncode != 0:
            if "not found" in p.stderr.lower() or "no such" in p.stderr.lower():
                return None
            raise SwarmError(f"network inspect {name} failed: {p.stderr.strip()}")
        data = json.loads(p.stdout or "[]")
        return {"Containers": data[0].get("Containers") or {}, "Services": data[0].get("Services") or {}} if data else None

    def container(self, name: str) -> dict[str, Any] | None:
        """``docker container inspect`` on this node, or None."""
        p = self.run("container", "inspect", name, check=False)
        data = json.loads(p.stdout or "[]") if p.returncode == 0 else []
        return data[0] if data else None

    # ------------------------------------------------------------------ maintenance (routing/maintenance.py)

    def maintenance_states(self) -> list[MaintenanceRecord]:
        """Every maintenance state on the swarm: the labels of the configs that carry them."""
        return [MaintenanceRecord.from_labels(c["Spec"]["Name"], c["Spec"].get("Labels") or {})
                for c in self.configs(f"label={contract.MAINTENANCE_PROJECT_LABEL}")]

    def set_maintenance(self, rec: MaintenanceRecord) -> MaintenanceRecord:
        """Keep ``rec`` (a new Swarm config), then remove the older states of its key."""
        name = rec.object_name()
        args = [x for k, v in rec.labels().items() for x in ("--label", f"{k}={v}")]
        p = self.run("config", "create", *args, name, "-", check=False,
                     input=f"luma-compose maintenance of {rec.project}/{rec.service or '*'} (the labels hold it)\n")
        if p.returncode != 0 and "already exists" not in p.stderr:
            raise SwarmError(f"cannot create the config {name} that keeps the maintenance state: {p.stderr.strip()}")
        for old in self.maintenance_states():
            if old.key == rec.key and old.name != name:
                self.run("config", "rm", old.name, check=False)
        return dataclasses.replace(rec, name=name)

    def clear_maintenance(self, project: str, service: str | None = None) -> list[MaintenanceRecord]:
        """Remove the states of ``project`` (every one, or only ``service``'s); the ones removed."""
        gone = [m for m in self.maintenance_states()
                if m.project == project and (service is None or m.service == service)]
        for m in gone:
            p = self.run("config", "rm", m.name, check=False)
            if p.returncode != 0 and "not found" not in p.stderr.lower():
                raise SwarmError(f"cannot remove the config {m.name}: {p.stderr.strip()}")
        return gone
