"""The only reader of Docker's inspect data: containers and networks in, plain records out."""

from __future__ import annotations

from collections.abc import Mapping
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
        networks[name] = NetworkAttachment(n.get("IPAddress") or "", aliases)
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
