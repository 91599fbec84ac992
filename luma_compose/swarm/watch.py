"""Plain containers on the projects' overlays: ``docker run --network P_luma`` on any node (the
overlays are attachable) answers to whatever alias it was given there, and no service list shows it.

A manager's ``docker network inspect --verbose`` lists every endpoint of an overlay on every node
(plain containers under the service name ""), but only while that manager has an endpoint on the
overlay itself. So the controller keeps a container of its own, the watch (``<proxy>-watch``, on
the manager it talks to, idle, listening on nothing), attached to every routed project's overlay: a
plain container, not a service, so it runs on a drained manager too. A network the watch cannot
join or see is reported, not trusted silently.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.protocols import SwarmEngineProtocol

#: After the watch joins an overlay, time for the other nodes' endpoints to reach this one (gossip).
GOSSIP = 1.0
#: The watch's role label value (on ROLE_LABEL, with PROXY_LABEL naming its proxy).
ROLE = "watch"


class Watch:
    def __init__(self, engine: SwarmEngineProtocol, proxy: str, labels: Mapping[str, str],
                 log: Callable[[str], None]):
        self.engine = engine
        self.name = f"{proxy}-watch"
        self.labels = labels
        self.log = log
        #: converge joined a network just now
        self.joined = False

    def converge(self, networks: set[str], image: str) -> list[str]:
        """Attach the watch to exactly ``networks`` (creating it if missing); the networks it could
        not join."""
        info = self.engine.container(self.name)
        want = sorted(networks)
        if info is not None and not info.running:
            self.engine.remove_container(self.name)
            info = None
        if info is None:
            if not want:
                return []
            error = self.engine.run_container(self.name, image, want[0], self.labels, "sleep", ("2147483647",))
            if error:
                self.log(f"watch: cannot start {self.name}: {error}")
                return want
            have: set[str] = {want[0]}
            self.joined = True
        else:
            have = set(info.endpoints)
        failed = []
        for net in want:
            if net not in have and not self.engine.connect(net, self.name):
                failed.append(net)
        for net in sorted(have - networks):
            self.engine.disconnect(net, self.name)
        self.joined = self.joined or bool(set(want) - have - set(failed))
        return failed

    def remove(self) -> None:
        self.engine.remove_container(self.name)

    def plain_containers(self, networks: set[str]) -> tuple[dict[str, list[str]], list[str]]:
        """(network -> plain containers on it other than the watch, as descriptions; the networks
        this manager cannot see into)."""
        info = self.engine.container(self.name)
        mine = dict(info.endpoints) if info is not None else {}
        found: dict[str, list[str]] = {}
        blind: list[str] = []
        for net in sorted(networks):
            seen = self.engine.network_endpoints(net)
            if seen is None:
                continue  # gone: nothing routes there
            if not mine.get(net) or mine[net] not in seen.local_endpoints:
                blind.append(net)
            plain = [t for t in seen.plain if t.endpoint != mine.get(net)]
            if plain:
                found[net] = [f"container {t.name} (not a swarm task; on the node {t.host_ip}) is attached to {net}"
                              for t in plain]
        return found, blind

    def look(self, networks: set[str], image: str | None) -> dict[str, list[str]]:
        """network -> the plain containers on it, or why nobody can tell. With ``image``, the watch
        is first brought onto exactly ``networks``; without it (a read-only look), what it sees now."""
        failed = self.converge(networks, image) if image else []
        if self.joined:
            time.sleep(GOSSIP)  # a network just joined: the other nodes' endpoints arrive by gossip
        for _ in range(10 if image else 1):
            found, blind = self.plain_containers(networks)
            if not blind:
                break
            time.sleep(0.5)
        for net in sorted(set(blind) | set(failed)):
            found.setdefault(net, []).append(f"this manager cannot see who is attached to {net} (its watch "
                                             f"container {self.name} is not on it)")
        return found
