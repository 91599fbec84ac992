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
from typing import Any, Callable

from ..engine.swarm import SwarmEngine

#: After the watch joins an overlay, time for the other nodes' endpoints to reach this one (gossip).
GOSSIP = 1.0
#: The watch's role label value (on ROLE_LABEL, with PROXY_LABEL naming its proxy).
ROLE = "watch"


class Watch:
    def __init__(self, engine: SwarmEngine, proxy: str, labels: list[str], log: Callable[[str], None]):
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
        if info is not None and not (info.get("State") or {}).get("Running"):
            self.engine.run("rm", "-f", self.name, check=False)
            info = None
        if info is None:
            if not want:
                return []
            p = self.engine.run("run", "-d", "--name", self.name, *self.labels, "--restart", "always",
                                "--network", want[0], "--entrypoint", "sleep", image, "2147483647", check=False)
            if p.returncode != 0:
                self.log(f"watch: cannot start {self.name}: {p.stderr.strip()}")
                return want
            have: set[str] = {want[0]}
            self.joined = True
        else:
            have = set((info.get("NetworkSettings") or {}).get("Networks") or {})
        failed = []
        for net in want:
            if net not in have and self.engine.run("network", "connect", net, self.name, check=False).returncode:
                failed.append(net)
        for net in sorted(have - networks):
            self.engine.run("network", "disconnect", "--force", net, self.name, check=False)
        self.joined = self.joined or bool(set(want) - have - set(failed))
        return failed

    def remove(self) -> None:
        self.engine.run("rm", "-f", self.name, check=False)

    def plain_containers(self, networks: set[str]) -> tuple[dict[str, list[str]], list[str]]:
        """(network -> plain containers on it other than the watch, as descriptions; the networks
        this manager cannot see into)."""
        info = self.engine.container(self.name) or {}
        mine = {n: (v or {}).get("EndpointID") for n, v in ((info.get("NetworkSettings") or {}).get("Networks")
                                                             or {}).items()}
        found: dict[str, list[str]] = {}
        blind: list[str] = []
        for net in sorted(networks):
            seen = self.engine.network_endpoints(net)
            if seen is None:
                continue  # gone: nothing routes there
            local: list[dict[str, Any]] = list(seen["Containers"].values())
            if not mine.get(net) or not any(c.get("EndpointID") == mine[net] for c in local):
                blind.append(net)
            services = seen["Services"]
            plain = [t for t in (services.get("") or {}).get("Tasks") or [] if t.get("EndpointID") != mine.get(net)]
            if plain:
                found[net] = [f"container {t.get('Name', '?')} (not a swarm task; on the node "
                              f"{(t.get('Info') or {}).get('Host IP', '?')}) is attached to {net}" for t in plain]
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
