"""Issue 18: deploy's decisions under faults, on the fake engine (tests/support/fake_engine.py).

Each fault is played at the moment it happens (an interrupted deploy's leftovers, the proxy dying,
a new container crashing after traffic moved, a renamed service, a foreign lock), and one invariant
is checked throughout: no container is stopped or removed while the proxy still dials it. The e2e
tests (tests/e2e/test_deploy_faults.py) prove the same on a real engine under load."""

from __future__ import annotations

import io

import pytest

from luma_compose import contract
from luma_compose.deploy.lock import HOST_LABEL, PID_LABEL, lock_name
from luma_compose.deploy.plan import DeployFailed, orphans_of, shadow_refusals
from luma_compose.deploy.progress import Progress
from luma_compose.deploy.rollout import Deployer, ProxyOptions
from luma_compose.deploy.teardown import down
from luma_compose.errors import LumaError, UnavailableError
from luma_compose.routing.containers import build_table
from luma_compose.records import (COMPOSE_PROJECT_LABEL, ContainerRecord, ContainerSpec, NetworkAttachment,
                                  draining_name, is_draining)
from support.fake_engine import FakeEngine, FakeProject, FakeService
from support.records import routed as routed_record

WEB = contract.RoutedService("web", ("mail.test",), 3000, "/up")
WWW = contract.RoutedService("www", ("mail.test",), 3000, "/up")


def deployer(e: FakeEngine, project: str = "gmail", routed=(WEB,), out: io.StringIO | None = None,
             sleep=lambda s: None, **kw) -> Deployer:
    return Deployer(e, project, f"/srv/{project}", "services: {}\n", list(routed),
                    ProxyOptions(name="px", image="caddy:test", tls="off"), timeout=5, drain=3,
                    progress=Progress(out or io.StringIO()), sleep=sleep, **kw)


def world(replicas: int = 2, plain: bool = True) -> FakeEngine:
    e = FakeEngine()
    services = {"web": FakeService(replicas, "h1", routed=WEB)}
    if plain:
        services["db"] = FakeService(1, "d1")
    e.projects["gmail"] = FakeProject(services)
    return e


def dials(e: FakeEngine) -> set[str]:
    """Container names the proxy's loaded config dials now."""
    from luma_compose.proxy import caddy_config

    cfg = e.loaded.get(e.container("px").id) or {}
    routes = cfg.get("apps", {}).get("http", {}).get("servers", {}).get(caddy_config.SERVER_NAME, {}).get("routes", [])
    dialled = {u["dial"].rsplit(":", 1)[0] for r in routes for h in r.get("handle", []) for u in h.get("upstreams", [])}
    return {d.removeprefix("tcp4/").rstrip(".") for d in dialled}


def never_pull_the_rug(e: FakeEngine) -> list[str]:
    """Record every stop/remove of a container the proxy dials at that moment (must stay empty)."""
    bad: list[str] = []
    for op in ("stop", "remove"):
        orig = getattr(e, op)

        def wrapped(ref, *a, _orig=orig, _op=op, **kw):
            c = e.container(ref)
            if c is not None and c.name in dials(e):
                bad.append(f"{_op} {c.name} while the proxy dials it")
            return _orig(ref, *a, **kw)

        setattr(e, op, wrapped)
    return bad


def names(e: FakeEngine, service: str = "web") -> list[str]:
    return sorted(c.name for c in e.containers([f"{COMPOSE_PROJECT_LABEL}=gmail",
                                                f"com.docker.compose.service={service}"], all=True))


def interrupted_roll(e: FakeEngine, renamed: bool) -> tuple[list[str], list[str]]:
    """What a deploy killed (-9) in the middle of a roll of web leaves: new containers beside the old,
    the old ones renamed draining (or not yet), and no sync after it."""
    old = [c.id for c in e.containers([f"{COMPOSE_PROJECT_LABEL}=gmail", "com.docker.compose.service=web"])]
    e.projects["gmail"].services["web"].config_hash = "h2"
    e.compose("gmail", "/srv/gmail", "").run("up", "-d", "--no-deps", "--no-recreate", "--scale", "web=4", "web")
    new = [c.id for c in e.containers([f"{COMPOSE_PROJECT_LABEL}=gmail", "com.docker.compose.service=web"])
           if c.id not in old]
    if renamed:
        for cid in old:
            e.rename(cid, draining_name(e.container(cid).name))
    return old, new


# ------------------------------------------------------------------------ item 7: an interrupted deploy


