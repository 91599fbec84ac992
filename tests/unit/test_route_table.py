"""Route table: validation, pools, generations, conflicts. Pure, no Docker."""

from __future__ import annotations

import dataclasses

import pytest

from luma_compose import contract
from luma_compose.routing.containers import build_table
from luma_compose.records import (
    COMPOSE_PROJECT_LABEL,
    COMPOSE_SERVICE_LABEL,
    ContainerRecord,
    NetworkAttachment,
    NetworkRecord,
)
from support.records import routed


def rec(project: str, service: str, **kw) -> ContainerRecord:
    return routed(project, service, extra_networks={"other": NetworkAttachment("10.9.9.9")}, **kw)


def test_one_route_per_service_with_every_replica_in_its_pool():
    a1 = rec("gmail", "web", hosts=("mail.test", "MAIL2.test"), n=1, ip="10.1.0.2")
    a2 = rec("gmail", "web", hosts=("mail.test", "mail2.test"), n=2, ip="10.1.0.3")
    t = build_table([a2, a1])
    assert [r.key for r in t.routes] == ["gmail/web"]
    r = t.routes[0]
    assert r.hosts == ("mail.test", "mail2.test")  # lower-cased, label order kept
    assert r.target == "gmail-web:3000"
    assert r.network == "gmail_luma"
    assert sorted(r.upstreams) == ["gmail-web-1:3000", "gmail-web-2:3000"]  # dialled by name, not IP
    assert t.networks() == {"gmail_luma"}
    assert not t.conflicts and not t.problems


def test_only_managed_containers_count():
    unmanaged = rec("b", "web", labels={contract.LABEL_MANAGED: "false"})
    assert build_table([unmanaged]).routes == ()


@pytest.mark.parametrize(
    "labels, fragment",
    [
        ({contract.LABEL_TARGET: "b-web:3000"}, "luma.target"),
        ({contract.LABEL_NETWORK: "b_luma"}, "luma.network"),
        ({contract.LABEL_PORT: "http"}, "luma.port"),
        ({contract.LABEL_HOSTS: ""}, "luma.hosts"),
        ({contract.LABEL_HEALTH_PATH: "up"}, "luma.health.path"),
        ({COMPOSE_PROJECT_LABEL: "evil"}, "compose project evil"),
        ({COMPOSE_SERVICE_LABEL: "api"}, "service api"),
    ],
)
def test_labels_that_break_the_contract_are_reported_and_ignored(labels, fragment):
    t = build_table([rec("a", "web", labels=labels)])
    assert t.routes == ()
    assert len(t.problems) == 1
    assert fragment in t.problems[0] and "a-web-1" in t.problems[0]


def test_a_container_not_answering_to_the_alias_is_not_in_the_pool():
    good = rec("a", "web", n=1, ip="10.0.1.2")
    no_alias = rec("a", "web", n=2, aliases=("web",))
    wrong_net = rec("a", "web", n=3, network="a_default")
    r = build_table([good, no_alias, wrong_net]).routes[0]
    assert r.upstreams == ("a-web-1:3000",)
    reasons = {m.name: m.reason for m in r.members}
    assert "no alias a-web" in reasons["a-web-2"]
    assert "not attached to a_luma" in reasons["a-web-3"]


def test_unhealthy_and_starting_containers_leave_the_pool_but_keep_the_route():
    ok = rec("a", "web", n=1, health="healthy", ip="10.0.2.2")
    bad = rec("a", "web", n=2, health="unhealthy")
    starting = rec("a", "web", n=3, health="starting")
    r = build_table([ok, bad, starting]).routes[0]
    assert r.upstreams == ("a-web-1:3000",)
    # Nothing ready: the route stays and dials the others as standby (Caddy waits, then 503).
    only_bad = build_table([bad, starting]).routes[0]
    assert only_bad.upstreams == ("a-web-2:3000", "a-web-3:3000") and only_bad.hosts == ("x.test",)
    assert not any(m.in_pool for m in only_bad.members)


