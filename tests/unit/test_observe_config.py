"""Issue 24: access log and metrics config (proxy/observe.py), the access log's records
(proxy/access_log.py), the status view (proxy/server_status.py), the proxy container with
--metrics on the fake engine, and the Grafana dashboard's queries."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from luma_compose import contract
from luma_compose.errors import UsageError
from luma_compose.proxy import access_log, caddy_config, observe, server_status
from luma_compose.proxy.certs import CertState
from luma_compose.proxy.controller import Controller, ProxyStatus
from luma_compose.records import ContainerRecord
from luma_compose.routing.claims import Member, Route, RouteTable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from fake_engine import FakeEngine  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def route(project="blog", service="web", hosts=("blog.test",), dials=("blog-web-1:80",), health="healthy"):
    members = tuple(Member(f"{project}-{service}-{i}", f"id{i}", d, health, in_pool=health != "unhealthy")
                    for i, d in enumerate(dials, 1))
    return Route(project, service, tuple(hosts), 80, "/up", contract.ingress_network(project), members)


def table() -> RouteTable:
    return RouteTable((route(), route("shop", "web", ("shop.test", "*.shop.test"), ("shop-web-1:80", "shop-web-2:80"))))


def config(t: RouteTable | None = None, **kw):
    t = t or table()
    return observe.apply(caddy_config.build_config(t, tls="off"), t.routes, **kw)


# ---------------------------------------------------------------- access log config

def test_every_route_names_its_project_and_service_in_the_log_and_sends_a_request_id():
    cfg = config()
    routes = [r for r in cfg["apps"]["http"]["servers"]["luma"]["routes"] if "@id" in r]
    assert len(routes) == 3  # blog, shop's exact hosts, shop's wildcard
    for r in routes:
        project = r["@id"].split(":", 1)[1].split("/")[0]
        names, *fields, proxy = r["handle"]
        assert names == {"handler": "vars", "luma_project": project, "luma_service": "web"}
        assert {f["key"] for f in fields} == set(observe.LOG_FIELDS)
        assert proxy["headers"]["request"]["set"]["X-Request-Id"] == ["{http.request.uuid}"]
        assert proxy["headers"]["response"]["set"]["X-Request-Id"] == ["{http.request.uuid}"]
    logs = cfg["logging"]["logs"]
    assert logs["luma_access"]["writer"] == {"output": "stdout"}
    assert logs["luma_access"]["encoder"]["fields"]["request>headers"] == {"filter": "delete"}
    assert logs["default"] == {"exclude": ["http.log.access.luma_access"]}
    assert cfg["apps"]["http"]["servers"]["luma"]["logs"] == {"default_logger_name": "luma_access"}
    # the reading side finds the same routes and upstreams
    assert caddy_config.served_upstreams(cfg)["shop/web"] == ["tcp4/shop-web-1.:80", "tcp4/shop-web-2.:80"]


def test_apply_leaves_its_input_alone_and_off_is_the_plain_config():
    base = caddy_config.build_config(table(), tls="off")
    before = caddy_config.dumps(base)
    config_on = observe.apply(base, table().routes, metrics=True)
    assert caddy_config.dumps(base) == before != caddy_config.dumps(config_on)
    assert observe.apply(base, table().routes, access_log=False) is base
    assert "metrics" not in config()["apps"]["http"]


def test_a_route_name_that_could_be_a_placeholder_is_refused():
    with pytest.raises(caddy_config.UnsafeValue):
        observe.route_handlers("{env.SECRET}", "web")


# ---------------------------------------------------------------- metrics config

def test_metrics_server_refuses_everyone_but_loopback_and_the_bridge_first():
    cfg = config(metrics=True, allow=["172.17.0.0/16"])
    assert cfg["apps"]["http"]["metrics"] == {"per_host": True}
    srv = cfg["apps"]["http"]["servers"][observe.METRICS_SERVER]
    assert srv["listen"] == [":9180"]
    first = srv["routes"][0]
    assert first["match"] == [{"not": [{"remote_ip": {"ranges": ["127.0.0.0/8", "172.17.0.0/16", "::1/128"]}}]}]
    assert first["handle"][0]["status_code"] == 403
    assert [r["match"][0]["path"] for r in srv["routes"][1:3]] == [["/metrics"], ["/luma/metrics"]]
    # the metrics server writes no access log of its own
    assert "logs" not in srv


_SERIES = re.compile(r'^([a-z_:][a-z0-9_:]*)\{((?:[a-z_]+="(?:[^"\\\n]|\\.)*",?)*)\} (-?\d+(?:\.\d+)?)$')


def parse_text(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """A strict reader of the Prometheus text format for what luma_metrics writes."""
    out: dict[str, list] = {}
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        if line.startswith("# HELP "):
            continue
        m = _SERIES.match(line)
        assert m, f"not a sample line: {line!r}"
        assert m.group(1) in types, f"{m.group(1)} has no TYPE"
        labels = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(2)))
        out.setdefault(m.group(1), []).append((labels, float(m.group(3))))
    return out


def test_luma_metrics_join_hosts_and_upstreams_to_projects():
    text = observe.luma_metrics(table().routes, {"blog.test": 1_800_000_000})
    got = parse_text(text)
    assert ({"host": "*.shop.test", "project": "shop", "service": "web"}, 1) in got["luma_route_info"]
    assert len(got["luma_route_info"]) == 3
    assert ({"upstream": "tcp4/shop-web-2.:80", "project": "shop", "service": "web"}, 1) in got["luma_upstream_info"]
    assert ({"project": "shop", "service": "web"}, 2) in got["luma_route_upstreams"]
    assert got["luma_certificate_expiry_timestamp_seconds"] == [({"host": "blog.test"}, 1_800_000_000)]
    # the body is served by static_response, which expands only the placeholders Caddy knows
    assert "{http." not in text and "{env." not in text


def test_a_renewed_certificate_is_no_drift_but_a_route_change_is():
    old = config(metrics=True, cert_expiry={"blog.test": 1_800_000_000})
    renewed = config(metrics=True, cert_expiry={"blog.test": 1_805_000_000})
    assert caddy_config.dumps(old) != caddy_config.dumps(renewed)
    assert caddy_config.dumps(observe.comparable(old)) == caddy_config.dumps(observe.comparable(renewed))
    other = config(RouteTable((route(),)), metrics=True, cert_expiry={"blog.test": 1_800_000_000})
    assert caddy_config.dumps(observe.comparable(old)) != caddy_config.dumps(observe.comparable(other))
    assert observe.comparable(None) is None and observe.comparable({"apps": {}}) == {"apps": {}}


# ---------------------------------------------------------------- the proxy container (fake engine)

def test_proxy_up_publishes_metrics_on_loopback_only_and_rotates_its_log():
    e = FakeEngine()
    ctl = Controller(e, "px")
    c, created = ctl.up(http_port="8080", tls="off", metrics="9180")
    assert created and c.ports["9180/tcp"][0] == "127.0.0.1"
    assert c.labels[contract.PROXY_METRICS_LABEL] == "127.0.0.1:9180"
    ctl.sync()
    srv = e.loaded[c.id]["apps"]["http"]["servers"]
    assert observe.METRICS_SERVER in srv
    # same settings: the container is kept; metrics off: it is replaced without the port
    assert ctl.up()[1] is False
    c2, created = ctl.up(metrics="off")
    assert created and "9180/tcp" not in c2.ports and contract.PROXY_METRICS_LABEL not in c2.labels
    from luma_compose.proxy.controller import proxy_spec
    from luma_compose.proxy.container import Settings

    spec = proxy_spec("px", "caddy:2", Settings(), "vol")
    assert spec.log_driver == "json-file" and spec.log_options == {"max-size": "20m", "max-file": "5"}


@pytest.mark.parametrize("bad", ["abc", "1.2.3.4:", "0", "99999"])
def test_a_bad_metrics_address_is_a_usage_error(bad):
    with pytest.raises(UsageError):
        Controller(FakeEngine(), "px").up(metrics=bad)


# ---------------------------------------------------------------- access log records

def caddy_line(**over) -> str:
    raw = {"level": "info", "ts": 1796627730.5, "logger": "http.log.access.luma_access", "msg": "handled request",
           "request": {"remote_ip": "172.17.0.1", "client_ip": "203.0.113.9", "method": "GET", "host": "blog.test",
                       "uri": "/a?b=1"},
           "duration": 0.0125, "size": 302, "status": 200, "uuid": "u-1", "request_id": "u-1",
           "luma_upstream": "blog-web-1.:80", "luma_project": "blog", "luma_service": "web"}
    raw.update(over)
    return json.dumps(raw)


def test_a_caddy_line_becomes_a_flat_record():
    rec = access_log.parse(caddy_line())
    assert rec == {"time": "2026-12-07T07:15:30.500Z", "project": "blog", "service": "web", "host": "blog.test",
                   "method": "GET", "path": "/a?b=1", "status": 200, "duration": 0.0125, "bytes": 302,
                   "upstream": "blog-web-1:80", "client": "203.0.113.9", "request_id": "u-1"}
    assert list(rec) == list(access_log.FIELDS)


@pytest.mark.parametrize("line", ["", "not json", "{broken", '{"logger": "tls.obtain", "msg": "x"}', "[1, 2]",
                                  '{"logger": "http.log.access.luma_access", "request": "x", "status": "x"}'])
def test_anything_else_in_the_log_is_skipped_or_read_safely(line):
    rec = access_log.parse(line)
    assert rec is None or (rec["status"] == 0 and rec["host"] == "")


def test_filters_by_project_service_and_status():
    lines = [caddy_line(), caddy_line(status=503), caddy_line(luma_project="shop", status=404), "junk"]
    assert [r["status"] for r in access_log.select(lines, project="blog")] == [200, 503]
    assert [r["status"] for r in access_log.select(lines, status="5xx")] == [503]
    assert [r["status"] for r in access_log.select(lines, status="404,2xx")] == [200, 404]
    assert list(access_log.select(lines, service="api")) == []


@pytest.mark.parametrize("bad", ["5x", "600", "abc", "5xxx"])
def test_a_bad_status_filter_is_a_usage_error(bad):
    with pytest.raises(UsageError):
        access_log.status_filter(bad)


def test_since_takes_durations_and_times():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    assert access_log.since_time("10m", now) == now.timestamp() - 600
    assert access_log.since_time("1h30m", now) == now.timestamp() - 5400
    assert access_log.since_time("2026-01-01T11:00:00Z", now) == now.timestamp() - 3600
    with pytest.raises(UsageError):
        access_log.since_time("yesterday", now)


def test_text_lines_escape_control_characters_and_cut_long_paths():
    rec = access_log.parse(caddy_line(request={"host": "evil\x1b[31m.test", "uri": "/\x00\r\n" + "x" * 10_000,
                                               "method": "GET"}))
    line = access_log.text(rec)
    assert "\x1b" not in line and "\x00" not in line and "\n" not in line and "\r" not in line
    assert "\\x1b[31m" in line and len(line) < 1000
    assert json.loads(access_log.dumps(rec))["path"].startswith("/\x00\r\n")


# ---------------------------------------------------------------- the status view

def status_of(t: RouteTable, certs=(), in_sync=True) -> ProxyStatus:
    return ProxyStatus("px", "caddy:2", "running", "acme", {}, in_sync, t, certificates=list(certs))


NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def containers():
    return [ContainerRecord("a", "blog-web-1", {contract.LABEL_PROJECT: "blog"}, "2026-05-31T10:00:00.123456789Z"),
            ContainerRecord("b", "blog-web-2", {contract.LABEL_PROJECT: "blog"}, "2026-05-30T10:00:00Z")]


def test_a_healthy_server_needs_no_attention():
    t = RouteTable((route(),))
    certs = [CertState("blog.test", "valid", "2026-08-01T00:00:00Z", "acme")]
    recs = [access_log.parse(caddy_line()), access_log.parse(caddy_line(status=404))]
    view = server_status.build(status_of(t, certs), containers(), recs, "5m", now=NOW)
    assert not view.needs_attention
    j = view.to_json()
    svc = j["projects"][0]["services"][0]
    assert (svc["ready"], svc["total"], svc["health"], svc["requests"], svc["errors"]) == (1, 1, "healthy", 2, 0)
    assert j["projects"][0]["last_deploy"] == "2026-05-31T10:00:00Z"
    text = server_status.text(view, now=NOW)
    assert "blog" in text and "valid to 2026-08-01" in text and "nothing needs attention" in text


@pytest.mark.parametrize("case", ["unready", "no container", "5xx", "cert failing", "cert expiring", "conflict",
                                  "drift"])
def test_each_kind_of_trouble_needs_attention(case):
    r = route()
    certs = [CertState("blog.test", "valid", "2026-08-01T00:00:00Z")]
    recs = [access_log.parse(caddy_line())]
    t_kw: dict = {}
    in_sync = True
    if case == "unready":
        r = route(dials=("blog-web-1:80", "blog-web-2:80"), health="unhealthy")
    elif case == "no container":
        r = route(dials=())
    elif case == "5xx":
        recs.append(access_log.parse(caddy_line(status=502)))
    elif case == "cert failing":
        certs = [CertState("blog.test", "failing", error="rate limited")]
    elif case == "cert expiring":
        certs = [CertState("blog.test", "valid", "2026-06-05T00:00:00Z")]
    elif case == "conflict":
        t_kw["problems"] = ("ignored a container",)
    else:
        in_sync = False
    view = server_status.build(status_of(RouteTable((r,), **t_kw), certs, in_sync), [], recs, "5m", now=NOW)
    assert view.needs_attention
    assert "needs attention:" in server_status.text(view, now=NOW)


def test_without_an_access_log_the_counts_are_unknown_not_zero():
    view = server_status.build(status_of(RouteTable((route(),))), [], None, "5m", now=NOW, access_log=False)
    assert view.to_json()["projects"][0]["services"][0]["requests"] is None


# ---------------------------------------------------------------- CLI and the dashboard

def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "luma_compose.cli", *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": "unix:///nonexistent.sock"})


@pytest.mark.parametrize("args", [["logs", "--status", "9xx"], ["logs", "--since", "soon"],
                                  ["status", "--window", "ages"]])
def test_bad_filters_are_usage_errors_before_the_engine_is_asked(args):
    r = run_cli(*args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr


def test_logs_and_status_without_an_engine_exit_3():
    for args in (["logs"], ["status"]):
        r = run_cli(*args)
        assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr


#: Every metric the proxy serves: Caddy's (with metrics {per_host}) and luma's.
SERVED = {"caddy_http_requests_total", "caddy_http_request_duration_seconds", "caddy_http_requests_in_flight",
          "caddy_http_request_size_bytes", "caddy_http_response_size_bytes", "caddy_http_response_duration_seconds",
          "caddy_reverse_proxy_upstreams_healthy", "caddy_config_last_reload_successful",
          "caddy_config_last_reload_success_timestamp_seconds"} | set(
    parse_text(observe.luma_metrics(table().routes, {"blog.test": 1})))


def test_the_grafana_dashboard_parses_and_queries_only_metrics_that_exist():
    dash = json.loads((ROOT / "examples" / "grafana" / "luma-compose-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 8
    used = set()
    for e in exprs:
        for name in re.findall(r"\b((?:caddy|luma)_[a-z_]+)", e):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert base in SERVED, f"{name} in {e!r} is not served"
            used.add(base)
        assert e.count("(") == e.count(")"), e
    assert {"luma_route_info", "caddy_http_request_duration_seconds", "luma_certificate_expiry_timestamp_seconds",
            "caddy_reverse_proxy_upstreams_healthy", "caddy_http_requests_in_flight"} <= used


def test_only_the_gateways_of_the_proxys_networks_may_read_the_metrics():
    from luma_compose.proxy.observe_inputs import ObserveInputs

    e = FakeEngine()
    e.subnets.update({"bridge": ("172.17.0.0/16",), "blog_luma": ("172.16.0.0/26",), "other": ("10.9.0.0/24",)})
    allow = ObserveInputs(e, None).allow(RouteTable((route(),)))
    assert allow == ("172.16.0.1/32", "172.17.0.1/32")  # not a container's address, not another network's