@pytest.mark.parametrize("renamed", [False, True], ids=["before-rename", "after-rename"])
def test_the_next_deploy_syncs_routes_before_it_removes_what_an_interrupted_one_left(renamed):
    e = world()
    deployer(e).deploy()
    old, new = interrupted_roll(e, renamed)
    before = dials(e)
    assert before == {e.container(c).name.replace("--luma-draining", "") for c in old}  # Caddy: old names
    bad = never_pull_the_rug(e)
    e.calls.clear()
    deployer(e).deploy()
    assert bad == []
    assert not [n for n in names(e) if is_draining(n)]
    assert len(names(e)) == 2 and dials(e) == set(names(e))
    # the routes were brought up to date before any container was stopped or removed
    first_reload = e.calls.index(("caddy reload", "px"))
    changes = [i for i, c in enumerate(e.calls) if c[0] in ("stop", "remove") and not str(c[1]).startswith("luma-")]
    assert changes and first_reload < min(changes)


def test_draining_containers_still_served_come_back_when_the_new_ones_of_an_interrupted_deploy_died():
    e = world()
    deployer(e).deploy()
    old, new = interrupted_roll(e, renamed=True)
    for cid in new:
        e._set(e.container(cid), state="exited", exit_code=1)
    bad = never_pull_the_rug(e)
    deployer(e).deploy()  # brings the old ones back, then rolls to h2 properly
    assert bad == []
    assert not [n for n in names(e) if is_draining(n)] and len(names(e)) == 2
    assert {c.config_hash for c in e.containers([f"{COMPOSE_PROJECT_LABEL}=gmail",
                                                "com.docker.compose.service=web"])} == {"h2"}


# ------------------------------------------------------------------------ item 8: the proxy dies mid-deploy


def kill_proxy_on_probe(e: FakeEngine):
    def probe(url, host):
        e._set(e.container("px"), state="exited", exit_code=137)
        return False
    return probe


def test_the_proxy_dying_during_a_roll_is_a_clear_unavailable_error_and_leaves_no_new_container():
    e = world()
    deployer(e).deploy()
    old = names(e)
    e.projects["gmail"].services["web"].config_hash = "h2"
    e.http_ok = kill_proxy_on_probe(e)
    with pytest.raises(UnavailableError, match="proxy container px stopped during the deploy") as err:
        deployer(e).deploy()
    assert err.value.exit_code == 3 and "deploy again" in err.value.hint
    assert names(e) == old  # the new containers were removed, the old ones never renamed
    e.http_ok = lambda url, host: True
    deployer(e).deploy()  # the next deploy starts the proxy again and rolls
    assert len(names(e)) == 2 and not set(names(e)) & set(old) and dials(e) == set(names(e))


def test_the_proxy_dying_during_a_first_deploy_leaves_containers_the_next_deploy_adopts():
    e = world()
    e.http_ok = kill_proxy_on_probe(e)
    with pytest.raises(UnavailableError, match="stopped during the deploy"):
        deployer(e).deploy()
    first = names(e)
    e.http_ok = lambda url, host: True
    res = deployer(e).deploy()
    assert [p.action for p in res.plans] == ["keep"] and names(e) == first and dials(e) == set(first)


# ------------------------------------------------------------------------ item 9: a crash after the switch


@pytest.mark.parametrize("how", ["exited", "restarted", "unhealthy"])
def test_a_new_container_that_dies_after_traffic_moved_brings_the_old_ones_back(how):
    e = world()
    deployer(e).deploy()
    old = names(e)
    e.projects["gmail"].services["web"].config_hash = "h2"

    def sleep(_s):  # the first new container dies once the old ones are draining
        if any(is_draining(n) for n in names(e)):
            c = next(c for c in e.containers([f"{COMPOSE_PROJECT_LABEL}=gmail"]) if c.name not in old
                     and not c.draining and c.labels.get("com.docker.compose.service") == "web")
            e._set(c, **{"exited": {"state": "exited", "exit_code": 1},
                         "restarted": {"exit_code": 2},
                         "unhealthy": {"health": "unhealthy"}}[how])

    bad = never_pull_the_rug(e)
    with pytest.raises(DeployFailed, match="stopped after traffic moved to it; the old containers serve again"):
        deployer(e, sleep=sleep, settle=2).deploy()
    assert names(e) == old and dials(e) == set(old)  # un-renamed, back in the pool, new ones gone
    assert [b for b in bad if any(b.startswith(f"{op} {n} ") for op in ("stop", "remove") for n in old)] == []


