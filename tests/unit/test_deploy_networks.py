"""Issue 19 item 2 on the fake engine: deploy's network step (P_luma from our own range, adopted by
Compose; out of Docker's pools: the fix named and nothing left behind). The e2e proof on a real engine
with the stock pools is tests/e2e/test_address_pools.py."""

from __future__ import annotations

import inspect
import io

import pytest

from luma_compose import contract
from luma_compose.deploy import networks, subnets
from luma_compose.deploy.progress import Progress
from luma_compose.deploy.rollout import Deployer, ProxyOptions
from luma_compose.engine.docker_engine import DockerEngine, SubnetTaken
from luma_compose.errors import LumaError
from luma_compose.records import COMPOSE_PROJECT_LABEL
from support.fake_engine import FakeEngine, FakeProject, FakeService

def web(project: str) -> contract.RoutedService:
    return contract.RoutedService("web", (f"{project}.test",), 3000, "/up")


def deployer(e: FakeEngine, project: str = "gmail", pool: str | None = None) -> Deployer:
    return Deployer(e, project, "/srv/" + project, "services: {}\n", [web(project)],
                    ProxyOptions(name="px", image="caddy:test", tls="off"), timeout=5, drain=0,
                    progress=Progress(io.StringIO()), sleep=lambda s: None,
                    ingress_pool=subnets.parse_pool(pool) if pool else None)


def world(*projects: str) -> FakeEngine:
    e = FakeEngine()
    for p in projects or ("gmail",):
        e.projects[p] = FakeProject({"web": FakeService(1, routed=web(p)), "db": FakeService(1, "d1")})
    return e


def owned(e: FakeEngine, project: str) -> tuple[set[str], set[str]]:
    mine = [f"{COMPOSE_PROJECT_LABEL}={project}"]
    return {c.name for c in e.containers(mine, all=True)}, set(e.network_subnets(mine))


@pytest.mark.parametrize("method", ["network_subnets", "create_network", "address_pools", "network", "networks",
                                    "remove_network", "containers", "remove"])
def test_the_fake_engine_has_the_real_engines_signature_for_every_method_the_network_step_uses(method):
    assert inspect.signature(getattr(FakeEngine, method)) == inspect.signature(getattr(DockerEngine, method))


def test_a_first_deploy_creates_p_luma_on_our_range_with_the_labels_compose_adopts_before_up():
    e = world()
    deployer(e).deploy()
    name = contract.ingress_network("gmail")
    assert e.network_subnets()[name] == ("172.16.0.0/26",)
    assert e.nets[name].labels == {contract.NETWORK_OWNER_LABEL: "true", "com.docker.compose.network": "luma",
                                   COMPOSE_PROJECT_LABEL: "gmail", "com.docker.compose.version": "2.40.3"}
    assert e.calls.index(("create network", name, "172.16.0.0/26")) < e.calls.index(("compose", "up", "-d",
                                                                                        "--remove-orphans"))


def test_projects_get_distinct_subnets_and_skip_whatever_the_engine_holds_in_the_range():
    e = world("a", "b", "c")
    e.add_network("someone-elses", {}, "172.16.0.64/26")
    for p in ("a", "b", "c"):
        deployer(e, p).deploy()
    assert [e.network_subnets()[contract.ingress_network(p)] for p in "abc"] == [
        ("172.16.0.0/26",), ("172.16.0.128/26",), ("172.16.0.192/26",)]


def test_a_subnet_another_deploy_took_meanwhile_is_skipped_for_the_next():
    e = world()
    e.hidden_subnets = ["172.16.0.0/25"]  # created after our list, before our create: the engine refuses
    deployer(e).deploy()
    assert e.network_subnets()[contract.ingress_network("gmail")] == ("172.16.0.128/26",)


def test_the_pool_option_decides_range_and_size():
    e = world()
    deployer(e, pool="base=10.77.0.0/24,size=28").deploy()
    assert e.network_subnets()[contract.ingress_network("gmail")] == ("10.77.0.0/28",)


def test_an_existing_ingress_network_is_left_as_it_is():
    e = world()
    name = contract.ingress_network("gmail")
    e.add_network(name, {contract.NETWORK_OWNER_LABEL: "true", COMPOSE_PROJECT_LABEL: "gmail"}, "192.168.32.0/20")
    deployer(e).deploy()
    assert not [c for c in e.calls if c[0] == "create network"]
    assert e.network_subnets()[name] == ("192.168.32.0/20",)


@pytest.mark.parametrize("extra", [{"ipam": {"config": [{"subnet": "10.5.0.0/24"}]}}, {"driver": "macvlan"},
                                   {"internal": True}, {"enable_ipv6": True}, {"driver_opts": {"a": "b"}},
                                   {"external": True}, {"name": "shared_luma"}])
