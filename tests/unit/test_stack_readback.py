"""render --swarm reads its stack file back with the real `docker stack config` (files only, no engine,
no swarm): its model must be its model of render's output plus exactly the swarm additions, or nothing
is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from luma_compose import api
from luma_compose.cli.main import main
from luma_compose.compose import stack
from luma_compose.engine import stack_cli

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*/compose.yaml"))

SHAPES = """\
name: shop
services:
  web:
    image: x:${TAG:-1}
    ports: ["8080:80"]
    x-luma: {hosts: [shop.test], port: 3000}
    deploy:
      labels:
        - a=b
  api:
    image: x
    x-luma: {hosts: [api.test], port: 3000}
    deploy:
      replicas: 2
      update_config:
        order: stop-first
  worker:
    image: x
    environment: {A: yes, B: "on"}
"""


def _swarm(path: str) -> stack.StackRender:
    r = api.render([path])
    return stack_cli.read_back(stack.render(r), r.source, r.project, r.routes)


@pytest.mark.parametrize("path", [*EXAMPLES, "shapes"], ids=lambda p: getattr(p, "parent", Path(p)).name)
def test_every_stack_file_reads_back_as_meant(path, tmp_path):
    if path == "shapes":
        path = tmp_path / "compose.yaml"
        path.write_text(SHAPES)
    out = _swarm(str(path))
    assert out.text is not None and out.problems == []
    assert not [w for w in out.warnings if w.rule == stack_cli.READBACK_RULE], "read back, not skipped"


# Each way a stack file could go wrong: an addition missing or wrong, the user's own text changed.
BREAKS = [
    ("    attachable: true\n", "    attachable: false\n", "networks.luma.attachable"),
    ("    driver: overlay\n", "", "networks.luma.driver"),
    ("        luma.port: \"3000\"\n", "        luma.port: \"3001\"\n", "services.api.deploy.labels.luma.port"),
    ("        failure_action: rollback\n", "", "services.web.deploy.update_config"),
    ("    image: x:${TAG:-1}\n", "    image: x:2\n", "services.web.image"),
]


@pytest.mark.parametrize("old, new, where", BREAKS, ids=[b[2] for b in BREAKS])
def test_a_stack_file_read_otherwise_than_meant_is_refused_and_not_written(tmp_path, monkeypatch, old, new, where):
    real = stack.to_stack

    def broken(*a, **kw):
        text = real(*a, **kw)
        assert old in text, "the break must apply"
        return text.replace(old, new, 1)

    monkeypatch.setattr(stack, "to_stack", broken)
    f = tmp_path / "compose.yaml"
    f.write_text(SHAPES.replace("    ports: [\"8080:80\"]\n", ""))
    target = tmp_path / "stack.yaml"
    r = CliRunner().invoke(main, ["render", "--swarm", "-f", str(f), "-o", str(target)])
    assert r.exit_code == 1 and not target.exists()
    assert "docker stack config reads the stack file otherwise than meant" in r.output and where in r.output


def test_without_docker_stack_config_the_file_is_written_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(stack_cli.StackConfig, "__init__",
                        lambda self, stdin: object.__setattr__(self, "argv", ("/nonexistent/docker",))
                        or object.__setattr__(self, "stdin", stdin))
    f = tmp_path / "compose.yaml"
    f.write_text(SHAPES)
    r = CliRunner().invoke(main, ["render", "--swarm", "-f", str(f)])
    assert r.exit_code == 0 and "luma.target: shop-web:3000" in r.stdout
    assert "the stack file was not read back (this docker CLI has no `docker stack config`)" in r.stderr


def test_intended_adds_only_what_the_service_does_not_set():
    from luma_compose import contract

    route = contract.RoutedService("api", ("api.test",), 3000, "/up")
    model = {"services": {"api": {"image": "x", "ports": [{"target": 80}],
                                  "deploy": {"update_config": {"order": "stop-first"}, "labels": {"a": "b"}}}},
             "networks": {"luma": {"name": "shop_luma"}}}
    got = stack.intended(model, "shop", [route])
    deploy = got["services"]["api"]["deploy"]
    assert deploy["update_config"] == {"order": "stop-first"}, "the service's own setting is kept"
    assert "endpoint_mode" not in deploy, "published ports keep Swarm's VIP"
    assert deploy["rollback_config"] == {"order": "start-first"}
    assert deploy["labels"] == {"a": "b", **route.labels("shop")}
    assert got["networks"]["luma"] == {"name": "shop_luma", "driver": "overlay", "attachable": True}
    assert model["services"]["api"]["deploy"] == {"update_config": {"order": "stop-first"}, "labels": {"a": "b"}}
