"""deploy --swarm and down --swarm on the swarm in memory (tests/support/fake_swarm.py): what they wait
for, what they refuse, what they remove. The e2e tests (tests/e2e/test_swarm.py) prove it on a real swarm."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.fake_swarm import FakeSwarm  # noqa: E402

from luma_compose import contract  # noqa: E402
from luma_compose.errors import SwarmError  # noqa: E402
from luma_compose.swarm import converge, deploy as sd  # noqa: E402
from luma_compose.swarm import proxy as swarm_proxy  # noqa: E402
from luma_compose.swarm import watch as swarm_watch  # noqa: E402

WEB = [contract.RoutedService("web", ("shop.test",), 3000, "/up")]


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    for mod in (swarm_proxy, swarm_watch, converge, sd):
        monkeypatch.setattr(mod.time, "sleep", lambda s: None)


def _set(fake: FakeSwarm, name: str, **changes) -> None:
    fake.services_[name] = dataclasses.replace(fake.services_[name], **changes)


def test_deploy_starts_the_proxy_and_names_the_urls():
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    res = sd.deploy(fake, "shop", "services: {}\n", WEB, proxy_name="px", proxy_http_port=8080, log=lambda s: None)
    assert fake.stacks == {"shop": "services: {}\n"} and "px" in fake.services_
    assert res.urls == ["http://shop.test:8080/"]


def test_deploy_refuses_a_host_another_project_owns_before_any_change():
    fake = FakeSwarm()
    fake.add_stack_service("blog", "web", "shop.test")
    swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None).up("caddy:test", 8080)
    fake.calls.clear()
    with pytest.raises(SwarmError, match="refusing to deploy, nothing changed: host shop.test"):
        sd.deploy(fake, "shop", "x", WEB, proxy_name="px", log=lambda s: None)
    assert fake.calls == []


@pytest.mark.parametrize("state, updated, raises", [
    ("rollback_completed", True, sd.RolledBack),  # our update failed: Swarm rolled it back
    ("rollback_completed", False, None),  # an old rollback, not ours
    ("paused", True, SwarmError),
    ("completed", True, None),
])
def test_wait_stack_reports_swarms_outcome(state, updated, raises):
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    before = {"shop_web": fake.services_["shop_web"].version}
    _set(fake, "shop_web", update_state=state, update_message="task unhealthy",
         version=fake.services_["shop_web"].version + (1 if updated else 0))
    if raises is None:
        sd.wait_stack(fake, "shop", before, timeout=5)
    else:
        with pytest.raises(raises, match="shop_web"):
            sd.wait_stack(fake, "shop", before, timeout=5)


def test_a_service_short_of_its_replicas_is_waited_for():
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    _set(fake, "shop_web", replicas=2)  # the fake runs one task per service
    with pytest.raises(SwarmError, match="did not converge within 0s: shop_web starting"):
        sd.wait_stack(fake, "shop", {}, timeout=0.0001)


@pytest.mark.parametrize("state", ["rollback_completed", "paused", "rollback_paused"])
def test_wait_converged_refuses_a_failed_rollout(state):
    fake = FakeSwarm()
    fake.add_service("px-config", {})
    _set(fake, "px-config", update_state=state, update_message="no")
    with pytest.raises(SwarmError, match="px-config"):
        converge.wait_converged(fake, "px-config", timeout=5)


def test_wait_converged_waits_for_our_update_to_start():
    fake = FakeSwarm()
    fake.add_service("px-config", {})
    _set(fake, "px-config", update_started=None)  # never updated: our update has not started yet
    with pytest.raises(SwarmError, match="did not converge"):
        converge.wait_converged(fake, "px-config", timeout=0.0001, previous=None)
    converge.wait_converged(fake, "px-config", timeout=5, previous="an earlier update")


def test_down_removes_the_stack_unroutes_it_and_removes_its_networks():
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    fake.add_stack_service("blog", "web", "blog.test")
    swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None).up("caddy:test", 8080)
    assert "px-gw-shop" in fake.services_
    sd.down(fake, "shop", "px", log=lambda s: None)
    assert "shop_web" not in fake.services_ and "px-gw-shop" not in fake.services_
    assert "shop_luma" not in {n.name for n in fake.nets.values()}
    assert "blog_web" in fake.services_ and "px-gw-blog" in fake.services_


def test_dry_run_names_what_deploy_would_create_update_and_remove_and_changes_nothing():
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    fake.add_stack_service("shop", "old", "old.shop.test")
    swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None).up("caddy:test", 8080)
    fake.calls.clear()
    plan = sd.dry_run(fake, "shop", ["web", "worker"], WEB, proxy_name="px")
    assert (plan.create, plan.update, plan.remove) == (["shop_worker"], ["shop_web"], ["shop_old"])
    assert plan.conflicts == [] and plan.urls == ["http://shop.test:8080/"] and plan.exit_code == 4
    assert "remove shop_old" in plan.text() and fake.calls == []


def test_dry_run_refuses_what_deploy_refuses_from_the_served_table():
    fake = FakeSwarm()
    fake.add_stack_service("blog", "web", "shop.test")
    swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None).up("caddy:test", 8080)
    fake.calls.clear()
    plan = sd.dry_run(fake, "shop", ["web"], WEB, proxy_name="px")
    assert plan.exit_code == 1 and any("shop.test" in c for c in plan.conflicts), plan.conflicts
    assert "deploy would refuse" in plan.text() and fake.calls == []
    with pytest.raises(SwarmError, match="refusing to deploy"):  # the same refusal as deploy's own
        sd.deploy(fake, "shop", "x", WEB, proxy_name="px", log=lambda s: None)


def test_dry_run_of_a_first_deploy_says_the_proxy_would_be_created():
    fake = FakeSwarm()
    plan = sd.dry_run(fake, "shop", ["web"], WEB, proxy_name="px")
    assert plan.create == ["shop_web"] and "would be created" in plan.proxy and plan.urls == []
    assert plan.exit_code == 4 and fake.calls == []
