"""Issue 10, item 7: routes follow a plain ``render | docker compose -f - up -d`` through the
watcher, kept running by the systemd unit ``proxy install`` writes.

The CI machine runs no systemd, so the test writes the unit (``--no-enable``), checks it, and
runs its ExecStart exactly as systemd would; then a project started with plain compose (no
luma-compose command) is routed, and a project brought down with plain compose is unrouted.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess

import dockerkit as dk
from support.processes import background
import proxykit as pk
from luma_compose.proxy import service_unit


def test_the_installed_unit_keeps_routes_following_plain_compose(tmp_path, busybox_image, caddy_image):
    with contextlib.ExitStack() as stack:
        proxy = stack.enter_context(pk.proxy(pk.SHARED, caddy_image, "--tls", "off"))
        unit_dir = tmp_path / "units"
        pk.SHARED.cli("proxy", "install", "--name", proxy.name, "--unit-dir", str(unit_dir), "--no-enable")
        unit = unit_dir / service_unit.unit_name(proxy.name)
        text = unit.read_text()
        assert "Restart=always" in text and "After=docker.service" in text and "WantedBy=multi-user.target" in text
        if shutil.which("systemd-analyze"):
            r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
            assert "ExecStart" not in r.stderr, r.stderr
        argv = service_unit.exec_start(text)
        assert argv[-4:] == ["proxy", "run", "--name", proxy.name]
        runner = stack.enter_context(background(argv))
        name = dk.unique("plain")
        host = f"{name}.test"
        proj = stack.enter_context(pk.project(pk.SHARED, tmp_path, name, busybox_image,
                                              {"web": {"hosts": [host], "replicas": 2}}))
        assert pk.wait_for(lambda: proxy.get(host)[1].startswith(f"{name}/web/"), timeout=10), proxy.get(host)
        proj.compose("up", "-d", "--scale", "web=3")
        ids = {c[:12] for c in dk.docker("ps", "-q", "--filter", f"label=com.docker.compose.project={name}").split()}
        assert len(ids) == 3
        assert pk.wait_for(lambda: {proxy.get(host)[1].rsplit("/", 1)[-1] for _ in range(15)} == ids, timeout=15)
        proj.compose("down", "--timeout", "1")
        assert pk.wait_for(lambda: proxy.get(host)[0] == 404, timeout=15)
        assert runner.poll() is None, runner.stderr.read() if runner.stderr else ""
