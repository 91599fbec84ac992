#!/usr/bin/env python3
"""Throughput: requests/s and p99 latency through the proxy vs directly to the same container,
same load generator (wrk), same run. Prints both, the ratio, and where the CPU went.

    python3 bench/proxy_throughput.py [--duration 5] [--connections 16,256] [--rounds 2]

Target (issue 4): proxy >= 0.7x of direct. Direct means the container's own IP on its ingress
network from the host; through the proxy means the port the proxy publishes on 127.0.0.1 with the
route's Host header (through Docker's userland docker-proxy when the engine uses it); proxy-ip goes
straight to the proxy container's IP, which separates Caddy's cost from docker-proxy's. Rounds
alternate the targets so drift on the machine hits all alike.

With each figure: the CPU time each part used per request (backend container, proxy container,
docker-proxy, wrk; from cgroup and /proc accounting), how busy the whole machine was and its load
average (other work on a shared machine lowers every figure). When the machine is CPU-bound the
ratio cannot beat direct CPU/request divided by proxied CPU/request: printed as "CPU ceiling".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass

from _proxykit import (RUN, container_cpu_seconds, docker_proxy_pids, images, luma, process_cpu_seconds,
                       project, proxy, sh, status)
from luma_compose import contract

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
PARTS = ("backend", "proxy", "docker-proxy", "wrk")


@dataclass
class Run:
    rps: float
    p99_ms: float
    errors: int
    cpu_us: dict[str, float]  # CPU microseconds per request, by part (absent: unreadable)
    busy: float  # share of the whole machine's CPU that was busy during the run
    load: float  # 1-minute load average at the end of the run

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu_us.values())


def _machine_cpu() -> tuple[float, float]:
    """(total, idle) jiffies of all CPUs so far."""
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return float(sum(v)), float(v[3] + v[4])


def wrk(url: str, host: str, duration: int, connections: int, threads: int,
        containers: dict[str, str] | None = None, pids: dict[str, list[int]] | None = None) -> Run:
    """One wrk run, with the CPU time each named container / process group used per request."""
    containers, pids = containers or {}, pids or {}

    def sample() -> dict[str, float | None]:
        out: dict[str, float | None] = {k: container_cpu_seconds(cid) for k, cid in containers.items()}
        for k, ps in pids.items():
            got = [process_cpu_seconds(p) for p in ps]
            out[k] = None if any(g is None for g in got) else sum(g for g in got if g is not None)
        return out

    before, (t0, i0) = sample(), _machine_cpu()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
                        "-H", f"Host: {host}", url], capture_output=True, text=True)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    after, (t1, i1) = sample(), _machine_cpu()
    out = p.stdout
    m_rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if p.returncode != 0 or not m_rps or not m:
        raise SystemExit(f"wrk failed on {url}:\n{out}\n{p.stderr}")
    rps, p99 = float(m_rps.group(1)), float(m.group(1)) * UNITS[m.group(2)]
    errors = 0
    e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if e:
        errors += sum(int(x) for x in e.groups())
    n = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if n:
        errors += int(n.group(1))
    requests = max(rps * duration, 1.0)
    cpu: dict[str, float] = {}
    for k in before:
        a, b = before[k], after[k]
        if a is not None and b is not None:
            cpu[k] = 1e6 * (b - a) / requests
    cpu["wrk"] = 1e6 * ((r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)) / requests
    busy = 1.0 - (i1 - i0) / max(t1 - t0, 1.0)
    return Run(rps, p99, errors, cpu, busy, os.getloadavg()[0])


def cpu_line(r: Run) -> str:
    parts = " ".join(f"{k} {r.cpu_us[k]:4.0f}" for k in PARTS if k in r.cpu_us)
    return f"CPU us/req: {parts} = {r.cpu_total:4.0f} | machine busy {100 * r.busy:3.0f}% load {r.load:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", default="16,256", help="comma-separated wrk -c values, each measured")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--backend", choices=["caddy", "busybox"], default="caddy",
                    help="caddy: a Go HTTP server with keep-alive (caddy respond); busybox: httpd, which has "
                         "no keep-alive and a listen backlog of 9, so bursts of new connections through any "
                         "proxy hit 1 s SYN retransmits")
    ap.add_argument("--backend-cpus", type=float, default=None,
                    help="cap the backend container's CPU (compose cpus:), like an application that does real "
                         "work per request; the proxy's share of the machine then matters less")
    args = ap.parse_args()
    try:
        conns = [int(c) for c in args.connections.split(",") if c.strip()]
    except ValueError:
        raise SystemExit(f"--connections {args.connections!r}: expected numbers separated by commas, e.g. 16,256")
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    name = f"thru{RUN}"
    host = f"{name}.bench.test"
    results: dict[tuple[int, str], list[Run]] = {}
    with contextlib.ExitStack() as stack:
        bb, cd = stack.enter_context(images())
        pname, port = stack.enter_context(proxy(cd))
        if args.backend == "caddy":
            backend = (cd, ["caddy", "respond", "--listen", ":3000", "--body", f"{name}/web/ok"])
        else:
            backend = (bb, None)
        p = stack.enter_context(project(name, backend[0], [host], pname, command=backend[1],
                                        cpus=args.backend_cpus))
        p.up()
        luma("proxy", "sync", "--name", pname)
        deadline = time.monotonic() + 20
        while status(port, host) != 200:
            if time.monotonic() > deadline:
                raise SystemExit("the route never answered 200")
            time.sleep(0.05)
        cid = p.compose("ps", "-q", "web").split()[0]
        b_info = json.loads(sh("docker", "inspect", cid))[0]
        p_info = json.loads(sh("docker", "inspect", pname))[0]
        ip = b_info["NetworkSettings"]["Networks"][contract.ingress_network(name)]["IPAddress"]
        proxy_ip = p_info["NetworkSettings"]["IPAddress"]
        dp = docker_proxy_pids(port)
        # "proxy" goes through the published port (docker-proxy on 127.0.0.1, as a local user would);
        # "proxy-ip" straight to the proxy container, which separates Caddy's cost from docker-proxy's.
        targets = {"direct": f"http://{ip}:3000/", "proxy": f"http://127.0.0.1:{port}/",
                   "proxy-ip": f"http://{proxy_ip}:80/"}
        watched = {
            "direct": ({"backend": b_info["Id"]}, {}),
            "proxy": ({"backend": b_info["Id"], "proxy": p_info["Id"]}, {"docker-proxy": dp} if dp else {}),
            "proxy-ip": ({"backend": b_info["Id"], "proxy": p_info["Id"]}, {}),
        }
        print(f"published port {port}: " + (f"through docker-proxy (pid {', '.join(map(str, dp))})" if dp
                                            else "no docker-proxy process (kernel NAT)"), flush=True)
        wrk(targets["direct"], host, 2, conns[0], args.threads)  # warm up both paths
        wrk(targets["proxy"], host, 2, conns[0], args.threads)
        for r in range(args.rounds):
            for c in conns:
                for kind in targets:
                    res = wrk(targets[kind], host, args.duration, c, args.threads, *watched[kind])
                    results.setdefault((c, kind), []).append(res)
                    print(f"round {r + 1} c{c:<4d} {kind:8s}: {res.rps:9.1f} req/s  p99 {res.p99_ms:7.2f} ms  "
                          f"errors {res.errors} | {cpu_line(res)}", flush=True)
    cap = f" capped at {args.backend_cpus} CPU" if args.backend_cpus else ""
    print(f"backend {args.backend}{cap}; wrk -t{args.threads} -d{args.duration}s, median of {args.rounds} round(s), "
          f"{os.cpu_count()} CPUs:")
    for c in conns:
        med = {k: (statistics.median(x.rps for x in results[(c, k)]),
                   statistics.median(x.p99_ms for x in results[(c, k)]),
                   statistics.median(x.cpu_total for x in results[(c, k)]),
                   statistics.median(x.load for x in results[(c, k)])) for k in targets}
        d_rps, d_p99, d_cpu, _ = med["direct"]
        for k, (rps, p99, cpu, load) in med.items():
            extra = "" if k == "direct" else (f"  {rps / d_rps:.2f}x direct req/s, p99 {p99 / d_p99:.2f}x, "
                                              f"CPU ceiling {d_cpu / cpu:.2f}x")
            print(f"  c{c:<4d} {k:8s}: {rps:9.1f} req/s  p99 {p99:7.2f} ms  CPU {cpu:4.0f} us/req  "
                  f"load {load:.2f}{extra}")
    print("  target: proxy >= 0.70x direct req/s")


if __name__ == "__main__":
    main()
