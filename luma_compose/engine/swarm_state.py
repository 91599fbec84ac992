"""The swarm's inspect data in, records out; specs in, ``docker service`` argv out. Pure: no Docker.

The only reader of ``docker service/config/network inspect`` JSON, and the only writer of the swarm's
command lines (:mod:`.swarm` runs them), as :mod:`.state` is for one host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..records import (ConfigRecord, OverlayView, PlainContainer, PlainEndpoint, ServiceNetwork, ServiceRecord,
                       ServiceSpec, ServiceUpdate, TaskRecord)


def service_record(d: Mapping[str, Any]) -> ServiceRecord:
    spec = d.get("Spec") or {}
    tmpl = spec.get("TaskTemplate") or {}
    cs = tmpl.get("ContainerSpec") or {}
    update = d.get("UpdateStatus") or {}
    replicated = (spec.get("Mode") or {}).get("Replicated")
    return ServiceRecord(
        name=spec.get("Name") or "",
        id=d.get("ID") or "",
        labels=dict(spec.get("Labels") or {}),
        created=d.get("CreatedAt") or "",
        version=int((d.get("Version") or {}).get("Index") or 0),
        image=cs.get("Image") or "",
        configs={c["File"]["Name"]: c.get("ConfigName", "") for c in cs.get("Configs") or [] if c.get("File")},
        networks=tuple(ServiceNetwork(n.get("Target", ""), tuple(n.get("Aliases") or ()))
                       for n in tmpl.get("Networks") or []),
        sysctls=dict(cs.get("Sysctls") or {}),
        constraints=tuple((tmpl.get("Placement") or {}).get("Constraints") or ()),
        replicas=replicated.get("Replicas") if isinstance(replicated, dict) else None,
        update_state=update.get("State") or "",
        update_started=update.get("StartedAt"),
        update_message=update.get("Message") or "",
        updated=d.get("UpdatedAt") or "",
        healthcheck=bool(cs.get("Healthcheck")) and (cs["Healthcheck"].get("Test") or ["NONE"])[0] != "NONE",
    )


def task_record(d: Mapping[str, Any]) -> TaskRecord:
    status = d.get("Status") or {}
    return TaskRecord(d.get("DesiredState") or "", status.get("State") or "",
                      (status.get("ContainerStatus") or {}).get("ContainerID") or "")


def config_record(d: Mapping[str, Any]) -> ConfigRecord:
    spec = d.get("Spec") or {}
    return ConfigRecord(spec.get("Name") or "", dict(spec.get("Labels") or {}), d.get("CreatedAt") or "")


def config_text(data_json: str) -> str:
    """``docker config inspect --format '{{json .Spec.Data}}'`` (base64 in JSON) -> the config's text."""
    import base64
    import json

    return base64.b64decode(json.loads(data_json or '""') or "").decode(errors="replace")


def overlay_view(d: Mapping[str, Any]) -> OverlayView:
    """``docker network inspect --verbose``: this node's endpoints (``Containers``) and the plain
    containers of every node (``Services[""]``)."""
    local = tuple((c or {}).get("EndpointID") or "" for c in (d.get("Containers") or {}).values())
    tasks = ((d.get("Services") or {}).get("") or {}).get("Tasks") or []
    return OverlayView(local, tuple(PlainEndpoint(t.get("Name") or "?", t.get("EndpointID") or "",
                                                  (t.get("Info") or {}).get("Host IP") or "?") for t in tasks))


def plain_container(d: Mapping[str, Any]) -> PlainContainer:
    nets = (d.get("NetworkSettings") or {}).get("Networks") or {}
    return PlainContainer((d.get("Name") or "").lstrip("/"), bool((d.get("State") or {}).get("Running")),
                          {n: (v or {}).get("EndpointID") or "" for n, v in nets.items()})


# ---------------------------------------------------------------------- argv


def _pairs(flag: str, values: Any) -> list[str]:
    return [x for v in values for x in (flag, v)]


def kv_args(flag: str, m: Mapping[str, str]) -> list[str]:
    return _pairs(flag, [f"{k}={v}" for k, v in m.items()])


def create_argv(s: ServiceSpec) -> list[str]:
    """``docker service create`` of a spec."""
    args = ["service", "create", "--detach", "--name", s.name]
    args += ["--mode", s.mode] if s.mode in ("global", "replicated-job") else []
    args += ["--replicas", str(s.replicas)] if s.replicas is not None else []
    args += kv_args("--label", s.labels)
    args += _pairs("--publish", [f"mode={p.mode},target={p.target},published={p.published},protocol={p.protocol}"
                                 for p in s.publish])
    args += ["--endpoint-mode", s.endpoint_mode] if s.endpoint_mode else []
    args += _pairs("--placement-pref", s.placement_prefs)
    for flag, value in (("--update-order", s.update_order), ("--update-delay", s.update_delay),
                        ("--update-monitor", s.update_monitor), ("--update-failure-action", s.update_failure_action),
                        ("--stop-grace-period", s.stop_grace_period), ("--restart-condition", s.restart_condition)):
        args += [flag, value] if value else []
    args += ["--update-parallelism", str(s.update_parallelism)] if s.update_parallelism is not None else []
    args += ["--log-driver", s.log_driver] if s.log_driver else []
    args += kv_args("--log-opt", s.log_opts)
    args += _pairs("--network", s.networks)
    args += _pairs("--constraint", s.constraints)
    args += kv_args("--sysctl", dict(sorted(s.sysctls.items())))
    args += _pairs("--mount", [f"type={m.type},source={m.source},target={m.target}" + (",readonly" if m.readonly else "")
                               for m in s.mounts])
    args += _pairs("--secret", [f"source={n},target={t},mode=0400" for t, n in s.secrets.items()])
    args += _pairs("--config", [f"source={n},target={t},mode=0444" for t, n in s.configs.items()])
    return [*args, s.image, *s.command]


