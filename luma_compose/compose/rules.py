"""Semantic rules: what a schema cannot say about a compose file with x-luma blocks."""

from __future__ import annotations

from typing import Any

from .. import contract
from ..errors import Problem
from .xluma import MarkedService, services_node
from .source import RESET_TAG, Source, is_map, locate, locate_key, own_get


def label_items(labels: Any) -> list[tuple[str, Any]]:
    """(key, value) of a service's labels in either form: a mapping, or a list of ``key=value``."""
    if isinstance(labels, dict):
        return [(str(k), v) for k, v in labels.items()]
    if isinstance(labels, list):
        return [(s.split("=", 1)[0], s.split("=", 1)[1] if "=" in s else None) for s in map(str, labels)]
    return []


def label_keys(labels: Any) -> list[str]:
    return [k for k, _ in label_items(labels)]


def network_names(networks: Any) -> list[str]:
    if isinstance(networks, dict):
        return [str(k) for k in networks]
    if isinstance(networks, list):
        return [str(x) for x in networks]
    return []


def check(src: Source, data: Any, project: str, routes: list[MarkedService]) -> list[Problem]:
    """Every semantic problem of the input file."""
    structure = _structure_problem(src, data)
    if structure is not None:
        return [structure]
    services = data["services"]
    routed = {r.service: r for r in routes}
    taken = _names_in_use(services, routed)
    problems: list[Problem] = []
    hosts_seen: dict[str, str] = {}
    for name, svc in services.items():
        if not isinstance(svc, dict):
            continue
        problems += _replica_problems(src, name, svc)
        r = routed.get(name)
        if r is None:
            problems += _unrouted_problems(src, name, svc)
        else:
            problems += _routed_problems(src, project, name, svc, r, taken, hosts_seen)
    return problems + _top_network_problems(src, data)


def _structure_problem(src: Source, data: Any) -> Problem | None:
    """The one problem that makes every other check pointless (no file, no services), or None."""
    hint = "start with `services:` and one entry per service"
    if data is None:
        return src.problem(src.root, "the file is empty: there is nothing to run", hint, "structure")
    if not isinstance(data, dict):
        return src.problem(src.root, "the file is not a compose file: its top level must be a mapping", hint,
                           "structure")
    services = data.get("services")
    if not services:
        node = locate_key(src, ("services",)) if "services" in data else src.root
        return src.problem(node, "`services` is empty or missing: there is nothing to run",
                           "add at least one service under `services:`", "structure")
    if not isinstance(services, dict):
        return src.problem(locate(src, ("services",)), "`services` must be a mapping of service names to services",
                           "write `services:` then one `name:` entry per service, indented under it", "structure")
    return None


def _names_in_use(services: dict, routed: dict[str, MarkedService]) -> dict[str, str]:
    """Names and aliases the file already uses (what a routed service's ``P-S`` alias must not be)."""
    taken: dict[str, str] = {}
    for name, svc in services.items():
        taken.setdefault(str(name), f"the name of service '{name}'")
        nets = svc.get("networks") if isinstance(svc, dict) else None
        if isinstance(nets, dict):
            for net, cfg in nets.items():
                if isinstance(cfg, dict) and isinstance(cfg.get("aliases"), list):
                    for a in cfg["aliases"]:
                        if not (name in routed and net == contract.NETWORK_KEY):
                            taken.setdefault(str(a), f"an alias of service '{name}' on network '{net}'")
    return taken


def _replica_problems(src: Source, name: str, svc: dict) -> list[Problem]:
    replicas = replicas_value(svc)
    if "container_name" in svc and isinstance(replicas, int) and replicas > 1:
        return [src.problem(locate_key(src, ("services", name, "container_name")),
                            f"service '{name}' sets container_name but asks for {replicas} replicas: "
                            "container names are unique, so only one could start",
                            "remove container_name, or run a single replica", "container_name")]
    return []


def _unrouted_problems(src: Source, name: str, svc: dict) -> list[Problem]:
    """A service without x-luma that would still be routed (luma.* labels) or joins the ingress network."""
    out: list[Problem] = []
    stale = [k for k in label_keys(svc.get("labels")) if k.startswith(contract.LABEL_PREFIX)]
    if stale:
        out.append(src.problem(locate(src, ("services", name, "labels")),
                               f"service '{name}' carries {', '.join(stale)} but has no x-luma block: "
                               "the proxy would route it from these labels",
                               "remove the luma.* labels, or add an `x-luma:` block to route the service", "labels"))
    if contract.NETWORK_KEY in network_names(svc.get("networks")):
        out.append(src.problem(locate(src, ("services", name, "networks")),
                               f"service '{name}' joins the ingress network '{contract.NETWORK_KEY}' but has no "
                               "x-luma block", f"remove '{contract.NETWORK_KEY}' from its networks, or add an "
                               "`x-luma:` block to route the service", "networks"))
    return out


