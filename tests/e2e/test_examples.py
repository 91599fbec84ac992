"""Issue 3, point 5: every file in examples/ renders, passes ``docker compose config``, comes up
under ``docker compose up`` and leaves nothing of ours behind after ``docker compose down``.

No registry is reachable, so ``up`` adds an override file (``-f rendered -f override``) that swaps
each service's image and command for the locally built busybox image, serving on the service's
routed port. Everything luma-compose wrote (networks, aliases, labels) stays as rendered.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ruamel.yaml import YAML

import dockerkit as dk
from luma_compose import contract


def _example_files() -> list[Path]:
    files = sorted(dk.EXAMPLES.glob("*/compose.y*ml")) + sorted(dk.EXAMPLES.glob("*.y*ml"))
    return [f for f in files if f.is_file()]


EXAMPLE_FILES = _example_files()


def _id(p: Path) -> str:
    return str(p.relative_to(dk.EXAMPLES))


def _routed_in_source(src: Path) -> set[str]:
    doc = YAML(typ="safe").load(src.read_text()) or {}
    return {name for name, svc in (doc.get("services") or {}).items() if (svc or {}).get(contract.EXTENSION_KEY)}


def _override(config: dict, image: str, project: str) -> str:
    """Compose override that runs every service on the busybox test image."""
    out = ["services:"]
    for name, svc in config["services"].items():
        labels = svc.get("labels") or {}
        port = labels.get(contract.LABEL_PORT, "3000")
        out += [
            f"  {name}:",
            f"    image: {image}",
            "    pull_policy: never",
            '    entrypoint: ["/usr/local/bin/serve"]',
            "    command: !reset []",
            "    ports: !reset []",
            "    env_file: !reset []",
            "    user: !reset null",
            f"    environment: {{PROJECT: {json.dumps(project)}, SERVICE: {json.dumps(name)}, PORT: {json.dumps(str(port))}}}",
        ]
        if svc.get("healthcheck"):
            out += ['    healthcheck: {test: ["CMD", "true"], interval: 1s, timeout: 5s, retries: 3}']
    return "\n".join(out) + "\n"


def test_the_examples_are_all_there():
    # an empty list would make the test below vanish instead of fail
    assert {p.parent.name for p in EXAMPLE_FILES} >= {"gmail", "nextjs", "suite"}


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=_id)
def test_example_renders_runs_and_goes_away(example, busybox_image, tmp_path):
    project = dk.unique(example.parent.name if example.name.startswith("compose.") else example.stem)
    # Work on a copy: relative bind mounts must not create folders inside the repo.
    workdir = tmp_path / "example"
    shutil.copytree(example.parent, workdir)
    src = workdir / example.name
    rendered = dk.write(workdir / "rendered.yaml", dk.render(src, project))

    # 1. docker compose config accepts the rendered file as-is, and what render wrote is there.
    cfg_proj = dk.ComposeProject(project, [rendered], workdir)
    config = json.loads(cfg_proj.compose("config", "--format", "json").stdout)
    routed = _routed_in_source(src)
    assert routed, f"{example} routes no service: not a useful example"
    ingress = contract.ingress_network(project)
    assert config["networks"][contract.NETWORK_KEY]["name"] == ingress
    assert config["networks"][contract.NETWORK_KEY]["labels"][contract.NETWORK_OWNER_LABEL] == "true"
    for name, svc in config["services"].items():
        labels = svc.get("labels") or {}
        nets = svc.get("networks") or {}
        if name in routed:
            assert contract.alias(project, name) in (nets[contract.NETWORK_KEY] or {}).get("aliases", [])
            assert "default" in nets, f"{name} lost its default network"
            assert labels[contract.LABEL_MANAGED] == "true"
            assert labels[contract.LABEL_PROJECT] == project
            assert labels[contract.LABEL_SERVICE] == name
            assert labels[contract.LABEL_NETWORK] == ingress
            assert labels[contract.LABEL_TARGET] == f"{contract.alias(project, name)}:{labels[contract.LABEL_PORT]}"
            assert contract.parse_hosts(labels[contract.LABEL_HOSTS])
        else:
            assert contract.NETWORK_KEY not in nets, f"non-routed {name} joined the ingress network"
            assert contract.LABEL_MANAGED not in labels

    # ...and config's own output reads back to the same model (the round trip).
    again = dk.ComposeProject(project, [Path("-")], workdir, stdin=json.dumps(config))
    assert json.loads(again.compose("config", "--format", "json").stdout) == config

    # 2. docker compose up with the test-image override; routed services answer at P-S:port.
    override = dk.write(workdir / "override.yaml", _override(config, busybox_image, project))
    with dk.compose_project(project, [rendered, override], directory=workdir, up=False) as proj:
        proj.up("--no-build", "--wait", "--wait-timeout", "120")
        with dk.container(dk.unique("proxy"), busybox_image, networks=[ingress]) as proxy:
            for name in sorted(routed):
                port = config["services"][name]["labels"][contract.LABEL_PORT]
                url = f"http://{contract.alias(project, name)}:{port}/"
                dk.wait_http(proxy, url)
                bodies = dk.http_many(proxy, url, 5)
                assert all(b.startswith(f"{project}/{name}/") for b in bodies), bodies

        # 3. docker compose down leaves no container, network or volume of ours.
        down = proj.down()
        assert down.returncode == 0, down.stderr
        assert dk.project_containers(project) == []
        left = {n: dk.attached_containers(n) for n in dk.project_networks(project)}
        # compose down exits 0 but keeps a network that a container outside the project is
        # still attached to ("Resource is still in use"), e.g. a luma proxy on this engine.
        assert not left, f"docker compose down left networks behind (name: still attached): {left}"
        assert dk.project_volumes(project) == []
        assert dk.run(["docker", "network", "inspect", ingress], check=False).returncode != 0
