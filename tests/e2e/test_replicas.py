"""Issue 3, point 4: a routed service with ``deploy.replicas: 3`` is reached on every replica
through its project-prefixed alias ``P-S:port``."""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

import pytest

import dockerkit as dk
from luma_compose import contract

N = 60
PORT = 8080  # not 3000, so a wrong port in the rendered target would show

SOURCE = """\
services:
  app:
    image: {image}
    environment: {{PROJECT: {project}, SERVICE: app, PORT: "{port}"}}
    deploy:
      replicas: 3
    x-luma: {{hosts: [{project}.example.test], port: {port}}}
"""


@pytest.fixture(scope="module")
def replicated(busybox_image, tmp_path_factory):
    name = dk.unique("replicas")
    d = tmp_path_factory.mktemp(name)
    src = dk.write(d / "compose.yaml", SOURCE.format(image=busybox_image, project=name, port=PORT))
    rendered = dk.render(src, name)
    with contextlib.ExitStack() as stack:
        proj = stack.enter_context(dk.compose_project(name, [Path("-")], directory=d, stdin=rendered))
        proxy = stack.enter_context(
            dk.container(dk.unique("proxy"), busybox_image, networks=[contract.ingress_network(name)])
        )
        yield proj, proxy


def test_all_three_replicas_answer_through_the_alias(replicated):
    proj, proxy = replicated
    replicas = [proj.container("app", i) for i in (1, 2, 3)]
    assert proj.containers() == sorted(replicas)
    hostnames = {dk.inspect(c)["Config"]["Hostname"] for c in replicas}
    assert len(hostnames) == 3
    alias = contract.alias(proj.name, "app")
    for c in replicas:
        dk.wait_http(proxy, f"http://{dk.container_ips(c)[contract.ingress_network(proj.name)]}:{PORT}/")

    # The alias names all three replicas on the ingress network...
    ips = set(dk.nslookup(proxy, alias) or [])
    assert ips == {dk.container_ips(c)[contract.ingress_network(proj.name)] for c in replicas}

    # ...and over N requests every replica answers, and nothing else does.
    bodies = dk.http_many(proxy, f"http://{alias}:{PORT}/", N)
    seen = Counter(b.rsplit("/", 1)[-1] for b in bodies if b.startswith(f"{proj.name}/app/"))
    assert sum(seen.values()) == N, bodies
    assert set(seen) == hostnames, seen


def test_target_label_points_at_the_alias_and_port(replicated):
    proj, _ = replicated
    for i in (1, 2, 3):
        labels = dk.inspect(proj.container("app", i))["Config"]["Labels"]
        assert labels[contract.LABEL_TARGET] == f"{contract.alias(proj.name, 'app')}:{PORT}"
        assert labels[contract.LABEL_NETWORK] == contract.ingress_network(proj.name)
