"""Issue 18, single-host trust: wildcards vs exact hosts, durable ownership after ``docker rm -f``,
DNS names compared as Docker's resolver does, foreign containers on ``P_luma``, objects that
vanish between list and inspect. Pure route table, Caddy config, controller on the fake engine."""

from __future__ import annotations

import dataclasses

import pytest

from luma_compose import contract
from luma_compose.engine import state
from luma_compose.engine.docker_engine import DockerEngine
from luma_compose.engine.client import Endpoint
from luma_compose.proxy import caddy_config
from luma_compose.proxy.controller import Controller
from luma_compose.routing.neighbours import answers_to, dns_name
from luma_compose.routing.claims import covers
from luma_compose.routing.containers import build_table
from luma_compose.records import (
    COMPOSE_PROJECT_LABEL,
    COMPOSE_SERVICE_LABEL,
    ContainerRecord,
    NetworkAttachment,
    NetworkRecord,
)
from support.fake_engine import FakeEngine
from support.records import routed

T = "2026-06-01T00:00:00Z"


def plain(name: str, networks: dict[str, tuple[str, ...]], labels: dict[str, str] | None = None,
          hostname: str = "", cid: str = "") -> ContainerRecord:
    return ContainerRecord(id=cid or f"{name}-0123456789abcdef", name=name, labels=dict(labels or {}), created=T,
                           hostname=hostname,
                           networks={n: NetworkAttachment("10.7.0.9", a) for n, a in networks.items()})


def compose_made(project: str, service: str, name: str, networks: dict[str, tuple[str, ...]]) -> ContainerRecord:
    return plain(name, networks, {COMPOSE_PROJECT_LABEL: project, COMPOSE_SERVICE_LABEL: service})


# ---------------------------------------------------------------- item 2: wildcards

def test_covers_is_one_label_like_caddys_host_matcher():
    assert covers("*.example.test", "app.example.test")
    assert not covers("*.example.test", "a.b.example.test")
    assert not covers("*.example.test", "example.test")
    assert not covers("*.example.test", "*.example.test")
    assert not covers("app.example.test", "app.example.test")


@pytest.mark.parametrize("evil_hosts", [
    ("*.example.test", "evil.example.test"),  # one wildcard and one exact host (the reported attack)
    ("*.example.test",),  # wildcards only
    ("evil.example.test", "*.example.test", "*.other.test"),
])
def test_a_wildcard_never_takes_a_host_another_project_names(evil_hosts):
    victim = routed("victim", "web", hosts=("app.example.test",))
    evil = routed("evil", "web", hosts=evil_hosts)
    t = build_table([evil, victim])
    assert t.host_map()["app.example.test"] == "victim/web"
    (c,) = [c for c in t.conflicts if c.kind == "wildcard"]
    assert (c.key, c.winner, c.loser) == ("app.example.test", "victim/web", "evil/web")
    assert "wins over a wildcard" in c.message
    routes = caddy_config.build_config(t, tls="off")["apps"]["http"]["servers"]["luma"]["routes"]
    matched = [(r.get("@id"), r["match"][0]["host"]) for r in routes if r.get("match")]
    first_wild = next(i for i, (_, hs) in enumerate(matched) if any(h.startswith("*") for h in hs))
    assert all(not h.startswith("*") for _, hs in matched[:first_wild] for h in hs)
    assert all(h.startswith("*") for _, hs in matched[first_wild:] for h in hs)  # every host named exactly first
    assert ("luma-route:victim/web", ["app.example.test"]) in matched[:first_wild]


def test_a_wildcard_does_not_take_the_host_of_a_held_owner():
    evil = routed("evil", "web", hosts=("*.example.test", "evil.example.test"))
    networks = [NetworkRecord(contract.ingress_network(p), labels={COMPOSE_PROJECT_LABEL: p,
                                                                    contract.NETWORK_OWNER_LABEL: "true"}, created=T)
                for p in ("victim", "evil")]
    t = build_table([evil], {"app.example.test": "victim/web"}, networks)
    (held,) = [r for r in t.routes if r.held]
    assert held.hosts == ("app.example.test",) and held.upstreams == ()
    assert [(c.kind, c.key, c.winner) for c in t.conflicts] == [("wildcard", "app.example.test", "victim/web")]
    routes = caddy_config.build_config(t, tls="off")["apps"]["http"]["servers"]["luma"]["routes"]
    ids = [r.get("@id") for r in routes if r.get("match")]
    assert ids.index("luma-route:victim/web") < ids.index("luma-route:evil/web#wildcard")


