"""Releases, rollback decisions and ``ls`` on the fake engine (tests/support/fake_engine.py).

tests/e2e/test_releases.py proves the same on the real engine, under traffic."""

from __future__ import annotations

import io
import json

import pytest

from luma_compose import contract
from luma_compose.deploy import projects as ls
from luma_compose.deploy import releases as rel
from luma_compose.deploy import rollback as rb
from luma_compose.deploy.progress import Progress
from luma_compose.deploy.rollout import Deployer, ProxyOptions
from luma_compose.errors import LumaError, UsageError
from luma_compose.records import VolumeRecord
from support.fake_engine import FakeEngine, FakeProject, FakeService
from support.records import routed as routed_record

WEB = contract.RoutedService("web", ("mail.test",), 3000, "/up")
WHO = rel.Origin("ann@laptop", "git@example.com:shop.git", "abc123")


def world() -> FakeEngine:
    e = FakeEngine()
    e.images.update({"app:v1": "sha256:v1", "db:1": "sha256:db1"})
    e.projects["gmail"] = FakeProject({"web": FakeService(2, "h1", image="app:v1", routed=WEB),
                                       "db": FakeService(1, "d1", image="db:1")})
    return e


def deploy(e: FakeEngine, image: str = "app:v1", keep: int = 10, project: str = "gmail"):
    svc = e.projects[project].services["web"]
    svc.image, svc.config_hash = image, "h-" + image
    d = Deployer(e, project, "/srv/" + project, "services: {}\n", [svc.routed],
                 ProxyOptions(name="px", image="caddy:test", tls="off"), timeout=5, drain=0,
                 progress=Progress(io.StringIO()), sleep=lambda s: None)
    d.after = rel.recorder(d, WHO, keep)
    d.deploy()
    return d


def test_every_deploy_records_a_release_with_its_images_pinned_on_the_engine():
    e = world()
    deploy(e)
    e.images["app:v2"] = "sha256:v2"
    deploy(e, "app:v2")
    found = rel.releases(e, "gmail")
    assert [r.number for r in found] == [1, 2]
    r1, r2 = found
    assert r1.images["web"] == rel.ReleaseImage("sha256:v1", "app:v1", "luma-release/gmail:1-web")
    assert r2.images["web"].id == "sha256:v2" and r2.images["db"].id == "sha256:db1"
    assert e.images["luma-release/gmail:1-web"] == "sha256:v1"  # the pin keeps v1 referenced
    assert r2.origin == WHO and r2.routes == (WEB,)
    assert json.loads(r2.config)["services"]["web"]["image"] == "app:v2"
    # recorded under the lock: after the lock was taken, before it was released
    calls = [c for c in e.calls if c[0] in ("create", "remove", "create volume")]
    i = calls.index(("create volume", "luma-release-gmail-2"))
    assert calls[i - 1][0] != "remove" or "lock" not in calls[i - 1][1]
    assert any(c[0] == "remove" and "lock" in c[1] for c in calls[i:])


def test_only_the_last_n_releases_are_kept_and_older_pins_are_untagged():
    e = world()
    for n in range(1, 5):
        e.images[f"app:v{n}"] = f"sha256:v{n}"
        deploy(e, f"app:v{n}", keep=2)
    assert [r.number for r in rel.releases(e, "gmail")] == [3, 4]
    assert "luma-release/gmail:1-web" not in e.images and "luma-release/gmail:2-web" not in e.images
    assert e.images["luma-release/gmail:3-web"] == "sha256:v3"


def test_labels_round_trip_and_a_foreign_volume_is_no_release():
    r = rel.Release("shop", 7, "2026-01-01T00:00:00Z", WHO, {"web": rel.ReleaseImage("sha256:a", "x:1", "p")},
                    (WEB,), '{"services": {}}', "rollback to 3")
    assert rel.from_volume(VolumeRecord(r.volume, rel.to_labels(r))) == r
    assert rel.to_labels(r)[contract.RELEASE_FILE_LABEL].startswith("gz64:")
    bad = dict(rel.to_labels(r), **{contract.RELEASE_NUMBER_LABEL: "x"})
    assert rel.from_volume(VolumeRecord(r.volume, bad)) is None
    assert rel.from_volume(VolumeRecord("someone-elses", rel.to_labels(r))) is None  # name must match


@pytest.mark.parametrize("project", ["shop", "shop-pr-42", "a__b", "ends-", "ends_", "x_-y"])
def test_pin_tags_are_valid_image_references_and_distinct_per_project(project):
    import re

    ref = rel.pin(project, 3, "Web.1")
    repo, tag = ref.rsplit(":", 1)
    assert re.fullmatch(r"luma-release/[a-z0-9]+(?:(?:[._]|__|-*)[a-z0-9]+)*", repo), ref
    assert re.fullmatch(r"[\w][\w.-]{0,127}", tag), ref
    assert rel.pin("ends-", 3, "web") != rel.pin("ends", 3, "web")


