"""The harness itself: the locally built images do what the other e2e tests rely on."""

from __future__ import annotations

import dockerkit as dk


def test_busybox_image_serves_who_answered(busybox_image, unique):
    net = unique("harness")
    with dk.network(net):
        with dk.container(unique("srv"), busybox_image, networks=[net], aliases={net: ["srv-alias"]},
                          env={"PROJECT": "proj", "SERVICE": "svc"}) as srv, \
             dk.container(unique("cli"), busybox_image, networks=[net]) as cli:
            dk.wait_http(cli, "http://srv-alias:3000/")
            body = dk.http_get(cli, "http://srv-alias:3000/")
            hostname = dk.inspect(srv)["Config"]["Hostname"]
            assert body == f"proj/svc/{hostname}"
            assert dk.http_get(cli, "http://srv-alias:3000/up") == "ok"
            assert dk.nslookup(cli, "srv-alias") == [dk.container_ips(srv)[net]]
            assert dk.nslookup(cli, dk.unique("nosuchname")) is None
            assert dk.tcp_connects(cli, dk.container_ips(srv)[net], 3000)
            assert not dk.tcp_connects(cli, dk.container_ips(srv)[net], 3999)


def test_caddy_image_runs_like_official(caddy_image, busybox_image, unique):
    net = unique("harness")
    with dk.network(net):
        with dk.container(unique("caddy"), caddy_image, networks=[net], aliases={net: ["proxy"]}), \
             dk.container(unique("cli"), busybox_image, networks=[net]) as cli:
            dk.wait_http(cli, "http://proxy:80/")
            assert dk.http_get(cli, "http://proxy:80/") == "caddy up"


def test_compose_project_is_removed_on_exit(busybox_image, unique, tmp_path):
    name = unique("harness")
    f = dk.write(tmp_path / "compose.yaml", f"""
services:
  web:
    image: {busybox_image}
    environment: {{PROJECT: {name}, SERVICE: web}}
""")
    try:
        with dk.compose_project(name, f) as p:
            assert dk.project_containers(name) == [p.container("web")]
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert dk.project_containers(name) == []
    assert dk.project_networks(name) == []
