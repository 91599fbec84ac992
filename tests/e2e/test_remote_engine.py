"""Issue 12.1 and 12.5: one engine per command, the one the docker CLI would use; deploy --dry-run.

The Docker CLI configuration is a throwaway ``DOCKER_CONFIG`` directory per test, with contexts
this test creates through ``docker context create``: ``dead`` points at a socket nobody listens on,
``relay`` at a unix-socket relay to this engine that the test owns and whose connections it counts.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Iterator

import jsonschema
import pytest

import dockerkit as dk
from luma_compose.engine.client import resolve
from test_deploy import SELECT, env, new_project, source  # noqa: F401  (env is a fixture)
from test_proxy_reconnect import Relay

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
ENGINE = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


class CountingRelay(Relay):
    def __init__(self, path: str):
        super().__init__(path)
        self.accepted = 0

    def _accept(self, srv) -> None:  # count, then relay as the parent does
        import socket as _s
        import threading

        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            self.accepted += 1
            upstream = _s.socket(_s.AF_UNIX, _s.SOCK_STREAM)
            upstream.connect(ENGINE.removeprefix("unix://"))
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()


@pytest.fixture
def docker_config(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A DOCKER_CONFIG of our own with contexts `dead<id>` and `relay<id>`; env additions to use it."""
    cfg = tmp_path / "docker-config"
    cfg.mkdir()
    relay = CountingRelay(str(tmp_path / "relay.sock"))
    relay.start()
    base = {"DOCKER_CONFIG": str(cfg), "DOCKER_HOST": "", "DOCKER_CONTEXT": ""}
    names = {"dead": dk.unique("dead"), "relay": dk.unique("relay")}
    dk.run(["docker", "context", "create", names["dead"], "--docker", f"host=unix://{tmp_path}/nobody.sock"], env=base)
    dk.run(["docker", "context", "create", names["relay"], "--docker", f"host=unix://{relay.path}"], env=base)
    try:
        yield {"env": base, "cfg": str(cfg), "relay_sock": relay, **names}  # type: ignore[misc]
    finally:
        relay.cut()


