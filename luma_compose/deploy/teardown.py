"""``down``: unroute a project, ``docker compose down``, remove its ingress network."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import contract
from ..errors import LumaError
from ..proxy.controller import Controller
from ..records import COMPOSE_PROJECT_LABEL
from .progress import Progress

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.docker_engine import DockerEngine as Engine


def down(engine: "Engine", project: str, directory: str, text: str, proxy_name: str | None = None,
         volumes: bool = False, progress: Progress | None = None) -> list[str]:
    """Other projects keep serving. Returns warnings."""
    progress = progress or Progress()
    ctrl = Controller(engine, proxy_name)
    compose = engine.compose(project, directory, text)
    network = contract.ingress_network(project)
    warnings: list[str] = []
    pc = ctrl.proxy.container()
    proxy_up = pc is not None and pc.running
    if proxy_up:
        with progress.step(f"Remove the routes of {project}"):
            ctrl.sync(exclude_projects=frozenset({project}))
    with progress.step(f"docker compose down{' --volumes' if volumes else ''}"):
        compose.run("down", "--remove-orphans", *(["--volumes"] if volumes else []), with_file=bool(text))
    with progress.step(f"Remove the ingress network {network}"):
        for c in engine.containers([f"{COMPOSE_PROJECT_LABEL}={project}"], all=True):
            engine.remove(c.id, volumes=True)
        net = engine.network(network)
        if net is not None:
            for cid in net.containers:
                try:
                    engine.disconnect(network, cid, force=True)
                except LumaError:
                    pass
            engine.remove_network(network)
    if proxy_up:
        with progress.step("Sync the proxy"):
            warnings += ctrl.sync().warnings
    return warnings
