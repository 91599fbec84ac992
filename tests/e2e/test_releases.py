"""Issue 23, items 2-4: releases, rollback, previews and ``ls``. Real engine, real compose, real Caddy
proxy, real HTTP, real images (each version its own image, built FROM the test busybox image).

Every name is unique to this run; each test removes its projects, proxy, images and the release
volumes and pin tags of its projects, pass or fail.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

import dockerkit as dk
from test_deploy import SELECT, Env, Traffic, bodies, env, new_project, running, source  # noqa: F401  (env: fixture)

pytestmark = pytest.mark.e2e


@pytest.fixture
def images(busybox_image) -> Iterator[dict[str, str]]:
    """Three images with ids of their own: v1, v2, v3 (same program, a different label each)."""
    repo = dk.unique("luma-e2e-rel")
    made = {}
    try:
        for v in ("v1", "v2", "v3"):
            tag = f"{repo}:{v}"
            dk.run(["docker", "build", "-q", "-t", tag, "-"],
                   input=f"FROM {busybox_image}\nLABEL lumatest.version={v}\n", timeout=300)
            made[v] = tag
        yield made
    finally:
        for tag in made.values():
            dk.docker("rmi", "-f", tag, check=False)


@pytest.fixture
def releases_cleanup() -> Iterator[list[str]]:
    """Projects whose release volumes and pin tags to remove at the end (down does; a failed test may not)."""
    projects: list[str] = []
    try:
        yield projects
    finally:
        for p in projects:
            dk.remove_releases(p)


def luma(*args: str, check: bool = True, env_extra: dict[str, str] | None = None, cwd: Path | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env_extra or {})}
    for k in ("DOCKER_HOST", "DOCKER_CONTEXT"):  # empty: unset, as the docker CLI reads it
        if not full.get(k):
            full.pop(k, None)
    p = subprocess.run([*dk.luma_compose_cmd(), *args], capture_output=True, text=True, timeout=timeout, env=full,
                       cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError(f"luma-compose {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def releases_of(project: str, **kw) -> list[dict]:
    return json.loads(luma("releases", "-p", project, "--format", "json", **kw).stdout)


def web_bodies(env: Env, host: str) -> set[str]:
    return {b.rsplit("/", 1)[0] for _, b in bodies(env, host, 20)}


def image_ids(project: str) -> set[str]:
    ids = running(project)
    return {dk.inspect(c)["Image"] for c in ids}


ROLL = ("--drain", "0.5", "--timeout", "30", "--proxy-name")


def test_a_bad_release_is_rolled_back_under_load_with_no_failed_request(env, images, releases_cleanup):
    project, host = new_project(env, "relroll")
    releases_cleanup.append(project)
    env.deploy(project, source(project, images["v1"], host, "v1"))
    v1_image = image_ids(project)
    # release 2 passes its health check, then serves the wrong page
    env.deploy(project, source(project, images["v2"], host, "bad"))
    assert web_bodies(env, host) == {f"{project}/web-bad"}
    found = releases_of(project)
    assert [r["number"] for r in found] == [1, 2]
    assert found[0]["images"]["web"]["ref"] == images["v1"] and found[0]["images"]["web"]["id"] in v1_image
    assert found[1]["images"]["web"]["id"] != found[0]["images"]["web"]["id"]
    assert found[0]["by"] and found[0]["source"] and "services" in json.loads(found[0]["file"])
    table = luma("releases", "-p", project).stdout
    assert f"{project}  2*" in table and images["v2"] in table

    # the pins keep release 1's image although nothing uses it now and its own tag is gone
    dk.docker("rmi", images["v1"])
    with Traffic(env, host) as t:
        r = luma("rollback", "-p", project, *ROLL, env.proxy, cwd=env.workdir)
    assert "rolled" in r.stderr and "release 1" in r.stderr, r.stderr
    assert web_bodies(env, host) == {f"{project}/web-v1"}
    assert image_ids(project) == v1_image
    failed = {k: v for k, v in t.outcomes.items() if k not in (f"{project}/web-bad", f"{project}/web-v1")}
    assert sum(t.outcomes.values()) > 20 and not failed, t.outcomes
    found = releases_of(project)
    assert [(r["number"], r["note"]) for r in found] == [(1, ""), (2, ""), (3, "rollback to 1")]
    assert found[2]["images"]["web"]["id"] == found[0]["images"]["web"]["id"]
    assert found[2]["images"]["web"]["ref"] == images["v1"]  # the original reference, not the pin


def test_rollback_from_a_second_client_through_a_context_with_no_compose_file(env, images, releases_cleanup,
                                                                              tmp_path):
    project, host = new_project(env, "relctx")
    releases_cleanup.append(project)
    env.deploy(project, source(project, images["v1"], host, "v1", replicas=1, sidecar=False))
    env.deploy(project, source(project, images["v2"], host, "v2", replicas=1, sidecar=False))
    # the second client: its own docker config, a context of its own to the same engine, another directory
    cfg, elsewhere = tmp_path / "other-client", tmp_path / "elsewhere"
    cfg.mkdir()
    elsewhere.mkdir()
    ctx = dk.unique("relctx")
    sock = (os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")
    client = {"DOCKER_CONFIG": str(cfg), "DOCKER_HOST": "", "DOCKER_CONTEXT": ""}
    dk.run(["docker", "context", "create", ctx, "--docker", f"host={sock}"], env={"DOCKER_CONFIG": str(cfg)})
    other = {**client, "USER": "second"}
    assert [r["number"] for r in releases_of(project, env_extra=other)] == [1, 2]  # found through the engine
    dry = luma("--context", ctx, "rollback", "-p", project, "--dry-run", "--proxy-name", env.proxy,
               check=False, env_extra=other, cwd=elsewhere)
    assert dry.returncode == 4, dry.stderr + dry.stdout
    assert "release 1" in dry.stdout and len(releases_of(project)) == 2  # dry run: nothing recorded
    luma("--context", ctx, "rollback", "-p", project, *ROLL, env.proxy, env_extra=other, cwd=elsewhere)
    assert web_bodies(env, host) == {f"{project}/web-v1"}
    last = releases_of(project)[-1]
    assert (last["number"], last["note"]) == (3, "rollback to 1")


def mine(project: str) -> tuple:
    """What a rollback of the project could change: its containers, pin tags and releases (only ours: other
    tests share the engine)."""
    return (running(project), running(project, "worker"),
            sorted(dk.docker("images", "--format", "{{.Repository}}:{{.Tag}}/{{.ID}}",
                             f"luma-release/{project}").split()),
            sorted(dk.docker("volume", "ls", "-q", "--filter", f"label=luma.release.project={project}").split()),
            sorted(dk.docker("network", "ls", "-q", "--filter", f"label=com.docker.compose.project={project}").split()))


def test_a_rollback_whose_image_is_gone_is_refused_and_changes_nothing(env, images, releases_cleanup):
    project, host = new_project(env, "relgone")
    releases_cleanup.append(project)
    env.deploy(project, source(project, images["v1"], host, "v1", replicas=1))
    env.deploy(project, source(project, images["v2"], host, "v2", replicas=1))
    gone = releases_of(project)[0]["images"]["web"]
    dk.docker("rmi", "-f", gone["id"])  # every tag of it: the image itself, the pins of release 1
    before = mine(project)
    for extra in ((), ("--dry-run",)):
        r = luma("rollback", "-p", project, "1", *extra, "--proxy-name", env.proxy, check=False)
        assert r.returncode == 1, r.stderr
        assert "nothing was changed" in r.stderr and gone["id"] in r.stderr and "service web" in r.stderr
        assert f"docker tag {images['v1']} {gone['pin']}" in r.stderr and "Traceback" not in r.stderr
    assert mine(project) == before
    assert len(releases_of(project)) == 2 and web_bodies(env, host) == {f"{project}/web-v2"}


def preview_file(image: str, domain: str) -> str:
    return f"""services:
  web:
    image: {image}
    environment:
      PROJECT: pr-${{PR}}
      SERVICE: web
    stop_grace_period: 1s
    labels:
      lumatest.run: "{dk.RUN_ID}"
    x-luma:
      hosts: pr-${{PR}}.{domain}
      port: 3000
      health: /up