def test_a_luma_network_the_user_configured_further_is_left_to_compose(extra):
    e = world()
    e.projects["gmail"].luma_network = extra
    deployer(e).deploy()
    assert not [c for c in e.calls if c[0] == "create network"]


def test_a_full_ingress_range_is_a_clear_error_naming_the_option_and_nothing_changes():
    e = world()
    e.add_network("other", {}, "10.77.0.0/27")
    e.add_network("another", {}, "10.77.0.32/28")
    with pytest.raises(LumaError) as err:
        deployer(e, pool="base=10.77.0.0/26,size=27").deploy()
    assert "no free /27 left in the ingress range 10.77.0.0/26 for gmail_luma" in err.value.message
    assert "--ingress-pool" in err.value.hint and "$LUMA_INGRESS_POOL" in err.value.hint
    assert owned(e, "gmail") == (set(), set())
    assert not [c for c in e.calls if c[0] == "compose" and c[1] == "up"]


@pytest.mark.parametrize("left", [0, 1])
def test_out_of_default_pools_names_the_daemon_json_fix_and_leaves_nothing_behind(left):
    """left=1: P_default is created and the next network fails (the old bug left it behind); left=0:
    the very first one fails."""
    e = world()
    e.projects["gmail"].services["extra"] = FakeService(1, "x1")
    e.projects["gmail"].networks = {"back": {"name": "gmail_back", "ipam": {}}}  # a second one after default
    e.default_pools_left = left
    with pytest.raises(LumaError) as err:
        deployer(e).deploy()
    assert "Docker has no address pool left for a new network of gmail" in err.value.message
    assert "non-overlapping IPv4 address pool" in err.value.message
    assert "nothing this deploy created was left behind" in err.value.message
    assert subnets.DAEMON_JSON_EXAMPLE in err.value.hint and "/etc/docker/daemon.json" in err.value.hint
    assert owned(e, "gmail") == (set(), set())
    assert ("remove network", "gmail_luma") in e.calls


def test_out_of_pools_on_a_redeploy_removes_only_what_this_deploy_created():
    e = world()
    deployer(e).deploy()
    before = owned(e, "gmail")
    e.projects["gmail"].services["db"].config_hash = "d2"
    e.default_pools_left = 0
    e.projects["gmail"].networks = {"new": {"name": "gmail_new", "ipam": {}}}
    with pytest.raises(LumaError) as err:
        deployer(e).deploy()
    assert "nothing this deploy created was left behind" in err.value.message
    assert owned(e, "gmail") == before


def test_other_failures_of_up_pass_through_unchanged():
    e = world()

    def boom(*a, **k):
        raise LumaError("`docker compose up` failed (exit 1):\npull access denied", "fix what Compose reports")

    real = e.compose

    def compose(project, directory, text):
        c = real(project, directory, text)
        run = c.run
        c.run = lambda *a, **k: boom() if a[:1] == ("up",) else run(*a, **k)
        return c

    e.compose = compose
    with pytest.raises(LumaError) as err:
        deployer(e).deploy()
    assert err.value.message.endswith("pull access denied")


def test_the_pools_warning_counts_the_engines_networks_and_what_the_deploy_would_create():
    e = world()
    e.pools = [("10.210.0.0/24", 26)]  # four networks in all
    e.add_network("x", {}, "10.210.0.0/26")
    e.add_network("y", {}, "10.210.0.64/26")
    assert "2 of 4 networks left" in networks.pools_warning(e)
    cfg = {"networks": {"default": {"name": "gmail_default", "ipam": {}},
                        "luma": {"name": "gmail_luma", "ipam": {}, "labels": {}},
                        "ext": {"name": "shared", "external": True},
                        "fixed": {"name": "gmail_fixed", "ipam": {"config": [{"subnet": "10.9.0.0/24"}]}},
                        "back": {"name": "gmail_back", "ipam": {}}}}
    assert networks.default_pool_networks(e, cfg, "gmail") == 2  # default and back; luma is ours
    e.add_network("gmail_back", {COMPOSE_PROJECT_LABEL: "gmail"})
    assert networks.default_pool_networks(e, cfg, "gmail") == 1
    e.add_network("z", {}, "10.210.0.128/26")
    e.add_network("w", {}, "10.210.0.192/26")
    assert "it would fail" in networks.pools_warning(e, needed=1)


def test_the_fake_refuses_an_overlapping_subnet_as_the_engine_does():
    e = FakeEngine()
    e.create_network("a", {}, "172.16.0.0/26")
    with pytest.raises(SubnetTaken):
        e.create_network("b", {}, "172.16.0.32/27")
    assert e.create_network("a", {}, "10.0.0.0/8").name == "a"  # an existing name is returned as it is