def test_wildcard_against_wildcard_one_owner_for_the_same_one_none_for_different_ones():
    a = routed("a", "web", hosts=("*.x.test",), created="2026-01-01T00:00:00Z")
    b = routed("b", "web", hosts=("*.x.test", "*.b.x.test"), created="2026-02-01T00:00:00Z")
    t = build_table([b, a])
    assert t.host_map() == {"*.x.test": "a/web", "*.b.x.test": "b/web"}  # one label each: no overlap
    assert [(c.kind, c.key, c.winner) for c in t.conflicts] == [("host", "*.x.test", "a/web")]


def test_a_projects_own_wildcard_and_exact_hosts_are_no_conflict_and_split_ids_are_read_back():
    t = build_table([routed("a", "web", hosts=("*.a.test", "www.a.test"))])
    assert not t.conflicts
    cfg = caddy_config.build_config(t, tls="off")
    assert caddy_config.served_hosts(cfg) == {"www.a.test": "a/web", "*.a.test": "a/web"}
    assert caddy_config.served_upstreams(cfg) == {"a/web": ["tcp4/a-web-1.:3000"]}


# ---------------------------------------------------------------- item 4: names as the resolver sees them

def test_dns_name_ignores_case_and_a_trailing_dot():
    assert dns_name("VICTIM-Web-1.") == dns_name("victim-web-1") == "victim-web-1"


SPELLINGS = ["VICTIM-WEB-1", "Victim-Web-1", "victim-web-1.", "VICTIM-web-1."]


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("how", ["alias", "name", "hostname"])
@pytest.mark.parametrize("where", ["victim_luma", "evil_luma"])
def test_every_spelling_of_a_dialled_name_is_shadowing(spelling, how, where):
    victim = routed("victim", "web", hosts=("v.test",))
    evil = routed("evil", "web", hosts=("e.test",))
    if how == "alias":
        shadow = plain("intruder", {where: (spelling,)})
    elif how == "name":
        shadow = plain(spelling, {where: ()})
    else:
        shadow = plain("intruder", {where: ()}, hostname=spelling)
    t = build_table([victim, evil, shadow])
    by = {r.key: r for r in t.routes}
    if where == "victim_luma":
        assert by["victim/web"].upstreams == () and "answers to victim-web-1" in by["victim/web"].withheld
    else:
        assert t.refused_networks == ("evil_luma",) and "evil_luma" not in t.networks()
        assert by["victim/web"].upstreams == ("victim-web-1:3000",)
    assert any("answers to victim-web-1" in p for p in t.problems), t.problems


def test_a_short_id_that_spells_a_dialled_name_is_shadowing():
    victim = routed("abcdef", "web", hosts=("v.test",), name="abcdef012345")
    shadow = plain("x", {"abcdef_luma": ()}, cid="ABCDEF012345" + "0" * 52)
    t = build_table([victim, shadow])
    assert t.routes[0].upstreams == ()


def test_inspect_data_without_dnsnames_still_gives_every_name():
    attrs = {"Id": "f" * 64, "Name": "/Intruder", "Config": {"Hostname": "VICTIM-WEB-1", "Labels": {}},
             "State": {"Status": "running"},
             "NetworkSettings": {"Networks": {"victim_luma": {"Aliases": ["Victim-Web."], "IPAddress": "10.0.0.9"}}}}
    rec = state.container_record(attrs)
    assert answers_to(rec, "victim_luma") == {"intruder", "f" * 12, "victim-web-1", "victim-web"}


# ---------------------------------------------------------------- item 6: foreign containers on P_luma

@pytest.mark.parametrize("foreign", [
    compose_made("evil", "web", "evil-web-1", {"victim_luma": ("web", "evil-web-1")}),  # external network
    plain("debug", {"victim_luma": ()}),  # docker run --network victim_luma
    compose_made("evil", "proxy", "evil-proxy-1", {"victim_luma": ()}),  # a compose service posing as a proxy
])
def test_a_foreign_container_on_the_ingress_network_withholds_the_project_and_is_named(foreign):
    if foreign.compose_project == "evil" and foreign.compose_service == "proxy":
        foreign = dataclasses.replace(foreign, labels={**foreign.labels, contract.PROXY_LABEL: "true"})
    victim = routed("victim", "web", hosts=("v.test",))
    other = routed("other", "web", hosts=("o.test",))
    t = build_table([victim, other], bystanders=[foreign])
    by = {r.key: r for r in t.routes}
    assert by["victim/web"].upstreams == () and foreign.name in by["victim/web"].withheld
    assert by["other/web"].upstreams == ("other-web-1:3000",)
    (p,) = [p for p in t.problems if "not victim's" in p]
    assert foreign.name in p and (foreign.compose_project or "not made by Compose") in p


