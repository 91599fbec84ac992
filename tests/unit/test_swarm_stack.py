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
        "luma.port": "3000", "luma.network": f"{project}_luma", "com.docker.stack.namespace": project}}}


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

    labels = {**contract.route_labels("gmail", "web", ["mail.example.com"], 3000, "/up"),
              "com.docker.stack.namespace": "gmail"}
    ok = {"Spec": {"Name": "gmail_web", "Labels": labels}}
    assert route_of(ok) is not None
    for bad in ("{http.request.host}", "mail.example.com{env.NOPE}", "${HOST}"):
        assert route_of({"Spec": {"Name": "evil_web", "Labels": {**labels, contract.LABEL_HOSTS: bad}}}) is None


def test_a_swarm_service_routes_only_for_its_own_stack():
    from luma_compose import contract
    from luma_compose.swarm.routes import route_of

    labels = {**contract.route_labels("gmail", "web", ["mail.example.com"], 3000, "/up"),
              "com.docker.stack.namespace": "gmail"}
    assert route_of({"Spec": {"Name": "gmail_web", "Labels": labels}}) is not None
    # another stack copying gmail's labels, or a hand-made service, never passes as gmail's web
    assert route_of({"Spec": {"Name": "evil_web", "Labels": {**labels, "com.docker.stack.namespace": "evil"}}}) is None
    assert route_of({"Spec": {"Name": "evil_web", "Labels": labels}}) is None
    no_stack = {k: v for k, v in labels.items() if k != "com.docker.stack.namespace"}
    assert route_of({"Spec": {"Name": "gmail_web", "Labels": no_stack}}) is None


def _stack_svc(project, service, routed_hosts=None, networks=(), created="1"):
    labels = {"com.docker.stack.namespace": project}
    if routed_hosts:
        labels.update({"luma.managed": "true", "luma.project": project, "luma.service": service,
                       "luma.hosts": routed_hosts, "luma.port": "3000", "luma.network": f"{project}_luma"})
    return {"CreatedAt": created, "Spec": {"Name": f"{project}_{service}", "Labels": labels, "TaskTemplate": {
        "Networks": [{"Target": f"id-{net}", "Aliases": list(aliases)} for net, aliases in networks]}}}


def test_a_service_answering_to_another_projects_target_alias_is_not_joined():
    nets = {f"id-{n}": n for n in ("gmail_luma", "evil_luma")}
    gmail = _stack_svc("gmail", "web", "mail.test", [("gmail_luma", ["gmail-web"])])
    evil = _stack_svc("evil", "web", "evil.test", [("evil_luma", ["evil-web"])])
    decoy = _stack_svc("evil", "decoy", None, [("evil_luma", ["gmail-web"])])  # shadows gmail's upstream
    services = [gmail, evil, decoy]
    clean = routes.drop_shadowed(routes.table([gmail, evil]), [gmail, evil], nets)
    assert sorted(r.project for r in clean.routes) == ["evil", "gmail"] and not clean.conflicts
    t = routes.drop_shadowed(routes.table([gmail, evil]), services, nets)
    assert [r.project for r in t.routes] == ["gmail"] and t.networks == ["gmail_luma"]
    assert any("evil_decoy answers to gmail-web" in c for c in t.conflicts)
    # a stack's short service name is a DNS name too: a service called `gmail-web` in stack evil
    short = _stack_svc("evil", "gmail-web", None, [("evil_luma", [])])
    t = routes.drop_shadowed(routes.table([gmail, evil]), [gmail, evil, short], nets)
    assert [r.project for r in t.routes] == ["gmail"]
    # on the owner's own overlay, the owner's route is withheld rather than shared
    intruder = _stack_svc("evil", "x", None, [("gmail_luma", ["gmail-web"])])
    t = routes.drop_shadowed(routes.table([gmail, evil]), [gmail, evil, intruder], nets)
    assert "gmail" not in [r.project for r in t.routes]