def luma(*args: str, env: dict[str, str], check: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    full = {**os.environ, **env}
    for k in ("DOCKER_HOST", "DOCKER_CONTEXT"):
        if not full.get(k):
            full.pop(k, None)
    return subprocess.run([*dk.luma_compose_cmd(), *args], capture_output=True, text=True, timeout=timeout, env=full)


def cli_endpoint(args: list[str], env: dict[str, str]) -> str:
    """The endpoint the docker CLI itself resolves: ``docker [args] context inspect`` of the context it picked."""
    full = {k: v for k, v in {**os.environ, **env}.items() if v}
    p = subprocess.run(["docker", *args, "context", "inspect", "--format", "{{.Endpoints.docker.Host}}"],
                       capture_output=True, text=True, env=full, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_endpoint_resolution_equals_the_docker_cli(docker_config):
    dc = docker_config
    base = dc["env"]
    cases: list[tuple[list[str], dict[str, str]]] = [
        ([], {}),
        ([], {"DOCKER_CONTEXT": dc["dead"]}),
        ([], {"DOCKER_HOST": "tcp://192.0.2.1:2375", "DOCKER_CONTEXT": dc["dead"]}),
        (["--context", dc["relay"]], {"DOCKER_HOST": "tcp://192.0.2.1:2375"}),
        (["--host", "unix:///x.sock"], {"DOCKER_CONTEXT": dc["dead"]}),
        (["--context", "default"], {"DOCKER_HOST": "tcp://192.0.2.1:2375"}),
        ([], {"DOCKER_CONTEXT": "default"}),
    ]
    for args, extra in cases:
        env = {**base, **extra}
        host = args[1] if args[:1] == ["--host"] else None
        ctx = args[1] if args[:1] == ["--context"] else None
        ours = resolve(host, ctx, {k: v for k, v in {**os.environ, **env}.items()}).url
        assert ours == cli_endpoint(args, env), (args, extra)
    # the current context in config.json (docker context use), below both variables
    dk.run(["docker", "context", "use", dc["relay"]], env=base)
    env = {k: v for k, v in {**os.environ, **base}.items() if v}
    assert resolve(environ=env).url == cli_endpoint([], base) == f"unix://{dc['relay_sock'].path}"
    env2 = {**env, "DOCKER_CONTEXT": dc["dead"]}
    assert resolve(environ=env2).url == cli_endpoint([], {**base, "DOCKER_CONTEXT": dc["dead"]})


def test_an_unreachable_context_fails_every_command_like_docker_ps(docker_config, tmp_path):
    dc = docker_config
    env = {**dc["env"], "DOCKER_CONTEXT": dc["dead"]}
    assert subprocess.run(["docker", "ps"], capture_output=True,
                          env={k: v for k, v in {**os.environ, **env}.items() if v}).returncode != 0
    for args in (["routes"], ["proxy", "status", "--name", dk.unique("noproxy")]):
        r = luma(*args, env=env)
        assert r.returncode == 3, (args, r.stdout, r.stderr)
        assert f"context {dc['dead']}, from DOCKER_CONTEXT" in r.stderr and "nobody.sock" in r.stderr
        assert r.stdout == ""  # nothing listed from another engine
    f = dk.write(tmp_path / "p" / "compose.yaml", source("p" + dk.RUN_ID, "img", "h.example.test", "v1"))
    r = luma("deploy", "-f", str(f), env=env)
    assert r.returncode == 3 and r.stderr.splitlines()[0].startswith(f" engine: unix://{tmp_path}/nobody.sock")
    r = luma("--context", "nope" + dk.RUN_ID, "routes", env=env)
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_deploy_plan_and_status_through_the_selected_engine(docker_config, env, busybox_image):  # noqa: F811
    """`--host` beats DOCKER_CONTEXT=dead for both paths: were docker compose to follow the context, the
    deploy would fail. Every engine call (SDK and compose) goes through the relay socket we count."""
    dc = docker_config
    relay_url = f"unix://{dc['relay_sock'].path}"
    e = {**dc["env"], "DOCKER_CONTEXT": dc["dead"]}
    project, host = new_project(env, "remote")
    f = dk.write(env.workdir / project / "compose.yaml", source(project, busybox_image, host, "v1"))
    proxy = ["--proxy-name", env.proxy, "--proxy-image", env.caddy, "--proxy-http-port", "127.0.0.1:0",
             "--proxy-https-port", "127.0.0.1:0", "--proxy-tls", "off", "--proxy-select", SELECT]
    schema = json.loads((SCHEMAS / "deploy-plan.schema.json").read_text())

    # plan before the first deploy: everything to create, proxy to start; exit 4 (changes pending)
    r = luma("--host", relay_url, "deploy", "--dry-run", "-f", str(f), "--proxy-name", env.proxy, env=e)
    assert r.returncode == 4, r.stdout + r.stderr
    assert r.stdout.splitlines()[0] == f"engine: {relay_url}"
    assert f"proxy {env.proxy}: would be started" in r.stdout
    assert "+ service web [routed]: create 2 replica(s)" in r.stdout and f"+ host {host} -> web" in r.stdout
    assert dk.project_containers(project) == [] and not dk.run(["docker", "inspect", env.proxy], check=False).returncode == 0

    before = dc["relay_sock"].accepted
    r = luma("--host", relay_url, "deploy", "-f", str(f), "--drain", "0.5", "--timeout", "30", *proxy, env=e)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0] == f" engine: {relay_url} (from --host)"
    assert dc["relay_sock"].accepted > before  # the SDK and docker compose went through the relay
    assert env.get(host)[0] == 200

    # nothing to do: exit 0; JSON follows the schema
    r = luma("--host", relay_url, "deploy", "--dry-run", "--format", "json", "-f", str(f), "--proxy-name", env.proxy,
             env=e)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, schema)
    assert not doc["changes"] and doc["proxy"]["action"] == "keep"
    assert {s["service"]: s["action"] for s in doc["services"]} == {"web": "keep", "worker": "keep"}

    # a new version and a moved host: exit 4, roll with the reason, nothing changed by the plan
    v1 = sorted(dk.project_containers(project))
    dk.write(f, source(project, busybox_image, host, "v2").replace(host, f"new.{host}"))
    r = luma("--host", relay_url, "deploy", "--dry-run", "--format", "json", "-f", str(f), "--proxy-name", env.proxy,
             env=e)
    assert r.returncode == 4
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, schema)
    assert {s["service"]: (s["action"], s["why"]) for s in doc["services"]}["web"] == ("roll", "configuration changed")
    assert {(h["host"], h["change"]) for h in doc["hosts"]} == {(host, "remove"), (f"new.{host}", "add")}
    assert sorted(dk.project_containers(project)) == v1 and env.get(host)[0] == 200

    # a file with a problem: exit 1 and the problems, in JSON too
    bad = dk.write(env.workdir / "bad" / "compose.yaml", "services:\n  web:\n    image: x\n    x-luma:\n      hots: a\n")
    r = luma("--host", relay_url, "deploy", "--dry-run", "--format", "json", "-f", str(bad), env=e)
    assert r.returncode == 1 and json.loads(r.stdout)["problems"]

    # status names the engine, in text and JSON
    r = luma("--context", dc["relay"], "proxy", "status", "--name", env.proxy, env=e)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0] == f"engine: {relay_url} (context {dc['relay']}, from --context)"
    r = luma("--context", dc["relay"], "proxy", "status", "--name", env.proxy, "--format", "json", env=e)
    assert json.loads(r.stdout)["proxy"]["engine"] == {"host": relay_url, "context": dc["relay"], "source": "--context"}
    r = luma("--context", dc["relay"], "down", "-f", str(f), "--proxy-name", env.proxy, env=e)
    assert r.returncode == 0, r.stderr
    assert dk.project_containers(project) == []
