"""`proxy run` survives losing the Docker daemon, and catches up when it is back.

Restarting the real dockerd would stop every container on the engine, ours or not. Instead
`proxy run` talks to the engine through a relay socket this test owns (DOCKER_HOST), and the
test cuts that relay: to `proxy run` it is exactly a daemon that went away (the event stream
and every API call fail) and came back. While it is cut, a new project starts; once the relay
is back, `proxy run` must reconnect by itself and route the new project.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from typing import Iterator

import dockerkit as dk
from luma_compose import contract
from test_proxy import compose_text, get, proxy_container

ENGINE_SOCKET = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")


class Relay:
    """A unix-socket relay to the engine that can be cut (all connections dropped) and restored."""

    def __init__(self, path: str):
        self.path = path
        self.server: socket.socket | None = None
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(self.path)
        srv.listen(64)
        self.server = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(ENGINE_SOCKET)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self.server:
            self.server.close()
            self.server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def served(port: int, host: str, project: str, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            code, body = get(port, host)
            if code == 200 and body.startswith(f"{project}/web/"):
                return True
        time.sleep(0.2)
    return False


@contextlib.contextmanager
def project(workdir, image: str, proxy_name: str) -> Iterator[tuple[dk.ComposeProject, str]]:
    name = dk.unique("rc")
    host = f"{name}.example.test"
    f = dk.write(workdir / name / "compose.yaml", compose_text(name, image, {"web": {"hosts": [host]}}))
    with dk.compose_project(name, f) as proj:
        try:
            yield proj, host
        finally:
            dk.docker("network", "disconnect", "-f", contract.ingress_network(name), proxy_name, check=False)


def test_proxy_run_reconnects_after_the_daemon_goes_away(busybox_image, caddy_image, tmp_path):
    relay = Relay(str(tmp_path / "docker.sock"))
    relay.start()
    with proxy_container(caddy_image, "--tls", "off") as proxy, contextlib.ExitStack() as stack:
        first, first_host = stack.enter_context(project(tmp_path, busybox_image, proxy.name))
        log = open(tmp_path / "run.log", "w+")
        run = subprocess.Popen([*dk.luma_compose_cmd(), "proxy", "run", "--name", proxy.name],
                               stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "DOCKER_HOST": f"unix://{relay.path}"})
        try:
            assert served(proxy.port, first_host, first.name, within=30), "proxy run never routed the first project"
            relay.cut()
            time.sleep(2)
            # the engine carries on without proxy run: a project starts while it is cut off
            second, second_host = stack.enter_context(project(tmp_path, busybox_image, proxy.name))
            assert not served(proxy.port, second_host, second.name, within=1)
            relay.start()
            assert served(proxy.port, second_host, second.name, within=30), "no catch-up after the daemon came back"
            assert served(proxy.port, first_host, first.name, within=5)
            assert run.poll() is None, "proxy run exited when the daemon went away"
        finally:
            run.send_signal(signal.SIGTERM)
            try:
                run.wait(timeout=20)
            except subprocess.TimeoutExpired:  # it must stop on SIGTERM: the assertion below says it did not
                run.kill()
                run.wait()
            relay.cut()
        log.seek(0)
        out = log.read()
        assert run.returncode == 0, out
        assert "reconnect" in out, out
