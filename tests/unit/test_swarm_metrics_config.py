"""Metrics on a swarm (luma_compose/swarm/metrics.py): the CLI's refusals, the allow list against what a
task's connection can come from, the edge's metrics listener (the single host's, from the same builder),
the settings kept on the edge service, and the engine's reading of the address ranges. The e2e test
(tests/e2e/test_swarm_metrics.py) proves the same on a real 2-node swarm with a real Prometheus."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.fake_swarm import FakeSwarm  # noqa: E402

from luma_compose import contract  # noqa: E402
from luma_compose.cli.main import main  # noqa: E402
from luma_compose.engine import swarm_state  # noqa: E402
from luma_compose.errors import UsageError  # noqa: E402
from luma_compose.proxy import observe  # noqa: E402
from luma_compose.records import Publish, ServiceUpdate  # noqa: E402
from luma_compose.swarm import metrics as sm  # noqa: E402
from luma_compose.swarm import proxy as swarm_proxy  # noqa: E402
from luma_compose.swarm import routes  # noqa: E402
from luma_compose.swarm import watch as swarm_watch  # noqa: E402

NO_ENGINE = "unix:///nonexistent/luma-compose-test.sock"
PROM = sm.EdgeMetrics(9180, ("203.0.113.7/32",))


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(swarm_proxy.time, "sleep", lambda s: None)
    monkeypatch.setattr(swarm_watch.time, "sleep", lambda s: None)


def cli(*args: str):
    return CliRunner().invoke(main, ["-H", NO_ENGINE, *args])


# ---------------------------------------------------------------- the CLI's refusals (no engine reached)

@pytest.mark.parametrize("args, says", [
    (["--metrics", "9180"], "needs --metrics-allow"),
    (["--metrics-allow", "203.0.113.7/32"], "goes with --metrics PORT"),
    (["--metrics", "off", "--metrics-allow", "203.0.113.7/32"], "not --metrics off"),
    (["--metrics", "127.0.0.1:9180", "--metrics-allow", "203.0.113.7/32"], "port number"),
    (["--metrics", "9180", "--metrics-allow", "203.0.113.7/33"], "is not an address or a CIDR"),
    (["--metrics", "9180", "--metrics-allow", "prometheus.lan"], "is not an address or a CIDR"),
    (["--metrics", "9180", "--metrics-allow", ","], "is empty"),
])
def test_proxy_up_swarm_refuses_metrics_it_cannot_keep_to_the_allowed_addresses(args, says):
    r = cli("proxy", "up", "--swarm", *args)
    assert r.exit_code == 2, r.output
    assert says in r.output, r.output


def test_metrics_allow_is_a_swarm_option():
    r = cli("proxy", "up", "--metrics", "9180", "--metrics-allow", "203.0.113.7/32")
    assert r.exit_code == 2 and "--metrics-allow" in r.output and "--swarm" in r.output, r.output


def test_settings_from_the_options():
    assert sm.settings(None, False, None) is None  # left out: the running proxy's
    assert sm.settings(None, True, None) == sm.EdgeMetrics()
    assert sm.settings(9180, False, "203.0.113.7, 2001:db8::/32,198.51.100.9/24") == sm.EdgeMetrics(
        9180, ("198.51.100.0/24", "2001:db8::/32", "203.0.113.7/32"))


# ---------------------------------------------------------------- the allow list against the swarm's ranges

RANGES = {"overlay network shop_luma": ("10.210.3.0/24",), "the swarm's default address pool": ("10.210.0.0/16",),
          "docker_gwbridge (the manager's)": ("172.18.0.0/16",), "node n2's address": ("192.168.1.12/32",)}


@pytest.mark.parametrize("allow, what", [
    ("10.0.0.0/8", "overlay network shop_luma"),             # contains an overlay
    ("10.210.77.5", "default address pool"),                 # inside the pool a new overlay is cut from
    ("172.16.0.0/12", "docker_gwbridge"),                    # a task's own node's port
    ("192.168.1.0/24", "node n2's address"),                 # a task's connection to another node (masqueraded)
    ("0.0.0.0/0", "docker_gwbridge"),                        # everyone
])
def test_an_allow_list_a_task_could_pass_is_refused_naming_the_range(allow, what):
    m = sm.settings(9180, False, allow)
    with pytest.raises(UsageError) as e:
        sm.check(m, (80,), RANGES)
    assert what in str(e.value) and "--metrics-allow" in e.value.hint


def test_an_allow_list_outside_every_range_is_taken_and_ipv6_never_overlaps_ipv4():
    sm.check(sm.settings(9180, False, "192.168.1.100/32,2001:db8::/32"), (80,), RANGES)
    with pytest.raises(UsageError, match="publish that port"):
        sm.check(sm.EdgeMetrics(8080, PROM.allow), (8080, 443), RANGES)


# ---------------------------------------------------------------- the edge's listener

def table(fake: FakeSwarm):
    p = swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None)
    return p.served("caddy:test")  # the watch joins the overlay first (else the route is withheld)


def test_the_edge_serves_the_single_hosts_listener_with_the_swarms_ranges_refused_even_if_allowed():
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    t = table(fake)
    cfg = sm.apply(routes.edge_config(t, 80, "px"), t, "px", PROM, RANGES)
    http = cfg["apps"]["http"]
    assert http["metrics"] == {"per_host": True}
    server = http["servers"][observe.METRICS_SERVER]
    deny = sorted({c for cs in RANGES.values() for c in cs})
    text = server["routes"][2]["handle"][0]["body"]
    # the very builder one host uses, with the swarm's ranges refused first
    assert server == observe.metrics_server(text, PROM.allow, deny)
    forbidden = server["routes"][0]
    assert forbidden["match"] == [{"not": [{"remote_ip": {"ranges": sorted({*observe.LOOPBACK_RANGES, *PROM.allow})}}]},
                                  {"remote_ip": {"ranges": deny}}]
    assert forbidden["handle"][0]["status_code"] == 403
    assert server["listen"] == [f":{sm.TARGET_PORT}"]
    # the edge dials the project's gateway: that is the upstream luma_upstream_info maps to the project
    assert 'luma_route_info{host="shop.test",project="shop",service="web"} 1' in text
    assert 'luma_upstream_info{upstream="px-gw-shop:8080",project="shop",service="web"} 1' in text
    assert 'luma_route_upstreams{project="shop",service="web"} 1' in text


def test_a_withheld_route_dials_nothing_and_off_changes_nothing():
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    t = table(fake)
    import dataclasses

    held = dataclasses.replace(t, routes=tuple(dataclasses.replace(r, withheld="an impostor") for r in t.routes))
    assert sm.edge_routes(held, "px")[0].upstreams == ()
    cfg = routes.edge_config(t, 80, "px")
    assert sm.apply(json.loads(json.dumps(cfg)), t, "px", sm.EdgeMetrics(), RANGES) == cfg


# ---------------------------------------------------------------- the settings on the edge service

def up(fake: FakeSwarm, metrics=None) -> swarm_proxy.SwarmProxy:
    p = swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None)
    p.up("caddy:test", 8080, metrics=metrics)
    return p


def edge_config(fake: FakeSwarm) -> dict:
    name = fake.services_["px-config"].configs[routes.EDGE_CONFIG_TARGET]
    return json.loads(fake.config_data[name])


def test_up_publishes_the_listener_in_host_mode_and_sync_keeps_it_from_the_labels():
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    up(fake, PROM)
    spec = fake.specs["px"]
    assert Publish(sm.TARGET_PORT, 9180, "tcp", "host") in spec.publish
    assert spec.labels[contract.PROXY_METRICS_LABEL] == "9180"
    assert spec.labels[contract.SWARM_METRICS_ALLOW_LABEL] == "203.0.113.7/32"
    assert observe.METRICS_SERVER in edge_config(fake)["apps"]["http"]["servers"]
    # a new overlay appears: the next sync refuses it too, from the settings kept on the edge
    fake.ranges["overlay network late_luma"] = ("10.99.0.0/24",)
    fake.add_stack_service("late", "web", "late.test")
    swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None).sync()
    server = edge_config(fake)["apps"]["http"]["servers"][observe.METRICS_SERVER]
    assert "10.99.0.0/24" in server["routes"][0]["match"][1]["remote_ip"]["ranges"]
    assert 'host="late.test"' in server["routes"][2]["handle"][0]["body"]
    # up without --metrics keeps it
    up(fake)
    assert sm.of(fake.services_["px"]) == PROM


def test_up_with_an_overlapping_allow_list_changes_nothing():
    fake = FakeSwarm()
    with pytest.raises(UsageError, match="docker_gwbridge"):
        up(fake, sm.EdgeMetrics(9180, ("172.18.5.0/24",)))
    assert fake.mutations() == []


def test_metrics_off_and_a_new_allow_list_on_a_running_proxy():
    fake = FakeSwarm()
    up(fake, PROM)
    fake.calls.clear()
    up(fake, sm.EdgeMetrics(9180, ("198.51.100.0/24",)))
    assert sm.of(fake.services_["px"]).allow == ("198.51.100.0/24",)
    assert sm.change(PROM, sm.EdgeMetrics(9180, ("198.51.100.0/24",))).publish_add == ()  # a label only
    up(fake, sm.EdgeMetrics())
    assert sm.of(fake.services_["px"]) == sm.EdgeMetrics()
    assert contract.PROXY_METRICS_LABEL not in fake.services_["px"].labels
    assert observe.METRICS_SERVER not in edge_config(fake)["apps"]["http"]["servers"]
    assert sm.change(PROM, sm.EdgeMetrics()) == ServiceUpdate(
        label_rm=(contract.PROXY_METRICS_LABEL, contract.SWARM_METRICS_ALLOW_LABEL), publish_rm=(sm.TARGET_PORT,))


# ---------------------------------------------------------------- the engine's side (pure)

def test_update_argv_adds_and_removes_published_ports_and_labels():
    argv = swarm_state.update_argv("px", ServiceUpdate(label_rm=("a",), publish_rm=(9180,),
                                                       publish_add=(Publish(9180, 9191),)))
    assert argv == ["service", "update", "--detach", "--label-rm", "a", "--publish-rm", "9180",
                    "--publish-add", "mode=host,target=9180,published=9191,protocol=tcp", "px"]


def test_address_ranges_from_the_inspect_data():
    overlays = [{"Name": "ingress", "IPAM": {"Config": [{"Subnet": "10.210.0.0/24", "Gateway": "10.210.0.1"}]}},
                {"Name": "shop_luma", "IPAM": {"Config": [{"Subnet": "10.210.3.0/24"}]}}, {"Name": "x", "IPAM": None}]
    gw = {"Name": "docker_gwbridge", "IPAM": {"Config": [{"Subnet": "172.18.0.0/16"}]}}
    nodes = [{"ID": "a", "Status": {"Addr": "192.168.1.11"}, "Description": {"Hostname": "n1"}},
             {"ID": "b", "Status": {"Addr": "0.0.0.0"}}]
    got = swarm_state.address_ranges(overlays, gw, {"DefaultAddrPool": ["10.210.0.0/16"]}, nodes)
    assert got == {"overlay network ingress": ("10.210.0.0/24",), "overlay network shop_luma": ("10.210.3.0/24",),
                   "docker_gwbridge (the manager's)": ("172.18.0.0/16",),
                   "the swarm's default address pool": ("10.210.0.0/16",), "node n1's address": ("192.168.1.11/32",)}
    assert swarm_state.address_ranges([], None, None, []) == {}
