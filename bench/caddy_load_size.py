#!/usr/bin/env python3
"""Does a Caddy config load cost what the change is, or what the config holds? (issue 19 item 3)

Starts the caddy binary on this machine (no Docker) with our generated config for R routes (each
with one upstream: a local HTTP server answering the health path) and times, per R:

* ``POST /load`` of the whole config with one route's upstream changed (what ``proxy sync`` does);
* ``PATCH /config/.../routes/<i>`` of that one route only (the "load only what changed" alternative);
* the same ``POST /load`` with Caddy's active probes on every route (x-luma ``health_interval: 1``;
  a route has none unless its x-luma asks): what they add to a load.

Medians of --rounds. Caddy's admin API re-provisions the whole config on every change, a PATCH of one
route included (caddy's admin.go -> changeConfig -> unsyncedDecodeAndRun: the new config is decoded
and every app provisioned and started afresh, then the old one stopped), so both grow with R.

    .venv/bin/python bench/caddy_load_size.py [--routes 2 50 100 200 400] [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import http.server
import json
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import _proxykit  # noqa: F401  (puts the project on sys.path)

from luma_compose.proxy import caddy_config
from luma_compose.routing.claims import Member, Route, RouteTable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a: object) -> None:
        pass


def config(routes: int, backend: int, admin: int, http_port: int, version: int, probes: int = 0) -> dict:
    rs = []
    for i in range(routes):
        dial = f"127.0.0.1:{backend}"
        m = Member(f"p{i}-web-1", f"id{i}", dial, "none", True, "", f"h{version if i == 0 else 0}", "running")
        rs.append(Route(f"p{i}", "web", (f"web{'-v%d' % version if i == 0 else ''}.p{i}.test",), 3000, "/up",
                        f"p{i}_luma", (m,), "2026-01-01T00:00:00Z", health_interval=probes))
    cfg = caddy_config.build_config(RouteTable(tuple(rs)), tls="off", http_port=http_port, https_port=free_port(),
                                    http3=False)
    cfg["admin"] = {"listen": f"127.0.0.1:{admin}"}
    cfg["storage"] = {"module": "file_system", "root": tempfile.mkdtemp(prefix="luma-caddy-size-")}
    return cfg


def request(admin: int, method: str, path: str, body: bytes) -> float:
    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=60)
    t0 = time.monotonic()
    c.request(method, path, body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    text = r.read()
    secs = time.monotonic() - t0
    c.close()
    if r.status != 200:
        raise SystemExit(f"{method} {path}: {r.status} {text[:300]!r}")
    return secs


def first_route(cfg: dict) -> tuple[str, dict]:
    """The config path of the first host route (ids hold a slash, which /id/ paths cannot) and the route."""
    for name, server in cfg["apps"]["http"]["servers"].items():
        for i, r in enumerate(server.get("routes", [])):
            if str(r.get("@id", "")).startswith(caddy_config.ROUTE_ID_PREFIX):
                return f"/config/apps/http/servers/{name}/routes/{i}", r
    raise SystemExit("no route with an @id in the generated config")


@contextlib.contextmanager
def caddy_on_host(caddy: str, boot: Callable[[int, int, int], dict],
                  prefix: str) -> Iterator[tuple[int, int, int, subprocess.Popen]]:
    """A local backend answering 200 (:class:`Ok`) and ``caddy run`` on this machine with the config
    ``boot(backend port, admin port, http port)``: (those three ports, the caddy process) once Caddy's
    admin API answers; both stopped afterwards. Shared with bench/caddy_load_parts.py."""
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    admin, http_port = free_port(), free_port()
    path = Path(tempfile.mkdtemp(prefix=prefix)) / "boot.json"
    path.write_text(json.dumps(boot(backend.server_port, admin, http_port)))
    env = {**os.environ, "XDG_DATA_HOME": str(path.parent), "XDG_CONFIG_HOME": str(path.parent)}
    proc = subprocess.Popen([caddy, "run", "--config", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                request(admin, "GET", "/config/", b"")
                break
            except (OSError, SystemExit):
                time.sleep(0.1)
        yield backend.server_port, admin, http_port, proc
    finally:
        proc.terminate()
        proc.wait(10)
        backend.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routes", type=int, nargs="+", default=[2, 50, 100, 200, 400])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--caddy", default="caddy")
    args = ap.parse_args()
    with caddy_on_host(args.caddy, lambda b, a, h: config(1, b, a, h, 0), "luma-caddy-size-") as (backend, admin,
                                                                                                  http_port, _):
        print(f"{'routes':>6} {'config':>9} {'POST /load':>11} {'PATCH 1 route':>14} {'load, probes on all':>19}")
        v = 1
        for n in args.routes:
            full, patch, probed = [], [], []
            for _ in range(args.rounds):
                cfg = config(n, backend, admin, http_port, v)
                body = caddy_config.dumps(cfg).encode()
                full.append(request(admin, "POST", "/load", body))
                v += 1
                # one route only: that route replaced in place
                path, route = first_route(config(n, backend, admin, http_port, v))
                patch.append(request(admin, "PATCH", path, json.dumps(route).encode()))
                v += 1
                probed.append(request(admin, "POST", "/load", caddy_config.dumps(
                    config(n, backend, admin, http_port, v, probes=1)).encode()))
                v += 1
            print(f"{n:>6} {len(body) / 1024:>7.1f}kB {statistics.median(full) * 1000:>9.0f}ms "
                  f"{statistics.median(patch) * 1000:>12.0f}ms {statistics.median(probed) * 1000:>17.0f}ms", flush=True)


if __name__ == "__main__":
    main()
