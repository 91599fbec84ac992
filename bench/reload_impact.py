#!/usr/bin/env python3
"""What other projects' config loads do to a quiet project (issue 19, item 1).

A quiet project (one routed single-replica service, busybox httpd) is under steady load: N keep-alive
connections (bench/_load.py, closed loop like ``hey -c N``) straight to the proxy container's IP.
Meanwhile, per phase:

- steady:    nothing else happens (the baseline);
- reload:    ``caddy reload --force`` of the config Caddy already runs, once a second (a load that
             changes nothing: every reverse_proxy handler is provisioned anew all the same);
- redeploy:  another project (two routed services) is redeployed with ``luma-compose deploy``;
- sync:      another project's replicas change with plain ``docker compose``, then ``proxy sync``.

All phases run idle, then with ``stress --cpu 2`` (Debian package ``stress``) loading the machine.
Prints, per phase, the quiet project's requests, failed requests (connection errors and non-2xx),
requests over 0.5 s, p99.9 and max, the config loads Caddy logged during the phase, and the kinds of
failures. Target: 0 failed and 0 slow in every phase.

    python3 bench/reload_impact.py [--reloads 20] [--redeploys 3] [--syncs 6] [--concurrency 16]
                                   [--cpu idle,stress] [--steady 10]

Everything it creates has a unique name and is removed at exit.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import _load
from _proxykit import RUN, SELECT, images, luma, project, proxy, sh

from luma_compose.proxy.controller import CONFIG_HOME

#: The config Caddy runs, as it saved it (the file each load posts is removed once loaded).
AUTOSAVE = f"{CONFIG_HOME}/caddy/autosave.json"


def other_source(name: str, image: str, version: int) -> str:
    """The other project's file as a user writes it: two routed services (a deploy of it rolls both)."""
    svc = lambda s: {"image": image, "environment": {"PROJECT": name, "SERVICE": s, "V": str(version)},  # noqa: E731
                     "labels": {SELECT.split("=")[0]: RUN}, "stop_grace_period": "1s",
                     "x-luma": {"hosts": [f"{s}.{name}.bench.test"], "port": 3000, "health": "/up"}}
    return json.dumps({"name": name, "services": {"web": svc("web"), "api": svc("api")}})


def loads_logged(proxy_name: str) -> int:
    p = subprocess.run(["docker", "logs", proxy_name], capture_output=True, text=True)
    return (p.stdout + p.stderr).count('"msg":"load complete"')


class Load:
    """The quiet project's load for one phase."""

    def __init__(self, addr: tuple[str, int], host: str, n: int):
        self.stop = threading.Event()
        self.box: list[tuple[list[_load.Result], float]] = []
        self.t = threading.Thread(target=lambda: self.box.append(_load.run(addr, host, n, 3600, self.stop)))
        self.t.start()

    def end(self) -> tuple[list[_load.Result], float]:
        self.stop.set()
        self.t.join()
        return self.box[0]


def report(label: str, res: list[_load.Result], secs: float, loads: int) -> int:
    t = _load.tail(res, secs)
    failed = t.errors + t.non2xx
    kinds = collections.Counter(r.error or f"HTTP {r.status}" for r in res if r.error or not 200 <= r.status < 300)
    print(f"{label:16s} {t.requests:7d} req  failed {failed:4d}  >{_load.SLOW:g}s {t.slow:4d}  "
          f"p99.9 {1000 * t.p999:6.1f} ms  max {1000 * t.max:7.1f} ms  config loads {loads:3d}"
          + "".join(f"\n{'':18s}{n} x {k}" for k, n in kinds.most_common(4)), flush=True)
    return failed + t.slow


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reloads", type=int, default=20, help="forced reloads (one a second)")
    ap.add_argument("--redeploys", type=int, default=3, help="redeploys of the other project")
    ap.add_argument("--syncs", type=int, default=6, help="replica changes of the other project + proxy sync")
    ap.add_argument("--steady", type=float, default=10.0, help="seconds of the baseline phase")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--cpu", default="idle,stress", help="comma-separated: idle, stress")
    a = ap.parse_args()
    modes = [m.strip() for m in a.cpu.split(",") if m.strip()]
    if not modes or set(modes) - {"idle", "stress"}:
        ap.error("--cpu takes idle and/or stress")
    if "stress" in modes and not shutil.which("stress"):
        ap.error("stress is not installed (apt-get install stress)")
    quiet, other = f"quiet{RUN}", f"other{RUN}"
    host = f"{quiet}.bench.test"
    work = Path(tempfile.mkdtemp(prefix="luma-bench-reload-"))
    bad = 0
    try:
        with images() as (bb, cd), proxy(cd) as (pname, _), project(quiet, bb, [host], pname) as q:
            q.up()
            luma("proxy", "sync", "--name", pname)
            ip = json.loads(sh("docker", "inspect", pname))[0]["NetworkSettings"]["IPAddress"]
            src = work / "compose.json"
            deploy = ["deploy", "-f", str(src), "--drain", "1", "--timeout", "60", "--proxy-name", pname]
            src.write_text(other_source(other, bb, 0))
            luma(*deploy)
            compose = ["docker", "compose", "-p", other, "-f", "-"]
            rendered = sh(sys_python(), "-m", "luma_compose.cli", "render", "-f", str(src))
            print(f"quiet project: 1 replica, {a.concurrency} keep-alive connections to the proxy at {ip}:80; "
                  f"{os.cpu_count()} CPUs", flush=True)
            version = 0
            for mode in modes:
                stress = None
                if mode == "stress":
                    stress = subprocess.Popen(["stress", "--cpu", "2"], stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL, start_new_session=True)
                    time.sleep(1)
                try:
                    def phase(name: str, action) -> None:
                        nonlocal bad
                        before = loads_logged(pname)
                        load = Load((ip, 80), host, a.concurrency)
                        time.sleep(1)
                        action()
                        time.sleep(1)
                        res, secs = load.end()
                        bad += report(f"{mode}/{name}", res, secs, loads_logged(pname) - before)

                    def reloads() -> None:
                        for _ in range(a.reloads):
                            sh("docker", "exec", pname, "caddy", "reload", "--config", AUTOSAVE, "--force")
                            time.sleep(1)

                    def redeploys() -> None:
                        nonlocal version
                        for _ in range(a.redeploys):
                            version += 1
                            src.write_text(other_source(other, bb, version))
                            luma(*deploy)

                    def syncs() -> None:
                        for i in range(a.syncs):
                            sh(*compose, "up", "-d", "--scale", f"web={2 if i % 2 == 0 else 1}", input=rendered)
                            luma("proxy", "sync", "--name", pname)

                    phase("steady", lambda: time.sleep(a.steady))
                    phase("reload", reloads)
                    phase("redeploy", redeploys)
                    phase("sync", syncs)
                finally:
                    if stress is not None:
                        os.killpg(stress.pid, signal.SIGTERM)
                        stress.wait()
            luma("down", "-p", other, "--proxy-name", pname, check=False)
    finally:
        sh("docker", "compose", "-p", other, "down", "-v", "--remove-orphans", "--timeout", "1", check=False)
        shutil.rmtree(work, ignore_errors=True)
    print(f"target: 0 failed and 0 slow requests of the quiet project in every phase: {'met' if not bad else 'NOT met'}")
    return 0


def sys_python() -> str:
    import sys

    return sys.executable


if __name__ == "__main__":
    raise SystemExit(main())
