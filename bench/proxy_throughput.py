#!/usr/bin/env python3
"""Throughput and latency tail: requests/s, p99, p99.9, p99.99, max and the requests over 0.5 s,
through the proxy and through its peers, directly to the same backend, same load generator (wrk),
same run. Prints each figure, the ratios, and where the CPU went.

    python3 bench/proxy_throughput.py [--duration 5] [--connections 16,256] [--rounds 2]
                                      [--backend caddy|busybox] [--replicas 1] [--no-peers]

Targets, one backend container by default (``--replicas 2 --backend busybox`` is issue 14's):

- direct: the container's own IP on its ingress network, from the host (first replica only);
- proxy: the port our proxy container publishes on 127.0.0.1, through Docker's userland
  docker-proxy (what a client on this machine sees); proxy-ip: the proxy container's IP, the path
  remote clients take (no docker-proxy), so the figure users see;
- the peers, each a process on the host listening on 127.0.0.1, in front of the same backend
  containers: ours-host (our generated config, read back from the proxy container, run by the same
  caddy binary), caddy-min (a minimal hand-written Caddyfile: ``reverse_proxy IP:3000 ...``), nginx
  (Debian's nginx, the data plane of nginx-proxy, as a plain reverse proxy with upstream
  keep-alive). Same placement for all three, so ours-host vs caddy-min is what our config costs
  beyond Caddy itself, and nginx vs caddy-min what the data plane costs.

Targets (issues 4 and 14): proxy >= 0.7x direct req/s; ours-host >= 0.95x caddy-min req/s and p99
no worse; no request over 0.5 s. Rounds alternate the targets so drift on the machine hits all
alike. With each figure: the CPU time each part used per request (backend containers, proxy
container or peer process, docker-proxy, wrk; from cgroup and /proc accounting), how busy the
machine was and its load average (other work on a shared machine lowers every figure). When the
machine is CPU-bound the ratio cannot beat direct CPU/request divided by proxied CPU/request:
printed as "CPU ceiling".
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
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _proxykit import (RUN, caddy_binary, container_cpu_seconds, docker_proxy_pids, free_port, host_process, images,
                       luma, process_cpu_seconds, process_tree, project, proxy, sh, status)
from luma_compose import contract

PARTS = ("backend", "proxy", "peer", "docker-proxy", "wrk")
SLOW_US = 500_000  # the threshold: no request should take over 0.5 s
#: wrk keeps every latency (microseconds, up to --timeout) in a histogram; this prints the tail
#: from it. wrk corrects that histogram for coordinated omission: behind a request that took L it
#: adds the requests a client sending at the run's mean rate would have sent meanwhile (at L - i,
#: L - 2i, ...). So its percentiles, and the share over SLOW_US found from them here (Lua sees
#: percentiles, not counts), are what an open-loop client would see: a 1 s stall weighs far more
#: than one request. bench/zero_downtime.py counts actual requests.
TAIL_LUA = """
done = function(summary, latency, requests)
  local slow = 0
  if latency.max > %d then
    local lo, hi = 0, 100
    for _ = 1, 60 do
      local mid = (lo + hi) / 2
      if latency:percentile(mid) > %d then hi = mid else lo = mid end
    end
    slow = 100 - hi
  end
  io.write(string.format("TAIL p99=%%d p999=%%d p9999=%%d max=%%d slow=%%.4f\\n",
    latency:percentile(99), latency:percentile(99.9), latency:percentile(99.99), latency.max, slow))