def test_newest_generation_replaces_older_only_once_all_of_it_is_ready():
    old = [rec("a", "web", n=i, config_hash="old", created="2026-01-01T00:00:00Z", ip=f"10.0.3.{i}") for i in (1, 2)]
    new_ready = rec("a", "web", n=3, config_hash="new", created="2026-01-02T00:00:00Z", health="healthy", ip="10.0.3.3")
    new_starting = rec("a", "web", n=4, config_hash="new", created="2026-01-02T00:00:01Z", health="starting")
    mixed = build_table(old + [new_ready, new_starting]).routes[0]
    assert sorted(mixed.upstreams) == ["a-web-1:3000", "a-web-2:3000", "a-web-3:3000"]
    new_done = rec("a", "web", n=4, config_hash="new", created="2026-01-02T00:00:01Z", health="healthy", ip="10.0.3.4")
    done = build_table(old + [new_ready, new_done]).routes[0]
    assert sorted(done.upstreams) == ["a-web-3:3000", "a-web-4:3000"]
    assert all("older generation" in m.reason for m in done.members if m.config_hash == "old")


def test_the_route_takes_hosts_from_the_generation_it_serves():
    old = rec("a", "web", n=1, config_hash="old", hosts=("old.test",), created="2026-01-01T00:00:00Z")
    new = rec("a", "web", n=2, config_hash="new", hosts=("new.test",), created="2026-01-02T00:00:00Z", health="starting")
    assert build_table([old, new]).routes[0].hosts == ("old.test",)
    new_ok = rec("a", "web", n=2, config_hash="new", hosts=("new.test",), created="2026-01-02T00:00:00Z", health="healthy")
    assert build_table([old, new_ok]).routes[0].hosts == ("new.test",)


def test_host_conflict_goes_to_the_older_route_whatever_the_input_order():
    first = rec("alpha", "web", hosts=("shared.test", "alpha.test"), created="2026-01-01T00:00:00.5Z")
    second = rec("beta", "web", hosts=("shared.test", "beta.test"), created="2026-01-01T00:00:00.25Z")
    # beta's container is older (0.25 s < 0.5 s), whatever the string order of the fractions.
    for order in ([first, second], [second, first]):
        t = build_table(order)
        assert t.host_map() == {"shared.test": "beta/web", "alpha.test": "alpha/web", "beta.test": "beta/web"}
        (c,) = t.conflicts
        assert (c.kind, c.key, c.winner, c.loser, c.why) == ("host", "shared.test", "beta/web", "alpha/web", "older")
        assert "shared.test" in c.message and "alpha/web" in c.message


def test_the_incumbent_keeps_a_host_even_after_its_containers_were_recreated():
    incumbent = rec("alpha", "web", hosts=("shared.test",), created="2026-03-01T00:00:00Z")  # redeployed: newer
    challenger = rec("beta", "web", hosts=("shared.test",), created="2026-02-01T00:00:00Z")
    t = build_table([incumbent, challenger], incumbents={"SHARED.test": "alpha/web"})
    assert t.host_map() == {"shared.test": "alpha/web"}
    assert t.conflicts[0].why == "incumbent"
    assert [r.key for r in t.routes] == ["alpha/web"]  # beta has no host left: no route at all


def test_target_alias_conflict_keeps_only_the_older_project():
    ab_c = rec("a-b", "c", hosts=("one.test",), created="2026-01-01T00:00:00Z")
    a_bc = rec("a", "b-c", hosts=("two.test",), created="2026-01-01T00:00:01Z")
    t = build_table([a_bc, ab_c])
    assert [r.key for r in t.routes] == ["a-b/c"]
    (c,) = t.conflicts
    assert (c.kind, c.key, c.winner, c.loser) == ("alias", "a-b-c", "a-b/c", "a/b-c")
    assert t.networks() == {"a-b_luma"}


