"""``proxy up --swarm`` options turned into parts of a service spec, and read back from a service. Pure."""

from __future__ import annotations

from .. import contract
from . import routes as swarm_routes
from ..errors import UsageError
from ..records import Mount, ServiceRecord

#: The edge's TLS settings, as labels on the edge service: every sync builds the same config from them.
TLS_LABELS = {"mode": contract.PROXY_TLS_LABEL, "https_port": contract.PROXY_HTTPS_LABEL,
              "email": contract.PROXY_EMAIL_LABEL, "acme_ca": contract.PROXY_ACME_CA_LABEL,
              "acme_root": contract.SWARM_ACME_ROOT_LABEL}


def check_storage(storage: str, option: str = "--storage") -> None:
    """A user's storage option: an absolute path or a volume name (else a usage error, exit 2)."""
    if not storage.startswith("/") and not storage.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UsageError(f"{option} {storage}: want an absolute path or a volume name",
                         f"e.g. {option} /srv/luma-proxy (the same shared directory on every node) or "
                         f"{option} luma-proxy-data")


def check_nodes(nodes: str, option: str = "--nodes") -> None:
    """A user's nodes option: ``all`` or ``label=KEY=VALUE`` (else a usage error, exit 2)."""
    key, eq, _ = nodes[len("label="):].partition("=") if nodes.startswith("label=") else ("", "", "")
    if nodes not in ("", "all") and not (key and eq):
        raise UsageError(f"{option} {nodes}: want all or label=KEY=VALUE",
                         f"e.g. {option} all, or {option} label=edge=true (a node label)")


def storage_mount(storage: str) -> Mount:
    """``--storage`` -> the edges' mount: an absolute path is bound, anything else is a volume."""
    check_storage(storage)
    return Mount("bind" if storage.startswith("/") else "volume", storage, swarm_routes.STORAGE_TARGET)


def placement(nodes: str) -> tuple[str, ...]:
    """``all`` or ``label=KEY=VALUE`` (a node label) -> placement constraints."""
    check_nodes(nodes)
    if nodes in ("", "all"):
        return ()
    k, v = nodes[len("label="):].split("=", 1)
    return (f"node.labels.{k}=={v}",)


def tls_of(edge: ServiceRecord) -> swarm_routes.EdgeTLS:
    """The TLS settings of an edge service (its labels)."""
    labels = edge.labels
    mode = labels.get(TLS_LABELS["mode"], "off")
    if mode == "off":
        return swarm_routes.EdgeTLS()
    return swarm_routes.EdgeTLS(mode, int(labels.get(TLS_LABELS["https_port"], "443")),
                                labels.get(TLS_LABELS["email"], ""), labels.get(TLS_LABELS["acme_ca"], ""),
                                labels.get(TLS_LABELS["acme_root"]) == "1")


def tls_labels(tls: swarm_routes.EdgeTLS) -> dict[str, str]:
    """The labels an edge keeps its TLS settings in ({} with TLS off)."""
    if not tls.on:
        return {}
    out = {}
    for key, label in TLS_LABELS.items():
        value = getattr(tls, key)
        out[label] = str(int(value) if isinstance(value, bool) else value)
    return out
