"""A swarm manager in memory for unit tests of the swarm proxy's decisions (no Docker).

It satisfies :class:`luma_compose.engine.protocols.SwarmEngineProtocol` as the real
:class:`~luma_compose.engine.swarm.SwarmEngine` does (tests/unit/test_engine_protocols.py checks every
signature): records and specs in and out. It keeps a state the next read sees, and records every
change as ``(operation, name)`` for the tests to assert on. Every task of a service is running at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from luma_compose import contract
from luma_compose.records import (ConfigRecord, MaintenanceRecord, NetworkRecord, OverlayView, PlainContainer, PlainEndpoint,
                                  ServiceNetwork, ServiceRecord, ServiceSpec, ServiceUpdate, TaskRecord)


def _matches(filters, name: str, labels: Mapping[str, str], driver: str = "", prefix: bool = False) -> bool:
    """docker ls --filter semantics for name= (services: prefix), label=K[=V] and driver=."""
    for f in filters:
        key, _, val = f.partition("=")
        if key == "name" and not (name.startswith(val) if prefix else name == val):
            return False
        if key == "driver" and driver != val:
            return False
        if key == "label":
            k, _, v = val.partition("=")
            if (labels.get(k) != v) if v else (k not in labels):
                return False
    return True


class FakeSwarm:
    def __init__(self) -> None:
        #: every change, as (operation, name)
        self.calls: list[tuple[str, str]] = []
        self.services_: dict[str, ServiceRecord] = {}
        #: the spec each service was created with
        self.specs: dict[str, ServiceSpec] = {}
        self.nets: dict[str, NetworkRecord] = {}
        self.cfgs: dict[str, ConfigRecord] = {}
        self.config_data: dict[str, str] = {}
        self.secret_labels: dict[str, dict[str, str]] = {}
        #: plain containers on this manager (docker run)
        self.containers: dict[str, PlainContainer] = {}
        #: how each plain container was started: name -> run_container's arguments
        self.runs: dict[str, dict[str, Any]] = {}
        #: plain containers on any node (docker run elsewhere): network name -> [container name]
        self.plain: dict[str, list[str]] = {}
        #: project -> the stack file deployed
        self.stacks: dict[str, str] = {}
        self._n = 0
        self.kernel = "6.1.0-fake"
        #: what address_ranges reports (the overlays' subnets, docker_gwbridge, the pool, node addresses)
        self.ranges: dict[str, tuple[str, ...]] = {"the swarm's default address pool": ("10.0.0.0/8",),
                                                   "docker_gwbridge (the manager's)": ("172.18.0.0/16",),
                                                   "node n1's address": ("192.0.2.1/32",)}
        #: service name -> (node, node id, stdout line) of its tasks, as `docker service logs` gives them
        self.logs: dict[str, list[tuple[str, str, str]]] = {}
        #: what a job prints (run_job), and the jobs run (their specs); job_error: every job fails with it
        self.job_output: list[str] = []
        self.jobs: list[ServiceSpec] = []
        self.job_error = ""
        #: service name -> its tasks' stderr (Caddy's own log lines)
        self.stderr: dict[str, str] = {}
        #: service name -> its tasks (default: one running)
        self.task_list: dict[str, list[TaskRecord]] = {}

    # --------------------------------------------------------------- setup helpers

    def add_network(self, name: str, labels: dict[str, str] | None = None) -> str:
        self._n += 1
        nid = f"net{self._n}"
        self.nets[nid] = NetworkRecord(name, nid, dict(labels or {}))
        return nid

    def add_service(self, name: str, labels: dict[str, str], image: str = "app:1",
                    nets: Sequence[tuple[str, Sequence[str]]] = ()) -> ServiceRecord:
        """A service made by someone else (``nets``: (network id, aliases))."""
        svc = ServiceRecord(name, f"id-{name}", dict(labels), f"{len(self.services_):06d}", 1, image,
                            networks=tuple(ServiceNetwork(n, tuple(a)) for n, a in nets),
                            update_state="completed", update_started="0")
        self.services_[name] = svc
        return svc

    def add_stack_service(self, project: str, service: str, hosts: str, port: int = 3000) -> None:
        """A routed service as `docker stack deploy` makes it from render --swarm's output."""
        net = self._net_id(f"{project}_luma") or self.add_network(
            f"{project}_luma", {"com.docker.stack.namespace": project, "luma.network": "true"})
        labels = {"com.docker.stack.namespace": project, "luma.managed": "true", "luma.project": project,
                  "luma.service": service, "luma.hosts": hosts, "luma.port": str(port),
                  "luma.network": f"{project}_luma"}
        self.add_service(f"{project}_{service}", labels, nets=[(net, [f"{project}-{service}", service])])

    def remove_stack(self, project: str) -> None:
        for name in [n for n, s in self.services_.items() if s.stack == project]:
            del self.services_[name]

    def mutations(self) -> list[tuple[str, str]]:
        return list(self.calls)

    def _net_id(self, name: str) -> str | None:
        return next((i for i, n in self.nets.items() if n.name == name), None)

    def _change(self, op: str, name: str) -> None:
        self.calls.append((op, name))

    # --------------------------------------------------------------- reads

    def require_manager(self) -> None:
        return None

    def kernel_version(self) -> str:
        return self.kernel

    def services(self, *filters: str) -> list[ServiceRecord]:
        return [s for s in self.services_.values() if _matches(filters, s.name, s.labels, prefix=True)]

    def service(self, name: str) -> ServiceRecord | None:
        return self.services_.get(name)

    def tasks(self, service: str) -> list[TaskRecord]:
        if service in self.task_list:
            return list(self.task_list[service])
        return [TaskRecord("running", "running", "c1")] if service in self.services_ else []

    def networks(self, *filters: str) -> list[NetworkRecord]:
        return [n for n in self.nets.values() if _matches(filters, n.name, n.labels, "overlay")]

    def network_names(self, ids: Sequence[str]) -> dict[str, str]:
        return {i: self.nets[i].name for i in ids if i in self.nets}

    def configs(self, *filters: str) -> list[ConfigRecord]:
        return [c for c in self.cfgs.values() if _matches(filters, c.name, c.labels)]

    def config_text(self, name: str) -> str | None:
        return self.config_data.get(name)

    def secrets(self, *filters: str) -> list[str]:
        return [n for n, labels in self.secret_labels.items() if _matches(filters, n, labels)]

    def network_endpoints(self, name: str) -> OverlayView | None:
        """What a manager sees of an overlay: every node's endpoints while it has one there itself."""
        if self._net_id(name) is None:
            return None
        local = [PlainEndpoint(c, v.endpoints[name], "10.0.0.1") for c, v in self.containers.items()
                 if name in v.endpoints]
        if not local:
            return OverlayView()
        remote = [PlainEndpoint(c, f"far-{c}", "10.0.0.2") for c in self.plain.get(name, [])]
        return OverlayView(tuple(t.endpoint for t in local), tuple(local + remote))

    def container(self, name: str) -> PlainContainer | None:
        return self.containers.get(name)

    def address_ranges(self) -> dict[str, tuple[str, ...]]:
        return dict(self.ranges)

    # --------------------------------------------------------------- changes

    def create_service(self, spec: ServiceSpec) -> None:
        self._change("create_service", spec.name)
        assert spec.name not in self.services_, f"service {spec.name} exists"
        nets = [(self._net_id(n), ()) for n in spec.networks]
        assert all(i for i, _ in nets), f"no such network among {spec.networks}"
        self.services_[spec.name] = ServiceRecord(
            spec.name, f"id-{spec.name}", dict(spec.labels), f"{len(self.services_):06d}", 1, spec.image,
            dict(spec.configs), tuple(ServiceNetwork(i or "", a) for i, a in nets), dict(spec.sysctls),
            tuple(spec.constraints), None if spec.mode == "global" else (spec.replicas or 1), "completed", "0")
        self.specs[spec.name] = spec

    def service_log_lines(self, name: str, since: float | None = None, follow: bool = False
                          ) -> Iterator[tuple[str, str, str]]:
        assert name in self.services_, f"no service {name}"
        yield from self.logs.get(name, [])

    def service_stderr(self, name: str, tail: int = 400) -> str:
        return "\n".join(self.stderr.get(name, "").splitlines()[-tail:])

    def run_job(self, spec: ServiceSpec, timeout: float = 30) -> list[str]:
        self._change("run_job", spec.name)
        assert spec.mode == "replicated-job" and spec.name not in self.services_, spec
        self.jobs.append(spec)
        if self.job_error:
            from luma_compose.errors import SwarmError

            raise SwarmError(self.job_error)
        return list(self.job_output)

    def update_service(self, name: str, update: ServiceUpdate) -> None:
        self._change("update_service", name)
        svc = self.services_[name]
        configs = {t: c for t, c in svc.configs.items() if c not in update.config_rm}
        configs.update(update.config_add)
        rm = {self._net_id(n) for n in update.network_rm}
        nets = [n for n in svc.networks if n.target not in rm]
        nets += [ServiceNetwork(self._net_id(n) or "") for n in update.network_add]
        self.services_[name] = dataclasses.replace(
            svc, image=update.image if update.image is not None else svc.image, configs=configs,
            networks=tuple(nets), sysctls={**svc.sysctls, **update.sysctl_add},
            constraints=tuple(c for c in svc.constraints if c not in update.constraint_rm) + update.constraint_add,
            labels={k: v for k, v in {**svc.labels, **update.label_add}.items() if k not in update.label_rm}, version=svc.version + 1,
            update_state="completed", update_started=str(len(self.calls)))

    def remove_service(self, name: str) -> bool:
        self._change("remove_service", name)
        return self.services_.pop(name, None) is not None

    def create_config(self, name: str, data: str, labels: Mapping[str, str]) -> None:
        self._change("create_config", name)
        if name not in self.cfgs:
            self.cfgs[name] = ConfigRecord(name, dict(labels), f"{len(self.calls):06d}")
            self.config_data[name] = data

    def remove_config(self, name: str) -> bool:
        self._change("remove_config", name)
        if any(name in s.configs.values() for s in self.services_.values()):
            return False
        self.config_data.pop(name, None)
        return self.cfgs.pop(name, None) is not None

    def create_secret(self, name: str, data: str, labels: Mapping[str, str]) -> None:
        self._change("create_secret", name)
        self.secret_labels[name] = dict(labels)

    def remove_secret(self, name: str) -> bool:
        self._change("remove_secret", name)
        return self.secret_labels.pop(name, None) is not None

    def create_network(self, name: str, labels: Mapping[str, str]) -> bool:
        self._change("create_network", name)
        if self._net_id(name):
            return False
        self.add_network(name, dict(labels))
        return True

    def remove_network(self, name: str) -> bool:
        self._change("remove_network", name)
        nid = self._net_id(name)
        if nid is None or any(n.target == nid for s in self.services_.values() for n in s.networks):
            return False
        del self.nets[nid]
        return True

    def run_container(self, name: str, image: str, network: str, labels: Mapping[str, str],
                      entrypoint: str, command: Sequence[str]) -> str:
        self._change("run_container", name)
        self.runs[name] = {"image": image, "network": network, "labels": dict(labels), "entrypoint": entrypoint,
                           "command": tuple(command)}
        self.containers[name] = PlainContainer(name, True, {})
        return "" if self.connect(network, name) else f"network {network} not found"

    def remove_container(self, name: str) -> bool:
        self._change("remove_container", name)
        return self.containers.pop(name, None) is not None

    def connect(self, network: str, container: str) -> bool:
        if self._net_id(network) is None or container not in self.containers:
            return False
        self._n += 1
        c = self.containers[container]
        self.containers[container] = dataclasses.replace(c, endpoints={**c.endpoints, network: f"ep{self._n}"})
        return True

    def disconnect(self, network: str, container: str) -> bool:
        c = self.containers.get(container)
        if c is None or network not in c.endpoints:
            return False
        self.containers[container] = dataclasses.replace(
            c, endpoints={n: e for n, e in c.endpoints.items() if n != network})
        return True

    def stack_deploy(self, project: str, text: str, resolve_image: str, timeout: float) -> None:
        """Records the stack file; its services are what add_stack_service() made (the fake reads no YAML)."""
        self._change("stack_deploy", project)
        self.stacks[project] = text

    def stack_rm(self, project: str) -> bool:
        self._change("stack_rm", project)
        self.remove_stack(project)
        return True

    # the maintenance states: Swarm configs with labels (luma_compose/engine/swarm.py)

    def maintenance_states(self) -> list[MaintenanceRecord]:
        return [MaintenanceRecord.from_labels(c.name, c.labels)
                for c in self.configs(f"label={contract.MAINTENANCE_PROJECT_LABEL}")]

    def keep_maintenance(self, rec: MaintenanceRecord) -> MaintenanceRecord:
        name = rec.object_name()
        self.create_config(name, "", rec.labels())
        return dataclasses.replace(rec, name=name)

    def drop_maintenance(self, name: str) -> None:
        self.remove_config(name)
