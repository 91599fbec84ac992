"""``down``: unroute a project, ``docker compose down``, remove its ingress network."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import contract
from ..errors import LumaError
from ..proxy.controller import Controller
from ..records import COMPOSE_PROJECT_LABEL
from .lock import ProjectLock
from .progress import Progress

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.protocols import Engine


def down(engine: "Engine", project: str, directory: str, text: str, proxy_name: str | None = None,
         volumes: bool = False, progress: Progress | None = None, lock_timeout: float = 60,
         force_unlock: bool = False) -> list[str]:
    """Other projects keep serving. Returns warnings."""
    progress = progress or Progress()
    ctrl = Controller(engine, proxy_name)
    pc = ctrl.proxy.container()
    # One deploy or down of a project at a time. The lock container uses the proxy's image (local by
    # construction); with no proxy there is no deploy to collide with. A lock still held after
    # lock_timeout (60 s, deploy's minimum) is named with the --force-unlock hint.
    lock = ProjectLock(engine, project, ctrl.proxy.name, timeout=lock_timeout, progress=progress) if pc is not None else None
    if lock is not None:
        with progress.step("Lock the project on the engine") as note:
            if force_unlock:
                lock.force(note)
            lock.acquire(note)
    try:
        return _down(engine, ctrl, project, engine.compose(project, directory, text), bool(text), volumes,
                     pc is not None and pc.running, progress)
    finally:
        if lock is not None:
            lock.release()


def _down(engine: "Engine", ctrl: Controller, project: str, compose, with_file: bool, volumes: bool,
          proxy_up: bool, progress: Progress) -> list[str]:
    network = contract.ingress_network(project)
    warnings: list[str] = []
    if proxy_up:
        with progress.step(f"Remove the routes of {project}"):
            ctrl.sync(exclude_projects=frozenset({project}))
    with progress.step(f"docker compose down{' --volumes' if volumes else ''}"):
        compose.run("down", "--remove-orphans", *(["--volumes"] if volumes else []), with_file=with_file)
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