end
""" % (SLOW_US, SLOW_US)


@dataclass
class Run:
    rps: float
    p99_ms: float
    p999_ms: float
    p9999_ms: float
    max_ms: float
    slow: float  # percent over 0.5 s, of wrk's corrected distribution
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


def wrk(url: str, host: str, duration: int, connections: int, threads: int, script: str,
        containers: dict[str, list[str]] | None = None, pids: dict[str, list[int]] | None = None) -> Run:
    """One wrk run, with the CPU time each named group of containers / processes used per request."""
    containers, pids = containers or {}, pids or {}

    def sample() -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for k, cids in containers.items():
            got = [container_cpu_seconds(c) for c in cids]
            out[k] = None if any(g is None for g in got) else sum(g for g in got if g is not None)
        for k, ps in pids.items():
            got = [process_cpu_seconds(p) for p in ps]
            out[k] = None if any(g is None for g in got) else sum(g for g in got if g is not None)
        return out

    before, (t0, i0) = sample(), _machine_cpu()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
                        "-s", script, "-H", f"Host: {host}", url], capture_output=True, text=True)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    after, (t1, i1) = sample(), _machine_cpu()
    out = p.stdout
    m_rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    m = re.search(r"TAIL p99=(\d+) p999=(\d+) p9999=(\d+) max=(\d+) slow=([\d.]+)", out)
    if p.returncode != 0 or not m_rps or not m:
        raise SystemExit(f"wrk failed on {url}:\n{out}\n{p.stderr}")
    rps = float(m_rps.group(1))
    p99, p999, p9999, mx = (int(m.group(i)) / 1000 for i in range(1, 5))
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
    return Run(rps, p99, p999, p9999, mx, float(m.group(5)), errors, cpu, busy, os.getloadavg()[0])


def tail_line(r: Run) -> str:
    return (f"{r.rps:8.0f} req/s  p99 {r.p99_ms:7.2f}  p99.9 {r.p999_ms:7.2f}  p99.99 {r.p9999_ms:7.2f}  "
            f"max {r.max_ms:7.1f} ms  >0.5s {r.slow:5.2f}%  errors {r.errors}")


def cpu_line(r: Run) -> str:
    parts = " ".join(f"{k} {r.cpu_us[k]:4.0f}" for k in PARTS if k in r.cpu_us)
    return f"CPU us/req: {parts} = {r.cpu_total:4.0f} | busy {100 * r.busy:3.0f}% load {r.load:.2f}"


def nginx_conf(tmp: Path, port: int, upstreams: list[str]) -> Path:
    """nginx as a plain reverse proxy: nginx-proxy's upstream block, with upstream keep-alive."""
    servers = "\n".join(f"    server {u};" for u in upstreams)
    conf = tmp / "nginx.conf"
    conf.write_text(f"""worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/nginx-body;
  proxy_temp_path {tmp}/nginx-proxy;
  fastcgi_temp_path {tmp}/nginx-fastcgi;
  uwsgi_temp_path {tmp}/nginx-uwsgi;
  scgi_temp_path {tmp}/nginx-scgi;
  upstream app {{
{servers}
    keepalive 1024;
  }}
  server {{
    listen 127.0.0.1:{port} reuseport;
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
}}
""")
    return conf


def caddyfile(tmp: Path, port: int, upstreams: list[str]) -> Path:
    """The minimal hand-written Caddy reverse proxy (plus what keeps it off the machine's own state)."""
    f = tmp / "Caddyfile"
    f.write_text(f"""{{
\tadmin localhost:{free_port()}
\tpersist_config off
\tstorage file_system {tmp}/caddy-min-data
}}
:{port} {{
\tbind 127.0.0.1
\treverse_proxy {' '.join(upstreams)}
}}
""")
    return f


