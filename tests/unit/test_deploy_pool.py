"""The pool during a deploy, derived from Docker state only (routes.build_table). Pure, no Docker.

A rollout goes through these states; every sync, from any process, must give the same pool:
old only -> old + new starting (old only routed) -> new verified, old renamed draining
(new only routed) -> old removed.
"""

from __future__ import annotations

import dataclasses

from luma_compose.routing.containers import build_table
from luma_compose.records import CONFIG_HASH_LABEL, ContainerRecord, draining_name, is_draining
from support.records import routed

T_OLD = "2026-01-01T00:00:00Z"
T_NEW = "2026-01-02T00:00:00Z"


def rec(n: int, *, gen: str, created: str, health: str | None = None, image: str = "", name: str = "",
        state: str = "running") -> ContainerRecord:
    return routed("p", "web", n, hosts=("p.test",), config_hash=gen, created=created, health=health, image=image,
                  name=name or None, state=state, cid=f"id{n}", ip=f"10.0.0.{n}")


def pool(*cs: ContainerRecord) -> list[str]:
    """The pool as container numbers (each container is dialled by its name)."""
    (route,) = build_table(cs).routes
    return sorted(f"10.0.0.{u.split(':')[0].split('--')[0].rsplit('-', 1)[1]}:3000" for u in route.upstreams)


def drained(c: ContainerRecord) -> ContainerRecord:
    return dataclasses.replace(c, name=draining_name(c.name))


OLD = [rec(1, gen="a", created=T_OLD), rec(2, gen="a", created=T_OLD)]
NEW = [rec(3, gen="b", created=T_NEW), rec(4, gen="b", created=T_NEW)]


def test_new_containers_without_a_health_check_are_not_routed_beside_the_old_ones():
    assert pool(*OLD, *NEW) == ["10.0.0.1:3000", "10.0.0.2:3000"]
    (route,) = build_table([*OLD, *NEW]).routes
    reasons = {m.name: m.reason for m in route.members}
    assert "not verified" in reasons["p-web-3"]


def test_once_deploy_marks_the_old_ones_draining_only_the_new_ones_are_routed():
    assert pool(*map(drained, OLD), *NEW) == ["10.0.0.3:3000", "10.0.0.4:3000"]
    # the input order never matters
    assert pool(NEW[1], drained(OLD[0]), NEW[0], drained(OLD[1])) == ["10.0.0.3:3000", "10.0.0.4:3000"]


def test_draining_containers_serve_only_when_nothing_else_can():
    assert pool(*map(drained, OLD)) == ["10.0.0.1:3000", "10.0.0.2:3000"]
    starting = [dataclasses.replace(c, health="starting") for c in NEW]
    assert pool(*map(drained, OLD), *starting) == ["10.0.0.1:3000", "10.0.0.2:3000"]


def test_a_docker_health_check_verifies_the_new_generation_by_itself():
    new_healthy = [dataclasses.replace(c, health="healthy") for c in NEW]
    assert pool(*OLD, *new_healthy) == ["10.0.0.3:3000", "10.0.0.4:3000"]
    half = [new_healthy[0], dataclasses.replace(NEW[1], health="starting")]
    assert pool(*OLD, *half) == ["10.0.0.1:3000", "10.0.0.2:3000", "10.0.0.3:3000"]


def test_a_rebuilt_image_under_the_same_tag_is_a_new_generation():
    old = [dataclasses.replace(c, image="sha256:old") for c in OLD]
    new = [dataclasses.replace(c, labels={**c.labels, CONFIG_HASH_LABEL: "a"}) for c in NEW]
    new = [dataclasses.replace(c, image="sha256:new") for c in new]
    assert pool(*old, *new) == ["10.0.0.1:3000", "10.0.0.2:3000"]
    assert pool(*map(drained, old), *new) == ["10.0.0.3:3000", "10.0.0.4:3000"]


def test_a_single_generation_is_routed_as_soon_as_it_runs():
    assert pool(*NEW) == ["10.0.0.3:3000", "10.0.0.4:3000"]


def test_draining_names():
    assert draining_name("p-web-1") == "p-web-1--luma-draining"
    assert draining_name(draining_name("p-web-1")) == "p-web-1--luma-draining"
    assert is_draining("p-web-1--luma-draining") and not is_draining("p-web-1")


def test_dial_addresses_are_container_names_and_draining_ones_keep_their_new_name():
    (route,) = build_table([*map(drained, OLD)]).routes
    assert sorted(route.upstreams) == ["p-web-1--luma-draining:3000", "p-web-2--luma-draining:3000"]


def test_a_stopped_container_of_an_old_generation_never_blocks_or_joins_the_new_one():
    stopped_old = dataclasses.replace(OLD[0], state="exited")
    new_healthy = [dataclasses.replace(c, health="healthy") for c in NEW]
    assert pool(stopped_old, *new_healthy) == ["10.0.0.3:3000", "10.0.0.4:3000"]
    (route,) = build_table([stopped_old, *new_healthy]).routes
    assert {m.name: m.in_pool for m in route.members}["p-web-1"] is False


def test_while_the_only_replica_restarts_it_stays_the_upstream():
    restarting = dataclasses.replace(NEW[0], state="restarting")
    (route,) = build_table([restarting]).routes
    assert route.upstreams == ("p-web-3:3000",)
    assert not route.members[0].in_pool and "not running (restarting)" in route.members[0].reason


def test_draining_containers_that_stopped_are_no_standby():
    stopped = dataclasses.replace(drained(OLD[0]), state="exited")
    (route,) = build_table([stopped, *NEW]).routes
    assert sorted(route.upstreams) == ["p-web-3:3000", "p-web-4:3000"]