def test_timestamps_with_offsets_and_nanoseconds_compare_as_times():
    utc = rec("p", "web", hosts=("t.test",), created="2026-01-01T10:00:00.000000001Z")
    plus_one = rec("q", "web", hosts=("t.test",), created="2026-01-01T10:30:00+01:00")  # 09:30 UTC: older
    assert build_table([utc, plus_one]).host_map() == {"t.test": "q/web"}


def test_json_shape():
    t = build_table([rec("a", "web", hosts=("a.test",), ip="10.0.4.2")])
    j = t.to_json()
    assert j["routes"][0]["target"] == "a-web:3000"
    assert j["routes"][0]["upstreams"] == ["a-web-1:3000"]
    assert j["routes"][0]["containers"][0]["in_pool"] is True
    assert j["conflicts"] == [] and j["problems"] == []


def test_json_output_matches_its_published_schema():
    import json
    import os

    import jsonschema

    from luma_compose.compose import schemas

    path = os.path.join(os.path.dirname(schemas.xluma_schema_path()), "routes-output.schema.json")
    with open(path) as fh:
        schema = json.load(fh)
    # a table with a route, a conflict and a contract problem
    t = build_table([rec("a", "web", hosts=("a.test",), ip="10.0.4.2", created="2026-01-01T00:00:00Z"),
                     rec("b", "web", hosts=("a.test",), ip="10.0.5.2", created="2026-01-02T00:00:00Z"),
                     rec("c", "web", hosts=("c.test",), ip="10.0.6.2", labels={"luma.target": "zzz:1"})])
    out = {"version": 1, **t.to_json()}
    assert out["routes"] and out["conflicts"] and out["problems"]
    jsonschema.validate(out, schema)
    with_proxy = {**out, "proxy": {"name": "p", "image": "caddy:2", "status": "running", "tls": "off",
                                   "ports": {"80/tcp": "*:8080"}, "in_sync": True}}
    jsonschema.validate(with_proxy, schema)


# --------------------------------------------------------------------------- issue 10: hijacking


@pytest.mark.parametrize("hosts", [
    "{http.request.host}",
    "mail.example.com{env.NOPE}",
    "${HOST}",
    "mail.example.com,{http.request.host}",
    "mail.example.com:8080",
    "https://mail.example.com",
    "mail example.com",
    "*",
    "mail.example.com/x",
])
def test_a_host_label_that_is_not_a_dns_name_routes_nothing(hosts):
    evil = rec("aaa", "web", labels={contract.LABEL_HOSTS: hosts})
    good = rec("gmail", "web", hosts=("mail.example.com",), created="2026-01-02T00:00:00Z")
    t = build_table([evil, good])
    assert t.host_map() == {"mail.example.com": "gmail/web"}
    assert len(t.problems) == 1 and "aaa-web-1" in t.problems[0] and "luma.hosts" in t.problems[0]
    assert not t.conflicts


@pytest.mark.parametrize("labels, fragment", [
    ({contract.LABEL_HEALTH_PATH: "/up{http.request.host}"}, "luma.health.path"),
    ({contract.LABEL_HEALTH_PATH: "/up?$x"}, "luma.health.path"),
    ({contract.LABEL_HEALTH_PATH: "/up x"}, "luma.health.path"),
    ({contract.LABEL_PORT: "0300"}, "luma.port"),
    ({contract.LABEL_PORT: "70000"}, "luma.port"),
])
def test_every_label_the_proxy_puts_into_caddy_is_strictly_validated(labels, fragment):
    t = build_table([rec("a", "web", labels=labels)])
    assert t.routes == () and fragment in t.problems[0]


def test_labels_with_a_placeholder_in_project_or_service_are_refused():
    lb = {contract.LABEL_PROJECT: "a{x}", COMPOSE_PROJECT_LABEL: "a{x}"}
    t = build_table([rec("a", "web", labels=lb)])
    assert t.routes == () and "luma.project" in t.problems[0]


