"""deploy's decisions on a fake engine (tests/support/fake_engine.py): rollout order, rollback, refusals.

The e2e tests (tests/e2e/test_deploy.py) prove the same against a real engine under traffic."""

from __future__ import annotations

import io

import pytest

from luma_compose import contract
from luma_compose.deploy.plan import DeployFailed
from luma_compose.deploy.progress import Progress
from luma_compose.deploy.rollout import Deployer, ProxyOptions
from luma_compose.deploy.teardown import down
from luma_compose.errors import LumaError
from luma_compose.proxy import caddy_config
from luma_compose.records import COMPOSE_PROJECT_LABEL, is_draining
from support.fake_engine import FakeEngine, FakeProject, FakeService
from support.records import routed as routed_record

WEB = contract.RoutedService("web", ("mail.test",), 3000, "/up")


def deployer(e: FakeEngine, project: str = "gmail", routed=(WEB,)) -> Deployer:
    return Deployer(e, project, "/srv/gmail", "services: {}\n", list(routed),
                    ProxyOptions(name="px", image="caddy:test", tls="off"), timeout=5, drain=3,
                    progress=Progress(io.StringIO()), sleep=lambda s: None)


def world(replicas: int = 2, config_hash: str = "h1") -> FakeEngine:
    e = FakeEngine()
    e.projects["gmail"] = FakeProject({"web": FakeService(replicas, config_hash, routed=WEB),
                                       "db": FakeService(1, "d1")})
    return e


def pool(e: FakeEngine) -> dict[str, list[str]]:
    cfg = e.loaded[e.container("px").id]
    routes = cfg["apps"]["http"]["servers"][caddy_config.SERVER_NAME]["routes"]
    return {r["@id"]: [u["dial"] for h in r["handle"] for u in h.get("upstreams", [])] for r in routes if "@id" in r}


def web_names(e: FakeEngine) -> list[str]:
    return sorted(c.name for c in e.containers([f"{COMPOSE_PROJECT_LABEL}=gmail", "com.docker.compose.service=web"],
                                              all=True))


def test_first_deploy_starts_the_proxy_and_the_project_then_routes_it():
    e = world()
    res = deployer(e).deploy()
    assert e.container("px").state == "running"
    assert web_names(e) == ["gmail-web-1", "gmail-web-2"]
    assert len(pool(e)["luma-route:gmail/web"]) == 2
    assert res.urls == ["http://mail.test/"]
    # the proxy joined the ingress network before the health probes ran from it
    order = [c[0] for c in e.calls]
    assert order.index("connect") < order.index("caddy reload")


def test_a_redeploy_rolls_new_containers_in_before_the_old_ones_leave():
    e = world()
    deployer(e).deploy()
    old = web_names(e)
    e.projects["gmail"].services["web"].config_hash = "h2"
    e.calls.clear()
    res = deployer(e).deploy()
    assert [p.action for p in res.plans] == ["roll"]
    new = web_names(e)
    assert len(new) == 2 and not set(new) & set(old)
    calls = e.calls
    created = [i for i, c in enumerate(calls) if c[0] == "compose creates"]
    renamed = [i for i, c in enumerate(calls) if c[0] == "rename"]
    reloads = [i for i, c in enumerate(calls) if c[0] == "caddy reload"]
    stopped = [i for i, c in enumerate(calls) if c[0] == "stop"]
    # new containers exist before any old one is marked draining; traffic moves (a reload) before the
    # old ones are stopped; the old ones are stopped only after that
    assert max(created) < min(renamed) < min(r for r in reloads if r > min(renamed)) < min(stopped)
    assert all(is_draining(calls[i][2]) for i in renamed)
    assert sorted(calls[i][1] for i in stopped) == sorted(c + "--luma-draining" for c in old)
    assert len(pool(e)["luma-route:gmail/web"]) == 2


def test_an_unhealthy_new_container_is_removed_and_the_old_ones_keep_serving():
    e = world()
    deployer(e).deploy()
    old = web_names(e)
    before = pool(e)
    e.projects["gmail"].services["web"].config_hash = "h2"
    e.http_ok = lambda url, host: False  # every probe of a container without a Docker health check fails
    with pytest.raises(DeployFailed, match="did not become healthy"):
        deployer(e).deploy()
    assert web_names(e) == old  # no draining marker, no new container left
    assert pool(e) == before


def test_a_new_container_whose_docker_health_check_fails_is_rolled_back():
    e = world()
    deployer(e).deploy()
    old = web_names(e)
    svc = e.projects["gmail"].services["web"]
    svc.config_hash, svc.health = "h2", "unhealthy"
    with pytest.raises(DeployFailed, match="unhealthy"):
        deployer(e).deploy()
    assert web_names(e) == old


def test_deploy_refuses_before_changing_anything_when_another_project_routes_its_host():
    e = world()
    e.add_network("evil_luma")
    e.add(routed_record("evil", "web", hosts=("mail.test",)))
    with pytest.raises(LumaError, match="already routed by project evil"):
        deployer(e).deploy()
    assert e.calls == [] and e.compose_log == []


def test_an_up_to_date_service_is_kept():
    e = world()
    deployer(e).deploy()
    e.calls.clear()
    res = deployer(e).deploy()
    assert [p.action for p in res.plans] == ["keep"]
    assert not [c for c in e.calls if c[0] in ("compose creates", "rename", "stop", "remove")
                and not str(c[1]).startswith("luma-deploy-lock-")]


