"""Swarm output mode of render, swarm checks, and swarm routes -> Caddy config (pure)."""

from __future__ import annotations

from luma_compose import api
from luma_compose.compose.source import parse
from luma_compose.swarm import routes, stack

SRC = """\
name: shop
services:
  web:
    image: x
    # keep me
    x-luma: {hosts: [shop.test], port: 3000}
    deploy:
      replicas: 2
  worker:
    image: x
"""


def _stack(text: str) -> str:
    r = api.render_text("c.yaml", text)
    assert r.ok, r.problems
    return stack.to_stack(r.source, r.text, r.project, r.routes)


def test_stack_output() -> None:
    out = _stack(SRC)
    assert not out.startswith("name:") and "# keep me" in out
    assert "    driver: overlay\n    attachable: true\n" in out
    assert "      replicas: 2\n      endpoint_mode: dnsrr\n      update_config:\n        order: start-first\n" in out
    assert "        luma.target: shop-web:3000\n" in out
    assert "worker:\n    image: x\n" in out


def test_stack_output_is_idempotent() -> None:
    once = _stack(SRC)
    r = api.render_text("c.yaml", once, project="shop")
    assert stack.to_stack(r.source, r.text, r.project, r.routes) == once


def test_checks() -> None:
    src, _ = parse("c.yaml", "services:\n  a:\n    build: .\n    restart: always\n  b:\n    depends_on:\n"
                   "      a: {condition: service_started}\n")
    ps = stack.problems(src)
    warns = sorted(p.message for p in ps if stack.is_warning(p))
    errs = [p.message for p in ps if not stack.is_warning(p)]
    assert len(warns) == 2 and "`build`" in warns[0] and "`restart`" in warns[1]
    assert len(errs) == 1 and "rejected" in errs[0]


def _svc(name, project, service, hosts, created):
    return {"CreatedAt": created, "Spec": {"Name": name, "Labels": {
        "luma.managed": "true", "luma.project": project, "luma.service": service, "luma.hosts": hosts,
        "luma.port": "3000", "luma.network": f"{project}_luma"}}}


def test_routes_conflicts_and_config() -> None:
    t = routes.table([_svc("b_web", "b", "web", "x.test", "2"), _svc("a_web", "a", "web", "x.test,y.test", "1"),
                      {"Spec": {"Name": "plain", "Labels": {}}}])
    assert [r.project for r in t.routes] == ["a"] and "b/web claims x.test" in t.conflicts[0]
    cfg = routes.build_config(t, 8080)
    server = cfg["apps"]["http"]["servers"]["luma"]
    h = server["routes"][0]["handle"][0]
    assert h["dynamic_upstreams"] == {"source": "a", "name": "a-web", "port": "3000", "refresh": "1s"}
    assert server["routes"][-1]["handle"][0]["status_code"] == 404
    assert cfg["admin"] == {"disabled": True}
    assert routes.config_name("p", "x") == routes.config_name("p", "x") != routes.config_name("p", "y")


def test_swarm_routes_refuse_label_values_the_container_proxy_refuses():
    from luma_compose import contract
    from luma_compose.swarm.routes import route_of

    labels = contract.route_labels("gmail", "web", ["mail.example.com"], 3000, "/up")
    ok = {"Spec": {"Name": "gmail_web", "Labels": labels}}
    assert route_of(ok) is not None
    for bad in ("{http.request.host}", "mail.example.com{env.NOPE}", "${HOST}"):
        assert route_of({"Spec": {"Name": "evil_web", "Labels": {**labels, contract.LABEL_HOSTS: bad}}}) is None