def test_a_hand_started_container_with_copied_labels_is_reported_and_never_routed():
    gmail = [rec("gmail", "web", n=i, hosts=("mail.example.com",), health="healthy", config_hash="g",
                 created="2026-01-01T00:00:00Z") for i in (1, 2)]
    # docker run --label luma.*=<gmail's> --network gmail_luma --network-alias gmail-web --health-cmd true
    intruder = rec("gmail", "web", n=9, hosts=("mail.example.com",), health="healthy", config_hash="",
                   created="2026-06-01T00:00:00Z", compose=False)
    t = build_table([*gmail, intruder])
    (r,) = t.routes
    assert [m.name for m in r.members] == ["gmail-web-1", "gmail-web-2"]  # never in the pool
    # it sits on gmail_luma: gmail's route is withheld (503), never sent to it
    assert r.upstreams == () and "gmail-web-9 (not made by Compose)" in r.withheld
    assert len(t.problems) == 2 and any("gmail-web-9" in p and "Compose did not create it" in p for p in t.problems)


def test_a_container_of_another_compose_service_cannot_route_for_this_one():
    api_as_web = rec("gmail", "web", labels={COMPOSE_SERVICE_LABEL: "admin"})
    t = build_table([api_as_web])
    assert t.routes == () and "service admin" in t.problems[0]


NET_OLD = "2026-01-01T00:00:00Z"
NET_NEW = "2026-02-01T00:00:00Z"


def nets(**created: str) -> list[NetworkRecord]:
    return [NetworkRecord(contract.ingress_network(p), created=t,
                          labels={COMPOSE_PROJECT_LABEL: p, contract.NETWORK_OWNER_LABEL: "true"})
            for p, t in created.items()]


def test_ownership_survives_a_restart_of_the_owners_only_container():
    gmail = rec("gmail", "web", hosts=("mail.example.com",), created="2026-03-01T00:00:00Z")
    evil = rec("evil", "web", hosts=("mail.example.com",), created="2026-02-01T00:00:00Z")  # older container
    served = {"mail.example.com": "gmail/web"}
    networks = nets(gmail=NET_OLD, evil=NET_NEW)
    assert build_table([gmail, evil], served, networks).host_map() == {"mail.example.com": "gmail/web"}
    # docker restart / docker kill: gmail's container is not running for a while
    down = dataclasses.replace(gmail, state="exited", networks={"gmail_luma": NetworkAttachment("", ("gmail-web",))})
    t = build_table([down, evil], served, networks)
    assert t.host_map() == {"mail.example.com": "gmail/web"}
    (r,) = t.routes
    assert r.upstreams == ("gmail-web-1:3000",)  # standby: Caddy waits for it, never 404, never evil
    assert t.conflicts[0].winner == "gmail/web" and t.conflicts[0].why == "incumbent"


def test_ownership_after_the_served_config_is_lost_goes_to_the_older_ingress_network():
    # engine restart with a fresh proxy volume: no incumbents, and gmail's containers are the newer ones
    gmail = rec("gmail", "web", hosts=("mail.example.com",), created="2026-03-02T00:00:00Z")
    evil = rec("evil", "web", hosts=("mail.example.com",), created="2026-03-01T00:00:00Z")
    t = build_table([evil, gmail], {}, nets(gmail=NET_OLD, evil=NET_NEW))
    assert t.host_map() == {"mail.example.com": "gmail/web"}
    assert "ingress network is older" in t.conflicts[0].message


def test_a_live_project_without_containers_holds_its_hosts_until_down():
    evil = rec("evil", "web", hosts=("mail.example.com",))
    served = {"mail.example.com": "gmail/web"}
    # gmail's containers were removed (docker compose rm, deploy recreation), its network lives
    held = build_table([evil], served, nets(gmail=NET_OLD, evil=NET_NEW))
    assert held.host_map() == {"mail.example.com": "gmail/web"}
    (r,) = held.routes
    assert r.held and r.upstreams == () and held.networks() == frozenset()
    # gmail was brought down: its network is gone, evil may have the host now
    after_down = build_table([evil], served, nets(evil=NET_NEW))
    assert after_down.host_map() == {"mail.example.com": "evil/web"} and not after_down.conflicts


