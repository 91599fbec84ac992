"""The routing core (luma_compose/routing): one claim record, one validation, one ownership rule,
one table and one conflict type for both targets; the swarm's `routes`, `deploy` refusal and proxy
read the same table. Pure: records and the fake swarm, no Docker."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.fake_swarm import FakeSwarm  # noqa: E402
from support.records import routed  # noqa: E402

from luma_compose import contract  # noqa: E402
from luma_compose.deploy.plan import owned_elsewhere  # noqa: E402
from luma_compose.records import ServiceRecord  # noqa: E402
from luma_compose.routing import ownership, services  # noqa: E402
from luma_compose.routing.claims import Conflict, Route, RouteTable, SyncResult  # noqa: E402
from luma_compose.routing.containers import build_table  # noqa: E402
from luma_compose.swarm import deploy as swarm_deploy  # noqa: E402
from luma_compose.swarm import proxy as swarm_proxy  # noqa: E402
from luma_compose.swarm import routes as edge_layout  # noqa: E402
from luma_compose.swarm import watch as swarm_watch  # noqa: E402

T1, T2 = "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(swarm_proxy.time, "sleep", lambda s: None)
    monkeypatch.setattr(swarm_watch.time, "sleep", lambda s: None)


def service(project: str, svc: str, hosts: str, created: str, **labels: str) -> ServiceRecord:
    """A service as `docker stack deploy` makes it from a rendered stack file."""
    lb = {**contract.route_labels(project, svc, hosts.split(","), 3000, "/up"),
          contract.STACK_NAMESPACE_LABEL: project, **labels}
    return ServiceRecord(contract.stack_service(project, svc), labels=lb, created=created)


def claim(r: Route) -> tuple:
    return (r.key, r.hosts, r.port, r.health_path, r.network, r.target, r.alias)


def test_both_adapters_make_the_same_claim_and_the_same_table():
    one_host = build_table([routed("shop", "web", hosts=("Shop.test", "www.shop.test"), created=T1)])
    swarm = services.table([service("shop", "web", "Shop.test,www.shop.test", T1)])
    assert type(one_host) is type(swarm) is RouteTable
    assert [claim(r) for r in one_host.routes] == [claim(r) for r in swarm.routes] == [
        ("shop/web", ("shop.test", "www.shop.test"), 3000, "/up", "shop_luma", "shop-web:3000", "shop-web")]


@pytest.mark.parametrize("kind, mine, theirs", [
    ("host", ("a.test", "b.test"), ("b.test", "c.test")),
    ("alias", ("a.test",), ("c.test",)),
])
def test_a_conflict_is_one_type_with_one_verdict_on_both_targets(kind, mine, theirs):
    """The older claim keeps a host (or the target alias); the same Conflict, word for word."""
    # alias clash: project "a" service "b-web" and project "a-b" service "web" are both `a-b-web`
    (p1, s1), (p2, s2) = (("a", "web"), ("z", "web")) if kind == "host" else (("a", "b-web"), ("a-b", "web"))
    one_host = build_table([routed(p2, s2, hosts=theirs, created=T2), routed(p1, s1, hosts=mine, created=T1)])
    swarm = services.table([service(p2, s2, ",".join(theirs), T2), service(p1, s1, ",".join(mine), T1)])
    expected = Conflict(kind, "b.test" if kind == "host" else "a-b-web", f"{p1}/{s1}", f"{p2}/{s2}", "older")
    assert list(one_host.conflicts) == list(swarm.conflicts) == [expected]
    assert one_host.messages == swarm.messages
    assert [claim(r) for r in one_host.routes] == [claim(r) for r in swarm.routes]
    if kind == "host":  # per host: the younger claim keeps the hosts nobody else claims
        assert one_host.host_map() == swarm.host_map() == {"a.test": "a/web", "b.test": "a/web", "c.test": "z/web"}


def test_the_one_rule_incumbent_then_age_then_id_whatever_the_order():
    a = Route("a", "web", ("x.test",), 3000, "/up", "a_luma", created=T2)
    b = Route("b", "web", ("x.test", "y.test"), 3000, "/up", "b_luma", created=T1)
    for order in ([a, b], [b, a]):
        routes, conflicts = ownership.resolve(order)
        assert [(r.key, r.hosts) for r in routes] == [("b/web", ("x.test", "y.test"))]
        assert [(c.winner, c.why) for c in conflicts] == [("b/web", "older")]
        routes, conflicts = ownership.resolve(order, incumbents={"x.test": "a/web"})
        assert [(r.key, r.hosts) for r in routes] == [("a/web", ("x.test",)), ("b/web", ("y.test",))]
        assert [(c.winner, c.why) for c in conflicts] == [("a/web", "incumbent")]


@pytest.mark.parametrize("labels, why", [
    ({contract.LABEL_HOSTS: "{http.request.host}"}, "not a DNS name"),
    ({contract.LABEL_PORT: "0"}, "not a port number"),
    ({contract.LABEL_HEALTH_PATH: "/up${X}"}, "health path"),
    ({contract.LABEL_TARGET: "shop-api:3000"}, "gives shop-web:3000"),
    ({contract.LABEL_NETWORK: "other_luma"}, "asks for the network other_luma"),
])
def test_one_validation_refuses_the_same_labels_on_both_targets_and_says_why(labels, why):
    swarm = services.table([service("shop", "web", "shop.test", T1, **labels)])
    one_host = build_table([routed("shop", "web", hosts=("shop.test",), labels=labels)])
    assert swarm.routes == one_host.routes == ()
    assert any(why in p for p in swarm.problems), swarm.problems
    assert any(why in p for p in one_host.problems), one_host.problems


def test_a_service_of_another_stack_is_reported_and_ignored():
    t = services.table([service("shop", "web", "shop.test", T1, **{contract.STACK_NAMESPACE_LABEL: "evil"})])
    assert t.routes == () and "only the service shop_web of the stack shop may" in t.problems[0]


def _fake_with_a_withheld_project() -> tuple[FakeSwarm, swarm_proxy.SwarmProxy]:
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    fake.add_stack_service("blog", "web", "blog.test")
    p = swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None)
    p.up("caddy:test", 8080)
    fake.plain["shop_luma"] = ["sneaky"]  # a plain container on shop's overlay: shop is withheld
    return fake, p


def test_swarm_routes_lists_what_the_edges_serve(monkeypatch):
    """`routes --swarm` reads the table the proxy serves: a withheld project is listed as withheld
    (the DNS-shadowing and network filters apply), never as a route."""
    from click.testing import CliRunner

    from luma_compose.cli import swarm as cli_swarm
    from luma_compose.cli.main import main

    fake, p = _fake_with_a_withheld_project()
    res = p.sync()
    monkeypatch.setattr(cli_swarm, "swarm_engine", lambda: fake)
    out = CliRunner().invoke(main, ["routes", "--swarm", "--format", "json", "--name", "px"])
    shown = json.loads(out.stdout)
    cfg = edge_layout.edge_config(res.table, 8080, "px")
    served = {h for r in cfg["apps"]["http"]["servers"]["luma"]["routes"][:-1]
              if r["handle"][0]["handler"] == "reverse_proxy" for m in r["match"] for h in m["host"]}
    assert out.exit_code == 1, "a withheld project is a problem found"
    assert {h for r in shown["routes"] for h in r["hosts"]} == served == {"blog.test"}
    assert [r["project"] for r in shown["withheld"]] == ["shop"]
    assert shown["conflicts"] == res.table.messages and any("routes of shop are withheld" in c for c in shown["conflicts"])
    assert isinstance(res, SyncResult)


def test_a_swarm_deploy_is_refused_by_the_table_the_proxy_serves():
    """A withheld project still owns its hosts: another project's deploy that names one is refused,
    with the same sentence one host's deploy says."""
    fake, p = _fake_with_a_withheld_project()
    p.sync()
    mine = [contract.RoutedService("web", ("shop.test",), 3000, "/up")]
    got = swarm_deploy._conflicts(fake, "evil", mine, "px")
    assert got == owned_elsewhere("evil", mine, p.served()) == [
        "host shop.test (service web) is already routed by project shop (service web), which owns it while it is up"]
    assert swarm_deploy._conflicts(fake, "shop", mine, "px") == []


def test_a_swarm_deploy_names_the_urls_the_edges_serve():
    fake = FakeSwarm()
    mine = [contract.RoutedService("web", ("shop.test",), 3000, "/up")]
    swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None).up("caddy:test", 8080)
    assert swarm_deploy.urls(fake, "px", mine) == ["http://shop.test:8080/"]
    tls = FakeSwarm()
    swarm_proxy.SwarmProxy(tls, "px", log=lambda s: None).up(
        "caddy:test", 80, tls=edge_layout.EdgeTLS("acme", 443), storage="/srv/shared")
    assert swarm_deploy.urls(tls, "px", mine) == ["https://shop.test/"]
