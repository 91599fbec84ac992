"""deploy's network step: ``P_luma`` on a subnet of our own range, and out-of-pools errors that name the fix.

Before ``docker compose up`` creates the project, :func:`prepared` creates the ingress network
itself, on a free subnet of the ingress pool (:mod:`.subnets`), with the labels Compose gives its
own networks. Compose v2 (``ensureNetwork`` in pkg/compose/create.go, v2.40) adopts an existing
network whose ``com.docker.compose.network`` label is the network's key, and whose
``com.docker.compose.config-hash`` label is absent or matches: we set no hash, so ``up`` uses it
as it is, and ``down`` removes it (it finds networks by the project and network labels).

Only a ``luma`` network exactly as render writes it (a name, labels, no IPAM, driver or other
option) is created here; one the user configured further is left to Compose.

When Docker's default pools run out (Compose cannot create ``P_default``), every network and
container this deploy created is removed and the error says how to give Docker more pools.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .. import contract
from ..errors import LumaError
from ..records import COMPOSE_PROJECT_LABEL
from . import subnets
from .subnets import IngressPool

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.compose_cli import Compose
    from ..engine.protocols import Engine
    from .progress import Progress

COMPOSE_NETWORK_LABEL = "com.docker.compose.network"
COMPOSE_VERSION_LABEL = "com.docker.compose.version"
#: What dockerd says when its default pools are used up (up to v26; from v27 on).
OUT_OF_POOLS = ("could not find an available, non-overlapping ipv4 address pool",
                "all predefined address pools have been fully subnetted")
#: The keys render gives the ``luma`` network (Compose adds ``name`` and an empty ``ipam``).
_PLAIN_KEYS = {"name", "labels", "ipam"}


def adoptable(cfg: dict[str, Any], project: str) -> dict[str, Any] | None:
    """The ``luma`` network of ``docker compose config --format json`` if deploy may create it, else None."""
    net = (cfg.get("networks") or {}).get(contract.NETWORK_KEY)
    if not isinstance(net, dict) or set(net) - _PLAIN_KEYS or net.get("ipam"):
        return None
    if net.get("name", contract.ingress_network(project)) != contract.ingress_network(project):
        return None
    return net


def ensure_ingress(engine: "Engine", compose: "Compose", project: str, cfg: dict[str, Any],
                   pool: IngressPool) -> str:
    """Create ``P_luma`` on a free subnet of ``pool`` unless it exists or the file configures it; the
    subnet, or "" when nothing was created. Another deploy taking the same subnet meanwhile: the next one."""
    name = contract.ingress_network(project)
    net = adoptable(cfg, project)
    if net is None or engine.network(name) is not None:
        return ""
    labels = {**(net.get("labels") or {}), COMPOSE_NETWORK_LABEL: contract.NETWORK_KEY,
              COMPOSE_PROJECT_LABEL: project,
              COMPOSE_VERSION_LABEL: compose.run("version", "--short", with_file=False).strip()}
    from ..engine.docker_engine import SubnetTaken

    used = [s for subs in engine.network_subnets().values() for s in subs]
    for subnet in subnets.free_subnets(pool, used):
        try:
            engine.create_network(name, labels, str(subnet))
            return str(subnet)
        except SubnetTaken:
            continue
    raise LumaError(f"no free /{pool.size} left in the ingress range {pool.base} for {name}: every one of its "
                    f"{pool.capacity} subnets overlaps a network on the engine; nothing was changed",
                    f"give luma-compose a larger or another range with {subnets.POOL_OPTION} or ${subnets.POOL_ENV}, "
                    f"e.g. {subnets.POOL_OPTION} base=172.16.0.0/15,size={pool.size} (remove projects you no longer "
                    "need with `luma-compose down`)")


def out_of_pools(message: str) -> bool:
    low = message.lower()
    return any(s in low for s in OUT_OF_POOLS)


@contextlib.contextmanager
def prepared(engine: "Engine", compose: "Compose", project: str, cfg: dict[str, Any], pool: IngressPool,
             progress: "Progress") -> Iterator[None]:
    """The network step around the ``docker compose up`` that creates a project's networks."""
    mine = [f"{COMPOSE_PROJECT_LABEL}={project}"]
    nets_before = set(engine.network_subnets(mine))
    ctrs_before = {c.id for c in engine.containers(mine, all=True)}
    if adoptable(cfg, project) is not None and contract.ingress_network(project) not in nets_before:
        with progress.step(f"Create {contract.ingress_network(project)} from {pool.base}") as note:
            note.append(ensure_ingress(engine, compose, project, cfg, pool) or "exists")
    try:
        yield
    except LumaError as e:
        if not out_of_pools(e.message):
            raise
        left = _remove_new(engine, mine, nets_before, ctrs_before)
        docker_says = next((ln.strip() for ln in e.message.splitlines() if out_of_pools(ln)), e.message)
        raise LumaError(f"Docker has no address pool left for a new network of {project}:\n  {docker_says}\n"
                        + ("nothing this deploy created was left behind" if not left else
                           "could not remove what this deploy created: " + "; ".join(left)),
                        subnets.daemon_json_fix()) from None


def _remove_new(engine: "Engine", mine: list[str], nets_before: set[str], ctrs_before: set[str]) -> list[str]:
    """Remove the project's containers and networks that were not there before; what could not be removed."""
    problems = []
    for c in engine.containers(mine, all=True):
        if c.id not in ctrs_before:
            try:
                engine.remove(c.id, volumes=True)
            except LumaError as e:
                problems.append(e.message)
    for name in set(engine.network_subnets(mine)) - nets_before:
        try:
            engine.remove_network(name)
        except LumaError as e:
            problems.append(e.message)
    return problems


def pools_warning(engine: "Engine", needed: int = 0) -> str | None:
    """A warning when Docker's default address pools are nearly used up (or cannot give ``needed`` more)."""
    used = [s for subs in engine.network_subnets().values() for s in subs]
    return subnets.pools_warning(*subnets.default_pool_usage(engine.address_pools(), used), needed=needed)


def default_pool_networks(engine: "Engine", cfg: dict[str, Any], project: str) -> int:
    """How many networks ``up`` would take from Docker's default pools: the file's own networks that do not
    exist yet and name no subnet (``P_luma`` is ours, unless the file configures it)."""
    existing = set(engine.network_subnets([f"{COMPOSE_PROJECT_LABEL}={project}"]))
    n = 0
    for key, net in (cfg.get("networks") or {}).items():
        net = net or {}
        if net.get("external") or (net.get("ipam") or {}).get("config") or net.get("name") in existing:
            continue
        if key == contract.NETWORK_KEY and adoptable(cfg, project) is not None:
            continue
        n += 1
    return n