def test_a_deploy_of_the_owner_is_not_refused_after_its_containers_were_recreated():
    old = rec("gmail", "web", n=1, hosts=("mail.example.com",), config_hash="a", created="2026-01-01T00:00:00Z")
    new = rec("gmail", "web", n=2, hosts=("mail.example.com",), config_hash="b", created="2026-05-01T00:00:00Z",
              health="healthy")
    evil = rec("evil", "web", hosts=("mail.example.com",), created="2026-04-01T00:00:00Z")
    t = build_table([old, new, evil], {}, nets(gmail=NET_OLD, evil=NET_NEW))
    assert t.host_map() == {"mail.example.com": "gmail/web"}


def test_an_ip_change_changes_nothing_in_the_table():
    a = rec("gmail", "web", ip="10.5.0.2")
    b = dataclasses.replace(a, networks={"gmail_luma": NetworkAttachment("10.5.0.9", ("gmail-web", "web"))})
    assert build_table([a]).routes[0].upstreams == build_table([b]).routes[0].upstreams == ("gmail-web-1:3000",)


def test_a_swap_of_ips_between_two_services_never_crosses_them():
    web = rec("gmail", "web", hosts=("mail.test",), ip="10.6.0.2")
    api = rec("gmail", "api", hosts=("api.mail.test",), ip="10.6.0.3")
    swapped = [dataclasses.replace(web, networks={"gmail_luma": NetworkAttachment("10.6.0.3", ("gmail-web",))}),
               dataclasses.replace(api, networks={"gmail_luma": NetworkAttachment("10.6.0.2", ("gmail-api",))})]
    assert build_table([web, api]).to_json()["routes"] != []
    before = {r.key: r.upstreams for r in build_table([web, api]).routes}
    after = {r.key: r.upstreams for r in build_table(swapped).routes}
    assert before == after == {"gmail/api": ("gmail-api-1:3000",), "gmail/web": ("gmail-web-1:3000",)}


def _plain(name: str, networks: dict[str, tuple[str, ...]]) -> ContainerRecord:
    return ContainerRecord(id=f"{name}-id", name=name, labels={}, created=NET_NEW,
                           networks={n: NetworkAttachment("10.7.0.9", a) for n, a in networks.items()})


def test_a_container_that_answers_to_a_routed_name_on_another_ingress_network_keeps_the_proxy_out_of_it():
    gmail = rec("gmail", "web", hosts=("mail.test",))
    evil = rec("evil", "web", hosts=("evil.test",))
    shadow = _plain("evil-x", {"evil_luma": ("gmail-web-1",)})
    t = build_table([gmail, evil, shadow])
    assert t.networks() == {"gmail_luma"}
    assert t.refused_networks == ("evil_luma",)
    (r,) = [r for r in t.routes if r.key == "evil/web"]
    assert r.upstreams == ()
    assert any("evil-x answers to gmail-web-1 on evil_luma" in p for p in t.problems)


def test_a_container_that_answers_to_a_routed_name_on_the_victims_own_network_withholds_that_route():
    gmail = rec("gmail", "web", hosts=("mail.test",))
    shadow = _plain("intruder", {"gmail_luma": ("GMAIL-WEB-1",)})
    t = build_table([gmail, shadow])
    (r,) = t.routes
    assert r.upstreams == () and r.withheld and r.hosts == ("mail.test",)  # 503, never the intruder


def test_replicas_sharing_the_service_alias_are_not_shadowing():
    t = build_table([rec("a", "web", n=1), rec("a", "web", n=2)])
    assert not t.problems and t.networks() == {"a_luma"}


def test_bystanders_are_read_for_shadowing_only_and_never_routed():
    other_run = rec("other", "web", hosts=("other.test",))
    shadow = _plain("intruder", {"other_luma": ("gmail-web-1",)})
    t = build_table([rec("gmail", "web", hosts=("mail.test",))], bystanders=[other_run, shadow])
    assert [r.key for r in t.routes] == ["gmail/web"]
    assert t.refused_networks == ("other_luma",)