def test_the_new_containers_are_watched_at_least_settle_seconds_even_with_no_drain():
    e = world()
    deployer(e).deploy()
    e.projects["gmail"].services["web"].config_hash = "h2"
    waited: list[float] = []
    d = deployer(e, sleep=waited.append, settle=4)
    d.drain = 0
    d.deploy()
    assert sum(waited) >= 4


# ------------------------------------------------------------------------ item 11: one truth about orphans


@pytest.mark.parametrize("plain", [True, False], ids=["with-plain-service", "routed-only"])
def test_a_renamed_routed_service_keeps_its_host_and_the_orphan_goes_as_the_plan_says(plain):
    e = world(plain=plain)
    deployer(e).deploy()
    old = names(e)
    services = e.projects["gmail"].services
    services["www"] = FakeService(2, "w1", routed=WWW)
    del services["web"]
    plan = deployer(e, routed=(WWW,)).dry_run()
    assert sorted(plan.orphans) == old
    assert [(h.host, h.change) for h in plan.hosts] == [("mail.test", "move")]
    bad = never_pull_the_rug(e)
    deployer(e, routed=(WWW,)).deploy()
    assert bad == []  # the host moved to www before the orphans were stopped
    assert names(e) == []  # what the plan said would be removed, was
    assert dials(e) == set(names(e, "www")) and len(names(e, "www")) == 2
    again = deployer(e, routed=(WWW,)).dry_run()
    assert again.orphans == [] and not again.changes  # the plan and the deploy agree
    deployer(e, routed=(WWW,)).deploy()  # and the next deploy works
    redeploy = [c for c in e.compose_log if "up" in c.argv and "--remove-orphans" in c.argv]
    assert len(redeploy) == 1  # only the first deploy's plain `up`: deploy removes orphans itself


def test_a_route_whose_containers_all_drain_hands_its_hosts_to_another_service_of_its_project():
    web = routed_record("p", "web", 1, hosts=("a.test", "b.test"), name="p-web-1--luma-draining")
    www = routed_record("p", "www", 1, hosts=("a.test",), created="2026-02-01T00:00:00Z")
    table = build_table([web, www], incumbents={"a.test": "p/web", "b.test": "p/web"})
    assert table.host_map() == {"a.test": "p/www", "b.test": "p/web"}
    # not while web has a live container, and never across projects
    live = routed_record("p", "web", 2, hosts=("a.test",))
    assert build_table([web, live, www], incumbents={"a.test": "p/web"}).host_map()["a.test"] == "p/web"
    other = routed_record("q", "www", 1, hosts=("a.test",), created="2026-02-01T00:00:00Z")
    assert build_table([web, other], incumbents={"a.test": "p/web"}).host_map()["a.test"] == "p/web"


def test_orphans_of_is_every_container_of_a_service_that_left_the_file():
    from support.records import plain as plain_record

    cs = [plain_record("a", name="p-web-1"), plain_record("b", name="p-www-1", state="exited")]
    cs = [ContainerRecord(c.id, c.name, {**c.labels, "com.docker.compose.service": c.name.split("-")[1]}, c.created,
                          state=c.state) for c in cs]
    assert [c.name for c in orphans_of(cs, ["www"])] == ["p-web-1"]
    assert [c.name for c in orphans_of(cs, [])] == ["p-web-1", "p-www-1"]


# ------------------------------------------------------------------------ item 12: a foreign lock


def foreign_lock(e: FakeEngine, project: str = "gmail") -> None:
    e.create(ContainerSpec(name=lock_name(project), image="caddy:test",
                           labels={HOST_LABEL: "ci-runner-7", PID_LABEL: "4242"}))


def test_force_unlock_removes_a_foreign_lock_and_says_whose_it_was():
    e = world()
    deployer(e).deploy()
    foreign_lock(e)
    out = io.StringIO()
    e.projects["gmail"].services["web"].config_hash = "h2"
    deployer(e, out=out, force_unlock=True).deploy()
    assert "removed the lock luma-deploy-lock-gmail held by ci-runner-7 pid 4242" in out.getvalue()
    assert e.container(lock_name("gmail")) is None
    foreign_lock(e)
    out = io.StringIO()
    down(e, "gmail", "/srv/gmail", "services: {}\n", proxy_name="px", progress=Progress(out), force_unlock=True)
    assert "held by ci-runner-7 pid 4242" in out.getvalue() and names(e) == []


