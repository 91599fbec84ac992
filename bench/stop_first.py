#!/usr/bin/env python3
"""Stop-first deploys under load (issue 23, item 1): failed requests and the latency of held ones.

A routed single-replica service with ``deploy.update_config.order: stop-first`` whose app sleeps
``--boot`` seconds (default 5) before it listens, under ``--concurrency`` keep-alive connections
(bench/_load.py, closed loop) straight to the proxy container's IP, redeployed ``--deploys`` times.
Prints the load's tail (bench/_load.Tail), the failed requests (target 0), and the held requests
(over 0.5 s: those that waited while no version ran): how many, their median and max.
The proxy holds a request for its retry window (caddy_config.TRY_DURATION, 10 s): a stop plus a
boot plus the health check must fit in it.

    python3 bench/stop_first.py [--boot 5] [--deploys 2] [--concurrency 8]

Everything it creates has a unique name and is removed at exit.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _load  # noqa: E402
from _proxykit import RUN, SELECT, images, proxy  # noqa: E402


def source(project: str, image: str, host: str, version: int, boot: float) -> str:
    key, value = SELECT.split("=", 1)
    return json.dumps({"services": {"web": {
        "image": image, "command": ["sh", "-c", f"sleep {boot:g}; exec /usr/local/bin/serve"],
        "environment": {"PROJECT": project, "SERVICE": f"web-{version}"}, "stop_grace_period": "1s",
        "deploy": {"update_config": {"order": "stop-first"}}, "labels": {key: value},
        "x-luma": {"hosts": [host], "port": 3000, "health": "/up"}}}})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--boot", type=float, default=5.0)
    ap.add_argument("--deploys", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=8)
    a = ap.parse_args()
    project = f"lumabenchsf{RUN}"
    host = f"{project}.bench.test"
    luma = [sys.executable, "-m", "luma_compose.cli"]
    with images() as (busybox, caddy), proxy(caddy) as (name, _), tempfile.TemporaryDirectory() as d:
        f = Path(d) / "compose.yaml"
        deploy = [*luma, "deploy", "-f", str(f), "-p", project, "--proxy-name", name, "--timeout", "60"]
        try:
            f.write_text(source(project, busybox, host, 0, a.boot))
            subprocess.run(deploy, check=True, capture_output=True)
            ip = json.loads(subprocess.run(["docker", "inspect", name], capture_output=True, text=True,
                                           check=True).stdout)[0]["NetworkSettings"]["IPAddress"]
            stop = threading.Event()
            box: list = []
            load = threading.Thread(target=lambda: box.append(_load.run((ip, 80), host, a.concurrency, 300, stop,
                                                                        timeout=30)))
            load.start()
            for i in range(1, a.deploys + 1):
                f.write_text(source(project, busybox, host, i, a.boot))
                p = subprocess.run(deploy, capture_output=True, text=True)
                print(f"deploy {i}: exit {p.returncode}; " + (p.stderr.strip().splitlines() or [""])[-1], flush=True)
            stop.set()
            load.join()
            res, secs = box[0]
            t = _load.tail(res, secs)
            held = sorted(r.latency for r in res if r.latency > _load.SLOW and r.status)
            print(f"boot {a.boot:g}s, {a.concurrency} connections: {t.line()}")
            print(f"failed requests: {t.errors + t.non2xx} (target 0)")
            if held:
                print(f"held requests: {len(held)}, median {statistics.median(held):.2f}s, max {held[-1]:.2f}s")
        finally:
            subprocess.run([*luma, "down", "-f", str(f), "-p", project, "--proxy-name", name], capture_output=True)


if __name__ == "__main__":
    main()
