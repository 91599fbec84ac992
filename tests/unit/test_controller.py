"""The proxy controller's decisions on a fake engine (tests/support/fake_engine.py), in milliseconds.

The e2e tests (tests/e2e/test_proxy.py) prove the same against a real engine and Caddy."""

from __future__ import annotations

import pytest

from luma_compose import contract
from luma_compose.errors import LumaError
from luma_compose.proxy import caddy_config
from luma_compose.proxy.container import BOOTSTRAP_PATH, Settings
from luma_compose.proxy.controller import Controller, proxy_spec
from luma_compose.records import COMPOSE_PROJECT_LABEL
from support.fake_engine import FakeEngine
from support.records import routed


def up(engine: FakeEngine, **kw) -> Controller:
    ctl = Controller(engine, "px")
    ctl.up(image="caddy:test", **kw)
    return ctl


def test_up_creates_the_proxy_as_specified_and_boots_caddy_with_the_bootstrap_config():
    e = FakeEngine()
    ctl = up(e, http_port="127.0.0.1:8080", tls="off")
    c = e.container("px")
    assert c.state == "running" and c.image_ref == "caddy:test"
    assert c.ports == {"80/tcp": ("127.0.0.1", 8080)}  # tls off: no HTTPS port at all
    assert c.volumes == ("px-data",) and "px-data" in e.volumes
    assert Settings.of(c.labels) == Settings(tls="off", http="127.0.0.1:8080")
    assert (c.id, BOOTSTRAP_PATH) in e.files
    # the spec is data: what up asked the engine for
    spec = proxy_spec("px", "caddy:test", Settings(tls="acme", http="80", https="0"), "v")
    # --resume: after a restart Caddy serves its last config at once; the config lives on the volume
    assert spec.command == ("caddy", "run", "--config", BOOTSTRAP_PATH, "--resume")
    assert spec.environment["XDG_CONFIG_HOME"].startswith("/data/")
    # HTTP/3: the HTTPS address is published over UDP too (issue 12.4)
    assert spec.ports == {"80/tcp": ("", 80), "443/tcp": ("", 0), "443/udp": ("", 0)} and spec.volumes == {"v": "/data"}
    assert ctl.proxy.name == "px"


def test_up_keeps_an_unchanged_proxy_and_recreates_a_changed_one_keeping_its_volume_and_settings():
    e = FakeEngine()
    up(e, http_port="8080", tls="internal", email="a@b.c")
    first = e.container("px").id
    up(e)  # nothing given: everything kept
    assert e.container("px").id == first
    up(e, tls="off")
    c = e.container("px")
    assert c.id != first and c.volumes == ("px-data",)
    assert Settings.of(c.labels) == Settings(tls="off", email="a@b.c", http="8080", https="443")


def test_sync_attaches_to_each_ingress_network_and_loads_the_config_once():
    e = FakeEngine()
    ctl = up(e, tls="off")
    e.add_network("gmail_luma", {contract.NETWORK_OWNER_LABEL: "true", COMPOSE_PROJECT_LABEL: "gmail"})
    e.add(routed("gmail", "web", hosts=("mail.test",)))
    res = ctl.sync()
    assert res.changed and res.connected == ["gmail_luma"]
    assert caddy_config.served_hosts(e.loaded[e.container("px").id]) == {"mail.test": "gmail/web"}
    e.calls.clear()
    again = Controller(e, "px").sync()  # a new process: reads the loaded config from Caddy, loads nothing
    assert not again.changed and e.calls == []


def test_sync_detaches_and_removes_the_network_of_a_project_that_is_gone():
    e = FakeEngine()
    ctl = up(e, tls="off")
    e.add_network("gmail_luma", {contract.NETWORK_OWNER_LABEL: "true", COMPOSE_PROJECT_LABEL: "gmail"})
    web = e.add(routed("gmail", "web", hosts=("mail.test",)))
    ctl.sync()
    e.remove(web.id)
    res = ctl.sync()
    assert res.disconnected == ["gmail_luma"] and res.removed_networks == ["gmail_luma"]
    assert "gmail_luma" not in e.nets
    assert caddy_config.served_hosts(e.loaded[e.container("px").id]) == {}


def test_a_stopped_container_keeps_its_route_and_the_proxy_on_its_network():
    e = FakeEngine()
    ctl = up(e, tls="off")
    e.add_network("gmail_luma", {contract.NETWORK_OWNER_LABEL: "true", COMPOSE_PROJECT_LABEL: "gmail"})
    web = e.add(routed("gmail", "web", hosts=("mail.test",)))
    ctl.sync()
    e.stop(web.id)
    res = ctl.sync()
    assert res.disconnected == [] and res.removed_networks == []
    (route,) = res.table.routes
    assert route.upstreams == (f"{web.name}:3000",)  # standby: Caddy waits for it to come back
    assert caddy_config.served_hosts(e.loaded[e.container("px").id]) == {"mail.test": "gmail/web"}