def test_down_on_a_foreign_lock_names_it_at_once_and_hints_force_unlock():
    import inspect

    e = world()
    deployer(e).deploy()
    foreign_lock(e)
    out = io.StringIO()
    with pytest.raises(LumaError) as err:
        down(e, "gmail", "/srv/gmail", "services: {}\n", proxy_name="px", progress=Progress(out), lock_timeout=0)
    assert "ci-runner-7 pid 4242" in out.getvalue() and "--force-unlock" in err.value.hint
    assert names(e)  # nothing was taken down
    assert inspect.signature(down).parameters["lock_timeout"].default == 60  # like deploy's minimum, not 300


# ------------------------------------------------------------------------ item 1: shadowing, before the attach


def victim_world() -> FakeEngine:
    e = world()
    deployer(e).deploy()  # gmail's web is dialled as gmail-web-1 / gmail-web-2
    return e


@pytest.mark.parametrize("how", ["service-name", "alias", "container_name", "upper-case"])
def test_a_project_whose_names_would_shadow_a_dialled_name_is_refused_before_anything_changes(how):
    e = victim_world()
    evil = contract.RoutedService("gmail-web-1" if how in ("service-name", "upper-case") else "web",
                                  ("evil.test",), 3000, "/up")
    svc = FakeService(1, "e1", routed=evil)
    if how == "alias":
        svc.aliases = ("gmail-web-2",)
    if how == "container_name":
        svc.container_name = "GMAIL-web-2"
    name = "GMAIL-WEB-1" if how == "upper-case" else evil.service
    evil = contract.RoutedService(name, evil.hosts, 3000, "/up")
    svc.routed = evil
    e.projects["evil"] = FakeProject({name: svc})
    e.calls.clear()
    plan = deployer(e, "evil", routed=(evil,)).dry_run()
    assert any("the name the proxy dials for gmail/web" in c for c in plan.conflicts), plan.conflicts
    with pytest.raises(LumaError, match="the name the proxy dials for gmail/web") as err:
        deployer(e, "evil", routed=(evil,)).deploy()
    assert "nothing was changed" in err.value.message
    assert [c for c in e.calls if c[0] not in ("compose",)] == [] and "evil_luma" not in e.container("px").networks
    assert dials(e) == {"gmail-web-1", "gmail-web-2"}


def test_the_proxy_never_joins_a_network_where_a_container_shadows_a_dialled_name_and_leaves_on_failure():
    e = victim_world()
    # a hand-started container already sits on evil's ingress network with gmail's container name
    e.add_network("evil_luma", {contract.NETWORK_OWNER_LABEL: "true", COMPOSE_PROJECT_LABEL: "evil"})
    e.add(ContainerRecord("hand1", "sneaky", {}, "2024-01-01T00:00:00Z",
                          networks={"evil_luma": NetworkAttachment("10.9.0.9", ("gmail-web-1",))}))
    evil = contract.RoutedService("web", ("evil.test",), 3000, "/up")
    e.projects["evil"] = FakeProject({"web": FakeService(1, "e1", routed=evil)})
    with pytest.raises(LumaError, match="refusing to attach the proxy to evil_luma") as err:
        deployer(e, "evil", routed=(evil,)).deploy()
    assert "sneaky" in err.value.message
    assert "evil_luma" not in e.container("px").networks
    assert not [c for c in e.calls if c[:2] == ("connect", "evil_luma")]
    assert dials(e) == {"gmail-web-1", "gmail-web-2"}


def test_shadow_refusals_compare_names_as_the_resolver_does_and_ignore_networks_the_proxy_never_joins():
    table = build_table([routed_record("victim", "web", 1)])
    dialled = table.routes[0].members[0].name
    cfg = {"name": "evil", "networks": {"luma": {"name": "evil_luma"}, "back": {"name": "evil_back"}},
           "services": {"a": {"networks": {"back": {"aliases": [dialled]}}},
                        "b": {"networks": {"luma": {"aliases": [dialled.upper()]}}},
                        "c": {"networks": ["luma"], "container_name": dialled + "x"},
                        "d": {"networks": ["luma"], "hostname": dialled}}}
    got = shadow_refusals("evil", cfg, table)
    assert len(got) == 2 and got[0].startswith(f"service b would answer to {dialled.upper()} on evil_luma")
    assert got[1].startswith(f"service d would answer to {dialled} on evil_luma")
    assert shadow_refusals("evil", cfg, table, proxy_networks=["evil_back"])[0].startswith("service a")
    # its own container name on its own service is not a shadow
    assert shadow_refusals("victim", {"name": "victim", "services": {"web": {"networks": ["luma"],
                           "container_name": dialled}}, "networks": {"luma": {"name": "victim_luma"}}}, table) == []
