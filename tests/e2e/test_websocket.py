"""Issue 10, item 9: one project's deploy must not touch another project's traffic.

A WebSocket (the test image's ws-serve: 101, then every byte echoed) is held open through
the proxy while another project deploys (two config loads), and while its own project rolls
out: it must last at least until its old container's drain ends. Real engine, real deploy.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import dockerkit as dk
import proxykit as pk
from test_deploy import block_yaml

DRAIN = 3.0


def ws_source(project: str, image: str, host: str, version: str) -> str:
    return block_yaml({"name": project, "services": {"web": {
        "image": image,
        "command": ["/usr/local/bin/ws-serve"],
        "environment": {"PROJECT": project, "SERVICE": f"web-{version}"},
        "stop_grace_period": "1s",
        "labels": {pk.SELECT_KEY: dk.RUN_ID},
        "x-luma": {"hosts": [host], "port": 3000, "health": "/up"},
    }}})


class Deploys:
    def __init__(self, workdir: Path, proxy: str, caddy: str):
        self.workdir, self.proxy, self.caddy = workdir, proxy, caddy
        self.projects: list[str] = []

    def deploy(self, project: str, text: str, check: bool = True):
        f = dk.write(self.workdir / project / "compose.yaml", text)
        if project not in self.projects:
            self.projects.append(project)
        return dk.run([*dk.luma_compose_cmd(), "deploy", "-f", str(f), "--drain", str(DRAIN), "--timeout", "30",
                       "--proxy-name", self.proxy, "--proxy-image", self.caddy,
                       "--proxy-http-port", "127.0.0.1:0", "--proxy-https-port", "127.0.0.1:0",
                       "--proxy-tls", "off", "--proxy-select", pk.SELECT], check=check, timeout=300)

    def cleanup(self) -> None:
        for p in self.projects:
            f = self.workdir / p / "compose.yaml"
            dk.run([*dk.luma_compose_cmd(), "down", "-f", str(f), "--proxy-name", self.proxy], check=False,
                   timeout=300)
        dk.docker("rm", "-f", "-v", self.proxy, check=False)
        dk.docker("volume", "rm", "-f", f"{self.proxy}-data", check=False)
        for p in self.projects:
            dk.force_remove_project(p)

    @property
    def port(self) -> int:
        return int(dk.inspect(self.proxy)["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])


@contextlib.contextmanager
def deploys(tmp_path: Path, caddy_image: str):
    d = Deploys(tmp_path, dk.unique("lumaproxy"), caddy_image)
    try:
        yield d
    finally:
        d.cleanup()


def test_a_websocket_stays_open_across_another_projects_deploy(tmp_path, busybox_image, caddy_image):
    with deploys(tmp_path, caddy_image) as d:
        a, b = dk.unique("chat"), dk.unique("other")
        d.deploy(a, ws_source(a, busybox_image, f"{a}.test", "v1"))
        ws = pk.WebSocket("127.0.0.1", d.port, f"{a}.test")
        try:
            assert ws.greeting.startswith(f"hello from {a}/web-v1/")
            assert ws.echo("before")
            d.deploy(b, ws_source(b, busybox_image, f"{b}.test", "v1"))  # a new route: config loads
            assert ws.echo("after the first deploy of another project")
            d.deploy(b, ws_source(b, busybox_image, f"{b}.test", "v2"))  # a rollout of it: more loads
            assert ws.echo("after a rollout of another project")
            assert dk.run([*dk.luma_compose_cmd(), "proxy", "sync", "--name", d.proxy], check=False).returncode in (0, 1)
            assert ws.echo("after a sync")
            assert time.monotonic() - ws.opened > 5  # it was held across all of that
        finally:
            ws.close()


def test_a_websocket_lasts_until_the_drain_of_its_own_rollout_ends(tmp_path, busybox_image, caddy_image):
    with deploys(tmp_path, caddy_image) as d:
        a = dk.unique("chat")
        d.deploy(a, ws_source(a, busybox_image, f"{a}.test", "v1"))
        ws = pk.WebSocket("127.0.0.1", d.port, f"{a}.test")
        alive_until: list[float] = []
        draining_seen: list[float] = []
        stop = threading.Event()

        def ping():
            i = 0
            while not stop.is_set():
                i += 1
                if not ws.echo(f"ping {i}", timeout=3):
                    alive_until.append(time.monotonic())
                    return
                time.sleep(0.1)

        def watch_drain():
            while not stop.is_set() and not draining_seen:
                names = dk.docker("ps", "--filter", f"label=com.docker.compose.project={a}", "--format",
                                  "{{.Names}}", check=False)
                if "--luma-draining" in names:
                    draining_seen.append(time.monotonic())
                time.sleep(0.1)

        threads = [threading.Thread(target=ping), threading.Thread(target=watch_drain)]
        for t in threads:
            t.start()
        try:
            d.deploy(a, ws_source(a, busybox_image, f"{a}.test", "v2"))
            done = time.monotonic()
        finally:
            stop.set()
            for t in threads:
                t.join(10)
            ws.close()
        assert draining_seen, "deploy never marked the old container draining"
        end = alive_until[0] if alive_until else done
        # open through the move of traffic to v2, and for the drain after it
        assert end - draining_seen[0] >= DRAIN - 0.5, (end - draining_seen[0])
        # new connections go to v2
        fresh = pk.WebSocket("127.0.0.1", d.port, f"{a}.test")
        try:
            assert fresh.greeting.startswith(f"hello from {a}/web-v2/")
        finally:
            fresh.close()


def test_a_long_download_survives_another_projects_deploy(tmp_path, busybox_image, caddy_image):
    """Not an upgraded connection: an ordinary response still streaming when a config load
    replaces the server must finish (Caddy's old server waits for it)."""
    size = 24 * 1024 * 1024
    with deploys(tmp_path, caddy_image) as d:
        a, b = dk.unique("files"), dk.unique("other")
        text = block_yaml({"name": a, "services": {"web": {
            "image": busybox_image,
            "command": ["sh", "-c", f"mkdir -p /www && head -c {size} /dev/zero > /www/big && exec serve"],
            "environment": {"PROJECT": a, "SERVICE": "web"},
            "stop_grace_period": "1s",
            "labels": {pk.SELECT_KEY: dk.RUN_ID},
            "x-luma": {"hosts": [f"{a}.test"], "port": 3000, "health": "/up"},
        }}})
        d.deploy(a, text)
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        conn.request("GET", "/big", headers={"Host": f"{a}.test"})
        r = conn.getresponse()
        assert r.status == 200
        got = 0
        deployed = threading.Thread(target=d.deploy, args=(b, ws_source(b, busybox_image, f"{b}.test", "v1")))
        started = overlap = False
        t0 = time.monotonic()
        while True:
            chunk = r.read(64 * 1024)
            if not chunk:
                break
            got += len(chunk)
            if not started and got > 1024 * 1024:
                deployed.start()  # the other project's deploy loads the config mid-download
                started = True
            if started and not deployed.is_alive() and got < size:
                overlap = True  # the deploy (and its config loads) ended while this was streaming
            if deployed.is_alive() or time.monotonic() - t0 < 2:
                time.sleep(0.05)  # a slow reader: the response is still streaming during the loads
        conn.close()
        deployed.join(300)
        assert started and overlap, "the download ended before the other deploy: nothing was proven"
        assert got == size, (got, size)
