"""deploy's pure parts: plans, claims, replicas, hashes, messages. No Docker."""

from __future__ import annotations

import pytest

from luma_compose.deploy.plan import (
    RoutedService,
    failure_report,
    format_step,
    grace_seconds,
    live_urls,
    owned_elsewhere,
    parse_hashes,
    plan_service,
    replicas_of,
)
from luma_compose.errors import UsageError
from luma_compose.routing.containers import build_table
from luma_compose.records import ContainerRecord
from support.records import routed as routed_record
from support.records import plain


def c(cid: str, gen: str = "h1", state: str = "running", name: str = "", image: str = "") -> ContainerRecord:
    return plain(cid, config_hash=gen, state=state, name=name, image=image)


def test_plan_creates_when_nothing_runs_and_removes_stopped_leftovers():
    p = plan_service("web", 2, "h1", "", [c("1", state="exited")])
    assert (p.action, p.leftovers) == ("create", ("1",))


def test_plan_rolls_on_a_new_config_hash_replacing_every_running_container():
    p = plan_service("web", 2, "h2", "", [c("1"), c("2"), c("3", "h2")])
    assert p.action == "roll" and p.old == ("1", "2", "3") and "configuration" in p.why


def test_plan_rolls_when_the_tag_now_names_another_image():
    p = plan_service("web", 1, "h1", "sha256:new", [c("1", image="sha256:old")])
    assert p.action == "roll" and "image" in p.why
    assert plan_service("web", 1, "h1", "sha256:new", [c("1", image="sha256:new")]).action == "keep"


def test_plan_scales_or_keeps_an_up_to_date_service():
    assert plan_service("web", 3, "h1", "", [c("1"), c("2")]).action == "scale"
    assert plan_service("web", 2, "h1", "", [c("1"), c("2")]).action == "keep"


def test_draining_leftovers_of_an_interrupted_deploy_are_removed_not_counted():
    p = plan_service("web", 1, "h2", "", [c("1", name="p-web-1--luma-draining"), c("2", "h2")])
    assert (p.action, p.leftovers) == ("keep", ("1",))


def test_claims_name_the_project_that_holds_a_host_or_alias():
    """The one claim check (deploy's refusal on both targets) reads the route table the proxy serves."""
    mine = [RoutedService("web", ("Shop.test",), 3000, "/up"), RoutedService("b-c", ("x.test",), 3000, "/up")]
    running = [routed_record("other", "web", 1, hosts=("shop.test",)), routed_record("a-b", "c", 1, hosts=("y.test",)),
               routed_record("a", "web", 1, hosts=("z.test",))]
    got = owned_elsewhere("a", mine, build_table(running))
    assert got == [
        "host shop.test (service web) is already routed by project other (service web), which owns it while it is up",
        "target alias a-b-c (service b-c) is already used by project a-b (service c); the proxy could not tell them apart",
    ]


def test_own_containers_are_no_conflict():
    mine = [RoutedService("web", ("shop.test",), 3000, "/up")]
    assert owned_elsewhere("a", mine, build_table([routed_record("a", "web", 1, hosts=("shop.test",))])) == []


def test_replicas_and_hashes_from_compose_output():
    cfg = {"services": {"a": {"deploy": {"replicas": 3}}, "b": {"scale": 2}, "c": {}}}
    assert [replicas_of(cfg, s) for s in "abc"] == [3, 2, 1]
    with pytest.raises(UsageError):
        replicas_of({"services": {"a": {"deploy": {"replicas": "x"}}}}, "a")
    assert parse_hashes("web abc\nworker def\n\n") == {"web": "abc", "worker": "def"}


def test_grace_periods():
    assert [grace_seconds(v) for v in ("1m30s", "10s", "500ms", None, 3)] == [90, 10, 0, 10, 3]


def test_urls_and_messages():
    assert live_urls(["a.test"], "off", 8080, None) == ["http://a.test:8080/"]
    assert live_urls(["a.test"], "acme", 80, 443) == ["https://a.test/"]
    msg = failure_report("web", "p-web-3", "unhealthy", "GET /up: 500", "l1\n\nl2\n")
    assert "p-web-3" in msg and "GET /up: 500" in msg and "| l2" in msg
    assert "no log output" in failure_report("web", "x", "exited", "", "")
    line = format_step("Drain", 1.25, ok=False, fancy=False)
    assert line.startswith(" FAIL Drain") and line.endswith("1.2s") or line.endswith("1.3s")
