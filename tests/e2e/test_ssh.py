"""Issue 12.2: deploy over SSH. An OpenSSH server (Debian's openssh-server) run by this test on
127.0.0.1 with a throwaway host key and authorized_keys; the client side uses a throwaway key and
known_hosts through an ssh config this test writes (an ``ssh`` wrapper first on PATH adds ``-F``, so
neither ~/.ssh nor the system config is touched). ``ssh://root@127.0.0.1:PORT`` reaches this same
engine through sshd: that proves the transport (the SDK and docker compose both go through ssh).

Health checks run from inside the proxy: the client never reaches a container network.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

import dockerkit as dk
from test_deploy import SELECT, Traffic, env, new_project, running, source  # noqa: F401  (env is a fixture)

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> str:
    dk.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "luma-test", "-f", str(path)])
    return path.with_suffix(".pub").read_text().strip() if path.suffix else Path(str(path) + ".pub").read_text().strip()


@dataclass
class SshServer:
    dir: Path
    port: int
    host_pub: str

    @property
    def url(self) -> str:
        return f"ssh://root@127.0.0.1:{self.port}"

    def client_env(self, identity: Path | None = None, known_host_key: str | None = None) -> dict[str, str]:
        """Env for a client: PATH with an ``ssh`` that uses our config (key, known_hosts, batch mode)."""
        tag = f"{(identity or self.dir / 'id').name}-{abs(hash(known_host_key or self.host_pub))}"
        d = self.dir / f"client-{tag}"
        d.mkdir(exist_ok=True)
        kh = d / "known_hosts"
        kh.write_text(f"[127.0.0.1]:{self.port} {known_host_key or self.host_pub}\n")
        cfg = d / "ssh_config"
        cfg.write_text(f"Host *\n  IdentityFile {identity or self.dir / 'id'}\n  IdentitiesOnly yes\n"
                       f"  UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n"
                       "  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n")
        bindir = d / "bin"
        bindir.mkdir(exist_ok=True)
        wrapper = bindir / "ssh"
        wrapper.write_text(f"#!/bin/sh\nexec {shutil.which('ssh')} -F {cfg} \"$@\"\n")
        wrapper.chmod(0o755)
        return {"PATH": f"{bindir}:{os.environ['PATH']}"}


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    for tool in (SSHD, "ssh", "ssh-keygen"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: scripts/test installs openssh-server and openssh-client", pytrace=False)
    d = tmp_path / "sshd"
    d.mkdir()
    host_pub = keygen(d / "host_key")
    client_pub = keygen(d / "id")
    keygen(d / "stranger")  # a key the server does not know
    (d / "authorized_keys").write_text(client_pub + "\n")
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        f"PidFile {d / 'sshd.pid'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nMaxStartups 100:30:200\n"
        "MaxSessions 100\nLogLevel ERROR\n")
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    log = open(d / "sshd.log", "w")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"sshd did not listen:\n{(d / 'sshd.log').read_text()}")
        yield SshServer(d, port, host_pub)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def luma(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    full = {**os.environ, **env}
    full.pop("DOCKER_CONTEXT", None)
    return subprocess.run([*dk.luma_compose_cmd(), *args], capture_output=True, text=True, timeout=timeout, env=full)


def test_deploy_over_ssh_under_load_and_every_command(sshd, env, busybox_image, tmp_path):  # noqa: F811
    client = {**sshd.client_env(), "DOCKER_HOST": sshd.url}
    project, host = new_project(env, "ssh")
    f = dk.write(env.workdir / project / "compose.yaml", source(project, busybox_image, host, "v1"))
    args = ["-f", str(f), "--drain", "0.5", "--timeout", "60", "--proxy-name", env.proxy, "--proxy-image", env.caddy,
            "--proxy-http-port", "127.0.0.1:0", "--proxy-https-port", "127.0.0.1:0", "--proxy-tls", "off",
            "--proxy-select", SELECT]
    r = luma("deploy", *args, env=client)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0] == f" engine: {sshd.url} (from DOCKER_HOST)"
    v1 = running(project)
    assert len(v1) == 2 and env.get(host)[0] == 200

    # a redeploy over ssh while traffic flows through the proxy: no failed request
    dk.write(f, source(project, busybox_image, host, "v2"))
    with Traffic(env, host) as t:
        r = luma("deploy", *args, env=client)
    assert r.returncode == 0, r.stderr
    failures = {k: v for k, v in t.outcomes.items() if k not in (f"{project}/web-v1", f"{project}/web-v2")}
    assert sum(t.outcomes.values()) > 20 and not failures, t.outcomes
    assert not (running(project) & v1) and env.get(host)[1].startswith(f"{project}/web-v2/")

    # a context of that kind, in a DOCKER_CONFIG of our own; routes and status through it
    cfg = tmp_path / "docker-config"
    cfg.mkdir()
    ctx = dk.unique("sshctx")
    dk.run(["docker", "context", "create", ctx, "--docker", f"host={sshd.url}"], env={"DOCKER_CONFIG": str(cfg)})
    via_ctx = {**sshd.client_env(), "DOCKER_CONFIG": str(cfg), "DOCKER_HOST": ""}
    full = {**os.environ, **via_ctx, "DOCKER_CONTEXT": ctx}
    full.pop("DOCKER_HOST")
    r = subprocess.run([*dk.luma_compose_cmd(), "routes", "--name", env.proxy], capture_output=True, text=True,
                       env=full, timeout=120)
    assert r.returncode == 0 and host in r.stdout, r.stderr
    r = subprocess.run([*dk.luma_compose_cmd(), "proxy", "status", "--name", env.proxy], capture_output=True,
                       text=True, env=full, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0] == f"engine: {sshd.url} (context {ctx}, from DOCKER_CONTEXT)"

    r = luma("down", "-f", str(f), "--proxy-name", env.proxy, env=client)
    assert r.returncode == 0, r.stderr
    assert dk.project_containers(project) == []


def test_wrong_host_key_or_key_is_a_clear_error(sshd, tmp_path):
    stranger_host = Path(str(sshd.dir / "stranger") + ".pub").read_text().strip()
    bad_host = {**sshd.client_env(known_host_key=stranger_host), "DOCKER_HOST": sshd.url}
    r = luma("routes", env=bad_host)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "over ssh" in r.stderr and "Host key verification failed" in r.stderr and "known_hosts" in r.stderr
    assert r.stdout == ""
    bad_key = {**sshd.client_env(identity=sshd.dir / "stranger"), "DOCKER_HOST": sshd.url}
    r = luma("proxy", "status", env=bad_key)
    assert r.returncode == 3 and "Permission denied" in r.stderr and "key was refused" in r.stderr, r.stderr
