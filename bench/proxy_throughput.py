#!/usr/bin/env python3
"""Throughput: requests/s and p99 latency through the proxy vs directly to the same container,
same load generator (wrk), same run. Prints both and the ratio.

    python3 bench/proxy_throughput.py [--duration 10] [--connections 16] [--rounds 2]

Target (issue 4): proxy >= 0.7x of direct. Direct means the container's own IP on its ingress
network from the host; through the proxy means the port the proxy publishes on 127.0.0.1 with the
route's Host header. Rounds alternate direct/proxy so drift on the machine hits both alike.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import statistics
import time

from _proxykit import RUN, images, luma, project, proxy, sh, status
from luma_compose import contract

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, host: str, duration: int, connections: int, threads: int) -> tuple[float, float, int]:
    """(requests/s, p99 ms, errors) from one wrk run."""
    out = sh("wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-H", f"Host: {host}", url)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p99 = float(m.group(1)) * UNITS[m.group(2)]
    errors = 0
    e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if e:
        errors += sum(int(x) for x in e.groups())
    n = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if n:
        errors += int(n.group(1))
    return rps, p99, errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--backend", choices=["caddy", "busybox"], default="caddy",
                    help="caddy: a Go HTTP server with keep-alive (caddy respond); busybox: httpd, which has "
                         "no keep-alive and a listen backlog of 9, so bursts of new connections through any "
                         "proxy hit 1 s SYN retransmits")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    name = f"thru{RUN}"
    host = f"{name}.bench.test"
    with contextlib.ExitStack() as stack:
        bb, cd = stack.enter_context(images())
        pname, port = stack.enter_context(proxy(cd))
        if args.backend == "caddy":
            backend = (cd, ["caddy", "respond", "--listen", ":3000", "--body", f"{name}/web/ok"])
        else:
            backend = (bb, None)
        p = stack.enter_context(project(name, backend[0], [host], pname, command=backend[1]))
        p.up()
        luma("proxy", "sync", "--name", pname)
        deadline = time.monotonic() + 20
        while status(port, host) != 200:
            if time.monotonic() > deadline:
                raise SystemExit("the route never answered 200")
            time.sleep(0.05)
        cid = p.compose("ps", "-q", "web").split()[0]
        ip = json.loads(sh("docker", "inspect", cid))[0]["NetworkSettings"]["Networks"][contract.ingress_network(name)]["IPAddress"]
        proxy_ip = json.loads(sh("docker", "inspect", pname))[0]["NetworkSettings"]["IPAddress"]
        # "proxy" goes through the published port (docker-proxy on 127.0.0.1, as a local user would);
        # "proxy-ip" straight to the proxy container, which separates Caddy's cost from docker-proxy's.
        targets = {"direct": f"http://{ip}:3000/", "proxy": f"http://127.0.0.1:{port}/",
                   "proxy-ip": f"http://{proxy_ip}:80/"}
        results: dict[str, list[tuple[float, float, int]]] = {k: [] for k in targets}
        wrk(targets["direct"], host, 2, args.connections, args.threads)  # warm up both paths
        wrk(targets["proxy"], host, 2, args.connections, args.threads)
        for r in range(args.rounds):
            for kind in targets:
                res = wrk(targets[kind], host, args.duration, args.connections, args.threads)
                results[kind].append(res)
                print(f"round {r + 1} {kind:8s}: {res[0]:9.1f} req/s  p99 {res[1]:7.2f} ms  errors {res[2]}", flush=True)
    print(f"backend {args.backend}; wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
          f"median of {args.rounds} round(s):")
    med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for k, v in results.items()}
    for k, (rps, p99) in med.items():
        ratio = "" if k == "direct" else f"  {rps / med['direct'][0]:.2f}x direct req/s, p99 {p99 / med['direct'][1]:.2f}x"
        print(f"  {k:8s}: {rps:9.1f} req/s  p99 {p99:7.2f} ms{ratio}")
    print("  target: proxy >= 0.70x direct req/s")

if __name__ == "__main__":
    main()
