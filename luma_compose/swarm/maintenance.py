"""The swarm's side of ``maintenance on|off`` and ``deploy --swarm --maintenance``: its proxy as a
target of :mod:`luma_compose.deploy.maintenance` (the states are Swarm configs, the table is what the
edges serve)."""

from __future__ import annotations

from typing import Any, Callable

from ..deploy.maintenance import Target
from ..routing.claims import RouteTable
from .proxy import SwarmProxy


class SwarmTarget(Target):
    def __init__(self, engine: Any, proxy_name: str, log: Callable[[str], None] = lambda s: None):
        self.engine = engine
        self.proxy = SwarmProxy(engine, proxy_name, log=log)
        endpoint = getattr(engine, "endpoint", None)
        self.where = f"the swarm of {endpoint.describe()}" if endpoint is not None else "the swarm"

    def table(self) -> RouteTable:
        return self.proxy.served()

    def sync(self) -> bool:
        if self.engine.service(self.proxy.name) is None:
            return False
        self.proxy.sync()
        return True
