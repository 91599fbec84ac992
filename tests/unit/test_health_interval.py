"""x-luma ``health_interval``: the proxy's own probes of a service's health path, only where asked.

Issue 19: Caddy starts every route's checker anew at each config load and each checker probes all
its upstreams at once, so probes on every route made each load (any project's deploy or sync) a
burst of one request per container on the server, and the per-second probes a steady load on every
app: at 100 projects other projects' requests waited over 0.5 s. A route now has Caddy's active
probes only when its x-luma sets ``health_interval``; Docker's health check and passive checks decide
for the others. Render, check, the label check, the Caddy config, the swarm side, and real Caddy on
loopback (a probed route drops a container whose health path fails; an unprobed one keeps it)."""

from __future__ import annotations

import pytest

from luma_compose import api, contract
from luma_compose.compose import stack
from luma_compose.compose.source import parse
from luma_compose.proxy import caddy_config
from luma_compose.records import ServiceRecord
from luma_compose.routing import services
from luma_compose.routing.containers import build_table
from test_caddy_config import Upstream, _caddy_installed, caddy, eventually, get, needs_caddy, rec  # noqa: F401

INTERVAL = contract.LABEL_HEALTH_INTERVAL


def render(xluma: str) -> api.RenderResult:
    text = "services:\n  app:\n    image: notes:2\n    x-luma:\n      hosts: notes.test\n      port: 8080\n" + xluma
    return api.render_text("compose.yaml", text, "notes", "/srv/notes")


@pytest.mark.parametrize("xluma, want", [("", None), ("      health_interval: 5\n", "5"),
                                         ("      health_interval: 3600\n", "3600")])
def test_render_writes_the_label_only_when_x_luma_asks(xluma, want):
    res = render(xluma)
    assert res.ok, res.problems
    assert res.routes[0].labels("notes").get(INTERVAL) == want
    assert res.routes[0].health_interval == int(want or 0)
    assert (f"{INTERVAL}: \"{want}\"" in res.text or f"{INTERVAL}: '{want}'" in res.text) if want \
        else INTERVAL not in res.text


@pytest.mark.parametrize("value", ["0", "3601", "-1", "1.5", "'5'", "5s", "true", "[5]"])
def test_a_bad_health_interval_is_a_check_error_at_its_line(value):
    res = render(f"      health_interval: {value}\n")
    assert not res.ok and res.text is None
    assert any("health_interval" in p.message and p.line == 7 for p in res.problems), res.problems


@pytest.mark.parametrize("value", ["0", "3601", "-1", "1.5", "5s", "{http.request.uri}", "", "٣", " 5"])
def test_a_bad_health_interval_label_withholds_only_its_route(value):
    bad = rec("a", "web", ["a.test"], "10.0.0.2", 3000, labels={INTERVAL: value})
    t = build_table([bad, rec("b", "web", ["b.test"], "10.0.0.3", 3000)])
    assert [r.key for r in t.routes] == ["b/web"]
    assert any(INTERVAL in p and "a-web-1" in p for p in t.problems), t.problems


def proxies(cfg: dict) -> dict[str, dict]:
    routes = cfg["apps"]["http"]["servers"][caddy_config.SERVER_NAME]["routes"]
    return {r["@id"]: [h for h in r["handle"] if h["handler"] == "reverse_proxy"][0] for r in routes if "@id" in r}


def test_the_config_probes_only_the_routes_that_ask_at_their_interval():
    t = build_table([rec("a", "web", ["a.test"], "10.0.0.2", 3000, labels={INTERVAL: "2"}),
                     rec("b", "web", ["b.test"], "10.0.0.3", 3000, health_path="/healthz", labels={INTERVAL: "30"}),
                     rec("c", "web", ["c.test"], "10.0.0.4", 3000)])
    rp = proxies(caddy_config.build_config(t, tls="off"))
    a, b, c = (rp[f"luma-route:{p}/web"]["health_checks"] for p in "abc")
    assert a["active"] == {"uri": "/up", "interval": "2s", "timeout": "2s", "passes": 1, "fails": 1}
    assert b["active"]["uri"] == "/healthz" and b["active"]["interval"] == "30s"
    assert b["active"]["timeout"] == f"{caddy_config.HEALTH_TIMEOUT_MAX_S}s"
    assert "active" not in c  # the default: no probes of the proxy's own
    assert a["passive"] == b["passive"] == c["passive"]  # passive checks everywhere
    assert [r.to_json().get("health_interval") for r in t.routes] == [2, 30, None]


def test_on_a_swarm_it_is_a_warning_and_the_gateways_do_not_probe():
    text = ("services:\n  app:\n    image: notes:2\n    x-luma:\n      hosts: notes.test\n      port: 8080\n"
            "      health_interval: 5\n")
    found = stack.problems(parse("compose.yaml", text)[0])
    assert [(p.line, p.rule) for p in found if "health_interval" in p.message] == [(7, stack.WARNING_RULE)]
    labels = {**contract.route_labels("notes", "app", ["notes.test"], 8080, "/up"), INTERVAL: "5",
              contract.STACK_NAMESPACE_LABEL: "notes"}
    route = services.route_of(ServiceRecord(id="s1", name="notes_app", labels=labels, created="2026-01-01T00:00:00Z"))
    assert route is not None and route.health_interval == 0


@needs_caddy
def test_real_caddy_without_health_interval_keeps_a_container_whose_health_path_fails(caddy):
    ups = [Upstream("a1"), Upstream("a2")]
    try:
        t = build_table([rec("a", "web", ["a.test"], "127.0.0.1", ups[0].port, 1),
                         rec("a", "web", ["a.test"], "127.0.0.1", ups[1].port, 2)])
        port = caddy(caddy_config.build_config(t, tls="off"))
        ups[1].healthy = False  # only its /up fails: nobody probes it, it answers requests
        served = lambda: {b for _, b in (get(port, "a.test") for _ in range(40))}  # noqa: E731
        assert eventually(served, {"a1", "a2"}) == {"a1", "a2"}
        assert ups[1].paths["/up"] == 0  # and the proxy never asked for its health path
    finally:
        for u in ups:
            u.close()