def test_the_projects_own_unrouted_containers_and_the_proxy_are_not_foreign():
    victim = routed("victim", "web", hosts=("v.test",))
    worker = compose_made("victim", "worker", "victim-worker-1", {"victim_luma": ("worker",)})
    proxy = plain("lumaproxy", {"victim_luma": ()}, {contract.PROXY_LABEL: "true"})
    t = build_table([victim], bystanders=[worker, proxy])
    assert t.routes[0].upstreams == ("victim-web-1:3000",) and not t.problems


# ---------------------------------------------------------------- item 3: docker rm -f is not down

def _proxy_with(e: FakeEngine) -> Controller:
    ctl = Controller(e, "px")
    ctl.up(image="caddy:test", tls="off")
    return ctl


def _project_networks(e: FakeEngine, p: str, default: bool = True) -> None:
    e.add_network(f"{p}_luma", {contract.NETWORK_OWNER_LABEL: "true", COMPOSE_PROJECT_LABEL: p})
    if default:
        e.add_network(f"{p}_default", {COMPOSE_PROJECT_LABEL: p})


def test_an_owner_whose_container_was_removed_by_hand_keeps_its_host_and_network():
    e = FakeEngine()
    ctl = _proxy_with(e)
    _project_networks(e, "victim")
    _project_networks(e, "rival")
    web = e.add(routed("victim", "web", hosts=("app.test",), created="2026-02-01T00:00:00Z"))
    ctl.sync()
    e.add(routed("rival", "web", hosts=("app.test",), created="2026-01-01T00:00:00Z"))
    ctl.sync()
    e.remove(web.id)  # docker rm -f victim-web-1: victim_default is still there
    res = Controller(e, "px").sync()
    assert res.table.host_map()["app.test"] == "victim/web"
    (held,) = [r for r in res.table.routes if r.project == "victim"]
    assert held.held and held.upstreams == ()
    assert "victim_luma" in e.nets and res.removed_networks == []
    # its redeploy: the owner again, never refused
    e.add(routed("victim", "web", 2, hosts=("app.test",), created="2026-03-01T00:00:00Z"))
    again = Controller(e, "px").sync()
    assert again.table.host_map()["app.test"] == "victim/web"
    assert {r.key: r.upstreams for r in again.table.routes}["victim/web"] == ("victim-web-2:3000",)


def test_an_owner_brought_down_gives_its_host_up_and_loses_its_network():
    e = FakeEngine()
    ctl = _proxy_with(e)
    _project_networks(e, "victim")
    _project_networks(e, "rival")
    web = e.add(routed("victim", "web", hosts=("app.test",), created="2026-02-01T00:00:00Z"))
    ctl.sync()
    e.add(routed("rival", "web", hosts=("app.test",), created="2026-01-01T00:00:00Z"))
    ctl.sync()
    # docker compose down: containers, then every network but victim_luma (the proxy is on it)
    e.remove(web.id)
    del e.nets["victim_default"]
    res = Controller(e, "px").sync()
    assert res.table.host_map()["app.test"] == "rival/web"
    assert res.removed_networks == ["victim_luma"]


# ---------------------------------------------------------------- item 10: vanishing networks

class _NotFound(Exception):
    pass


class _FlakyApi:
    """docker-py's low-level API: lists three networks; n2 is removed before the containers are listed
    (the engine then lists no container on it; no network is inspected)."""

    def networks(self, filters=None):
        return [{"Id": n, "Name": f"net-{n}", "Labels": {}, "Created": T} for n in ("n1", "n2", "n3")]

    def inspect_network(self, nid):  # pragma: no cover - must not be needed
        from docker.errors import NotFound

        raise NotFound(f"network {nid} not found")

    def containers(self, all=False, filters=None):
        rows = []
        for n in filters["network"]:
            if n != "n2":
                rows.append({"Id": f"c-{n}", "NetworkSettings": {"Networks": {
                    f"net-{n}": {"NetworkID": n, "EndpointID": "e"}}}})
        return rows


class _Client:
    api = _FlakyApi()


def test_a_network_removed_between_list_and_inspect_is_not_an_error():
    eng = DockerEngine(Endpoint("unix:///nowhere"), client=_Client())
    nets = {n.name: n.containers for n in eng.networks(["luma.ingress=true"])}
    assert nets == {"net-n1": ("c-n1",), "net-n2": (), "net-n3": ("c-n3",)}
