"""A swarm manager in memory for unit tests of the swarm proxy's decisions (no Docker).

It understands the docker CLI calls :class:`luma_compose.swarm.proxy.SwarmProxy` makes (service
create/update/rm, config and secret create/rm/ls, network create/rm) well enough to keep a state
the next read sees, and records every call as argv data for the tests to assert on. Every task
of a service is running at once.
"""

from __future__ import annotations

import dataclasses
import subprocess
from typing import Any

from luma_compose import contract
from luma_compose.records import MaintenanceRecord


def _matches(filters, name: str, labels: dict[str, str], driver: str = "", prefix: bool = False) -> bool:
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


def _kv(spec: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in spec.split(","))


class FakeSwarm:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.services_: dict[str, dict[str, Any]] = {}
        self.nets: dict[str, dict[str, Any]] = {}
        self.cfgs: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, dict[str, str]] = {}
        #: plain containers on this manager (docker run): name -> inspect record
        self.containers: dict[str, dict[str, Any]] = {}
        #: plain containers on any node (docker run elsewhere): network name -> [container name]
        self.plain: dict[str, list[str]] = {}
        self._n = 0
        self.kernel = "6.1.0-fake"

    # --------------------------------------------------------------- setup helpers

    def add_network(self, name: str, labels: dict[str, str] | None = None) -> str:
        self._n += 1
        nid = f"net{self._n}"
        self.nets[nid] = {"Id": nid, "Name": name, "Driver": "overlay", "Labels": labels or {}}
        return nid

    def add_stack_service(self, project: str, service: str, hosts: str, port: int = 3000) -> None:
        """A routed service as `docker stack deploy` makes it from render --swarm's output."""
        net = next((i for i, n in self.nets.items() if n["Name"] == f"{project}_luma"), None)
        if net is None:
            net = self.add_network(f"{project}_luma", {"com.docker.stack.namespace": project, "luma.network": "true"})
        labels = {"com.docker.stack.namespace": project, "luma.managed": "true", "luma.project": project,
                  "luma.service": service, "luma.hosts": hosts, "luma.port": str(port),
                  "luma.network": f"{project}_luma"}
        self.services_[f"{project}_{service}"] = self._svc(f"{project}_{service}", labels, "app:1",
                                                            [(net, [f"{project}-{service}", service])], [])

    def remove_stack(self, project: str) -> None:
        for name in [n for n, s in self.services_.items()
                     if s["Spec"]["Labels"].get("com.docker.stack.namespace") == project]:
            del self.services_[name]

    def mutations(self) -> list[tuple[str, ...]]:
        """The calls that change something (not ls/inspect)."""
        return [c for c in self.calls if c[1] in ("create", "update", "rm")]

    # --------------------------------------------------------------- SwarmEngine's interface

    def _svc(self, name: str, labels: dict[str, str], image: str, nets: list[tuple[str, list[str]]],
             configs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"ID": f"id-{name}", "CreatedAt": f"{len(self.services_):06d}", "Version": {"Index": 1},
                "UpdateStatus": {"State": "completed", "StartedAt": "0"},
                "Spec": {"Name": name, "Labels": labels, "TaskTemplate": {
                    "ContainerSpec": {"Image": image, "Configs": configs},
                    "Networks": [{"Target": n, "Aliases": a} for n, a in nets]}}}

    def _net_id(self, name: str) -> str:
        return next(i for i, n in self.nets.items() if n["Name"] == name)

    def run(self, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        out, rc = "", 0
        kind, verb = args[0], args[1] if len(args) > 1 else ""
        if kind == "service" and verb == "create":
            self._create(list(args[2:]))
        elif kind == "service" and verb == "update":
            self._update(list(args[2:]))
        elif kind == "service" and verb == "rm":
            rc = 0 if self.services_.pop(args[2], None) else 1
        elif kind == "config" and verb == "create":
            name = [a for a in args[2:] if not a.startswith("--") and "=" not in a][-2]
            labels = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--label")
            self.cfgs[name] = {"Spec": {"Name": name, "Labels": labels}, "Data": input}
        elif kind == "config" and verb == "rm":
            in_use = any(c["ConfigName"] == args[2] for s in self.services_.values()
                         for c in s["Spec"]["TaskTemplate"]["ContainerSpec"]["Configs"])
            rc = 1 if in_use else (0 if self.cfgs.pop(args[2], None) else 1)
        elif kind == "secret" and verb == "create":
            labels = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--label")
            self.secrets[args[-2]] = labels
        elif kind == "secret" and verb == "ls":
            want = args[args.index("--filter") + 1] if "--filter" in args else "label="
            k, _, v = want.removeprefix("label=").partition("=")
            out = "\n".join(n for n, lab in self.secrets.items() if not k or lab.get(k) == v)
        elif kind == "secret" and verb == "rm":
            self.secrets.pop(args[2], None)
        elif kind == "network" and verb == "create":
            labels = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--label")
            self.add_network(args[-1], labels)
        elif kind == "network" and verb == "rm":
            nid = next((i for i, n in self.nets.items() if n["Name"] == args[2]), None)
            used = nid and any(t["Target"] == nid for s in self.services_.values()
                               for t in s["Spec"]["TaskTemplate"]["Networks"])
            rc = 1 if (nid is None or used) else 0
            if rc == 0:
                del self.nets[nid]
        elif kind == "run":
            a = list(args)
            name, net = a[a.index("--name") + 1], a[a.index("--network") + 1]
            self.containers[name] = {"Name": name, "State": {"Running": True}, "Args": a,
                                     "NetworkSettings": {"Networks": {}}}
            self._connect(net, name)
        elif kind == "rm":
            rc = 0 if self.containers.pop(args[-1], None) else 1
        elif kind == "network" and verb in ("connect", "disconnect"):
            net, name = args[-2], args[-1]
            if verb == "connect":
                rc = self._connect(net, name)
            else:
                self.containers[name]["NetworkSettings"]["Networks"].pop(net, None)
        else:
            raise AssertionError(f"unexpected docker call in the fake: {args}")
        if check and rc:
            raise AssertionError(f"failed in the fake: {args}")
        return subprocess.CompletedProcess(list(args), rc, out, "")

    def _create(self, a: list[str]) -> None:
        labels: dict[str, str] = {}
        nets: list[tuple[str, list[str]]] = []
        configs: list[dict[str, Any]] = []
        sysctls: dict[str, str] = {}
        name = ""
        i = 0
        while i < len(a):
            flag = a[i]
            if flag == "--detach":
                i += 1
                continue
            if not flag.startswith("--"):
                break
            value = a[i + 1]
            if flag == "--name":
                name = value
            elif flag == "--label":
                k, v = value.split("=", 1)
                labels[k] = v
            elif flag == "--network":
                nets.append((self._net_id(value), []))
            elif flag == "--config":
                kv = _kv(value)
                configs.append({"ConfigName": kv["source"], "File": {"Name": kv["target"]}})
            elif flag == "--sysctl":
                k, v = value.split("=", 1)
                sysctls[k] = v
            i += 2
        self.services_[name] = self._svc(name, labels, a[i], nets, configs)
        if sysctls:
            self.services_[name]["Spec"]["TaskTemplate"]["ContainerSpec"]["Sysctls"] = sysctls
        self.services_[name]["Spec"]["Args"] = a[i:]
        self.services_[name]["CreateArgs"] = a

    def _update(self, a: list[str]) -> None:
        svc = self.services_[a[-1]]
        tmpl = svc["Spec"]["TaskTemplate"]
        for i, flag in enumerate(a[:-1]):
            value = a[i + 1]
            if flag == "--image":
                tmpl["ContainerSpec"]["Image"] = value
            elif flag == "--config-rm":
                tmpl["ContainerSpec"]["Configs"] = [c for c in tmpl["ContainerSpec"]["Configs"]
                                                    if c["ConfigName"] != value]
            elif flag == "--config-add":
                kv = _kv(value)
                tmpl["ContainerSpec"]["Configs"].append({"ConfigName": kv["source"], "File": {"Name": kv["target"]}})
            elif flag == "--sysctl-add":
                k, v = value.split("=", 1)
                tmpl["ContainerSpec"].setdefault("Sysctls", {})[k] = v
            elif flag == "--network-add":
                tmpl["Networks"].append({"Target": self._net_id(value), "Aliases": []})
            elif flag == "--network-rm":
                nid = self._net_id(value)
                tmpl["Networks"] = [n for n in tmpl["Networks"] if n["Target"] != nid]
        svc["UpdateStatus"] = {"State": "completed", "StartedAt": str(len(self.calls))}

    def kernel_version(self) -> str:
        return self.kernel

    def services(self, *filters: str) -> list[dict[str, Any]]:
        return [s for s in self.services_.values()
                if _matches(filters, s["Spec"]["Name"], s["Spec"]["Labels"], prefix=True)]

    def service(self, name: str) -> dict[str, Any] | None:
        return self.services_.get(name)

    def tasks(self, service: str) -> list[dict[str, Any]]:
        return [{"DesiredState": "running", "Status": {"State": "running"}}] if service in self.services_ else []

    def networks(self, *filters: str) -> list[dict[str, Any]]:
        return [n for n in self.nets.values() if _matches(filters, n["Name"], n["Labels"], n["Driver"])]

    def network_names(self, ids):
        return {i: self.nets[i]["Name"] for i in ids if i in self.nets}

    def _connect(self, net: str, name: str) -> int:
        if not any(n["Name"] == net for n in self.nets.values()):
            return 1
        self._n += 1
        self.containers[name]["NetworkSettings"]["Networks"][net] = {"EndpointID": f"ep{self._n}"}
        return 0

    def container(self, name: str) -> dict[str, Any] | None:
        return self.containers.get(name)

    def network_endpoints(self, name: str) -> dict[str, Any] | None:
        """What a manager sees of an overlay: every node's endpoints while it has one there itself."""
        if not any(n["Name"] == name for n in self.nets.values()):
            return None
        local = [{"Name": c, "EndpointID": v["NetworkSettings"]["Networks"][name]["EndpointID"],
                  "Info": {"Host IP": "10.0.0.1"}}
                 for c, v in self.containers.items() if name in v["NetworkSettings"]["Networks"]]
        if not local:
            return {"Containers": {}, "Services": {}}
        remote = [{"Name": c, "EndpointID": f"far-{c}", "Info": {"Host IP": "10.0.0.2"}} for c in self.plain.get(name, [])]
        return {"Containers": {f"id-{t['Name']}": t for t in local}, "Services": {"": {"Tasks": local + remote}}}

    def configs(self, *filters: str) -> list[dict[str, Any]]:
        return [c for c in self.cfgs.values() if _matches(filters, c["Spec"]["Name"], c["Spec"]["Labels"])]

    # the maintenance states: Swarm configs with labels (luma_compose/engine/swarm.py)

    def maintenance_states(self) -> list[MaintenanceRecord]:
        return [MaintenanceRecord.from_labels(c["Spec"]["Name"], c["Spec"]["Labels"])
                for c in self.configs(f"label={contract.MAINTENANCE_PROJECT_LABEL}")]

    def set_maintenance(self, rec: MaintenanceRecord) -> MaintenanceRecord:
        name = rec.object_name()
        self.calls.append(("config", "create", name))
        self.cfgs[name] = {"Spec": {"Name": name, "Labels": rec.labels()}, "Data": ""}
        for old in self.maintenance_states():
            if old.key == rec.key and old.name != name:
                self.cfgs.pop(old.name, None)
        return dataclasses.replace(rec, name=name)

    def clear_maintenance(self, project: str, service: str | None = None) -> list[MaintenanceRecord]:
        gone = [m for m in self.maintenance_states()
                if m.project == project and (service is None or m.service == service)]
        for m in gone:
            self.calls.append(("config", "rm", m.name))
            self.cfgs.pop(m.name, None)
        return gone
