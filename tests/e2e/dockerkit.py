"""Shared helpers for the e2e tests: real docker, real docker compose, nothing mocked.

Everything here shells out to the ``docker`` CLI (the same one a user runs), so the tests prove
what a user would see. Names are made unique per run so leftovers of earlier runs never collide,
and everything created is removed again, also when a test fails.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

#: Short random id of this test run, part of every name we create.
RUN_ID = secrets.token_hex(3)

#: Label put on every container/network the tests create by hand (compose projects carry
#: com.docker.compose.project=<unique name> instead).
#: Not a `luma.*` label: render owns that prefix on routed services (and removes what it did not write).
E2E_LABEL = f"e2e.luma-compose.run={RUN_ID}"

_counter = itertools.count(1)

FAIL = "FAIL"


class DockerError(AssertionError):
    """A docker command failed; the message carries its command line and stderr."""


def run(
    cmd: list[str],
    *,
    check: bool = True,
    input: str | None = None,
    timeout: float = 180,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        p = subprocess.run(
            cmd, capture_output=True, text=True, input=input, timeout=timeout, cwd=cwd,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired as e:
        raise DockerError(f"timed out after {timeout}s: {' '.join(cmd)}") from e
    if check and p.returncode != 0:
        raise DockerError(
            f"command failed (exit {p.returncode}): {' '.join(cmd)}\n"
            f"--- stdout\n{p.stdout.strip()}\n--- stderr\n{p.stderr.strip()}"
        )
    return p


def docker(*args: str, check: bool = True, input: str | None = None, timeout: float = 180) -> str:
    return run(["docker", *args], check=check, input=input, timeout=timeout).stdout


def unique(prefix: str = "t") -> str:
    """A unique lowercase name valid for compose projects, networks and containers.

    The prefix comes first so a test can control how names sort (``zeta...`` sorts after
    ``luma...``), which matters for Docker's DNS (see test_naive_layout.py).
    """
    prefix = re.sub(r"[^a-z0-9]", "", prefix.lower()) or "t"
    return f"{prefix}{RUN_ID}{next(_counter)}"


# --------------------------------------------------------------------------- exec helpers


def exec_sh(container: str, script: str, *, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run(["docker", "exec", container, "sh", "-c", script], check=check, timeout=timeout)


def http_get(container: str, url: str) -> str:
    """One GET from inside ``container`` (busybox wget); the body stripped, or FAIL."""
    p = exec_sh(container, f"wget -q -O - {sh_quote(url)}")
    return p.stdout.strip() if p.returncode == 0 else FAIL


def http_many(container: str, url: str, n: int) -> list[str]:
    """``n`` sequential GETs from inside ``container`` in one exec; one entry per request.

    Each request is a fresh wget process, so each one does its own DNS lookup. A failed request
    yields FAIL. Never uses ``wget -T`` (segfaults in busybox here).
    """
    script = (
        f"i=0; while [ $i -lt {int(n)} ]; do i=$((i+1)); "
        f"b=$(wget -q -O - {sh_quote(url)} 2>/dev/null) || b={FAIL}; "
        'echo "R:$b"; done'
    )
    p = exec_sh(container, script, timeout=60 + n)
    bodies = [line[2:].strip() for line in p.stdout.splitlines() if line.startswith("R:")]
    if len(bodies) != n:
        raise DockerError(f"expected {n} results from {container}, got {len(bodies)}:\n{p.stdout}\n{p.stderr}")
    return bodies


def nslookup(container: str, name: str) -> list[str] | None:
    """IPv4 addresses ``name`` resolves to inside ``container`` (Docker's DNS), or None."""
    p = exec_sh(container, f"nslookup {sh_quote(name)}")
    if p.returncode != 0:
        return None
    ips: list[str] = []
    seen_name = False
    for line in p.stdout.splitlines():
        if line.startswith("Name:"):
            seen_name = True
        elif seen_name and line.startswith("Address:"):
            ip = line.split(":", 1)[1].strip()
            if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", ip):
                ips.append(ip)
    return ips or None


def tcp_connects(container: str, ip: str, port: int, wait: int = 2) -> bool:
    """Whether a TCP connect from ``container`` to ``ip:port`` succeeds within ``wait`` seconds.

    Busybox nc has no -z: ``-e true`` runs ``true`` right after the connect and exits 0, while a
    refused or timed-out connect exits 1.
    """
    p = exec_sh(container, f"nc -w {int(wait)} {sh_quote(ip)} {int(port)} -e true </dev/null", timeout=wait + 30)
    return p.returncode == 0


@dataclass
class Probe:
    """Results of one :func:`probe` run inside a container."""

    resolves: dict[str, bool]
    connects: dict[tuple[str, int], bool]


def probe(container: str, names: list[str], endpoints: list[tuple[str, int]], wait: int = 2) -> Probe:
    """In ONE exec: does each name resolve (nslookup), does a TCP connect to each endpoint work?

    The connects run in parallel, so dropped packets cost ``wait`` seconds once, not per target.
    """
    lines = []
    for i, n in enumerate(names):
        lines.append(f"nslookup {sh_quote(n)} >/dev/null 2>&1; echo \"N{i}:$?\"")
    for i, (ip, port) in enumerate(endpoints):
        lines.append(
            f"( nc -w {int(wait)} {sh_quote(ip)} {int(port)} -e true </dev/null >/dev/null 2>&1; "
            f"echo \"T{i}:$?\" ) &"
        )
    lines.append("wait")
    p = exec_sh(container, "\n".join(lines), timeout=60 + wait)
    codes: dict[str, int] = {}
    for line in p.stdout.splitlines():
        m = re.fullmatch(r"([NT]\d+):(\d+)", line.strip())
        if m:
            codes[m.group(1)] = int(m.group(2))
    missing = [f"N{i}" for i in range(len(names)) if f"N{i}" not in codes]
    missing += [f"T{i}" for i in range(len(endpoints)) if f"T{i}" not in codes]
    if missing:
        raise DockerError(f"probe in {container} returned no result for {missing}:\n{p.stdout}\n{p.stderr}")
    return Probe(
        resolves={n: codes[f"N{i}"] == 0 for i, n in enumerate(names)},
        connects={ep: codes[f"T{i}"] == 0 for i, ep in enumerate(endpoints)},
    )


def sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


def inspect(obj: str) -> dict[str, Any]:
    return json.loads(docker("inspect", obj))[0]


def container_ips(container: str) -> dict[str, str]:
    """network name -> IPv4 address of ``container``."""
    nets = inspect(container)["NetworkSettings"]["Networks"]
    return {name: n["IPAddress"] for name, n in nets.items()}


def container_networks(container: str) -> list[str]:
    return sorted(container_ips(container))


def wait_http(container: str, url: str, tries: int = 50) -> None:
    """Wait until ``url`` answers from inside ``container`` (busybox httpd starts fast)."""
    script = (
        f"i=0; while [ $i -lt {tries} ]; do i=$((i+1)); "
        f"wget -q -O /dev/null {sh_quote(url)} 2>/dev/null && exit 0; sleep 0.2; done; exit 1"
    )
    p = exec_sh(container, script, timeout=tries + 30)
    if p.returncode != 0:
        raise DockerError(f"{url} never answered from {container}")


# --------------------------------------------------------------------------- render


def luma_compose_cmd() -> list[str]:
    exe = shutil.which("luma-compose")
    if exe:
        return [exe]
    return [sys.executable, "-m", "luma_compose.cli"]


def render(src: Path, project: str) -> str:
    """``luma-compose render -f SRC -p PROJECT``: the rendered compose file as text."""
    p = run([*luma_compose_cmd(), "render", "-f", str(src), "-p", project], check=False, timeout=60)
    if p.returncode != 0:
        raise DockerError(
            f"luma-compose render -f {src} -p {project} failed (exit {p.returncode}):\n{p.stderr}"
        )
    return p.stdout


# --------------------------------------------------------------------------- compose projects


@dataclass
class ComposeProject:
    """A compose project under a unique name; ``down -v --remove-orphans`` always runs at exit."""

    name: str
    files: list[Path]
    directory: Path
    env: dict[str, str] = field(default_factory=dict)
    #: The compose file fed on stdin when ``files`` contains ``-`` (the render pipe).
    stdin: str | None = None

    def compose(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        cmd = ["docker", "compose", "-p", self.name, "--project-directory", str(self.directory)]
        for f in self.files:
            cmd += ["-f", str(f)]
        if input is None:
            input = self.stdin
        return run([*cmd, *args], check=check, input=input, timeout=timeout, env=self.env)

    def up(self, *extra: str) -> None:
        self.compose("up", "-d", "--quiet-pull", *extra)

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.compose("down", "-v", "--remove-orphans", "--timeout", "1", check=False)

    def config(self) -> str:
        return self.compose("config").stdout

    def container(self, service: str, index: int = 1) -> str:
        """The container name compose gives replica ``index`` of ``service``."""
        return f"{self.name}-{service}-{index}"

    def containers(self) -> list[str]:
        return project_containers(self.name)


def project_containers(project: str) -> list[str]:
    out = docker("ps", "-a", "--filter", f"label=com.docker.compose.project={project}", "--format", "{{.Names}}")
    return sorted(out.split())


def project_networks(project: str) -> list[str]:
    out = docker("network", "ls", "--filter", f"label=com.docker.compose.project={project}", "--format", "{{.Name}}")
    return sorted(out.split())


def attached_containers(network: str) -> list[str]:
    """Names of the containers attached to ``network`` (empty if it does not exist)."""
    p = run(["docker", "network", "inspect", network, "--format", "{{json .Containers}}"], check=False)
    if p.returncode != 0:
        return []
    return sorted(c["Name"] for c in (json.loads(p.stdout) or {}).values())


def project_volumes(project: str) -> list[str]:
    out = docker("volume", "ls", "--filter", f"label=com.docker.compose.project={project}", "--format", "{{.Name}}")
    return sorted(out.split())


def force_remove_project(project: str) -> None:
    """Last-resort cleanup of what compose left of OUR project (selected by its unique label)."""
    for c in project_containers(project):
        docker("rm", "-f", "-v", c, check=False)
    # A network stays "in use" while any container is attached; a luma proxy on this engine
    # joins every ingress network and may take a moment to leave. Retry for a while.
    for _ in range(30):
        left = [n for n in project_networks(project) if run(["docker", "network", "rm", n], check=False).returncode != 0]
        if not left:
            break
        time.sleep(0.5)
    for v in project_volumes(project):
        docker("volume", "rm", "-f", v, check=False)
    remove_releases(project)


def remove_releases(project: str) -> None:
    """The releases deploy recorded of OUR project (docs/releases.md): their volumes and pin tags."""
    for v in docker("volume", "ls", "-q", "--filter", f"label=luma.release.project={project}").split():
        docker("volume", "rm", "-f", v, check=False)
    for ref in docker("images", "--format", "{{.Repository}}:{{.Tag}}", f"luma-release/{project}").split():
        docker("rmi", ref, check=False)


@contextlib.contextmanager
def compose_project(
    name: str,
    files: list[Path] | Path,
    *,
    directory: Path | None = None,
    up: bool = True,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> Iterator[ComposeProject]:
    """Bring a project up (unless ``up=False``) and ALWAYS take it down again.

    ``files=[Path("-")], stdin=text`` runs ``docker compose -f -`` with the text on stdin, exactly
    like ``luma-compose render | docker compose -f - up -d``.
    """
    files = [files] if isinstance(files, Path) else list(files)
    if directory is None:
        if str(files[0]) == "-":
            raise ValueError("a project read from stdin needs directory=")
        directory = files[0].parent
    proj = ComposeProject(name, files, directory, dict(env or {}), stdin)
    try:
        if up:
            proj.up()
        yield proj
    finally:
        proj.down()
        force_remove_project(name)


@contextlib.contextmanager
def network(name: str, *, internal: bool = False) -> Iterator[str]:
    """A network created by hand (labelled as ours), removed at exit."""
    args = ["network", "create", "--label", E2E_LABEL]
    if internal:
        args.append("--internal")
    docker(*args, name)
    try:
        yield name
    finally:
        # Containers still attached would block removal; only ours can be attached to it.
        for c in inspect(name).get("Containers", {}) or {}:
            docker("network", "disconnect", "-f", name, c, check=False)
        docker("network", "rm", name, check=False)


@contextlib.contextmanager
def container(name: str, image: str, *args: str, networks: list[str] = (), aliases: dict[str, list[str]] | None = None, env: dict[str, str] | None = None, cmd: list[str] = ()) -> Iterator[str]:
    """``docker run -d`` a container by hand (labelled as ours), joined to ``networks``; removed at exit."""
    run_args = ["run", "-d", "--name", name, "--label", E2E_LABEL]
    for k, v in (env or {}).items():
        run_args += ["-e", f"{k}={v}"]
    nets = list(networks)
    if nets:
        run_args += ["--network", nets[0]]
        for a in (aliases or {}).get(nets[0], []):
            run_args += ["--network-alias", a]
    try:
        docker(*run_args, *args, image, *cmd)
        for net in nets[1:]:
            extra: list[str] = []
            for a in (aliases or {}).get(net, []):
                extra += ["--alias", a]
            docker("network", "connect", *extra, net, name)
        yield name
    finally:
        docker("rm", "-f", "-v", name, check=False)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@contextlib.contextmanager
def workdir(prefix: str = "luma-e2e-") -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