def test_the_route_already_served_keeps_a_contested_host():
    e = FakeEngine()
    ctl = up(e, tls="off")
    for p in ("gmail", "evil"):
        e.add_network(f"{p}_luma", {contract.NETWORK_OWNER_LABEL: "true"})
    e.add(routed("gmail", "web", hosts=("mail.test",), created="2026-02-01T00:00:00Z"))
    ctl.sync()
    e.add(routed("evil", "web", hosts=("mail.test",), created="2026-01-01T00:00:00Z"))  # older, but not served
    res = Controller(e, "px").sync()
    assert [(c.key, c.winner) for c in res.table.conflicts] == [("mail.test", "gmail/web")]
    assert caddy_config.served_hosts(e.loaded[e.container("px").id]) == {"mail.test": "gmail/web"}


def test_select_limits_the_proxy_to_its_own_containers():
    e = FakeEngine()
    ctl = up(e, tls="off", select="team=a")
    for p in ("a", "b"):
        e.add_network(f"{p}_luma")
    e.add(routed("a", "web", hosts=("a.test",), labels={"team": "a"}))
    e.add(routed("b", "web", hosts=("b.test",)))
    assert [r.key for r in ctl.sync().table.routes] == ["a/web"]


def test_sync_needs_a_running_proxy():
    e = FakeEngine()
    with pytest.raises(LumaError, match="does not exist"):
        Controller(e, "px").sync()


def test_status_reports_drift_until_synced():
    e = FakeEngine()
    ctl = up(e, tls="off")
    e.add_network("gmail_luma")
    e.add(routed("gmail", "web", hosts=("mail.test",)))
    assert not ctl.status().in_sync
    ctl.sync()
    st = Controller(e, "px").status()
    assert st.in_sync and st.endpoint == "fake://engine" and st.ports["80/tcp"] == "*:80"


def test_a_failed_up_leaves_the_running_proxy_serving_unchanged():
    e = FakeEngine()
    up(e, http_port="8080", tls="off")
    before = e.container("px")
    e.taken_ports.add(9090)  # another process holds it
    with pytest.raises(LumaError, match="serving again"):
        Controller(e, "px").up(image="caddy:test", http_port="9090")
    after = e.container("px")
    assert after.id == before.id and after.state == "running" and after.name == "px"
    assert Settings.of(after.labels).http == "8080"
    assert [c.name for c in e.records.values()] == ["px"]  # the attempt left nothing behind


def test_a_failed_first_up_leaves_no_container_and_no_volume():
    e = FakeEngine()
    e.taken_ports.add(9090)
    with pytest.raises(LumaError):
        Controller(e, "px").up(image="caddy:test", http_port="9090", tls="off")
    assert e.records == {} and e.volumes == set()


def test_a_proxy_of_the_old_layout_is_replaced():
    e = FakeEngine()
    up(e, tls="off")
    old = e.container("px")
    e._set(old, labels={k: v for k, v in old.labels.items() if k != "luma.proxy.layout"})
    up(e)
    assert e.container("px").id != old.id


def test_a_hand_started_container_and_a_dns_shadow_are_reported_by_sync():
    e = FakeEngine()
    ctl = up(e, tls="off")
    for p in ("gmail", "evil"):
        e.add_network(f"{p}_luma", {contract.NETWORK_OWNER_LABEL: "true", COMPOSE_PROJECT_LABEL: p})
    web = e.add(routed("gmail", "web", hosts=("mail.test",)))
    e.add(routed("gmail", "web", 9, hosts=("mail.test",), compose=False, health="healthy",
                 created="2026-06-01T00:00:00Z"))
    e.add(routed("evil", "web", hosts=("evil.test",)))
    from luma_compose.records import ContainerRecord, NetworkAttachment

    e.add(ContainerRecord("shadow-id", "shadow", {}, "2026-06-01T00:00:00Z",
                          networks={"evil_luma": NetworkAttachment("10.0.9.9", (web.name,))}))
    res = ctl.sync()
    # the hand-started one never joins the pool; being on gmail_luma, it withholds gmail (item 6)
    assert {r.key: r.upstreams for r in res.table.routes} == {"gmail/web": (), "evil/web": ()}
    assert any("gmail-web-9" in p and "Compose did not create it" in p for p in res.table.problems)
    assert any("gmail_luma has container(s) that are not gmail's: gmail-web-9 (not made by Compose)" in p
               for p in res.table.problems), res.table.problems
    assert any("shadow answers to gmail-web-1" in p for p in res.table.problems)
    assert "evil_luma" not in e.container("px").networks


def test_the_https_redirect_names_the_published_port():
    e = FakeEngine()
    ctl = up(e, tls="internal", http_port="8080", https_port="8443")
    e.add_network("gmail_luma", {contract.NETWORK_OWNER_LABEL: "true", COMPOSE_PROJECT_LABEL: "gmail"})
    e.add(routed("gmail", "web", hosts=("mail.test",)))
    ctl.sync()
    cfg = e.loaded[e.container("px").id]
    redirect = cfg["apps"]["http"]["servers"]["luma_http"]["routes"][0]["handle"][0]
    assert redirect["headers"]["Location"] == ["https://{http.request.host}:8443{http.request.uri}"]
