"""Issue 22 items 1 and 2 on a real two-node swarm (tests/support/cluster.py, as test_swarm.py):
paths (longest prefix, /api never /apix, strip_prefix as the app sees it) and redirects (308 with
path and query) through every node's edge; another project's paths, redirects and injected label
values refused by `deploy --swarm` and, when put in place with `docker stack deploy` itself, by the
edges (the shop stays served). Runs private dockerds: under flock /tmp/luma-private-engine.lock."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dockerkit  # noqa: E402
from support import cluster as clusterkit  # noqa: E402
from test_swarm import PORT, luma  # noqa: E402

pytestmark = pytest.mark.e2e

FILES = "index.html x apix api/index.html api/x api/v2/x"
SERVE = ('["sh", "-c", "mkdir -p /www/api/v2 && for f in ' + FILES + '; do echo \\"$$SERVICE /$$f\\" > /www/$$f; '
         'done && echo ok > /www/up && exec httpd -f -p 3000 -h /www"]')

SERVICE = """\
  {name}:
    image: {image}
    environment: {{SERVICE: {name}}}
    command: {command}
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/up"]
      interval: 1s
      timeout: 1s
      retries: 2
    x-luma: {xluma}
"""


def stack(image: str, services: dict[str, str]) -> str:
    return "services:\n" + "".join(SERVICE.format(name=n, image=image, command=SERVE, xluma=x)
                                   for n, x in services.items())



def fetch(c, node, host: str, path: str) -> tuple[str, str, str]:
    """(status, body, Location) of one GET through ``node``'s edge, from the client namespace."""
    p = c.in_client(["curl", "-s", "-m", "5", "-o", "/dev/stdout", "-w", "|%{http_code}|%{redirect_url}",
                     "-H", f"Host: {host}", f"http://{node.ip}:{PORT}{path}"], timeout=30)
    body, code, location = (p.stdout.rsplit("|", 2) + ["", ""])[:3] if p.stdout.count("|") >= 2 else (p.stdout, "ERR", "")
    return code, body.strip(), location


def misses(c, node, host: str) -> dict:
    want = {
        "/": ("200", "web /index.html", ""),
        "/apix": ("200", "web /apix", ""),
        "/api": ("200", "api /index.html", ""),
        "/api/x": ("200", "api /x", ""),
        "/api/v2/x": ("200", "v2 /api/v2/x", ""),
    }
    got = {p: fetch(c, node, host, p) for p in want}
    code, _, location = fetch(c, node, f"www.{host}", "/a/b?c=d")
    got["www"], want["www"] = (code, location), ("308", f"http://{host}:{PORT}/a/b?c=d")
    return {k: (got[k], want[k]) for k in want if got[k] != want[k]}


def served_everywhere(c, host: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    miss: dict = {}
    while time.monotonic() < deadline:
        miss = {n.ip: m for n in c.nodes if (m := misses(c, n, host))}
        if not miss:
            return
        time.sleep(1)
    raise AssertionError(miss)


def test_paths_and_redirects_on_every_node_and_no_other_stack_takes_them(swarm, tmp_path, busybox_image, unique):
    c = swarm
    shop, evil = unique("rpshop"), unique("rpevil")
    host = f"{shop}.test"
    f = dockerkit.write(tmp_path / shop / "compose.yaml", stack(busybox_image, {
        "web": f"{{hosts: [{host}], port: 3000, health: /up, redirect_from: [www.{host}]}}",
        "api": f"{{hosts: [{host}], port: 3000, health: /up, paths: [/api], strip_prefix: true}}",
        "v2": f"{{hosts: [{host}], port: 3000, health: /up, paths: [/api/v2]}}"}))
    hostile = dockerkit.write(tmp_path / evil / "compose.yaml", stack(busybox_image, {
        "grab": f"{{hosts: [{host}], port: 3000, health: /up, paths: [/admin]}}",
        "redir": f"{{hosts: [{evil}.test], port: 3000, health: /up, redirect_from: [www.{host}]}}",
        "inject": f"{{hosts: [inject.{evil}.test], port: 3000, health: /up, paths: [/x]}}"}))
    try:
        luma(c, "deploy", "--swarm", "-f", str(f), "-p", shop, "--resolve-image", "never")
        served_everywhere(c, host)
        routes = json.loads(luma(c, "routes", "--swarm", "--format", "json").stdout)
        mine = {r["service"]: r for r in routes["routes"] if r["project"] == shop}
        assert mine["api"]["paths"] == ["/api"] and mine["api"]["strip_prefix"] is True
        assert mine["web"]["redirect_from"] == [f"www.{host}"] and mine["web"]["redirect_to"] == host

        # deploy refuses a stack that claims the shop's host by path or its redirect host; --dry-run says so first
        dry = luma(c, "deploy", "--swarm", "--dry-run", "-f", str(hostile), "-p", evil, check=False)
        assert dry.returncode == 1 and f"host {host} (service grab)" in dry.stdout \
            and f"host www.{host} (service redir)" in dry.stdout, dry.stdout + dry.stderr
        again = luma(c, "deploy", "--swarm", "--dry-run", "-f", str(f), "-p", shop, check=False)
        assert again.returncode == 4 and f"update {shop}_web" in again.stdout, again.stdout + again.stderr
        p = luma(c, "deploy", "--swarm", "-f", str(hostile), "-p", evil, "--resolve-image", "never", check=False)
        assert p.returncode != 0 and f"host {host} (service grab)" in p.stderr \
            and f"host www.{host} (service redir)" in p.stderr, p.stderr
        # ... and when the labels are put in place by hand, the edges refuse them the same way
        text = luma(c, "render", "--swarm", "-f", str(hostile), "-p", evil).stdout
        assert "luma.paths: /x" in text
        text = text.replace("luma.paths: /x", 'luma.paths: "/{http.request.host}"')
        c.docker("stack", "deploy", "--detach=false", "--resolve-image", "never", "-c", "-", evil, input=text)
        p = luma(c, "proxy", "sync", "--swarm", check=False)
        assert p.returncode == 1 and f"{evil}/grab claims {host}" in p.stderr \
            and f"{evil}/redir claims www.{host}" in p.stderr and "label luma.paths" in p.stderr, p.stderr
        served_everywhere(c, host)
        for node in c.nodes:
            assert fetch(c, node, host, "/admin")[0] == "404"  # the shop's web: no such file
            assert fetch(c, node, f"inject.{evil}.test", "/x")[0] == "404"  # refused: no route
    finally:
        c.docker("stack", "rm", evil, check=False)
        luma(c, "down", "--swarm", "-p", shop, check=False)
