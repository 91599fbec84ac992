"""The swarm proxy's decisions on a swarm in memory (tests/support/fake_swarm.py): which services it
creates, updates and removes, in which order, as specs and updates (records, no argv). The e2e tests
(tests/e2e/test_swarm.py) prove the same on a real 2-node swarm."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.fake_swarm import FakeSwarm  # noqa: E402

from luma_compose.engine.swarm import SwarmError  # noqa: E402
from luma_compose.errors import UsageError  # noqa: E402
from luma_compose.records import Mount, Publish  # noqa: E402
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
    import json

    name = fake.services_["px-config"].configs[routes.EDGE_CONFIG_TARGET]
    return json.loads(fake.config_data[name])


def service_ops(fake: FakeSwarm) -> list[tuple[str, str]]:
    """(verb, service name) of each service create/update/rm, in order."""
    verbs = {"create_service": "create", "update_service": "update", "remove_service": "rm"}
    return [(verbs[op], name) for op, name in fake.mutations() if op in verbs]


def served_hosts(fake: FakeSwarm, handler: str = "reverse_proxy") -> list[str]:
    """Hosts the edges send to a gateway (handler static_response: the hosts held at 404)."""
    server = edge_config(fake)["apps"]["http"]["servers"]["luma"]
    return sorted(h for r in server["routes"][:-1] for m in r["match"] for h in m["host"]
                  if r["handle"][-1]["handler"] == handler)


def test_up_creates_edge_config_server_and_a_gateway_per_project_none_with_the_socket():
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    up(fake)
    edge = fake.services_["px"]
    assert {fake.nets[n.target].name for n in edge.networks} == {"px_edge"}
    gw = fake.services_["px-gw-shop"]
    assert {fake.nets[n.target].name for n in gw.networks} == {"px_edge", "shop_luma"}
    assert served_hosts(fake) == ["shop.test"]
    for spec in fake.specs.values():
        assert spec.mounts == (), "no part mounts anything (no Docker socket)"
    # the key goes to the config server only
    assert any("key" in n for n in fake.specs["px-config"].secrets.values())
    assert fake.specs["px"].secrets == {} and not any("key" in n for n in fake.specs["px"].configs.values())


def test_a_project_added_then_removed_never_touches_the_edge_or_another_gateway():
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    p = up(fake)
    fake.calls.clear()
    fake.add_stack_service("blog", "web", "blog.test")
    assert p.sync().changed
    # the gateway exists before the edges are told to use it; the edge and shop's gateway are untouched
    assert service_ops(fake) == [("create", "px-gw-blog"), ("update", "px-config")]
    assert served_hosts(fake) == ["blog.test", "shop.test"]

    fake.calls.clear()
    fake.remove_stack("blog")
    assert p.sync().changed
    # the edges stop using the gateway before it goes
    assert service_ops(fake) == [("update", "px-config"), ("rm", "px-gw-blog")]
    assert served_hosts(fake) == ["shop.test"]
    # nothing changed: nothing is done
    fake.calls.clear()
    assert not p.sync().changed and not fake.mutations()


def test_an_impostor_on_the_edge_network_withholds_only_its_victim():
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    fake.add_stack_service("blog", "web", "blog.test")
    p = up(fake)
    edge = next(i for i, n in fake.nets.items() if n.name == "px_edge")
    fake.add_service("evil_decoy", {"com.docker.stack.namespace": "evil"}, "x", [(edge, ["px-gw-shop", "decoy"])])
    res = p.sync()
    assert served_hosts(fake) == ["blog.test"]
    assert any("evil_decoy answers to px-gw-shop" in c for c in res.table.messages)
    assert "px-gw-shop" not in fake.services_, "the victim's gateway is not kept either"


def test_tls_needs_shared_storage_and_publishes_https(monkeypatch):
    fake = FakeSwarm()
    with pytest.raises(UsageError):  # the user's option: exit 2, as on one host
        up(fake, tls=routes.EdgeTLS("acme", 8443))
    assert fake.calls == [], "refused before any change"
    up(fake, tls=routes.EdgeTLS("acme", 8443, acme_root=True), storage="/srv/shared", acme_root_pem="PEM")
    spec = fake.specs["px"]
    assert spec.mounts == (Mount("bind", "/srv/shared", "/data"),)
    assert Publish(8443, 8443, "tcp", "host") in spec.publish and Publish(8443, 8443, "udp", "host") in spec.publish
    assert edge_config(fake)["storage"] == {"module": "file_system", "root": "/data/caddy"}
    # the settings live on the edge: a sync builds the same TLS config; another up with others refuses
    p = swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None)
    assert not p.sync().changed
    with pytest.raises(SwarmError):
        p.up("caddy:test", 8080, tls=routes.EdgeTLS("internal", 8443), storage="/srv/shared")


def test_proxy_install_swarm_writes_a_unit_that_runs_proxy_run_swarm(tmp_path):
    import subprocess

    from luma_compose.proxy import service_unit

    cli = [sys.executable, "-m", "luma_compose.cli"]
    p = subprocess.run([*cli, "proxy", "install", "--swarm", "--name", "px", "--unit-dir", str(tmp_path),
                        "--no-enable"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    unit = tmp_path / "luma-swarm-proxy-run-px.service"
    argv = service_unit.exec_start(unit.read_text())
    assert argv[-5:] == ["proxy", "run", "--swarm", "--name", "px"]
    # what the unit runs is a real command of this CLI (its --help answers)
    h = subprocess.run([*cli, *argv[-5:], "--help"], capture_output=True, text=True, timeout=60)
    assert h.returncode == 0 and "polls a manager" in " ".join(h.stdout.split()), h.stderr
    # the single host's unit is unchanged by the swarm variant
    assert service_unit.exec_start(service_unit.unit_text(["lc"], "px"))[1:] == ["proxy", "run", "--name", "px"]


def test_the_watch_joins_every_routed_overlay_and_a_plain_container_there_withholds_its_project():
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    fake.add_stack_service("blog", "web", "blog.test")
    p = up(fake)
    assert set(fake.containers["px-watch"].endpoints) == {"shop_luma", "blog_luma"}
    # no socket, no mount: run_container takes none; it sleeps
    assert fake.runs["px-watch"]["entrypoint"] == "sleep"
    assert served_hosts(fake) == ["blog.test", "shop.test"]
    # `docker run --network shop_luma --network-alias shop-web` on another node
    fake.plain["shop_luma"] = ["sneaky"]
    res = p.sync()
    assert served_hosts(fake) == ["blog.test"] and served_hosts(fake, "static_response") == ["shop.test"]
    assert any("container sneaky" in c and "10.0.0.2" in c and "routes of shop are withheld" in c
               for c in res.table.messages), res.table.messages
    fake.plain.clear()
    assert p.sync().table.messages == [] and served_hosts(fake) == ["blog.test", "shop.test"]
    # a project gone: the watch leaves its overlay (so the overlay can be removed)
    fake.remove_stack("blog")
    p.sync()
    assert set(fake.containers["px-watch"].endpoints) == {"shop_luma"}


def test_an_overlay_the_watch_cannot_see_into_is_not_trusted():
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    p = up(fake)
    fake.remove_container("px-watch")
    # a read-only look (swarm routes) does not recreate it, and says what it cannot see
    t = p.served()
    assert not t.serving and any("cannot see who is attached to shop_luma" in c for c in t.messages)
    # a sync brings it back
    assert p.sync().table.messages == [] and served_hosts(fake) == ["shop.test"]
    assert "shop_luma" in fake.containers["px-watch"].endpoints


def test_sync_recreates_a_missing_config_server_and_a_lost_key():
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    p = up(fake)
    fake.remove_service("px-config")
    fake.calls.clear()
    res = p.sync()
    assert res.changed and ("create", "px-config") in service_ops(fake)
    assert served_hosts(fake) == ["shop.test"]
    assert not p.sync().changed, "converged: the next sync does nothing"
    # the key's secret gone too: a new pair, and the edges pin the new certificate
    fake.remove_service("px-config")
    for s in fake.secrets():
        fake.remove_secret(s)
    p.sync()
    key = next(iter(fake.secrets()))
    cert = key.removesuffix("-key")
    assert fake.services_["px"].configs[routes.CONTROL_CERT_TARGET] == cert
    assert fake.services_["px-config"].configs[routes.CONTROL_CERT_TARGET] == cert
    assert not p.sync().changed


def _sysctls(fake: FakeSwarm, name: str) -> dict:
    return dict(fake.services_[name].sysctls)


@pytest.mark.parametrize("kernel, want", [("6.1.0-18-amd64", {"net.ipv4.tcp_migrate_req": "1"}),
                                          ("5.10.0-28-amd64", {})])
def test_edges_and_gateways_hand_waiting_connections_over_across_config_loads(kernel, want):
    """Every config load binds a new listening socket and closes the old one: with tcp_migrate_req
    the connections waiting on the old one move to the new one instead of being reset. A kernel
    without the setting is never asked for it (the task would not start)."""
    fake = FakeSwarm()
    fake.kernel = kernel
    fake.add_stack_service("shop", "web", "shop.test")
    up(fake)
    assert _sysctls(fake, "px") == want
    assert _sysctls(fake, "px-gw-shop") == want


def test_an_edge_created_without_the_setting_gets_it_from_the_next_up():
    fake = FakeSwarm()
    fake.kernel = "4.19.0"
    fake.add_stack_service("shop", "web", "shop.test")
    up(fake)
    assert _sysctls(fake, "px") == {}
    fake.kernel = "6.1.0"
    fake.calls.clear()
    up(fake)
    assert _sysctls(fake, "px") == {"net.ipv4.tcp_migrate_req": "1"}
    fake.calls.clear()
    up(fake)  # and then nothing changes
    assert ("update", "px") not in service_ops(fake)


@pytest.mark.parametrize("kw", [{"nodes": "somewhere"}, {"nodes": "label=edge"},
                                {"tls": routes.EdgeTLS("internal", 8443), "storage": "not a volume!"}])
def test_a_bad_option_through_the_python_api_is_a_usage_error_before_any_change(kw):
    fake = FakeSwarm()
    with pytest.raises(UsageError):
        up(fake, **kw)
    assert not [c for c in fake.mutations() if c[0] in ("create_service", "update_service")]
