"""The only reader of Docker's inspect data: containers and networks in, plain records out."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ..records import ContainerRecord, NetworkAttachment, NetworkRecord


def container_record(attrs: Mapping[str, Any]) -> ContainerRecord:
    """A record from a ``docker inspect`` of a container."""
    state = attrs.get("State") or {}
    settings = attrs.get("NetworkSettings") or {}
    networks = {}
    for name, n in (settings.get("Networks") or {}).items():
        n = n or {}
        aliases = tuple(n.get("Aliases") or ()) + tuple(n.get("DNSNames") or ())
        networks[name] = NetworkAttachment(n.get("IPAddress") or "", aliases, n.get("Gateway") or "")
    health = state.get("Health") or {}
    log = health.get("Log") or []
    return ContainerRecord(
        id=attrs.get("Id", ""),
        name=(attrs.get("Name") or "").lstrip("/"),
        hostname=(attrs.get("Config") or {}).get("Hostname") or "",
        labels=dict((attrs.get("Config") or {}).get("Labels") or {}),
        created=attrs.get("Created") or "",
        state=state.get("Status") or "",
        health=health.get("Status"),
        networks=networks,
        image=attrs.get("Image") or "",
        image_ref=(attrs.get("Config") or {}).get("Image") or "",
        ports=published_ports(settings.get("Ports") or {}),
        volumes=tuple(m.get("Name") for m in attrs.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Name")),
        exit_code=state.get("ExitCode"),
        error=state.get("Error") or "",
        health_log=((log[-1].get("Output") or "").strip() if log else ""),
    )


def published_ports(ports: Mapping[str, Any]) -> dict[str, tuple[str, int]]:
    """``NetworkSettings.Ports`` -> {"80/tcp": (host ip or "", host port)} for the published ones."""
    out = {}
    for key, bindings in ports.items():
        for b in bindings or []:
            if b.get("HostPort"):
                out[key] = (b.get("HostIp") or "", int(b["HostPort"]))
                break
    return out


def network_record(attrs: Mapping[str, Any]) -> NetworkRecord:
    return NetworkRecord(
        name=attrs.get("Name") or "",
        id=attrs.get("Id") or "",
        labels=dict(attrs.get("Labels") or {}),
        containers=tuple((attrs.get("Containers") or {}).keys()),
        created=attrs.get("Created") or "",
    )


# ---------------------------------------------------------------------- list rows

#: ``docker ps`` status texts that carry a health state, and the state they mean.
_HEALTH_IN_STATUS = (("(health: starting)", "starting"), ("(unhealthy)", "unhealthy"), ("(healthy)", "healthy"))
_EXIT_CODE = re.compile(r"^Exited \((-?\d+)\)")


def row_signature(row: Mapping[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What an inspect of this listed container stays valid for: its id and its network endpoints
    (aliases belong to an endpoint; a reconnect or restart makes new ones)."""
    nets = (row.get("NetworkSettings") or {}).get("Networks") or {}
    return row.get("Id", ""), tuple(sorted((name, (n or {}).get("EndpointID") or "") for name, n in nets.items()))


def row_networks(row: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(((row.get("NetworkSettings") or {}).get("Networks") or {}).keys())


def row_record(row: Mapping[str, Any], detail: ContainerRecord | None = None) -> ContainerRecord:
    """A record from one row of the container list (``GET /containers/json``), without an inspect.

    The list has no network aliases, health log or State.Error, and its creation time is in whole
    seconds: ``detail`` (a record from an inspect of the same container, see :func:`row_signature`)
    supplies what never changes for a container (creation time, image ref, aliases per endpoint);
    the list supplies what does (name, state, health, addresses)."""
    status = row.get("Status") or ""
    state = row.get("State") or ""
    health = next((h for text, h in _HEALTH_IN_STATUS if status.endswith(text)), None)
    if state != "running" and detail is not None:
        health = detail.health  # the list shows no health of a stopped container; inspect keeps the last
    m = _EXIT_CODE.match(status)
    networks = {}
    for name, n in ((row.get("NetworkSettings") or {}).get("Networks") or {}).items():
        known = detail.networks.get(name) if detail is not None else None
        networks[name] = NetworkAttachment((n or {}).get("IPAddress") or "", known.aliases if known else (),
                                           (n or {}).get("Gateway") or "")
    ports = {}
    for p in row.get("Ports") or []:
        key = f"{p.get('PrivatePort')}/{p.get('Type') or 'tcp'}"
        if p.get("PublicPort") and key not in ports:
            ports[key] = (p.get("IP") or "", int(p["PublicPort"]))
    created = row.get("Created")
    return ContainerRecord(
        id=row.get("Id", ""),
        name=((row.get("Names") or [""])[0] or "").lstrip("/"),
        labels=dict(row.get("Labels") or {}),
        created=detail.created if detail is not None else (
            datetime.fromtimestamp(created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if created else ""),
        state=state,
        health=health,
        networks=networks,
        image=row.get("ImageID") or "",
        image_ref=detail.image_ref if detail is not None else (row.get("Image") or ""),
        ports=ports,
        volumes=tuple(m.get("Name") for m in row.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Name")),
        exit_code=int(m.group(1)) if m else (detail.exit_code if detail is not None else None),
        error=detail.error if detail is not None else "",
        health_log=detail.health_log if detail is not None else "",
    )
