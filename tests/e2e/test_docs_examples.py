"""Every example in README.md, CONTRIBUTING.md and docs/*.md runs as written (issue 21, item 6).

Each page's ``sh`` and ``python`` blocks run in order, in a directory of the page's own, where its
``<!-- file: PATH -->`` blocks are written first; each must exit 0 (or what its ``<!-- exit: N -->``
says). Blocks marked ``<!-- not run: why -->`` are listed, never run (tests/unit/test_docs.py makes
sure every block is one or the other, and checks the compose files).

So that the examples run *as written* (port 8080, the default proxy name, projects named after
their folders, public image names), they run against a private engine in a network namespace of
its own (tests/support/private_engine.py): nothing there can collide with the shared engine or
another test, and it has no route out, so no image is ever pulled. Its only images are the locally
built test images tagged with the names the docs use: ``caddy:2`` (the proxy image), and
``nginx:alpine`` and ``traefik/whoami`` (busybox httpd on port 80, answering
``image/<name>/<hostname>`` on ``/``, ``/up`` and ``/health``).

Runs a private dockerd: run it under ``flock /tmp/luma-private-engine.lock`` (see CONTRIBUTING.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

import dockerkit as dk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
import docblocks as db  # noqa: E402

#: public name -> what the substitute answers on "/" (image/<name>/<hostname>)
SUBSTITUTES = {"nginx:alpine": "nginx", "traefik/whoami:latest": "whoami"}
PROXY_IMAGE = "caddy:2"


def _runnable(b: db.Block) -> bool:
    return b.lang in ("sh", "python") and not b.not_run


PAGES = [p for p in db.pages() if p.name != "README.md" and any(_runnable(b) for b in db.blocks(p))]


@pytest.fixture(scope="module")
def docs_engine(busybox_image: str, caddy_image: str) -> Iterator:
    from private_engine import PrivateEngine

    if os.geteuid() != 0:
        pytest.fail("the docs' examples run on a private dockerd, which needs root")
    with PrivateEngine.started("ld" + dk.RUN_ID[:6]) as eng:
        eng.load_image(busybox_image)
        eng.load_image(caddy_image)
        eng.docker("tag", caddy_image, PROXY_IMAGE)
        for tag, name in SUBSTITUTES.items():
            maker = f"make-{name}"
            eng.docker("run", "--name", maker, busybox_image, "sh", "-c", "mkdir -p /www && echo ok > /www/health")
            eng.docker("commit", "--change", "ENV PORT=80", "--change", "ENV PROJECT=image",
                       "--change", f"ENV SERVICE={name}", "--change", 'CMD ["/usr/local/bin/serve"]', maker, tag)
            eng.docker("rm", maker)
        eng.docker("rmi", busybox_image, caddy_image)  # only the names the docs use are left
        yield eng


def _clean(eng) -> None:
    """Remove everything a page left (the private engine is ours alone)."""
    ids = eng.docker("ps", "-aq").split()
    if ids:
        eng.docker("rm", "-f", *ids)
    nets = [n for n in eng.docker("network", "ls", "--format", "{{.Name}}").split() if n not in ("bridge", "host", "none")]
    if nets:
        eng.docker("network", "rm", *nets)
    vols = eng.docker("volume", "ls", "-q").split()
    if vols:
        eng.docker("volume", "rm", "-f", *vols)


def _env(eng) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "LUMA_", "COMPOSE_"))}
    env.update(PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", NO_COLOR="1", **eng.env)
    return env


def run_page(eng, page: Path, workdir: Path,
             after: Callable[[db.Block, subprocess.CompletedProcess[str]], None] = lambda b, r: None) -> dict[str, int]:
    """Run a page's examples in order in workdir; returns how many blocks ran and were not run."""
    shutil.copytree(db.REPO / "examples", workdir / "examples")  # what a checkout has
    counts = {"ran": 0, "not run": 0, "files": 0}
    ns = ["nsenter", f"--net=/var/run/netns/{eng.netns}"]
    for b in db.blocks(page):
        db.validate(b)
        if b.not_run:
            counts["not run"] += 1
            print(f"not run: {b.where}: {b.not_run}")
            continue
        if b.file:
            target = workdir / b.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(b.text)
            counts["files"] += 1
            continue
        if not _runnable(b):
            continue  # a synopsis, or a compose file checked by tests/unit/test_docs.py
        cmd = [*ns, "bash", "-eo", "pipefail", "-c", b.text] if b.lang == "sh" else [*ns, sys.executable, "-c", b.text]
        r = subprocess.run(cmd, cwd=workdir, env=_env(eng), capture_output=True, text=True, timeout=900)
        print(f"ran {b.where}: exit {r.returncode}")
        assert r.returncode == b.exit, (
            f"{b.where}: the example exited {r.returncode}, the docs say {b.exit}:\n{b.text}\n"
            f"--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}")
        counts["ran"] += 1
        after(b, r)
    print(page.name, counts)
    return counts


