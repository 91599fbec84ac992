"""Maintenance (issue 22 item 4): the state on the engine, the route table, both Caddy layouts, the
operations and deploy --maintenance, on the fake engines. tests/e2e/test_maintenance.py and
tests/e2e/test_swarm_maintenance.py prove the same through a real Caddy."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner

from luma_compose import contract
from luma_compose.cli.main import main
from luma_compose.deploy import maintenance as ops
from luma_compose.deploy.plan import DeployFailed
from luma_compose.deploy.progress import Progress
from luma_compose.deploy.rollout import Deployer, ProxyOptions
from luma_compose.errors import LumaError, UsageError
from luma_compose.proxy import caddy_config, maintenance as page
from luma_compose.proxy.controller import Controller
from luma_compose.records import MaintenanceRecord
from luma_compose.routing import maintenance as rules
from luma_compose.routing.claims import Route, RouteTable
from luma_compose.swarm import proxy as swarm_proxy, routes as swarm_routes
from support.fake_engine import FakeEngine, FakeProject, FakeService
from support.fake_swarm import FakeSwarm
from support.records import routed

NO_ENGINE = "unix:///nonexistent/luma-compose-test.sock"


def route(project="shop", service="web", hosts=("shop.test",)) -> Route:
    return Route(project, service, hosts, 3000, "/up", f"{project}_luma")


def handlers(cfg: dict) -> dict[str, dict]:
    routes = cfg["apps"]["http"]["servers"][caddy_config.SERVER_NAME]["routes"]
    # the route's own handler: after the access log's ``vars`` (proxy/observe.py) and any guard
    return {r["@id"]: r["handle"][-1] for r in routes if "@id" in r}


# ------------------------------------------------------------------ the rules


def test_a_service_state_wins_over_the_projects_and_the_newest_state_of_a_key_wins():
    t = RouteTable((route(), route(service="api", hosts=("api.shop.test",)), route("blog", hosts=("blog.test",))))
    states = [MaintenanceRecord("shop", "", "whole", since="2026-01-01T00:00:00Z", name="a"),
              MaintenanceRecord("shop", "api", "old", since="2026-01-01T00:00:00Z", name="b"),
              MaintenanceRecord("shop", "api", "new", since="2026-01-02T00:00:00Z", name="c")]
    marked = {r.key: r.maintenance for r in rules.apply(t, states).routes}
    assert marked["shop/web"].message == "whole" and marked["shop/api"].message == "new"
    assert marked["blog/web"] is None  # another project is untouched


@pytest.mark.parametrize("bad", [
    MaintenanceRecord("Bad Project", name="x"),
    MaintenanceRecord("shop", "we b", name="x"),
    MaintenanceRecord("shop", message="a\x1b[31mb", name="x"),
    MaintenanceRecord("shop", page="x" * (rules.MAX_PAGE_BYTES + 1), name="x"),
    MaintenanceRecord("shop", page="<p>\0</p>", name="x"),
], ids=["project", "service", "message", "page-size", "page-nul"])
def test_a_state_whose_labels_break_the_rules_is_reported_and_ignored(bad):
    t = rules.apply(RouteTable((route(),)), [bad])
    assert t.routes[0].maintenance is None
    assert any("maintenance state x" in p for p in t.problems)


@pytest.mark.parametrize("message", ["a\nb", "a\rb", "\x00", "\x7f", "\x9b", "tab\there", "x" * 1001])
def test_a_message_with_a_control_character_or_too_long_is_refused(message):
    with pytest.raises(UsageError):
        ops.check_input(message, None)


@pytest.mark.parametrize("data, why", [(b"\xff\xfe<p>", "not UTF-8"), (b"", "empty"), (b"<p>\0", "NUL"),
                                       (b"a" * (rules.MAX_PAGE_BYTES + 1), "larger than")])
def test_a_page_that_is_not_small_utf8_html_is_refused(data, why):
    with pytest.raises(UsageError, match=why):
        ops.check_input(None, data)


def test_message_and_page_together_are_refused():
    with pytest.raises(UsageError, match="give one"):
        ops.check_input("hi", b"<p>x</p>")


# ------------------------------------------------------------------ both Caddy layouts


def test_one_host_serves_a_route_in_maintenance_as_503_with_retry_after_and_the_page_and_dials_nothing():
    m = MaintenanceRecord("shop", message="Back at <b>14:00</b>", since="t")
    t = RouteTable((Route("shop", "web", ("shop.test",), 3000, "/up", "shop_luma", maintenance=m), route("blog")))
    h = handlers(caddy_config.build_config(t, tls="off"))
    shop, blog = h["luma-route:shop/web"], h["luma-route:blog/web"]
    assert shop["handler"] == "static_response" and shop["status_code"] == 503
    assert shop["headers"]["Retry-After"] == [page.RETRY_AFTER]
    assert shop["headers"]["Content-Type"] == ["text/html; charset=utf-8"]
    assert shop["headers"]["X-Content-Type-Options"] == ["nosniff"]
    assert "Back at &lt;b&gt;14:00&lt;/b&gt;" in shop["body"]  # the message is text, never markup
    assert blog["handler"] == "static_response" or blog["handler"] == "reverse_proxy"
    assert t.routes[0].upstreams == () and t.routes[0].to_json()["maintenance"]["scope"] == "project"


def test_every_brace_of_a_page_is_escaped_so_caddy_expands_no_placeholder():
    html = "<p>{env.HOME} {http.request.header.Cookie} \\{x} }{</p>"
    body = page.handler(MaintenanceRecord("shop", page=html))["body"]
    # Caddy's replacer turns \{ and \} into { and }: what is served is the page itself
    assert body.replace("\\{", "{").replace("\\}", "}") == html
    assert all(body[i - 1] == "\\" for i, c in enumerate(body) if c in "{}")


def test_the_swarm_edge_serves_a_route_in_maintenance_from_the_edge_and_the_others_through_gateways():
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    fake.add_stack_service("blog", "web", "blog.test")
    px = swarm_proxy.SwarmProxy(fake, "luma-proxy", log=lambda s: None)
    px.up("caddy:test", 8080)
    ops.set_state(fake, MaintenanceRecord("shop", "", "Back soon", since="t"))
    px.sync(wait=False)
    table = px.served()
    cfg = swarm_routes.edge_config(table, 8080, "luma-proxy")
    h = handlers(cfg)
    assert h["luma-route:shop/web"]["status_code"] == 503 and "Back soon" in h["luma-route:shop/web"]["body"]
    assert h["luma-route:blog/web"]["handler"] == "reverse_proxy"
    # the state is a Swarm config with labels, not a label on the service (a stack deploy would drop that)
    states = [c for c in fake.cfgs.values() if contract.MAINTENANCE_PROJECT_LABEL in c.labels]
    assert len(states) == 1 and "luma.maintenance.project" not in fake.services_["shop_web"].labels
    ops.clear_states(fake, "shop")
    assert handlers(swarm_routes.edge_config(px.served(), 8080, "luma-proxy"))["luma-route:shop/web"]["handler"] \
        == "reverse_proxy"


# ------------------------------------------------------------------ operations on one host


def host(e: FakeEngine) -> ops.HostTarget:
    ctl = Controller(e, "px")
    ctl.up(image="caddy:test", tls="off")
    e.add_network("shop_luma", {contract.NETWORK_OWNER_LABEL: "true", "com.docker.compose.project": "shop"})
    e.add_network("blog_luma", {contract.NETWORK_OWNER_LABEL: "true", "com.docker.compose.project": "blog"})
    e.add(routed("shop", "web", hosts=("shop.test",)))
    e.add(routed("shop", "api", hosts=("api.shop.test",)))
    e.add(routed("blog", "web", hosts=("blog.test",)))
    ctl.sync()
    return ops.HostTarget(e, "px")


def served(e: FakeEngine) -> dict[str, str]:
    return {k: h["handler"] for k, h in handlers(e.loaded[e.container("px").id]).items()}


def test_on_then_off_serves_the_page_then_the_containers_and_never_touches_another_project():
    e = FakeEngine()
    t = host(e)
    out = ops.turn_on(t, "shop", "", "Back soon")
    assert out.synced and out.hosts == ["api.shop.test", "shop.test"]
    assert served(e) == {"luma-route:shop/web": "static_response", "luma-route:shop/api": "static_response",
                         "luma-route:blog/web": "reverse_proxy"}
    # another process (proxy run, a deploy from another machine) reads the same state from the engine
    Controller(e, "px").sync()
    assert served(e)["luma-route:shop/web"] == "static_response"
    assert [c.state for c in e.containers(["com.docker.compose.project=shop"])] == ["running", "running"]
    ops.turn_off(t, "shop")
    assert set(served(e).values()) == {"reverse_proxy"} and e.maintenance_states() == []


def test_one_service_only_and_off_for_a_service_of_a_project_in_maintenance_is_refused():
    e = FakeEngine()
    t = host(e)
    ops.turn_on(t, "shop", "api")
    assert served(e)["luma-route:shop/api"] == "static_response"
    assert served(e)["luma-route:shop/web"] == "reverse_proxy"
    ops.turn_on(t, "shop")
    with pytest.raises(UsageError, match="whole project shop"):
        ops.turn_off(t, "shop", "web")
    ops.turn_off(t, "shop")
    assert e.maintenance_states() == []


def test_a_new_state_replaces_the_old_one_of_its_key_and_is_never_missing_in_between():
    e = FakeEngine()
    t = host(e)
    ops.turn_on(t, "shop", "", "one")
    ops.turn_on(t, "shop", "", "two")
    assert [m.message for m in e.maintenance_states()] == ["two"]


@pytest.mark.parametrize("project, service, match", [("nope", "", "no project nope"),
                                                     ("shop", "db", "routes no service db")])
def test_an_unknown_project_or_service_is_a_usage_error_and_changes_nothing(project, service, match):
    e = FakeEngine()
    t = host(e)
    for op in (lambda: ops.turn_on(t, project, service), lambda: ops.turn_off(t, project, service)):
        with pytest.raises(UsageError, match=match):
            op()
    assert e.maintenance_states() == []


def test_on_without_a_proxy_keeps_the_state_for_the_proxys_first_sync():
    e = FakeEngine()
    t = host(e)
    e.stop("px")
    assert ops.turn_on(t, "shop").synced is False
    e.start("px")
    Controller(e, "px").sync()
    assert served(e)["luma-route:shop/web"] == "static_response"


# ------------------------------------------------------------------ deploy --maintenance


WEB = contract.RoutedService("web", ("mail.test",), 3000, "/up")


def deployer(e: FakeEngine) -> Deployer:
    d = Deployer(e, "gmail", "/srv/gmail", "services: {}\n", [WEB], ProxyOptions(name="px", image="caddy:test",
                 tls="off"), timeout=5, drain=0, settle=0, progress=Progress(io.StringIO()), sleep=lambda s: None)
    d.maintenance = ops.DeployMaintenance(lambda s: None)
    return d


def world() -> FakeEngine:
    e = FakeEngine()
    e.projects["gmail"] = FakeProject({"web": FakeService(1, "h1", routed=WEB)})
    return e


def test_deploy_maintenance_serves_the_page_during_the_rollout_and_the_app_after_success():
    e = world()
    deployer(e).deploy()
    e.projects["gmail"].services["web"].config_hash = "h2"
    seen: list[str] = []
    http_ok = e.http_ok

    def probe(url, host):  # every probe of the rollout sees what the proxy serves for the route then
        seen.append(served(e).get("luma-route:gmail/web", ""))
        return http_ok(url, host)

    e.http_ok = probe
    deployer(e).deploy()
    assert "static_response" in seen  # the new containers were checked while the host was in maintenance
    assert served(e)["luma-route:gmail/web"] == "reverse_proxy" and e.maintenance_states() == []


def test_a_deploy_that_fails_after_maintenance_went_on_leaves_it_on():
    e = world()
    deployer(e).deploy()
    e.projects["gmail"].services["web"].config_hash = "h2"
    e.http_ok = lambda url, host: False
    d = deployer(e)
    with pytest.raises(DeployFailed):
        d.deploy()
    assert [m.project for m in e.maintenance_states()] == ["gmail"]
    assert served(e)["luma-route:gmail/web"] == "static_response"  # the old version is not served either
    assert "stays ON" in d.maintenance.failed_note("gmail")


def test_a_deploy_refused_before_anything_changed_leaves_maintenance_as_it_was():
    e = world()
    e.add_network("evil_luma")
    e.add(routed("evil", "web", hosts=("mail.test",)))
    d = deployer(e)
    with pytest.raises(LumaError, match="refusing to deploy"):
        d.deploy()
    assert e.maintenance_states() == [] and "not turned on" in d.maintenance.failed_note("gmail")


def test_a_project_already_in_maintenance_stays_in_it_with_its_page():
    e = world()
    deployer(e).deploy()
    ops.set_state(e, MaintenanceRecord("gmail", "", "manual", since="t"))
    e.projects["gmail"].services["web"].config_hash = "h2"
    deployer(e).deploy()  # the host check through the proxy is skipped for a route in maintenance
    assert [m.message for m in e.maintenance_states()] == ["manual"]


def test_deploy_swarm_maintenance_is_on_during_the_stack_deploy_off_after_and_on_after_a_failure():
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    from luma_compose.swarm.maintenance import SwarmTarget

    target = SwarmTarget(fake, "luma-proxy")
    seen = []
    ops.swarm_deploy_maintenance(target, "shop", lambda s: None, lambda: seen.append(fake.maintenance_states()))
    assert [m.project for m in seen[0]] == ["shop"] and fake.maintenance_states() == []

    def fail():
        raise LumaError("rolled back")

    with pytest.raises(LumaError):
        ops.swarm_deploy_maintenance(target, "shop", lambda s: None, fail)
    assert [m.project for m in fake.maintenance_states()] == ["shop"]


# ------------------------------------------------------------------ the command line


def run(*args: str):
    r = CliRunner().invoke(main, list(args), env={"DOCKER_HOST": NO_ENGINE})
    return r.exit_code, r.stdout, r.stderr


@pytest.mark.parametrize("args, says", [
    (["on", "-p", "shop", "--message", "a\x1bb"], "control character"),
    (["on", "-p", "shop", "--page", "bad.html"], "not UTF-8"),
    (["on", "-p", "shop", "--page", "big.html"], "larger than"),
    (["on", "-p", "shop", "--page", "missing.html"], "cannot read it"),
    (["on", "-p", "shop", "--page", "ok.html", "--message", "x"], "give one"),
    (["on", "-p", "Bad Name"], "not a Compose project name"),
    (["on", "-p", "shop", "--service", "a b"], "--service"),
    (["off", "--swarm", "-p", "shop", "--proxy-name", "bad name"], "--proxy-name"),
    (["on", "--swarm", "--target", "compose", "-p", "shop"], "--swarm"),
], ids=lambda a: " ".join(a) if isinstance(a, list) else a)
def test_bad_input_is_a_usage_error_before_any_engine_is_asked(tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.html").write_bytes(b"\xff<p>")
    (tmp_path / "big.html").write_bytes(b"a" * (rules.MAX_PAGE_BYTES + 1))
    (tmp_path / "ok.html").write_text("<p>ok</p>")
    code, out, err = run("maintenance", *args)
    assert code == 2 and out == "" and says in err and "Traceback" not in err, err


def test_deploy_dry_run_with_maintenance_is_refused():
    code, _, err = run("deploy", "--dry-run", "--maintenance", "-p", "shop")
    assert code == 2 and "--dry-run" in err