def test_keep_setting_from_the_environment(monkeypatch):
    monkeypatch.delenv(rel.KEEP_ENV, raising=False)
    assert rel.keep_setting(None) == 10 and rel.keep_setting(3) == 3
    monkeypatch.setenv(rel.KEEP_ENV, "4")
    assert rel.keep_setting(None) == 4
    for bad in ("0", "-1", "ten"):
        monkeypatch.setenv(rel.KEEP_ENV, bad)
        with pytest.raises(UsageError, match=rel.KEEP_ENV):
            rel.keep_setting(None)


def _release(n: int, note: str = "") -> rel.Release:
    return rel.Release("shop", n, "2026-01-01T00:00:00Z", WHO, note=note)


def test_rollback_goes_to_the_release_before_the_current_one_and_further_back_when_repeated():
    assert rb.choose([_release(1), _release(2)], "shop", None).number == 1
    # 3 brought back 1: the next rollback goes before 1, not to the bad 2
    with pytest.raises(LumaError, match="oldest"):
        rb.choose([_release(1), _release(2), _release(3, "rollback to 1")], "shop", None)
    assert rb.choose([_release(1), _release(2), _release(3), _release(4, "rollback to 2")], "shop", None).number == 1
    assert rb.choose([_release(1), _release(2)], "shop", 2).number == 2


@pytest.mark.parametrize("found,wanted,message", [
    ([], None, "no releases"), ([_release(1)], None, "oldest"), ([_release(2), _release(3)], 1, r"kept: 2, 3")])
def test_rollback_refuses_when_there_is_nothing_to_go_back_to(found, wanted, message):
    with pytest.raises(LumaError, match=message):
        rb.choose(found, "shop", wanted)


def test_a_rollback_plan_pins_every_image_and_never_builds_or_pulls():
    e = world()
    deploy(e)
    e.images["app:v2"] = "sha256:v2"
    deploy(e, "app:v2")
    p = rb.plan(e, rel.releases(e, "gmail")[0])
    cfg = json.loads(p.text)
    assert cfg["services"]["web"]["image"] == "luma-release/gmail:1-web"
    assert cfg["services"]["web"]["pull_policy"] == "never" and "build" not in cfg["services"]["web"]
    assert p.retag == ()


@pytest.mark.parametrize("how", ["pin untagged, image kept by id", "image gone", "pin moved"])
def test_a_rollback_finds_each_image_by_its_pin_else_its_id_else_refuses_changing_nothing(how):
    e = world()
    deploy(e)
    e.images["app:v2"] = "sha256:v2"
    deploy(e, "app:v2")
    r1 = rel.releases(e, "gmail")[0]
    del e.images["luma-release/gmail:1-web"]
    if how == "image gone":
        del e.images["app:v1"]
        e.calls.clear()
        with pytest.raises(LumaError) as err:
            rb.plan(e, r1)
        assert "service web: image sha256:v1 (was app:v1, tagged luma-release/gmail:1-web)" in err.value.message
        assert "nothing was changed" in err.value.message
        assert "docker tag app:v1 luma-release/gmail:1-web" in err.value.hint and "docker pull app:v1" in err.value.hint
        assert e.calls == []
        return
    if how == "pin moved":
        e.images["luma-release/gmail:1-web"] = "sha256:v2"
        p = rb.plan(e, r1)
        assert p.retag == () and "now tags" in p.warnings[0]
        return
    p = rb.plan(e, r1)
    assert p.retag == (("sha256:v1", "luma-release/gmail:1-web"),)
    rb.restore_pins(e, p)
    assert e.images["luma-release/gmail:1-web"] == "sha256:v1"


def test_ls_lists_every_project_with_hosts_replicas_and_last_release():
    e = world()
    pr = contract.RoutedService("web", ("pr-1.test",), 3000, "/up")
    e.projects["shop-pr-1"] = FakeProject({"web": FakeService(1, "s1", image="app:v1", routed=pr)})
    deploy(e)
    deploy(e, project="shop-pr-1")
    e.add(routed_record("stopped", "web", hosts=("b.test",), state="exited"))
    rows = {r.project: r for r in ls.read(e)}
    assert set(rows) == {"gmail", "shop-pr-1", "stopped"}
    g = rows["gmail"]
    assert (g.ready, g.total, g.hosts, g.release.number) == (3, 3, ["mail.test"], 1)
    assert (rows["stopped"].ready, rows["stopped"].total, rows["stopped"].release) == (0, 1, None)
    assert rows["shop-pr-1"].to_json()["release"] == 1


def test_forget_removes_every_release_of_one_project_only():
    e = world()
    other = contract.RoutedService("web", ("other.test",), 3000, "/up")
    e.projects["other"] = FakeProject({"web": FakeService(1, "s1", image="app:v1", routed=other)})
    deploy(e)
    deploy(e, project="other")
    assert rel.forget(e, "gmail") == 1
    assert rel.releases(e, "gmail") == [] and [r.project for r in rel.releases(e)] == ["other"]
    assert "luma-release/gmail:1-web" not in e.images and "luma-release/other:1-web" in e.images