def _routed_problems(src: Source, project: str, name: str, svc: dict, r: MarkedService, taken: dict[str, str],
                     hosts_seen: dict[str, str]) -> list[Problem]:
    """What keeps a routed service from being rendered as written (``hosts_seen`` is updated)."""
    out: list[Problem] = []
    for key in ("labels", "networks"):
        if svc.get(key) is not None and not isinstance(svc[key], (dict, list)):
            out.append(src.problem(locate(src, ("services", name, key)),
                                   f"service '{name}': `{key}` must be a mapping or a list",
                                   f"write {key} as `key: value` lines or as a `- item` list", "structure"))
    for key in ("labels", "networks"):
        knode, vnode = own_get(r.node, key)
        if vnode is not None and vnode.tag == RESET_TAG:
            out.append(src.problem(knode, f"routed service '{name}' resets its {key} with `!reset`: Compose drops "
                                   "the reset node with everything in it, so the routing render writes there "
                                   "would be lost", f"remove `!reset` from {key} (use `!override` to replace "
                                   "inherited values)", key))
    if "network_mode" in svc:
        out.append(src.problem(locate_key(src, ("services", name, "network_mode")),
                               f"service '{name}' has x-luma and network_mode '{svc['network_mode']}': a routed "
                               "service must join the project's ingress network, which network_mode forbids",
                               "remove network_mode (use networks instead), or remove x-luma", "network_mode"))
    alias = contract.alias(project, name)
    if alias in taken and taken[alias] != f"the name of service '{name}'":
        out.append(src.problem(r.key_node, f"service '{name}': its ingress alias '{alias}' is already {taken[alias]}",
                               "rename one of the two services, or choose another project name (-p)", "alias"))
    return out + claim_problems(src, name, r, hosts_seen)


def claim_problems(src: Source, name: str, r: MarkedService, seen: dict) -> list[Problem]:
    """Two services of the file that claim the same host, or the same path of it (``seen``: (host,
    path) -> service, updated; path "" = every path, as a service without ``paths`` or a redirect
    host claims). Services of one project may share a host by path; paths compare case-insensitively."""
    out: list[Problem] = []
    claims = [(h, p.lower()) for h in r.hosts for p in (r.paths or ("",))] + [(h, "") for h in r.redirect_from]
    for host, path in claims:
        other = seen.setdefault((host, path), name)
        if other == name:
            continue
        _, pnode = own_get(r.xluma, "paths") if is_map(r.xluma) else (None, None)
        if path:
            out.append(src.problem(pnode or r.xluma, f"path '{path}' of host '{host}' is claimed by services "
                                   f"'{other}' and '{name}'", "each path of a host routes to one service: remove "
                                   "it from one of them (the longest prefix wins, so '/api/v2' may sit beside '/api')",
                                   "paths"))
        else:
            out.append(src.problem(r.xluma, f"host '{host}' is claimed by services '{other}' and '{name}'",
                                   "each host can route to one service only: remove it from one of them, or give "
                                   "the services `paths` of their own (one of them may keep every other path)",
                                   "hosts"))
    return out


def _top_network_problems(src: Source, data: dict) -> list[Problem]:
    """Top-level ``networks``: a mapping, and no network of the user's under the ingress network's key."""
    out: list[Problem] = []
    if data.get("networks") is not None and not isinstance(data["networks"], dict):
        out.append(src.problem(locate(src, ("networks",)), "top-level `networks` must be a mapping of network names",
                               "write `networks:` then one `name:` entry per network", "structure"))
    _, nets_node = own_get(src.root, "networks")
    if is_map(nets_node):
        _, luma = own_get(nets_node, contract.NETWORK_KEY)
        top = data.get("networks") or {}
        if luma is not None and not is_ours(top.get(contract.NETWORK_KEY)):
            out.append(src.problem(luma, f"the file already defines a network '{contract.NETWORK_KEY}' that "
                                   "luma-compose did not create: its name is reserved for the ingress network",
                                   f"rename that network (and the services' references to it); a network "
                                   f"labelled {contract.NETWORK_OWNER_LABEL}: \"true\" is taken as ours", "networks"))
    return out


def warnings(src: Source, data: Any, project: str, routes: list[MarkedService]) -> list[Problem]:
    """What works today but fails later."""
    out = []
    services = data.get("services") if isinstance(data, dict) else None
    for r in routes:
        svc = services.get(r.service) if isinstance(services, dict) else None
        if isinstance(svc, dict) and svc.get("container_name"):
            out.append(src.problem(
                locate_key(src, ("services", r.service, "container_name")),
                f"routed service '{r.service}' sets container_name '{svc['container_name']}': render and "
                "`docker compose up` work (one container), but `luma-compose deploy` rolls a routed service by "
                "starting new containers beside the old ones, which a fixed container name forbids",
                "remove container_name: Compose names the container itself, the project's other services still "
                f"reach it as '{r.service}', and the proxy as '{contract.alias(project, r.service)}'",
                "container_name"))
    return out


def is_ours(network: Any) -> bool:
    if not isinstance(network, dict):
        return False
    labels = network.get("labels")
    if isinstance(labels, dict):
        return str(labels.get(contract.NETWORK_OWNER_LABEL)).lower() == "true"
    if isinstance(labels, list):
        return f"{contract.NETWORK_OWNER_LABEL}=true" in labels
    return False


def replicas_value(svc: dict) -> Any:
    """A service's replica count as written (``deploy.replicas``, else ``scale``), or None."""
    deploy = svc.get("deploy")
    if isinstance(deploy, dict) and "replicas" in deploy:
        return deploy["replicas"]
    return svc.get("scale")


__all__ = ["check", "is_ours", "label_items", "label_keys", "network_names", "services_node"]
