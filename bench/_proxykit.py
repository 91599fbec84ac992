"""Shared setup for the proxy benchmarks: local images, a uniquely named proxy, compose files
written as render writes them. Everything created is removed at exit, also on failure."""

from __future__ import annotations

import contextlib
import http.client
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "images"))
sys.path.insert(0, str(ROOT / "tests"))

import build as image_build  # noqa: E402  (tests/images/build.py)

from luma_compose import api, contract  # noqa: E402
from support.processes import background  # noqa: E402  (tests/support/processes.py)

RUN = secrets.token_hex(3)
#: Put on every benchmark container; the benchmark proxy routes only these (--select).
SELECT = f"bench.luma-compose.run={RUN}"  # not luma.*: render owns that prefix


def sh(*cmd: str, check: bool = True, input: str | None = None) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, input=input)
    if check and p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def luma(*args: str, check: bool = True) -> str:
    return sh(sys.executable, "-m", "luma_compose.cli", *args, check=check)


def compose_text(project: str, image: str, hosts: list[str], replicas: int = 1,
                 command: list[str] | None = None, cpus: float | None = None) -> str:
    """A one-service compose file rendered by luma-compose itself (``api.render_text``)."""
    svc: dict = {
        "image": image,
        "environment": {"PROJECT": project, "SERVICE": "web"},
        "labels": {SELECT.split("=")[0]: RUN},
        "deploy": {"replicas": replicas},
        "x-luma": {"hosts": hosts, "port": 3000},
    }
    if command:
        svc["command"] = command
    if cpus:
        svc["cpus"] = cpus
    result = api.render_text(f"<{project}>", json.dumps({"services": {"web": svc}}), project=project)
    if not result.ok or not result.text:
        raise SystemExit(f"bench: render refused the bench file: {[p.message for p in result.problems]}")
    return result.text


@contextlib.contextmanager
def images() -> Iterator[tuple[str, str]]:
    bb, cd = f"luma-bench-busybox:{RUN}", f"luma-bench-caddy:{RUN}"
    try:
        image_build.build_busybox_image(bb)
        image_build.build_caddy_image(cd)
        yield bb, cd
    finally:
        sh("docker", "rmi", "-f", bb, cd, check=False)


@contextlib.contextmanager
def proxy(caddy_image: str) -> Iterator[tuple[str, int]]:
    name = f"lumabenchproxy{RUN}"
    try:
        luma("proxy", "up", "--name", name, "--image", caddy_image, "--volume", f"{name}-data",
             "--http-port", "127.0.0.1:0", "--tls", "off", "--select", SELECT)
        port = json.loads(sh("docker", "inspect", name))[0]["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
        yield name, int(port)
    finally:
        sh("docker", "rm", "-f", name, check=False)
        sh("docker", "volume", "rm", "-f", f"{name}-data", check=False)


def proxy_run(name: str):
    """``luma-compose proxy run`` in the background for the block (stopped with SIGTERM)."""
    return background([sys.executable, "-m", "luma_compose.cli", "proxy", "run", "--name", name], capture=False)


@contextlib.contextmanager
def project(name: str, image: str, hosts: list[str], proxy_name: str, replicas: int = 1,
            command: list[str] | None = None, cpus: float | None = None) -> Iterator["Project"]:
    d = Path(tempfile.mkdtemp(prefix="luma-bench-"))
    (d / "compose.yaml").write_text(compose_text(name, image, hosts, replicas, command, cpus))
    p = Project(name, d, proxy_name)
    try:
        yield p
    finally:
        p.down()
        shutil.rmtree(d, ignore_errors=True)


class Project:
    def __init__(self, name: str, directory: Path, proxy_name: str):
        self.name, self.dir, self.proxy_name = name, directory, proxy_name

    def compose(self, *args: str, check: bool = True) -> str:
        return sh("docker", "compose", "-p", self.name, "--project-directory", str(self.dir),
                  "-f", str(self.dir / "compose.yaml"), *args, check=check)

    def up(self) -> None:
        self.compose("up", "-d", "--quiet-pull")

    def down(self) -> None:
        sh("docker", "network", "disconnect", "-f", contract.ingress_network(self.name), self.proxy_name, check=False)
        self.compose("down", "-v", "--remove-orphans", "--timeout", "1", check=False)
        sh("docker", "network", "rm", contract.ingress_network(self.name), check=False)


def status(port: int, host: str, ip: str = "127.0.0.1") -> int:
    c = http.client.HTTPConnection(ip, port, timeout=5)
    try:
        c.request("GET", "/", headers={"Host": host})
        r = c.getresponse()
        r.read()
        return r.status
    except OSError:
        return 0
    finally:
        c.close()


# --- where the CPU goes: per-container and per-process CPU time -------------------------------------

def container_cpu_seconds(container_id: str) -> float | None:
    """CPU time used so far by a container (cgroup v1 cpuacct or v2 cpu.stat); None if unreadable."""
    for path, scale in ((f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage", 1e-9),
                        (f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat", 1e-6),
                        (f"/sys/fs/cgroup/docker/{container_id}/cpu.stat", 1e-6)):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        if path.endswith("cpu.stat"):
            for line in text.splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) * scale
            continue
        return int(text) * scale
    return None


def process_cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    import os
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def docker_proxy_pids(host_port: int) -> list[int]:
    """PIDs of Docker's userland proxy (docker-proxy) forwarding host_port, if the engine uses one."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"docker-proxy") and b"-host-port" in argv:
            i = argv.index(b"-host-port")
            if i + 1 < len(argv) and argv[i + 1] == str(host_port).encode():
                pids.append(int(d.name))
    return pids


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (nginx's master and workers)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def caddy_binary() -> str:
    return str(image_build.find_caddy())


@contextlib.contextmanager
def host_process(cmd: list[str], port: int, log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """Run a reverse proxy on the host (loopback) until the block ends; waits until ``port`` accepts."""
    import os
    import socket
    import time

    with open(log, "wb") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if p.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{cmd[0]} did not start:\n{log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.05)
        yield p
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
