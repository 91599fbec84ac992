"""Issue 5: ``deploy`` and ``down``. Real engine, real docker compose, real Caddy proxy, real HTTP
through the port the proxy publishes on 127.0.0.1.

Every deploy goes through the real CLI (render included). Each test starts its own proxy
(unique name, ephemeral ports, ``--proxy-select`` on a label only this run's files carry) and
removes it, its volume and every project it deployed at the end, pass or fail.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

import dockerkit as dk
from test_proxy import get

SELECT_KEY = "lumatest.run"  # render owns the luma.* label namespace; ours must live outside it
SELECT = f"{SELECT_KEY}={dk.RUN_ID}"


def source(project: str, image: str, host: str, version: str, *, replicas: int = 2, broken: bool = False,
           sidecar: bool = True) -> str:
    """A compose *source* file (x-luma, not yet rendered). Bodies read PROJECT/SERVICE/HOSTNAME;
    SERVICE carries the version so a response says which version answered."""
    web = {
        "image": image,
        "environment": {"PROJECT": project, "SERVICE": f"web-{version}"},
        "deploy": {"replicas": replicas},
        "stop_grace_period": "1s",  # busybox httpd as PID 1 ignores SIGTERM
        "labels": {SELECT_KEY: dk.RUN_ID},
        "x-luma": {"hosts": [host], "port": 3000, "health": "/up"},
    }
    if broken:  # serves /, but its health path answers 404
        web["command"] = ["sh", "-c", "echo broken version starting; mkdir -p /www; echo x > /www/index.html; "
                                      "exec httpd -f -p 3000 -h /www"]
    services = {"web": web}
    if sidecar:
        services["worker"] = {"image": image, "stop_grace_period": "1s",
                              "environment": {"PROJECT": project, "SERVICE": f"worker-{version}"}}
    return block_yaml({"name": project, "services": services})


def block_yaml(doc: dict) -> str:
    """Block-style YAML (render adds keys to service mappings, which it cannot do in flow style)."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.default_flow_style = False
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return buf.getvalue()


