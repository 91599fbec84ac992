"""Route table: validation, pools, generations, conflicts. Pure, no Docker."""

from __future__ import annotations


import pytest

from luma_compose import contract
from luma_compose.proxy.route_table import build_table
from luma_compose.records import COMPOSE_PROJECT_LABEL, ContainerRecord, NetworkAttachment
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
    assert sorted(r.upstreams) == ["10.1.0.2:3000", "10.1.0.3:3000"]
    assert t.networks() == {"gmail_luma"}
    assert not t.conflicts and not t.problems


def test_only_running_managed_containers_count():
    stopped = rec("a", "web", state="exited")
    unmanaged = rec("b", "web", labels={contract.LABEL_MANAGED: "false"})
    assert build_table([stopped, unmanaged]).routes == ()


@pytest.mark.parametrize(
    "labels, fragment",
    [
        ({contract.LABEL_TARGET: "b-web:3000"}, "luma.target"),
        ({contract.LABEL_NETWORK: "b_luma"}, "luma.network"),
        ({contract.LABEL_PORT: "http"}, "luma.port"),
        ({contract.LABEL_HOSTS: ""}, "luma.hosts"),
        ({contract.LABEL_HEALTH_PATH: "up"}, "luma.health.path"),
        ({COMPOSE_PROJECT_LABEL: "evil"}, "compose project evil"),
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
    assert r.upstreams == ("10.0.1.2:3000",)
    reasons = {m.name: m.reason for m in r.members}
    assert "no alias a-web" in reasons["a-web-2"]
    assert "not attached to a_luma" in reasons["a-web-3"]


def test_unhealthy_and_starting_containers_leave_the_pool_but_keep_the_route():
    ok = rec("a", "web", n=1, health="healthy", ip="10.0.2.2")
    bad = rec("a", "web", n=2, health="unhealthy")
    starting = rec("a", "web", n=3, health="starting")
    r = build_table([ok, bad, starting]).routes[0]
    assert r.upstreams == ("10.0.2.2:3000",)
    only_bad = build_table([bad]).routes[0]
    assert only_bad.upstreams == () and only_bad.hosts == ("x.test",)


def test_newest_generation_replaces_older_only_once_all_of_it_is_ready():
    old = [rec("a", "web", n=i, config_hash="old", created="2026-01-01T00:00:00Z", ip=f"10.0.3.{i}") for i in (1, 2)]
    new_ready = rec("a", "web", n=3, config_hash="new", created="2026-01-02T00:00:00Z", health="healthy", ip="10.0.3.3")
    new_starting = rec("a", "web", n=4, config_hash="new", created="2026-01-02T00:00:01Z", health="starting")
    mixed = build_table(old + [new_ready, new_starting]).routes[0]
    assert sorted(mixed.upstreams) == ["10.0.3.1:3000", "10.0.3.2:3000", "10.0.3.3:3000"]
    new_done = rec("a", "web", n=4, config_hash="new", created="2026-01-02T00:00:01Z", health="healthy", ip="10.0.3.4")
    done = build_table(old + [new_ready, new_done]).routes[0]
    assert sorted(done.upstreams) == ["10.0.3.3:3000", "10.0.3.4:3000"]
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
    assert j["routes"][0]["upstreams"] == ["10.0.4.2:3000"]
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
