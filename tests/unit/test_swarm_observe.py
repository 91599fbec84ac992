"""Issue 24 on a swarm, the pure parts: the edges' access log config (the same handlers as one host's
routes, the upstream from the gateway's answer header), the gateway's header, the edge service's log
rotation and --access-log kept on the edge service; `docker service logs` lines with their node.
The e2e tests (tests/e2e/test_swarm_observability.py) prove the same through real edges."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.fake_swarm import FakeSwarm  # noqa: E402

from luma_compose import contract  # noqa: E402
from luma_compose.engine import swarm_state as ss  # noqa: E402
from luma_compose.records import TaskRecord  # noqa: E402
from luma_compose.proxy import observe  # noqa: E402
from luma_compose.swarm import observe as swarm_observe  # noqa: E402
from luma_compose.swarm import proxy as swarm_proxy  # noqa: E402
from luma_compose.swarm import routes  # noqa: E402
from luma_compose.swarm import watch as swarm_watch  # noqa: E402


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(swarm_proxy.time, "sleep", lambda s: None)
    monkeypatch.setattr(swarm_watch.time, "sleep", lambda s: None)


def up(fake: FakeSwarm, **kw) -> swarm_proxy.SwarmProxy:
    p = swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None)
    p.up("caddy:test", 8080, **kw)
    return p


def edge_config(fake: FakeSwarm) -> dict:
    name = fake.services_["px-config"].configs[routes.EDGE_CONFIG_TARGET]
    return json.loads(fake.config_data[name])


def luma_routes(cfg: dict) -> list[dict]:
    return [r for r in cfg["apps"]["http"]["servers"]["luma"]["routes"]
            if str(r.get("@id", "")).startswith("luma-route:")]


def test_every_edge_route_logs_its_project_service_and_the_gateways_upstream():
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test,*.shop.test")
    fake.add_stack_service("blog", "api", "blog.test")
    up(fake)
    cfg = edge_config(fake)
    rs = luma_routes(cfg)
    assert len(rs) == 3
    for r in rs:
        project, service = r["@id"].split(":", 1)[1].split("#")[0].split("/")[:2]
        # the very handlers one host's routes get (one function for both layouts)
        assert r["handle"][:1 + len(observe.LOG_FIELDS)] == observe.route_handlers(
            project, service, "{http.reverse_proxy.header.Luma-Upstream}")
        proxy = r["handle"][-1]
        assert proxy["handler"] == "reverse_proxy"
        assert proxy["headers"]["request"]["set"]["X-Request-Id"] == ["{http.request.uuid}"]
        assert proxy["headers"]["response"]["set"]["X-Request-Id"] == ["{http.request.uuid}"]
        assert proxy["headers"]["response"]["delete"] == ["Luma-Upstream"]
    logs = cfg["logging"]["logs"]
    # Caddy's own messages stay quiet (WARN, stderr); the access log alone goes to stdout
    assert logs["default"] == {"level": "WARN", "exclude": ["http.log.access.luma_access"]}
    assert logs["luma_access"]["writer"] == {"output": "stdout"}
    assert cfg["apps"]["http"]["servers"]["luma"]["logs"] == {"default_logger_name": "luma_access"}


def test_the_gateway_answers_with_the_task_it_dialled_replacing_an_apps_own_header():
    proxy = routes.gateway_config("shop")["apps"]["http"]["servers"]["gateway"]["routes"][0]["handle"][0]
    assert proxy["headers"]["response"] == {"set": {"Luma-Upstream": ["{http.reverse_proxy.upstream.hostport}"]}}


def test_the_edge_is_created_with_its_log_rotated_and_the_access_log_on():
    fake = FakeSwarm()
    up(fake)
    spec = fake.specs["px"]
    assert (spec.log_driver, dict(spec.log_opts)) == ("json-file", {"max-size": "20m", "max-file": "5"})
    assert spec.labels[contract.PROXY_ACCESS_LOG_LABEL] == "on"
    argv = ss.create_argv(spec)
    assert ["--log-driver", "json-file"] == argv[argv.index("--log-driver"):argv.index("--log-driver") + 2]
    assert {argv[i + 1] for i, a in enumerate(argv) if a == "--log-opt"} == {"max-size=20m", "max-file=5"}


def test_access_log_off_is_kept_by_the_edge_service_and_every_sync_and_on_again():
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    p = up(fake, access_log="off")
    assert fake.services_["px"].labels[contract.PROXY_ACCESS_LOG_LABEL] == "off"
    cfg = edge_config(fake)
    assert "luma_access" not in json.dumps(cfg) and "log_append" not in json.dumps(cfg)
    # the gateway's header is never passed to a client, logged or not
    assert luma_routes(cfg)[0]["handle"][-1]["headers"]["response"]["delete"] == ["Luma-Upstream"]
    fake.add_stack_service("shop", "api", "api.shop.test")
    p.sync()
    assert "luma_access" not in json.dumps(edge_config(fake))
    up(fake)  # left out: the running edge's setting
    assert "luma_access" not in json.dumps(edge_config(fake))
    up(fake, access_log="on")
    assert fake.services_["px"].labels[contract.PROXY_ACCESS_LOG_LABEL] == "on"
    assert "luma_access" in json.dumps(edge_config(fake))


def test_an_edge_made_before_the_setting_logs():
    assert swarm_observe.access_log_of({}) and not swarm_observe.access_log_of({contract.PROXY_ACCESS_LOG_LABEL: "off"})


# ---------------------------------------------------------------- logs --swarm: every edge's lines, with the node

def caddy_line(**over) -> str:
    raw = {"level": "info", "ts": 1796627730.5, "logger": "http.log.access.luma_access", "msg": "handled request",
           "request": {"remote_ip": "203.0.113.9", "client_ip": "203.0.113.9", "method": "GET", "host": "shop.test",
                       "uri": "/"},
           "duration": 0.01, "size": 12, "status": 200, "request_id": "r-1",
           "luma_upstream": "10.0.5.7:3000", "luma_project": "shop", "luma_service": "web"}
    raw.update(over)
    return json.dumps(raw)


@pytest.mark.parametrize("line, want", [
    # docker/cli's taskFormatter with --no-resolve: SERVICEID.SLOT.TASKID@NODEID, padded (a global service: slot 0)
    ("q1w2e3r4t5y6.0.x7ak3j0q1w9z@k2nbt1ve4pa8    | {\"a\": 1}", ("k2nbt1ve4pa8", '{"a": 1}')),
    ("q1w2e3r4t5y6.0.x7ak3j0q1w9z@k2nbt1ve4pa9     | x | y\n", ("k2nbt1ve4pa9", "x | y")),
    ("q1w2e3r4t5y6.12.x7ak3j0q1w9z@n1    | ", ("n1", "")),
    ("error from daemon in stream: no such task", None),
    ("", None),
])
def test_a_service_log_line_gives_its_node_and_message(line, want):
    assert ss.service_log_line(line) == want


def test_service_log_argv_reads_every_task_untruncated_with_node_ids():
    assert ss.service_log_argv("px") == ["service", "logs", "--no-trunc", "--no-resolve", "px"]
    assert ss.service_log_argv("px", 1796627730.25, True) == ["service", "logs", "--no-trunc", "--no-resolve",
                                                              "--since", "1796627730.250", "--follow", "px"]
    assert ss.node_hostnames({"ID": "k2n", "Description": {"Hostname": "edge-1"}}) == ("k2n", "edge-1")


def test_records_of_every_edge_carry_their_node_in_json_and_text():
    from luma_compose.proxy import access_log

    lines = [("node-a", "id-a", caddy_line()), ("node-b", "id-b", caddy_line(status=503, request_id="r-2")),
             ("node-b", "id-b", "not an access line")]
    recs = list(access_log.select(lines))
    assert [(r["node"], r["node_id"], r["status"]) for r in recs] == [("node-a", "id-a", 200), ("node-b", "id-b", 503)]
    assert [r["node"] for r in access_log.select(lines, status="5xx")] == ["node-b"]
    assert list(recs[0])[:len(access_log.FIELDS)] == list(access_log.FIELDS)  # the same keys as one host, then the node
    assert access_log.text(recs[1]).split(" ")[1:4] == ["node-b", "shop/web", "503"]
    # a hostile node name (someone's hostname) is escaped like every other field
    rec = next(access_log.select([("evil\x1b[2J", "", caddy_line())]))
    assert "\x1b" not in access_log.text(rec)


def run_logs(monkeypatch, fake: FakeSwarm, *args: str):
    from click.testing import CliRunner

    from luma_compose.cli import logs as logs_cli
    from luma_compose.cli.main import main

    monkeypatch.setattr(logs_cli, "swarm_engine", lambda: fake)
    return CliRunner().invoke(main, ["logs", "--swarm", *args])


def test_logs_swarm_reads_the_edges_of_the_proxy_named(monkeypatch):
    fake = FakeSwarm()
    up(fake)
    fake.logs["px"] = [("node-a", "id-a", caddy_line()), ("node-b", "id-b", caddy_line(luma_project="blog"))]
    r = run_logs(monkeypatch, fake, "--name", "px", "-p", "shop", "--format", "json")
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["node"] for x in r.output.splitlines()] == ["node-a"]


def test_logs_swarm_without_that_proxy_exits_3_and_says_how_to_start_it(monkeypatch):
    fake = FakeSwarm()
    up(fake)
    for name in ("nope", "px-config", "px-gw-shop"):  # no such service; one of the proxy's that is no edge
        r = run_logs(monkeypatch, fake, "--name", name)
        assert r.exit_code == 3 and "proxy up --swarm" in r.output, r.output


def test_logs_swarm_warns_when_the_edges_write_no_access_log(monkeypatch):
    fake = FakeSwarm()
    up(fake, access_log="off")
    r = run_logs(monkeypatch, fake, "--name", "px")
    assert r.exit_code == 0 and "--access-log on" in r.output


# ---------------------------------------------------------------- status --swarm

def status_swarm(monkeypatch, fake: FakeSwarm, *args: str):
    from click.testing import CliRunner

    from luma_compose.cli import status as status_cli
    from luma_compose.cli.main import main

    monkeypatch.setattr(status_cli, "swarm_engine", lambda: fake)
    return CliRunner().invoke(main, ["status", "--swarm", "--name", "px", *args])


def shop(fake: FakeSwarm) -> FakeSwarm:
    import dataclasses

    fake.add_stack_service("shop", "web", "shop.test")
    fake.add_stack_service("shop", "api", "api.shop.test")
    for name, when in (("shop_web", "2026-12-07T09:00:00.123456789Z"), ("shop_api", "2026-12-07T10:00:00Z")):
        fake.services_[name] = dataclasses.replace(fake.services_[name], replicas=2, updated=when, healthcheck=True)
        fake.task_list[name] = [TaskRecord("running", "running", "a"), TaskRecord("running", "running", "b"),
                                TaskRecord("shutdown", "failed", "c")]
    return fake


def test_status_swarm_shows_tasks_health_last_deploy_and_the_edges_counts(monkeypatch):
    fake = shop(FakeSwarm())
    up(fake)
    fake.logs["px"] = [("n1", "i1", caddy_line()), ("n2", "i2", caddy_line()),
                       ("n2", "i2", caddy_line(luma_service="api"))]
    r = status_swarm(monkeypatch, fake, "--format", "json")
    assert r.exit_code == 0, r.output
    view = json.loads(r.output)
    assert view["proxy"] == {"name": "px", "status": "running", "tls": "off", "access_log": True, "metrics": None,
                             "in_sync": True}
    [p] = view["projects"]
    assert (p["project"], p["last_deploy"], p["attention"]) == ("shop", "2026-12-07T10:00:00Z", [])
    got = {s["service"]: (s["hosts"], s["ready"], s["total"], s["health"], s["requests"], s["errors"])
           for s in p["services"]}
    assert got == {"web": (["shop.test"], 2, 2, "healthy", 2, 0), "api": (["api.shop.test"], 2, 2, "healthy", 1, 0)}
    text = status_swarm(monkeypatch, fake).output
    assert "shop     web" in text and "nothing needs attention" in text


def test_status_swarm_needs_attention_for_each_kind_of_trouble(monkeypatch):
    fake = shop(FakeSwarm())
    up(fake)
    fake.task_list["shop_web"] = [TaskRecord("running", "running", "a"), TaskRecord("running", "starting", "b")]
    fake.task_list["px"] = [TaskRecord("running", "running", "e1"), TaskRecord("running", "rejected", "e2")]
    fake.logs["px"] = [("n1", "i1", caddy_line(luma_service="api", status=502))]
    fake.add_stack_service("other", "web", "shop.test")  # a conflict: the later claim gets no traffic
    fake.add_stack_service("new", "web", "new.test")  # not served yet (drift), and withheld: unwatched network
    r = status_swarm(monkeypatch, fake, "--format", "json")
    assert r.exit_code == 1, r.output
    view = json.loads(r.output)
    notes = " | ".join(view["attention"] + [a for p in view["projects"] for a in p["attention"]])
    for want in ("shop/web: 1/2 containers ready", "shop/api: 1 of 1 requests got 5xx", "px: 1/2 edges running",
                 "proxy sync --swarm", "other/web claims shop.test", "new/web: withheld"):
        assert want in notes, notes
    web = next(s for p in view["projects"] for s in p["services"] if p["project"] == "shop" and s["service"] == "web")
    assert web["health"] == "starting"


def test_status_swarm_with_the_access_log_off_counts_nothing_and_without_a_proxy_exits_3(monkeypatch):
    fake = shop(FakeSwarm())
    up(fake, access_log="off")
    view = json.loads(status_swarm(monkeypatch, fake, "--format", "json").output)
    assert {s["requests"] for p in view["projects"] for s in p["services"]} == {None}
    fake.task_list["px"] = [TaskRecord("running", "rejected", "e1")]
    assert status_swarm(monkeypatch, fake).exit_code == 3
    assert status_swarm(monkeypatch, FakeSwarm()).exit_code == 3


def _every_handler(node):
    if isinstance(node, dict):
        if "handler" in node:
            yield node
        for v in node.values():
            yield from _every_handler(v)
    elif isinstance(node, list):
        for v in node:
            yield from _every_handler(v)


@pytest.mark.parametrize("tls", [routes.EdgeTLS(), routes.EdgeTLS(mode="acme")], ids=["http", "tls"])
def test_no_reverse_proxy_of_an_edge_anywhere_passes_the_gateways_header_to_the_client(tls):
    """Paths (stripped or not), redirects, wildcards, guards (allow, basic auth) and a handler nested in a
    subroute: wherever a reverse_proxy sits, in any server, the task's address never reaches the client."""
    from luma_compose.records import ServiceRecord
    from luma_compose.routing import services

    def svc(project, service, hosts, **labels):
        lb = {**contract.route_labels(project, service, hosts.split(","), 3000, "/up"),
              contract.STACK_NAMESPACE_LABEL: project, **labels}
        return ServiceRecord(contract.stack_service(project, service), labels=lb, created="2026-01-01T00:00:00Z")

    b64 = "JDJ5JDA1JGJCbVpjQ1ZxZkhBSEJ0bGxCcE5rdi5nL3ZIRzB6cm9sLmNqNUZ2aUFsR2REdWZSS2x6dkVx"
    table = services.table([
        svc("shop", "web", "shop.test", **{contract.LABEL_REDIRECT_FROM: "www.shop.test"}),
        svc("shop", "api", "shop.test", **{contract.LABEL_PATHS: "/api,/socket", contract.LABEL_STRIP_PREFIX: "true"}),
        svc("blog", "web", "blog.test,*.blog.test", **{contract.LABEL_ALLOW: "203.0.113.0/24",
                                                      contract.LABEL_BASIC_AUTH: f"alice:{b64}"})])
    cfg = routes.edge_config(table, 80, "px", tls)
    # a reverse_proxy the layout may one day nest: inside a subroute inside a subroute
    main = cfg["apps"]["http"]["servers"]["luma"]["routes"]
    nested = {"handler": "reverse_proxy", "upstreams": [{"dial": "x:1"}]}
    main.append({"handle": [{"handler": "subroute", "routes": [
        {"handle": [{"handler": "subroute", "routes": [{"handle": [nested]}]}]}]}]})
    out = swarm_observe.edge(cfg, table)
    proxies = [h for h in _every_handler(out) if h["handler"] == "reverse_proxy"]
    assert len(proxies) == 6  # shop/web, shop/api's two paths, blog/web and its wildcard, the nested one
    for h in proxies:
        assert "Luma-Upstream" in h["headers"]["response"]["delete"]
        if h.get("upstreams") != nested["upstreams"]:  # the nested one is in no luma route: no request id
            assert h["headers"]["request"]["set"]["X-Request-Id"] == ["{http.request.uuid}"]
    # and in the copy only: the config given is left as it was
    assert "headers" not in nested


def test_the_request_id_reaches_a_reverse_proxy_however_deep_in_a_route_on_one_host_too():
    cfg = {"apps": {"http": {"servers": {"luma": {"routes": [{"@id": "luma-route:shop/web", "handle": [
        {"handler": "subroute", "routes": [{"handle": [{"handler": "reverse_proxy", "upstreams": []}]}]}]}]}}}}}
    out = observe.apply(cfg, [], access_log=True)
    [proxy] = [h for h in _every_handler(out) if h["handler"] == "reverse_proxy"]
    assert proxy["headers"]["request"]["set"]["X-Request-Id"] == ["{http.request.uuid}"]
    assert proxy["headers"]["response"]["set"]["X-Request-Id"] == ["{http.request.uuid}"]
    assert [h["handler"] for h in out["apps"]["http"]["servers"]["luma"]["routes"][0]["handle"]][-1] == "subroute"
