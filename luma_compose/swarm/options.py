"""``swarm proxy up`` options turned into ``docker service create`` arguments. Pure."""

from __future__ import annotations

from typing import Any

from .. import contract
from . import routes as swarm_routes
from ..engine.swarm import SwarmError

#: The edge's TLS settings, as labels on the edge service: every sync builds the same config from them.
TLS_LABELS = {"mode": contract.PROXY_TLS_LABEL, "https_port": contract.PROXY_HTTPS_LABEL,
              "email": contract.PROXY_EMAIL_LABEL, "acme_ca": contract.PROXY_ACME_CA_LABEL,
              "acme_root": contract.SWARM_ACME_ROOT_LABEL}


def _storage_mount(storage: str) -> str:
    """``--storage`` -> a ``--mount`` value: an absolute path is bound, anything else is a volume."""
    if storage.startswith("/"):
        return f"type=bind,source={storage},target={swarm_routes.STORAGE_TARGET}"
    if not storage.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise SwarmError(f"--storage {storage}: want an absolute path or a volume name")
    return f"type=volume,source={storage},target={swarm_routes.STORAGE_TARGET}"


def _placement_args(nodes: str) -> list[str]:
    """``all`` or ``label=KEY=VALUE`` (a node label) -> docker service create arguments."""
    if nodes in ("", "all"):
        return []
    if nodes.startswith("label="):
        kv = nodes[len("label="):]
        if "=" not in kv:
            raise SwarmError(f"--nodes {nodes}: want label=KEY=VALUE")
        k, v = kv.split("=", 1)
        return ["--constraint", f"node.labels.{k}=={v}"]
    raise SwarmError(f"--nodes {nodes}: want all or label=KEY=VALUE")


def tls_of(edge: dict[str, Any]) -> swarm_routes.EdgeTLS:
    """The TLS settings of an edge service (its labels)."""
    labels = edge["Spec"].get("Labels") or {}
    mode = labels.get(TLS_LABELS["mode"], "off")
    if mode == "off":
        return swarm_routes.EdgeTLS()
    return swarm_routes.EdgeTLS(mode, int(labels.get(TLS_LABELS["https_port"], "443")),
                                labels.get(TLS_LABELS["email"], ""), labels.get(TLS_LABELS["acme_ca"], ""),
                                labels.get(TLS_LABELS["acme_root"]) == "1")