def _containers_of(eng, project: str) -> dict[str, str]:
    """short id (a container's hostname) -> compose service, of a project's containers."""
    out = eng.docker("ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
                     "--format", '{{.ID}} {{.Label "com.docker.compose.service"}}')
    return dict(line.split() for line in out.splitlines() if line.strip())


def _curl(eng, host: str) -> tuple[str, str]:
    r = subprocess.run(["nsenter", f"--net=/var/run/netns/{eng.netns}", "curl", "-sS", "-o", "/dev/stdout",
                        "-w", "\n%{http_code}", "-H", f"Host: {host}", "http://127.0.0.1:8080/"],
                       capture_output=True, text=True, timeout=30)
    body, _, code = r.stdout.rpartition("\n")
    return code, body.strip()


def test_the_quickstart_runs_as_written_and_each_host_reaches_its_own_project(docs_engine, tmp_path):
    eng = docs_engine
    workdir = tmp_path / "quickstart"
    workdir.mkdir()
    seen: dict[str, object] = {}

    def after(block: db.Block, r: subprocess.CompletedProcess[str]) -> None:
        if "Host: blog.localhost" not in block.text:
            return
        # the curl block: blog's page came from blog's web, shop's from shop's web
        blog, shop = _containers_of(eng, "blog"), _containers_of(eng, "shop")
        assert set(blog.values()) == {"web"} and set(shop.values()) == {"web"}, (blog, shop)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("image/")]
        assert len(lines) == 2, r.stdout
        (_, img1, host1), (_, img2, host2) = (ln.split("/") for ln in lines)
        assert (img1, img2) == ("nginx", "whoami") and host1 in blog and host2 in shop, (lines, blog, shop)
        # every host of shop, and a host nobody routes
        code, body = _curl(eng, "www.shop.localhost")
        assert code == "200" and body.split("/")[2] in shop, (code, body)
        assert _curl(eng, "nobody.localhost")[0] == "404"
        seen["curl"] = True

    try:
        counts = run_page(eng, db.REPO / "README.md", workdir, after)
        assert seen.get("curl"), "the README has no quickstart block asking blog.localhost"
        assert counts["ran"] >= 3 and counts["files"] == 2, counts
        # the quickstart's clean-up left nothing behind
        assert eng.docker("ps", "-aq").split() == []
        assert _containers_of(eng, "blog") == {} == _containers_of(eng, "shop")
    finally:
        _clean(eng)


@pytest.mark.parametrize("page", PAGES, ids=db.page_id)
def test_every_example_of_the_page_runs_as_written(docs_engine, page, tmp_path):
    workdir = tmp_path / page.stem
    workdir.mkdir()
    try:
        counts = run_page(docs_engine, page, workdir)
        assert counts["ran"] >= 1
    finally:
        _clean(docs_engine)
