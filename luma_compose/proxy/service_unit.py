"""``proxy install``: keep ``proxy run`` alive across reboots with systemd. Pure text here.

Which flows need ``proxy run`` (the watcher): routes of a plain
``luma-compose render | docker compose -f - up -d`` (new projects, new replicas, health
changes reported by Docker, a project's ``docker compose down``). Flows that do not: ``deploy``
and ``down`` sync the proxy themselves, and the data plane survives container, engine and
proxy restarts with no luma-compose process (Caddy dials containers by name and resumes its
last config).

The unit runs ``luma-compose proxy run`` as root after docker.service and restarts it
whenever it exits. Only this process talks to the Docker socket; the proxy container
still never gets it.
"""

from __future__ import annotations

import shlex

UNIT_DIR = "/etc/systemd/system"


def unit_name(proxy: str, swarm: bool = False) -> str:
    return f"luma-{'swarm-' if swarm else ''}proxy-run-{proxy}.service"


def unit_text(exe: list[str], proxy: str, docker_host: str | None = None, swarm: bool = False) -> str:
    """The unit for ``proxy run`` (one host: follows Docker events) or, with ``swarm``, ``proxy run
    --swarm`` (polls the manager; also withholds a project's routes as soon as an impostor appears)."""
    run = ["proxy", "run", "--swarm", "--name", proxy] if swarm else ["proxy", "run", "--name", proxy]
    cmd = " ".join(shlex.quote(a) for a in [*exe, *run])
    env = f"Environment={shlex.quote('DOCKER_HOST=' + docker_host)}\n" if docker_host else ""
    what = "the swarm (proxy run --swarm)" if swarm else "Docker events (proxy run)"
    return (
        "[Unit]\n"
        f"Description=luma-compose: routes of proxy {proxy} follow {what}\n"
        "Documentation=https://github.com/luma-compose/luma-compose#the-proxy\n"
        "After=docker.service network-online.target\n"
        "Wants=docker.service network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"{env}"
        f"ExecStart={cmd}\n"
        "Restart=always\n"
        "RestartSec=2\n"
        "KillSignal=SIGTERM\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def exec_start(text: str) -> list[str]:
    """The command line of a unit's ExecStart (what systemd runs)."""
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line[len("ExecStart="):])
    raise ValueError("no ExecStart line")