@dataclass
class Env:
    proxy: str
    caddy: str
    workdir: Path

    def deploy(self, project: str, text: str, *extra: str, check: bool = True):
        f = dk.write(self.workdir / project / "compose.yaml", text)
        return dk.run([*dk.luma_compose_cmd(), "deploy", "-f", str(f), "--drain", "0.5", "--timeout", "30",
                       "--proxy-name", self.proxy, "--proxy-image", self.caddy,
                       "--proxy-http-port", "127.0.0.1:0", "--proxy-https-port", "127.0.0.1:0",
                       "--proxy-tls", "off", "--proxy-select", SELECT, *extra], check=check, timeout=300)

    def down(self, project: str, *extra: str):
        f = self.workdir / project / "compose.yaml"
        return dk.run([*dk.luma_compose_cmd(), "down", "-f", str(f), "--proxy-name", self.proxy, *extra],
                      timeout=300)

    @property
    def port(self) -> int:
        return int(dk.inspect(self.proxy)["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])

    def get(self, host: str, path: str = "/") -> tuple[int, str]:
        return get(self.port, host, path)


def running(project: str, service: str = "web") -> set[str]:
    out = dk.docker("ps", "-q", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}",
                    "--filter", f"label=com.docker.compose.service={service}")
    return set(out.split())


def bodies(env: Env, host: str, n: int = 40) -> Counter:
    return Counter(env.get(host) for _ in range(n))


@pytest.fixture
def env(caddy_image, tmp_path) -> Iterator[Env]:
    name = dk.unique("deployproxy")
    e = Env(name, caddy_image, tmp_path)
    projects: list[str] = []
    e.projects = projects  # type: ignore[attr-defined]
    try:
        yield e
    finally:
        with contextlib.suppress(Exception):
            dk.docker("rm", "-f", "-v", name, check=False)
        for p in projects:
            dk.force_remove_project(p)
        dk.docker("volume", "rm", "-f", f"{name}-data", check=False)


def new_project(env: Env, prefix: str) -> tuple[str, str]:
    p = dk.unique(prefix)
    env.projects.append(p)  # type: ignore[attr-defined]
    return p, f"{p}.example.test"


class Traffic:
    """Sequential GETs through the proxy in a thread, counting outcomes, with a browser's connection
    handling: one keep-alive connection, and a GET that fails on a *reused* connection the server
    closed is sent again once on a new one (what browsers and Go's client do; every Caddy config load
    closes idle keep-alive connections). A failure on a fresh connection counts as an error."""

    def __init__(self, env: Env, host: str):
        self.env, self.host = env, host
        self.stop = threading.Event()
        self.outcomes: Counter = Counter()
        self.retried = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        conn, used = None, False
        while not self.stop.is_set():
            if conn is None:
                conn, used = http.client.HTTPConnection("127.0.0.1", self.env.port, timeout=10), False
            try:
                conn.request("GET", "/", headers={"Host": self.host})
                r = conn.getresponse()
                status, body = r.status, r.read().decode().strip()
                used = True
                self.outcomes[status if status != 200 else body.rsplit("/", 1)[0]] += 1
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                conn.close()
                conn = None
                if used:
                    self.retried += 1  # sent again on a new connection by the next turn of the loop
                else:
                    self.outcomes[f"error: {type(e).__name__}"] += 1
            except (OSError, http.client.HTTPException) as e:  # a response cut short (IncompleteRead) too
                conn.close()
                conn = None
                self.outcomes[f"error: {type(e).__name__}"] += 1
        if conn is not None:
            conn.close()

    def __enter__(self) -> "Traffic":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def test_first_deploy_serves_and_a_redeploy_rolls_to_the_new_version_without_errors(env, busybox_image):
    project, host = new_project(env, "roll")
    r = env.deploy(project, source(project, busybox_image, host, "v1"))
    assert f"http://{host}:{env.port}/" in r.stdout.split()
    assert "Wait for web" in r.stderr  # progress: one line per step
    v1 = running(project)
    assert len(v1) == 2
    got = bodies(env, host)
    assert {s for s, _ in got} == {200}
    assert {b.rsplit("/", 1)[0] for _, b in got} == {f"{project}/web-v1"}
    assert {b.rsplit("/", 1)[1] for _, b in got} == {c[:12] for c in v1}  # both replicas serve

    with Traffic(env, host) as t:
        env.deploy(project, source(project, busybox_image, host, "v2"))
    v2 = running(project)
    assert len(v2) == 2 and not (v1 & v2), "the old containers must be gone, exactly 2 new ones left"
    names = dk.docker("ps", "-a", "--filter", f"label=com.docker.compose.project={project}", "--format", "{{.Names}}")
    assert "draining" not in names
    got = bodies(env, host)
    assert {b.rsplit("/", 1)[0] for _, b in got} == {f"{project}/web-v2"}
    assert {b.rsplit("/", 1)[1] for _, b in got} == {c[:12] for c in v2}
    failures = {k: v for k, v in t.outcomes.items() if k not in (f"{project}/web-v1", f"{project}/web-v2")}
    assert sum(t.outcomes.values()) > 20 and not failures, t.outcomes


def test_a_redeploy_whose_health_check_fails_keeps_the_old_version_serving(env, busybox_image):
    project, host = new_project(env, "broken")
    env.deploy(project, source(project, busybox_image, host, "v1"))
    v1 = running(project)
    with Traffic(env, host) as t:
        r = env.deploy(project, source(project, busybox_image, host, "v2", broken=True), "--timeout", "4",
                       check=False)
    assert r.returncode == 1, r.stderr
    assert "did not become healthy" in r.stderr
    assert "404" in r.stderr  # why: the status of the last check
    assert "broken version starting" in r.stderr  # the last lines of the new container's log
    assert "Traceback" not in r.stderr
    assert running(project) == v1, "the old containers must be the ones left running"
    left = dk.docker("ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
                     "--filter", "label=com.docker.compose.service=web", "-q", "--no-trunc").split()
    assert set(left) == v1, "the failed new containers must be removed"
    assert {b.rsplit("/", 1)[0] for _, b in bodies(env, host)} == {f"{project}/web-v1"}
    assert set(t.outcomes) == {f"{project}/web-v1"}, t.outcomes


def test_two_projects_deploy_and_redeploy_independently_and_down_leaves_the_other_serving(env, busybox_image):
    a, host_a = new_project(env, "alpha")
    b, host_b = new_project(env, "beta")
    env.deploy(a, source(a, busybox_image, host_a, "v1"))
    env.deploy(b, source(b, busybox_image, host_b, "v1", replicas=1))
    a1, b1 = running(a), running(b)
    env.deploy(b, source(b, busybox_image, host_b, "v2", replicas=1))
    assert running(a) == a1, "redeploying beta must not touch alpha"
    assert running(b) != b1
    assert {x for _, x in bodies(env, host_a, 10)} <= {f"{a}/web-v1/{c[:12]}" for c in a1}
    assert {x.rsplit("/", 1)[0] for _, x in bodies(env, host_b, 10)} == {f"{b}/web-v2"}

    with Traffic(env, host_a) as t:
        env.down(b)
    assert dk.project_containers(b) == [] and dk.project_networks(b) == []
    assert dk.run(["docker", "network", "inspect", f"{b}_luma"], check=False).returncode != 0
    assert env.get(host_b)[0] == 404
    assert {x for _, x in bodies(env, host_a, 10)} <= {f"{a}/web-v1/{c[:12]}" for c in a1}
    assert set(t.outcomes) == {f"{a}/web-v1"}, t.outcomes
    assert running(a) == a1


def test_deploy_refuses_a_host_another_project_routes_and_changes_nothing(env, busybox_image):
    a, host = new_project(env, "owner")
    b, _ = new_project(env, "thief")
    env.deploy(a, source(a, busybox_image, host, "v1", replicas=1))
    r = env.deploy(b, source(b, busybox_image, host, "v1", replicas=1), check=False)
    assert r.returncode == 1
    assert f"host {host}" in r.stderr and f"project {a}" in r.stderr
    assert dk.project_containers(b) == [] and dk.project_networks(b) == []
    assert env.get(host)[1].startswith(f"{a}/web-v1/")


def test_deploy_of_a_file_with_problems_touches_nothing(env, busybox_image):
    p, host = new_project(env, "bad")
    text = block_yaml({"name": p, "services": {"web": {"image": busybox_image,
                                                       "x-luma": {"hosts": [host], "port": "nope"}}}})
    r = env.deploy(p, text, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "compose.yaml" in r.stderr
    assert dk.project_containers(p) == []
    assert dk.run(["docker", "inspect", env.proxy], check=False).returncode != 0, "no proxy was started"