def test_compose_commands_are_data_with_the_rendered_file_on_stdin():
    e = world()
    deployer(e).deploy()
    first = e.compose_log[0]
    assert first.argv[:7] == ("docker", "compose", "-p", "gmail", "--project-directory", "/srv/gmail", "-f")
    assert first.stdin == "services: {}\n"
    ups = [c.argv[c.argv.index("-") + 1:] for c in e.compose_log if "up" in c.argv]
    assert ups[0] == ("up", "-d", "--remove-orphans")


def test_down_unroutes_the_project_then_removes_it_and_its_network():
    e = world()
    deployer(e).deploy()
    e.calls.clear()
    down(e, "gmail", "/srv/gmail", "services: {}\n", proxy_name="px", progress=Progress(io.StringIO()))
    assert web_names(e) == [] and "gmail_luma" not in e.nets
    assert pool(e) == {}
    # traffic leaves the project (a config load) before compose stops anything
    assert e.calls.index(("caddy reload", "px")) < e.calls.index(("compose", "down", "--remove-orphans"))


def test_a_routed_service_with_a_fixed_container_name_is_refused_before_anything_changes():
    e = world(replicas=1)
    e.projects["gmail"].services["web"].container_name = "gmail-front"
    deployer(e).deploy()  # the first deploy starts it: one container, no roll
    e.projects["gmail"].services["web"].config_hash = "h2"
    e.projects["gmail"].services["db"].config_hash = "d2"
    e.calls.clear()
    with pytest.raises(LumaError, match="container_name 'gmail-front'.*must roll"):
        deployer(e).deploy()
    # nothing changed: not even the plain service, and the plan says why
    assert [c for c in e.calls if c[0] != "compose" or c[1] != "config"] == []
    plan = deployer(e).dry_run()
    assert any("container_name" in c for c in plan.conflicts)


# --------------------------------------------------------------------------- issue 10: the project lock


def test_a_second_deploy_of_the_project_waits_for_the_first_and_says_whose_it_is():
    import socket

    from luma_compose.deploy.lock import HOST_LABEL, PID_LABEL, ProjectLock, lock_name
    from luma_compose.records import ContainerSpec

    e = world()
    deployer(e).deploy()  # the proxy exists now
    held = e.create(ContainerSpec(name=lock_name("gmail"), image="caddy:test",
                                  labels={HOST_LABEL: "elsewhere", PID_LABEL: "1"}))
    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        if len(waits) == 3:  # the first deploy ends
            e.remove(held.id)

    out = io.StringIO()
    d = Deployer(e, "gmail", "/srv/gmail", "services: {}\n", [WEB], ProxyOptions(name="px", image="caddy:test",
                 tls="off"), timeout=5, drain=3, progress=Progress(out), sleep=sleep)
    d.deploy()
    assert len(waits) == 3
    assert "another deploy of gmail is running (elsewhere pid 1" in out.getvalue()
    assert e.container(lock_name("gmail")) is None  # released
    # a lock that never goes: a clear error after the timeout, nothing changed
    e.create(ContainerSpec(name=lock_name("gmail"), image="caddy:test", labels={HOST_LABEL: "elsewhere"}))
    lock = ProjectLock(e, "gmail", "px", timeout=0, progress=Progress(io.StringIO()), sleep=lambda s: None)
    with pytest.raises(LumaError, match="another deploy of gmail is still running"):
        lock.acquire()
    # a lock left by a process of this machine that is gone is taken over
    e.remove(lock_name("gmail"))
    e.create(ContainerSpec(name=lock_name("gmail"), image="caddy:test",
                           labels={HOST_LABEL: socket.gethostname(), PID_LABEL: "999999999"}))
    lock.acquire()
    assert lock.held
    lock.release()


def test_deploy_is_not_refused_for_a_host_another_project_only_claims_and_loses():
    from luma_compose import contract as c
    from luma_compose.records import COMPOSE_PROJECT_LABEL
    from support.records import routed

    e = world()
    deployer(e).deploy()
    # evil claims gmail's host later: it loses (gmail serves it)
    e.add_network("evil_luma", {c.NETWORK_OWNER_LABEL: "true", COMPOSE_PROJECT_LABEL: "evil"})
    e.add(routed("evil", "web", hosts=tuple(WEB.hosts), created="2020-01-01T00:00:00Z"))
    deployer(e).deploy()  # not refused
    assert pool(e)  # still served
    # and a project that does own the host is still refused
    with pytest.raises(LumaError, match="already routed by project gmail"):
        Deployer(e, "evil", "/srv/evil", "services: {}\n", [WEB], ProxyOptions(name="px"), timeout=5, drain=3,
                 progress=Progress(io.StringIO()), sleep=lambda s: None).deploy()


def test_down_waits_for_a_deploy_of_the_same_project():
    e = world()
    deployer(e).deploy()
    from luma_compose.deploy.lock import ProjectLock

    held = ProjectLock(e, "gmail", "px")
    held.acquire()
    out = io.StringIO()
    with pytest.raises(LumaError, match="another deploy of gmail is still running"):
        down(e, "gmail", "/srv/gmail", "services: {}\n", proxy_name="px", progress=Progress(out), lock_timeout=0)
    assert web_names(e)  # nothing was taken down
    assert "waiting for it" in out.getvalue()
    held.release()
    down(e, "gmail", "/srv/gmail", "services: {}\n", proxy_name="px", progress=Progress(io.StringIO()))
    assert web_names(e) == []