"""


def test_two_previews_and_the_main_project_side_by_side_then_down_removes_one_completely(env, images,
                                                                                          releases_cleanup):
    main, main_host = new_project(env, "shop")
    env.deploy(main, source(main, images["v1"], main_host, "main", replicas=1, sidecar=False))
    domain = f"preview.{main}.test"
    f = dk.write(env.workdir / "preview" / "compose.yaml", preview_file(images["v2"], domain))
    previews = {}
    for pr in ("41", "42"):
        name = f"{main}-pr-{pr}"
        env.projects.append(name)  # type: ignore[attr-defined]
        releases_cleanup.extend([name])
        luma("deploy", "-f", str(f), "-p", name, *ROLL, env.proxy, "--proxy-select", SELECT,
             env_extra={"PR": pr})
        previews[pr] = name
    releases_cleanup.append(main)
    for pr, name in previews.items():
        assert web_bodies(env, f"pr-{pr}.{domain}") == {f"pr-{pr}/web"}
        # isolated: a preview's own containers only, on its own ingress network
        assert {b.rsplit("/", 1)[1] for _, b in bodies(env, f"pr-{pr}.{domain}", 10)} <= {c[:12] for c in running(name)}
    assert web_bodies(env, main_host) == {f"{main}/web-main"}
    rows = {r["project"]: r for r in json.loads(luma("ls", "--format", "json").stdout)}
    for pr, name in previews.items():
        assert rows[name]["hosts"] == [f"pr-{pr}.{domain}"] and (rows[name]["ready"], rows[name]["total"]) == (1, 1)
        assert rows[name]["release"] == 1
    assert rows[main]["hosts"] == [main_host] and rows[main]["release"] == 1
    text = luma("ls").stdout
    assert any(line.split()[:4] == [previews["41"], f"pr-41.{domain}", "1/1", "1"] for line in text.splitlines()), text

    # down -p: one preview gone completely (containers, networks, releases, pins); the others serve on
    luma("down", "-p", previews["41"], "--proxy-name", env.proxy, cwd=env.workdir)
    gone = previews["41"]
    assert dk.project_containers(gone) == [] and dk.project_networks(gone) == []
    assert dk.docker("volume", "ls", "-q", "--filter", f"label=luma.release.project={gone}").split() == []
    assert dk.docker("images", "-q", f"luma-release/{gone}").split() == []
    assert gone not in {r["project"] for r in json.loads(luma("ls", "--format", "json").stdout)}
    assert env.get(f"pr-41.{domain}")[0] == 404
    assert web_bodies(env, f"pr-42.{domain}") == {"pr-42/web"}
    assert web_bodies(env, main_host) == {f"{main}/web-main"}
    # --keep-releases: the project stays listed (0/0) with its release, ready to be rolled back
    luma("down", "-p", previews["42"], "--keep-releases", "--proxy-name", env.proxy, cwd=env.workdir)
    rows = {r["project"]: r for r in json.loads(luma("ls", "--format", "json").stdout)}
    assert (rows[previews["42"]]["total"], rows[previews["42"]]["release"]) == (0, 1)
    luma("rollback", "-p", previews["42"], "1", *ROLL, env.proxy, cwd=env.workdir)
    assert web_bodies(env, f"pr-42.{domain}") == {"pr-42/web"}
