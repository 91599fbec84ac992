"""Issue 12.5: ``deploy --dry-run`` on a fake engine: what it reports, that it changes nothing, its exit codes.

tests/e2e/test_remote_engine.py runs the real CLI against a real engine."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema

from luma_compose import contract
from luma_compose.deploy.plan import EXIT_CHANGES_PENDING
from luma_compose.deploy.progress import Progress
from luma_compose.deploy.rollout import Deployer, ProxyOptions
from support.fake_engine import FakeEngine, FakeProject, FakeService

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "deploy-plan.schema.json").read_text())
WEB = contract.RoutedService("web", ("mail.test", "www.mail.test"), 3000, "/up")


def deployer(e: FakeEngine, routed=(WEB,)) -> Deployer:
    return Deployer(e, "gmail", "/srv/gmail", "services: {}\n", list(routed),
                    ProxyOptions(name="px", image="caddy:test", tls="off"), timeout=5, drain=0,
                    progress=Progress(io.StringIO()), sleep=lambda s: None)


def world() -> FakeEngine:
    e = FakeEngine()
    e.projects["gmail"] = FakeProject({"web": FakeService(2, "h1", routed=WEB), "db": FakeService(1, "d1")})
    return e


def changes(e: FakeEngine) -> list[tuple]:
    return [c for c in e.calls if c[0] != "compose" or c[1] != "config"]


def test_first_deploy_plan_creates_everything_and_starts_the_proxy():
    e = world()
    plan = deployer(e).dry_run()
    assert changes(e) == []  # nothing but `docker compose config` ran
    assert plan.proxy_action == "start"
    assert {p.service: p.action for p, _ in plan.services} == {"web": "create", "db": "create"}
    assert [(h.host, h.change) for h in plan.hosts] == [("mail.test", "add"), ("www.mail.test", "add")]
    assert plan.exit_code() == EXIT_CHANGES_PENDING
    doc = plan.to_json()
    jsonschema.validate(doc, SCHEMA)
    assert doc["changes"] and doc["ok"]
    assert plan.text().splitlines()[0] == "engine: fake://engine"


def test_nothing_to_do_after_a_deploy_exits_0():
    e = world()
    deployer(e).deploy()
    e.calls.clear()
    plan = deployer(e).dry_run()
    assert changes(e) == []
    assert plan.proxy_action == "keep"
    assert {p.service: p.action for p, _ in plan.services} == {"web": "keep", "db": "keep"}
    assert {h.change for h in plan.hosts} == {"keep"}
    assert plan.exit_code() == 0 and "nothing to do (exit 0)" in plan.text()


def test_changed_config_rolls_and_a_host_moves_or_goes():
    e = world()
    deployer(e).deploy()
    api = contract.RoutedService("api", ("www.mail.test",), 3000, "/up")
    web2 = contract.RoutedService("web", ("mail.test", "new.mail.test"), 3000, "/up")
    e.projects["gmail"] = FakeProject({"web": FakeService(2, "h2", routed=web2), "api": FakeService(1, "a1", routed=api),
                                       "db": FakeService(1, "d1")})
    plan = deployer(e, routed=(web2, api)).dry_run()
    acts = {p.service: (p.action, p.why) for p, _ in plan.services}
    assert acts["web"] == ("roll", "configuration changed") and acts["api"][0] == "create" and acts["db"][0] == "keep"
    assert {h.host: (h.change, h.previous, h.service) for h in plan.hosts} == {
        "mail.test": ("keep", "web", "web"), "new.mail.test": ("add", "", "web"), "www.mail.test": ("move", "web", "api")}
    assert plan.exit_code() == EXIT_CHANGES_PENDING
    text = plan.text()
    assert "~ service web [routed]: roll 2 -> 2 replica(s) without downtime (configuration changed)" in text
    assert "~ host www.mail.test: web -> api" in text
    jsonschema.validate(plan.to_json(), SCHEMA)


def test_a_host_claimed_by_another_project_is_a_problem_exit_1():
    e = world()
    deployer(e).deploy()
    e.projects["other"] = FakeProject({"web": FakeService(1, "o1", routed=WEB)})
    plan = Deployer(e, "other", "/srv/other", "services: {}\n", [WEB], ProxyOptions(name="px")).dry_run()
    assert plan.conflicts and plan.exit_code() == 1
    assert "deploy would refuse" in plan.text()
    assert plan.to_json()["ok"] is False