def update_argv(name: str, u: ServiceUpdate) -> list[str]:
    """``docker service update`` of a change."""
    args = ["service", "update", "--detach", *kv_args("--sysctl-add", u.sysctl_add)]
    args += ["--image", u.image] if u.image is not None else []
    args += _pairs("--config-rm", u.config_rm)
    args += _pairs("--config-add", [f"source={n},target={t},mode=0444" for t, n in u.config_add.items()])
    args += _pairs("--network-add", u.network_add) + _pairs("--network-rm", u.network_rm)
    args += _pairs("--constraint-rm", u.constraint_rm) + _pairs("--constraint-add", u.constraint_add)
    args += kv_args("--label-add", u.label_add) + _pairs("--label-rm", u.label_rm)
    args += _pairs("--publish-rm", [str(t) for t in u.publish_rm])
    args += _pairs("--publish-add", [f"mode={p.mode},target={p.target},published={p.published},protocol={p.protocol}"
                                     for p in u.publish_add])
    return [*args, name]


def filter_args(filters: tuple[str, ...]) -> list[str]:
    return _pairs("--filter", filters)


def _subnets(d: Mapping[str, Any] | None) -> tuple[str, ...]:
    return tuple(c["Subnet"] for c in ((d or {}).get("IPAM") or {}).get("Config") or [] if c.get("Subnet"))


def address_ranges(overlays: Sequence[Mapping[str, Any]], gwbridge: Mapping[str, Any] | None,
                   cluster: Mapping[str, Any] | None, nodes: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    """What a task's connection can come from, by what it is (``network inspect`` of the overlays and of
    docker_gwbridge, ``docker info``'s ``.Swarm.Cluster``, ``node inspect``): the overlays' subnets, the
    pool future overlays are cut from, the node's docker_gwbridge subnet (a task's way out of its node)
    and every node's address (a task's connection to another node leaves masqueraded as its node's)."""
    out: dict[str, tuple[str, ...]] = {}
    for n in overlays:
        if _subnets(n):
            out[f"overlay network {n.get('Name') or '?'}"] = _subnets(n)
    if _subnets(gwbridge):
        out["docker_gwbridge (the manager's)"] = _subnets(gwbridge)
    if (cluster or {}).get("DefaultAddrPool"):
        out["the swarm's default address pool"] = tuple((cluster or {})["DefaultAddrPool"])
    for d in nodes:
        addr = (d.get("Status") or {}).get("Addr") or ""
        if addr and addr != "0.0.0.0":
            name = (d.get("Description") or {}).get("Hostname") or d.get("ID") or "?"
            out[f"node {name}'s address"] = (f"{addr}/{128 if ':' in addr else 32}",)
    return out
# ---------------------------------------------------------------------- service logs

#: A line of ``docker service logs --no-resolve`` (not --raw): ``SERVICEID.SLOT.TASKID@NODEID<padding>    | MESSAGE``
#: (docker/cli's taskFormatter; a global service's slot is 0, so the node is only after the '@').
_SERVICE_LOG_LINE = re.compile(r"(?P<task>[^@\s|]+)@(?P<node>[^\s|]+) *\| ?(?P<message>.*)", re.DOTALL)


def service_log_argv(name: str, since: float | None = None, follow: bool = False) -> list[str]:
    """``docker service logs`` of every task of ``name`` on every node, each line with its task and node
    by id (a node's hostname need not be unique: :func:`node_hostnames` maps them)."""
    args = ["service", "logs", "--no-trunc", "--no-resolve"]
    args += ["--since", f"{since:.3f}"] if since is not None else []
    args += ["--follow"] if follow else []
    return [*args, name]


def service_stderr_argv(name: str, tail: int) -> list[str]:
    """``docker service logs`` of the last ``tail`` lines of each task, unprefixed: the CLI writes the
    tasks' stderr to its own stderr (their stdout, the access log, is not wanted)."""
    return ["service", "logs", "--raw", "--no-trunc", "--tail", str(tail), name]


def service_log_line(line: str) -> tuple[str, str] | None:
    """One line of :func:`service_log_argv`'s output -> (node id, message); None if it has no such prefix."""
    m = _SERVICE_LOG_LINE.fullmatch(line.rstrip("\r\n"))
    return (m["node"], m["message"]) if m else None


def node_hostnames(d: Mapping[str, Any]) -> tuple[str, str]:
    """``docker node inspect`` -> (node id, hostname)."""
    return d.get("ID") or "", ((d.get("Description") or {}).get("Hostname") or "")


# ---------------------------------------------------------------------- jobs


#: The states a task ends in (a job is done when each of its tasks is in one; ``complete`` is success).
TASK_DONE = frozenset({"complete", "failed", "rejected", "shutdown", "orphaned", "remove"})


def job_argv(s: ServiceSpec) -> list[str]:
    """``docker service create`` of a job (``s.mode`` replicated-job), detached (the CLI's own wait never
    ends when the task fails: measured, the caller polls :data:`TASK_DONE`), the image as the nodes have
    it (no registry query)."""
    args = create_argv(s)
    assert args[:3] == ["service", "create", "--detach"] and s.mode == "replicated-job", args[:3]
    return [*args[:3], "--no-resolve-image", *args[3:]]


def job_log_argv(name: str) -> list[str]:
    """``docker service logs`` of a job: its tasks' output alone, no task prefix."""
    return ["service", "logs", "--raw", "--no-trunc", name]
