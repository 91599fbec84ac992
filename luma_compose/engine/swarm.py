"""The swarm operations, through the ``docker`` CLI of the one endpoint (which must be a manager).

Records and specs in and out (:mod:`luma_compose.records`; the argv and the inspect JSON are
:mod:`.swarm_state`'s), so the swarm proxy and deploy decide on plain data and a fake
(tests/support/fake_swarm.py) stands in for this class. ``DOCKER_HOST`` / ``--host`` pick the
manager, exactly as for the single-host engine (:mod:`luma_compose.engine.client`).
"""

from __future__ import annotations

import dataclasses

import json
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .client import Endpoint, resolve
from .. import contract
from ..errors import SwarmError, UnavailableError
from ..records import (ConfigRecord, MaintenanceRecord, NetworkRecord, OverlayView, PlainContainer, ServiceRecord,
                       ServiceSpec, ServiceUpdate, TaskRecord)
from . import state, swarm_state as ss


#: What the docker CLI says when it reaches no engine (a local socket, or a remote host over tcp/ssh):
#: exit 3, as every command says an engine it cannot reach, not a failed operation.
UNREACHABLE = ("Cannot connect to the Docker daemon", "error during connect")


class SwarmEngine:
    def __init__(self, endpoint: Endpoint | None = None) -> None:
        self.endpoint = endpoint or resolve()

    # ------------------------------------------------------------------ plumbing

    def _run(self, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        cmd = [*self.endpoint.docker_cli(), *args]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout)
        except FileNotFoundError as e:
            raise UnavailableError("the docker CLI is not installed", "install docker (the CLI)") from e
        except subprocess.TimeoutExpired as e:
            raise SwarmError(f"timed out after {timeout:.0f}s: {' '.join(cmd)}") from e
        if check and p.returncode != 0:
            why = p.stderr.strip() or p.stdout.strip()
            if any(m in why for m in UNREACHABLE):
                raise UnavailableError(f"cannot reach the Docker engine ({self.endpoint.describe()}): {why}",
                                       "is dockerd running (or DOCKER_HOST right)?")
            raise SwarmError(f"{' '.join(args[:3])} failed: {why}")
        return p

    def _inspect(self, kind: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The objects among ``ids`` that still exist: one listed a moment ago may be gone now
        (a stack being removed, a task pruned from a service's history), and docker then prints the
        others and fails. Tasks have no inspect command of their own: docker's generic one finds them."""
        if not ids:
            return []
        p = self._run(*(() if kind == "task" else (kind,)), "inspect", *ids, check=False)
        found = json.loads(p.stdout or "[]")
        if p.returncode != 0 and "not found" not in p.stderr.lower() and "no such" not in p.stderr.lower():
            raise SwarmError(f"{kind} inspect failed: {p.stderr.strip()}")
        return found

    # ------------------------------------------------------------------ reads

    def require_manager(self) -> None:
        p = self._run("info", "--format", "{{json .Swarm}}", check=False, timeout=30)
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
        p = self._run("info", "--format", "{{.KernelVersion}}", check=False, timeout=30)
        return p.stdout.strip() if p.returncode == 0 else ""

    def services(self, *filters: str) -> list[ServiceRecord]:
        ids = self._run("service", "ls", "-q", *ss.filter_args(filters)).stdout.split()
        return [ss.service_record(d) for d in self._inspect("service", ids)]

    def service(self, name: str) -> ServiceRecord | None:
        p = self._run("service", "inspect", name, check=False)
        if p.returncode != 0:
            return None
        data = json.loads(p.stdout or "[]")
        return ss.service_record(data[0]) if data else None

    def tasks(self, service: str) -> list[TaskRecord]:
        ids = self._run("service", "ps", "-q", "--no-trunc", service, check=False).stdout.split()
        return [ss.task_record(d) for d in self._inspect("task", ids)]

    def networks(self, *filters: str) -> list[NetworkRecord]:
        ids = self._run("network", "ls", "-q", *ss.filter_args(filters)).stdout.split()
        return [state.network_record(d) for d in self._inspect("network", ids)]

    def network_names(self, ids: Sequence[str]) -> dict[str, str]:
        """network id -> name."""
        return {n.id: n.name for n in map(state.network_record, self._inspect("network", list(ids)))}

    def configs(self, *filters: str) -> list[ConfigRecord]:
        ids = self._run("config", "ls", "-q", *ss.filter_args(filters)).stdout.split()
        return [ss.config_record(d) for d in self._inspect("config", ids)]

    def config_text(self, name: str) -> str | None:
        """The data of the config object ``name``, or None if it is not there."""
        p = self._run("config", "inspect", "--format", "{{json .Spec.Data}}", name, check=False)
        return ss.config_text(p.stdout) if p.returncode == 0 else None

    def secrets(self, *filters: str) -> list[str]:
        """The names of the secrets."""
        return self._run("secret", "ls", "--format", "{{.Name}}", *ss.filter_args(filters)).stdout.split()

    def network_endpoints(self, name: str) -> OverlayView | None:
        """``docker network inspect --verbose NAME``: this node's endpoints and every node's plain
        containers (known only while this node has an endpoint there itself); None if the network is gone."""
        p = self._run("network", "inspect", "--verbose", name, check=False)
        if p.returncode != 0:
            if "not found" in p.stderr.lower() or "no such" in p.stderr.lower():
                return None
            raise SwarmError(f"network inspect {name} failed: {p.stderr.strip()}")
        data = json.loads(p.stdout or "[]")
        return ss.overlay_view(data[0]) if data else None

    def container(self, name: str) -> PlainContainer | None:
        """``docker container inspect`` on this node, or None."""
        p = self._run("container", "inspect", name, check=False)
        data = json.loads(p.stdout or "[]") if p.returncode == 0 else []
        return ss.plain_container(data[0]) if data else None

    def address_ranges(self) -> dict[str, tuple[str, ...]]:
        """The address ranges a task's connection can come from, by what they are
        (:func:`.swarm_state.address_ranges`)."""
        overlays = self._inspect("network", self._run("network", "ls", "-q", "--filter", "driver=overlay").stdout.split())
        gwbridge = self._inspect("network", ["docker_gwbridge"])
        p = self._run("info", "--format", "{{json .Swarm.Cluster}}", check=False, timeout=30)
        cluster = json.loads(p.stdout or "null") if p.returncode == 0 else None
        nodes = self._inspect("node", self._run("node", "ls", "-q").stdout.split())
        return ss.address_ranges(overlays, gwbridge[0] if gwbridge else None, cluster, nodes)
    def _node_hostnames(self) -> dict[str, str]:
        """node id -> hostname, of every node of the swarm."""
        ids = self._run("node", "ls", "-q").stdout.split()
        return dict(map(ss.node_hostnames, self._inspect("node", ids)))

    def service_log_lines(self, name: str, since: float | None = None, follow: bool = False
                          ) -> Iterator[tuple[str, str, str]]:
        """(node's hostname, node id, line) of the stdout of every task of service ``name`` on every
        node, through the manager (``docker service logs``); ``since``: Unix time; ``follow``: until stopped."""
        import tempfile

        hosts = self._node_hostnames()
        cmd = [*self.endpoint.docker_cli(), *ss.service_log_argv(name, since, follow)]
        # the tasks' stderr (Caddy's own messages) goes to a file: a pipe nobody reads would fill and stall
        with tempfile.TemporaryFile() as errors:
            try:
                p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, text=True, errors="replace")
            except FileNotFoundError as e:
                raise UnavailableError("the docker CLI is not installed", "install docker (the CLI)") from e
            try:
                assert p.stdout is not None
                for line in p.stdout:
                    parsed = ss.service_log_line(line)
                    if parsed is None:
                        continue
                    node, message = parsed
                    if node not in hosts:  # a node that joined since (one gone since: no hostname)
                        hosts = self._node_hostnames()
                        hosts.setdefault(node, "")
                    yield hosts[node], node, message
                if p.wait() != 0:
                    errors.seek(0)
                    tail = errors.read()[-2000:].decode(errors="replace").strip().splitlines()
                    raise SwarmError(f"service logs {name} failed: {tail[-1] if tail else f'exit {p.returncode}'}")
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()

    def service_stderr(self, name: str, tail: int = 400) -> str:
        """The last ``tail`` lines of the stderr of every task of service ``name`` (Caddy's own messages),
        through the manager; "" when they cannot be read."""
        p = self._run(*ss.service_stderr_argv(name, tail), check=False)
        return p.stderr if p.returncode == 0 else ""

    # ------------------------------------------------------------------ changes

    def create_service(self, spec: ServiceSpec) -> None:
        self._run(*ss.create_argv(spec))

    def run_job(self, spec: ServiceSpec, timeout: float = 30) -> list[str]:
        """Run ``spec`` (a replicated-job) once, wait until it is done, and remove it: its tasks' stdout
        lines. A job that fails or does not finish within ``timeout`` is a SwarmError (removed all the same)."""
        import time

        try:
            self._run(*ss.job_argv(spec))
            deadline = time.monotonic() + timeout
            while not (states := [t.state for t in self.tasks(spec.name)]) or not set(states) <= ss.TASK_DONE:
                if time.monotonic() > deadline:
                    raise SwarmError(f"the job {spec.name} did not finish within {timeout:.0f}s (tasks: "
                                     f"{', '.join(sorted(set(states))) or 'none yet'})")
                time.sleep(0.2)
            if set(states) != {"complete"}:
                why = self._run("service", "ps", "--no-trunc", "--format", "{{.Error}}", spec.name, check=False)
                errors = sorted({e.strip() for e in why.stdout.splitlines() if e.strip()})
                raise SwarmError(f"the job {spec.name} failed ({', '.join(sorted(set(states)))}): "
                                 f"{'; '.join(errors) or 'no error given'}")
            return self._run(*ss.job_log_argv(spec.name), timeout=timeout).stdout.splitlines()
        finally:
            self._run("service", "rm", spec.name, check=False)

    def update_service(self, name: str, update: ServiceUpdate) -> None:
        self._run(*ss.update_argv(name, update))

    def remove_service(self, name: str) -> bool:
        return self._run("service", "rm", name, check=False).returncode == 0

    def create_config(self, name: str, data: str, labels: Mapping[str, str]) -> None:
        """A config object (one of that name already there is fine: names carry a hash of the data)."""
        p = self._run("config", "create", *ss.kv_args("--label", labels), name, "-", input=data, check=False)
        if p.returncode != 0 and "already exists" not in p.stderr:
            raise SwarmError(f"config create {name}: {p.stderr.strip()}")

    def remove_config(self, name: str) -> bool:
        return self._run("config", "rm", name, check=False).returncode == 0

    def create_secret(self, name: str, data: str, labels: Mapping[str, str]) -> None:
        self._run("secret", "create", *ss.kv_args("--label", labels), name, "-", input=data)

    def remove_secret(self, name: str) -> bool:
        return self._run("secret", "rm", name, check=False).returncode == 0

    def create_network(self, name: str, labels: Mapping[str, str]) -> bool:
        """An overlay network; False if it could not be made (e.g. made a moment ago by another manager)."""
        return self._run("network", "create", "--driver", "overlay", *ss.kv_args("--label", labels), name,
                         check=False).returncode == 0

    def remove_network(self, name: str) -> bool:
        return self._run("network", "rm", name, check=False).returncode == 0

    def run_container(self, name: str, image: str, network: str, labels: Mapping[str, str],
                      entrypoint: str, command: Sequence[str]) -> str:
        """``docker run -d --restart always`` on this node; "" when started, else why not."""
        p = self._run("run", "-d", "--name", name, *ss.kv_args("--label", labels), "--restart", "always",
                      "--network", network, "--entrypoint", entrypoint, image, *command, check=False)
        return "" if p.returncode == 0 else (p.stderr.strip() or f"docker run exited {p.returncode}")

    def remove_container(self, name: str) -> bool:
        return self._run("rm", "-f", name, check=False).returncode == 0

    def connect(self, network: str, container: str) -> bool:
        return self._run("network", "connect", network, container, check=False).returncode == 0

    def disconnect(self, network: str, container: str) -> bool:
        return self._run("network", "disconnect", "--force", network, container, check=False).returncode == 0

    def stack_deploy(self, project: str, text: str, resolve_image: str, timeout: float) -> None:
        self._run("stack", "deploy", "--detach=true", "--resolve-image", resolve_image, "--prune", "-c", "-",
                  project, input=text, timeout=timeout)

    def stack_rm(self, project: str) -> bool:
        return self._run("stack", "rm", project, check=False).returncode == 0

    # ------------------------------------------------------------------ maintenance (routing/maintenance.py)

    def maintenance_states(self) -> list[MaintenanceRecord]:
        """Every maintenance state on the swarm: the labels of the configs that carry them."""
        return [MaintenanceRecord.from_labels(c.name, c.labels)
                for c in self.configs(f"label={contract.MAINTENANCE_PROJECT_LABEL}")]

    def keep_maintenance(self, rec: MaintenanceRecord) -> MaintenanceRecord:
        """Keep one state: a new Swarm config named after it, its labels the state."""
        name = rec.object_name()
        try:
            self.create_config(name, f"luma-compose maintenance of {rec.project}/{rec.service or '*'} "
                                     "(the labels hold it)\n", rec.labels())
        except SwarmError as e:
            raise SwarmError(f"cannot create the config {name} that keeps the maintenance state: {e.message}") from None
        return dataclasses.replace(rec, name=name)

    def drop_maintenance(self, name: str) -> None:
        """Remove the config that keeps one state (gone already is fine)."""
        p = self._run("config", "rm", name, check=False)
        if p.returncode != 0 and "not found" not in p.stderr.lower():
            raise SwarmError(f"cannot remove the config {name}: {p.stderr.strip()}")
