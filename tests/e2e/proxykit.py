"""Helpers for the proxy hardening e2e tests (issue 10): projects as render writes them, a
proxy per test, HTTP and WebSocket clients, on the shared engine or on a private one.

Every name is unique; everything is removed at the end, pass or fail.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import dockerkit as dk
from ruamel.yaml import YAML

from luma_compose import api, contract

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

SELECT_KEY = "lumatest.run"
SELECT = f"{SELECT_KEY}={dk.RUN_ID}"


def compose_doc(project: str, image: str, services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A compose file rendered by luma-compose itself (``api.render_text``). Per service: hosts, replicas,
    command, healthcheck, restart, environment, more x-luma keys (``x_luma``), and labels set over the
    rendered ones (the attacks)."""
    svcs = {}
    for s, spec in services.items():
        svc: dict[str, Any] = {
            "image": image,
            "environment": {"PROJECT": project, "SERVICE": s, **spec.get("environment", {})},
            "labels": {SELECT_KEY: dk.RUN_ID},  # our proxies route only this run's containers
            "deploy": {"replicas": spec.get("replicas", 1)},
            "stop_grace_period": "1s",
            "x-luma": {"hosts": list(spec["hosts"]), "port": 3000, **spec.get("x_luma", {})},
        }
        for k in ("command", "healthcheck", "restart"):
            if k in spec:
                svc[k] = spec[k]
        svcs[s] = svc
    result = api.render_text(f"<{project}>", json.dumps({"services": svcs}), project=project)
    assert result.ok and result.text, [p.message for p in result.problems]
    doc = YAML(typ="safe").load(result.text)
    for s, spec in services.items():
        doc["services"][s]["labels"].update(spec.get("labels", {}))
    return doc


@dataclass
class Engine:
    """Which engine the commands go to: the shared one (env {}) or a private one."""

    env: dict[str, str] = field(default_factory=dict)
    #: Where the proxy's published ports are reached from this process.
    address: str = "127.0.0.1"

    def docker(self, *args: str, check: bool = True, timeout: float = 180) -> str:
        return dk.run(["docker", *args], check=check, timeout=timeout, env=self.env).stdout

    def cli(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return dk.run([*dk.luma_compose_cmd(), *args], check=check, timeout=timeout, env=self.env)

    def inspect(self, obj: str) -> dict[str, Any]:
        return json.loads(self.docker("inspect", obj))[0]


SHARED = Engine()


@dataclass
class Project:
    name: str
    engine: Engine
    file: Path

    def compose(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return dk.run(["docker", "compose", "-p", self.name, "-f", str(self.file), *args], check=check,
                      timeout=timeout, env=self.engine.env)

    def container(self, service: str, index: int = 1) -> str:
        return f"{self.name}-{service}-{index}"

    def ip(self, service: str, index: int = 1) -> str:
        nets = self.engine.inspect(self.container(service, index))["NetworkSettings"]["Networks"]
        return nets[contract.ingress_network(self.name)]["IPAddress"]


@contextlib.contextmanager
def project(engine: Engine, workdir: Path, name: str, image: str, services: dict[str, dict[str, Any]],
            up: bool = True) -> Iterator[Project]:
    f = dk.write(workdir / name / "compose.yaml", json.dumps(compose_doc(name, image, services), indent=1))
    p = Project(name, engine, f)
    try:
        if up:
            p.compose("up", "-d", "--quiet-pull")
        yield p
    finally:
        p.compose("down", "-v", "--remove-orphans", "--timeout", "1", check=False)
        for c in engine.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={name}",
                               check=False).split():
            engine.docker("rm", "-f", "-v", c, check=False)
        net = contract.ingress_network(name)
        for _ in range(20):
            if engine.docker("network", "ls", "-q", "--filter", f"name=^{net}$", check=False).strip() == "":
                break
            # a proxy of ours may still be attached
            info = json.loads(engine.docker("network", "inspect", net, check=False) or "[{}]")[0]
            for cid in (info.get("Containers") or {}):
                engine.docker("network", "disconnect", "-f", net, cid, check=False)
            engine.docker("network", "rm", net, check=False)
            time.sleep(0.25)


@dataclass
class Proxy:
    name: str
    volume: str
    image: str
    engine: Engine
    args: list[str]

    def published(self, container_port: str = "80/tcp") -> int:
        ports = self.engine.inspect(self.name)["NetworkSettings"]["Ports"]
        return int(ports[container_port][0]["HostPort"])

    @property
    def port(self) -> int:
        return self.published()

    def up(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.engine.cli("proxy", "up", "--name", self.name, "--image", self.image, "--volume", self.volume,
                               *self.args, *extra, check=check)

    def sync(self, check: bool = False) -> subprocess.CompletedProcess[str]:
        return self.engine.cli("proxy", "sync", "--name", self.name, check=check)

    def routes(self) -> dict[str, Any]:
        return json.loads(self.engine.cli("routes", "--name", self.name, "--format", "json", check=False).stdout)

    def get(self, host: str, path: str = "/", timeout: float = 15) -> tuple[int, str]:
        return get(self.engine.address, self.port, host, path, timeout)


@contextlib.contextmanager
def proxy(engine: Engine, image: str, *args: str, http_port: str = "127.0.0.1:0",
          https_port: str = "127.0.0.1:0", up: bool = True) -> Iterator[Proxy]:
    name = dk.unique("lumaproxy")
    p = Proxy(name, f"{name}-data", image, engine,
              ["--http-port", http_port, "--https-port", https_port, "--select", SELECT, *args])
    try:
        if up:
            p.up()
        yield p
    finally:
        engine.docker("rm", "-f", "-v", name, check=False)
        for c in engine.docker("ps", "-aq", "--filter", f"name={name}", check=False).split():
            engine.docker("rm", "-f", "-v", c, check=False)  # a kept or temporary container of up
        for v in engine.docker("volume", "ls", "-q", "--filter", f"name={name}", check=False).split():
            engine.docker("volume", "rm", "-f", v, check=False)


def get(address: str, port: int, host: str, path: str = "/", timeout: float = 15) -> tuple[int, str]:
    """One GET on a new connection; (0, error) when the connection failed."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace").strip()
    except (OSError, http.client.HTTPException) as e:
        return 0, f"{type(e).__name__}: {e}"
    finally:
        conn.close()


def wait_for(fn: Callable[[], Any], timeout: float = 15, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    return last


def serves(p: Proxy, host: str, prefix: str, n: int = 10) -> Counter:
    """n GETs; a Counter of (status, prefix-or-body) so a failure shows what answered."""
    out: Counter = Counter()
    for _ in range(n):
        code, body = p.get(host)
        out[(code, prefix if body.startswith(prefix) else body)] += 1
    return out


class WebSocket:
    """A raw upgraded connection through the proxy (the test image's ws-serve echoes bytes)."""

    def __init__(self, address: str, port: int, host: str):
        self.sock = socket.create_connection((address, port), timeout=10)
        self.sock.sendall(f"GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode())
        buf = b""
        while b"hello from " not in buf or not buf.endswith(b"\n"):
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"upgrade failed: {buf!r}")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise AssertionError(f"no 101: {buf!r}")
        self.greeting = rest.decode().strip()
        self.opened = time.monotonic()

    def echo(self, msg: str, timeout: float = 5) -> bool:
        data = (msg + "\n").encode()
        try:
            self.sock.settimeout(timeout)
            self.sock.sendall(data)
            got = b""
            while len(got) < len(data):
                chunk = self.sock.recv(4096)
                if not chunk:
                    return False
                got += chunk
            return got == data
        except OSError:
            return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