def ours_on_host(tmp: Path, proxy_name: str, port: int) -> Path:
    """The config our proxy container runs, exactly as loaded, moved to a loopback port on the host."""
    live = json.loads(sh("docker", "exec", proxy_name, "cat", "/etc/luma/live.json"))
    live["admin"]["listen"] = f"localhost:{free_port()}"
    live["storage"]["root"] = str(tmp / "ours-data")
    live["apps"]["http"]["http_port"] = port
    live["apps"]["http"]["servers"]["luma"]["listen"] = [f"127.0.0.1:{port}"]
    f = tmp / "ours.json"
    f.write_text(json.dumps(live))
    return f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (at most 60)")
    ap.add_argument("--connections", default="16,256", help="comma-separated wrk -c values, each measured")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--backend", choices=["caddy", "busybox"], default="caddy",
                    help="caddy: a Go HTTP server with keep-alive (caddy respond); busybox: httpd, which has "
                         "no keep-alive and a listen backlog of 9: each proxied request dials the container, "
                         "and a full listen queue drops SYNs")
    ap.add_argument("--replicas", type=int, default=1, help="backend containers behind the route")
    ap.add_argument("--backend-cpus", type=float, default=None,
                    help="cap each backend container's CPU (compose cpus:), like an application that does real "
                         "work per request; the proxy's share of the machine then matters less")
    ap.add_argument("--no-peers", action="store_true", help="skip ours-host, caddy-min and nginx")
    args = ap.parse_args()
    try:
        conns = [int(c) for c in args.connections.split(",") if c.strip()]
    except ValueError:
        raise SystemExit(f"--connections {args.connections!r}: expected numbers separated by commas, e.g. 16,256")
    if not 1 <= args.duration <= 60:
        raise SystemExit("--duration: 1 to 60 seconds")
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    peers = not args.no_peers
    if peers and not shutil.which("nginx"):
        raise SystemExit("nginx is not installed (apt-get install nginx-light), or run with --no-peers")
    name = f"thru{RUN}"
    host = f"{name}.bench.test"
    results: dict[tuple[int, str], list[Run]] = {}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="luma-bench-thru-")))
        script = tmp / "tail.lua"
        script.write_text(TAIL_LUA)
        bb, cd = stack.enter_context(images())
        pname, port = stack.enter_context(proxy(cd))
        if args.backend == "caddy":
            backend = (cd, ["caddy", "respond", "--listen", ":3000", "--body", f"{name}/web/ok"])
        else:
            backend = (bb, None)
        p = stack.enter_context(project(name, backend[0], [host], pname, replicas=args.replicas,
                                        command=backend[1], cpus=args.backend_cpus))
        p.up()
        luma("proxy", "sync", "--name", pname)
        deadline = time.monotonic() + 20
        while status(port, host) != 200:
            if time.monotonic() > deadline:
                raise SystemExit("the route never answered 200")
            time.sleep(0.05)
        cids = p.compose("ps", "-q", "web").split()
        infos = [json.loads(sh("docker", "inspect", c))[0] for c in cids]
        p_info = json.loads(sh("docker", "inspect", pname))[0]
        ips = [i["NetworkSettings"]["Networks"][contract.ingress_network(name)]["IPAddress"] for i in infos]
        backends = [i["Id"] for i in infos]
        proxy_ip = p_info["NetworkSettings"]["IPAddress"]
        dp = docker_proxy_pids(port)
        targets = {"direct": f"http://{ips[0]}:3000/", "proxy": f"http://127.0.0.1:{port}/",
                   "proxy-ip": f"http://{proxy_ip}:80/"}
        watched: dict[str, tuple[dict[str, list[str]], dict[str, list[int]]]] = {
            "direct": ({"backend": backends[:1]}, {}),
            "proxy": ({"backend": backends, "proxy": [p_info["Id"]]}, {"docker-proxy": dp} if dp else {}),
            "proxy-ip": ({"backend": backends, "proxy": [p_info["Id"]]}, {}),
        }
        if peers:
            ups = [f"{ip}:3000" for ip in ips]
            caddy = caddy_binary()
            env = {"XDG_CONFIG_HOME": str(tmp / "xdg-config"), "XDG_DATA_HOME": str(tmp / "xdg-data")}
            for peer in ("ours-host", "caddy-min", "nginx"):
                pport = free_port()
                if peer == "ours-host":
                    cmd = [caddy, "run", "--config", str(ours_on_host(tmp, pname, pport))]
                elif peer == "caddy-min":
                    cmd = [caddy, "run", "--adapter", "caddyfile", "--config", str(caddyfile(tmp, pport, ups))]
                else:
                    conf = nginx_conf(tmp, pport, ups)
                    cmd = ["nginx", "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "nginx-error.log"),
                           "-g", "daemon off;"]
                proc = stack.enter_context(host_process(cmd, pport, tmp / f"{peer}.log", env))
                targets[peer] = f"http://127.0.0.1:{pport}/"
                watched[peer] = ({"backend": backends}, {"peer": process_tree(proc.pid)})
        print(f"published port {port}: " + (f"through docker-proxy (pid {', '.join(map(str, dp))})" if dp
                                            else "no docker-proxy process (kernel NAT)"), flush=True)
        for kind in targets:  # warm up every path (connections, upstream pools)
            wrk(targets[kind], host, 1, conns[0], args.threads, str(script))
        for r in range(args.rounds):
            for c in conns:
                for kind in targets:
                    res = wrk(targets[kind], host, args.duration, c, args.threads, str(script), *watched[kind])
                    results.setdefault((c, kind), []).append(res)
                    print(f"round {r + 1} c{c:<4d} {kind:9s}: {tail_line(res)} | {cpu_line(res)}", flush=True)
    cap = f" capped at {args.backend_cpus} CPU each" if args.backend_cpus else ""
    print(f"\nbackend {args.backend} x{args.replicas}{cap}; wrk -t{args.threads} -d{args.duration}s, median of "
          f"{args.rounds} round(s) (max and >0.5s: worst round; percentiles corrected for coordinated omission by wrk), {os.cpu_count()} CPUs. proxy-ip is what users "
          f"see (remote clients do not go through docker-proxy):")
    for c in conns:
        runs = {k: results[(c, k)] for k in targets}
        med = {k: Run(statistics.median(x.rps for x in v), statistics.median(x.p99_ms for x in v),
                      statistics.median(x.p999_ms for x in v), statistics.median(x.p9999_ms for x in v),
                      max(x.max_ms for x in v), max(x.slow for x in v), sum(x.errors for x in v),
                      {"total": statistics.median(x.cpu_total for x in v)}, 0.0,
                      statistics.median(x.load for x in v)) for k, v in runs.items()}
        d = med["direct"]
        for k, m in med.items():
            extra = ""
            if k != "direct":
                extra = (f"  {m.rps / d.rps:.2f}x direct req/s, CPU ceiling "
                         f"{d.cpu_us['total'] / m.cpu_us['total']:.2f}x")
            if k in ("ours-host", "nginx"):
                ref = med["caddy-min"]
                extra += f"  | {m.rps / ref.rps:.2f}x caddy-min req/s, p99 {m.p99_ms / ref.p99_ms:.2f}x"
            print(f"  c{c:<4d} {k:9s}: {tail_line(m)}  CPU {m.cpu_us['total']:4.0f} us/req{extra}")
    print("  targets: proxy >= 0.70x direct req/s; ours-host >= 0.95x caddy-min req/s with p99 <= caddy-min's; "
          "no request over 0.5 s")


if __name__ == "__main__":
    main()