def test_a_failure_to_record_is_a_warning_not_a_failed_deploy():
    e = world()
    e.volumes.add("luma-release-gmail-1")  # someone else's volume of that name
    d = deploy(e)
    assert any("the release was not recorded" in w for w in d.warnings)


def test_a_deploy_that_changed_nothing_records_no_new_release():
    e = world()
    deploy(e)
    deploy(e)
    assert [r.number for r in rel.releases(e, "gmail")] == [1]
    e.images["app:v1"] = "sha256:v1b"  # the same reference, rebuilt: a new image id is a new release
    deploy(e)
    assert [r.number for r in rel.releases(e, "gmail")] == [1, 2]


# -------------------------------------------------------------- stop-first (deploy/stopfirst.py)


def stop_first_world() -> FakeEngine:
    e = world()
    e.projects["gmail"].services["web"] = FakeService(1, "h1", image="app:v1", routed=WEB, update_order="stop-first")
    return e


def test_a_stop_first_service_never_runs_two_versions_and_the_proxy_config_waits_for_the_new_one():
    e = stop_first_world()
    deploy(e)
    (old,) = [c for c in e.containers(["com.docker.compose.service=web"], all=True)]
    e.calls.clear()
    e.images["app:v2"] = "sha256:v2"
    deploy(e, "app:v2")
    calls = e.calls
    stop = calls.index(("stop", old.name))
    starts = [i for i, c in enumerate(calls) if c[0] == "start" and c[1].startswith("gmail-web")]
    reloads = [i for i, c in enumerate(calls) if c[0] == "caddy reload"]
    created = [i for i, c in enumerate(calls) if c[0] == "compose creates"]
    assert created and max(created) < stop < min(starts)  # created first, started only after the old stopped
    assert not [r for r in reloads if stop < r < min(starts)]  # the config keeps the old one while requests wait
    (new,) = e.containers(["com.docker.compose.service=web"], all=True)
    assert new.id != old.id and new.state == "running" and new.image == "sha256:v2"


def test_a_failed_stop_first_version_is_removed_and_the_old_one_started_again():
    e = stop_first_world()
    deploy(e)
    (old,) = e.containers(["com.docker.compose.service=web"], all=True)
    e.images["app:v2"] = "sha256:v2"
    e.http_ok = lambda url, host: False
    with pytest.raises(LumaError, match="did not become healthy"):
        deploy(e, "app:v2")
    (back,) = e.containers(["com.docker.compose.service=web"], all=True)
    assert back.id == old.id and back.state == "running" and back.name == old.name
    assert [r.number for r in rel.releases(e, "gmail")] == [1]  # a failed deploy records no release


def test_x_luma_rollout_stop_first_is_read_as_compose_s_own_key():
    from luma_compose import api

    text = ("services:\n  app:\n    image: notes:2\n    x-luma:\n      hosts: notes.test\n      port: 8080\n"
            "      rollout: stop-first\n  web:\n    image: web:1\n    x-luma:\n      hosts: web.test\n      port: 80\n")
    res = api.render_text("compose.yaml", text, "notes", "/srv/notes")
    assert res.ok, res.problems
    rollouts = {r.service: r.rollout for r in res.routes}
    assert rollouts == {"app": "stop-first", "web": "start-first"}
    bad = api.render_text("compose.yaml", text.replace("stop-first", "stop-frist"), "notes", "/srv/notes")
    assert not bad.ok and "rollout" in bad.problems[0].message
    e = world()
    svc = e.projects["gmail"].services["web"]
    svc.routed = contract.RoutedService("web", ("mail.test",), 3000, "/up", rollout="stop-first")
    deploy(e)
    (old,) = [c.name for c in e.containers(["com.docker.compose.service=web"], all=True)][:1]
    e.images["app:v2"] = "sha256:v2"
    e.calls.clear()
    deploy(e, "app:v2")
    assert ("stop", old) in e.calls and not any(c[0] == "rename" and c[1] == old and e.calls.index(c) <
                                                 e.calls.index(("stop", old)) for c in e.calls)
    assert rel.releases(e, "gmail")[-1].routes[0].rollout == "stop-first"


def test_x_luma_rollout_is_named_as_not_read_on_a_swarm():
    from luma_compose.compose.source import parse
    from luma_compose.compose import stack

    text = ("services:\n  app:\n    image: a\n    x-luma:\n      hosts: a.test\n      port: 80\n"
            "      rollout: stop-first\n")
    src, _ = parse("compose.yaml", text)
    (p,) = stack.problems(src)
    assert stack.is_warning(p) and "rollout" in p.message and "update_config.order" in p.hint and p.line == 7
