#!/usr/bin/env python3
"""What the access log and the metrics cost: the proxy's throughput, latency tail and CPU per request
without them, with the access log, and with the access log and metrics, same backend, same load
generator (wrk), rounds alternating the variants.

    python3 bench/observability.py [--duration 5] [--connections 16,256] [--rounds 3]

A proxy container is started with ``--metrics`` (access log on, the default) in front of one backend
container (a Caddy ``respond``: a fast Go server with keep-alive, so the proxy's own cost shows). Its
loaded config (/etc/luma/live.json) is then run three times by the same caddy binary on the host,
on loopback, as ``bench/proxy_throughput.py``'s ours-host does:

- plain: the config with the access log and the metrics taken out (what the proxy ran before issue 24);
- log: the access log on (one JSON line per request to stdout, written to a file as the engine's
  json-file driver does);
- log+metrics: as loaded: access log, ``metrics {per_host}``, the metrics listener (scraped once a
  second during the run, as a Prometheus with a short interval would).

Target: log+metrics >= 0.90x plain req/s, p99 no worse than 1.2x. Prints each figure, the ratios and
the CPU microseconds per request of the proxy process; read those on a loaded machine.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from _proxykit import (caddy_binary, free_port, host_process, images, luma, process_tree, project, proxy, sh,
                       status)
from proxy_throughput import TAIL_LUA, Run, cpu_line, tail_line, wrk

VARIANTS = ("plain", "log", "log+metrics")


def variant(live: dict, kind: str, port: int, metrics_port: int, tmp: Path, backend_ip: str) -> dict:
    """The proxy's config on the host: loopback ports, the backend dialled by IP (the host has no
    Docker DNS), with the access log and metrics taken out as ``kind`` says."""
    cfg = copy.deepcopy(live)
    cfg["admin"]["listen"] = f"localhost:{free_port()}"
    cfg["storage"]["root"] = str(tmp / f"data-{kind}")
    http = cfg["apps"]["http"]
    http["http_port"] = port
    http["servers"]["luma"]["listen"] = [f"127.0.0.1:{port}"]
    if "luma_metrics" in http["servers"]:
        http["servers"]["luma_metrics"]["listen"] = [f"127.0.0.1:{metrics_port}"]
    for r in http["servers"]["luma"]["routes"]:
        for h in r.get("handle", []):
            if h.get("handler") == "reverse_proxy" and "transport" in h:
                h["upstreams"] = [{"dial": f"{backend_ip}:3000"}]
                h["transport"].pop("resolver", None)
    if kind != "log+metrics":
        http.pop("metrics", None)
        http["servers"].pop("luma_metrics", None)
    if kind == "plain":
        cfg.pop("logging", None)
        for s in http["servers"].values():
            s.pop("logs", None)
        for r in http["servers"]["luma"]["routes"]:
            r["handle"] = [h for h in r.get("handle", []) if h.get("handler") not in ("vars", "log_append")]
            for h in r["handle"]:
                h.get("headers", {}).pop("request", None)
                h.get("headers", {}).pop("response", None)
    return cfg


@contextlib.contextmanager
def scraping(url: str | None):
    """GET the metrics once a second while the block runs."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(1.0):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url, timeout=2).read()

    t = threading.Thread(target=loop, daemon=True) if url else None
    if t:
        t.start()
    try:
        yield
    finally:
        stop.set()
        if t:
            t.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (at most 60)")
    ap.add_argument("--connections", default="16,256", help="comma-separated wrk -c values")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    conns = [int(c) for c in args.connections.split(",") if c.strip()]
    if not 1 <= args.duration <= 60:
        raise SystemExit("--duration: 1 to 60 seconds")
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    name = f"obs{int(time.time()) % 100000}"
    host = f"{name}.bench.test"
    results: dict[tuple[int, str], list[Run]] = {}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="luma-bench-obs-")))
        script = tmp / "tail.lua"
        script.write_text(TAIL_LUA)
        bb, cd = stack.enter_context(images())
        pname, port = stack.enter_context(proxy(cd))
        luma("proxy", "up", "--name", pname, "--metrics", f"127.0.0.1:{free_port()}")
        port = int(json.loads(sh("docker", "inspect", pname))[0]["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
        p = stack.enter_context(project(name, cd, [host], pname,
                                        command=["caddy", "respond", "--listen", ":3000", "--body", f"{name}/ok"]))
        p.up()
        luma("proxy", "sync", "--name", pname)
        deadline = time.monotonic() + 30
        while status(port, host) != 200:
            if time.monotonic() > deadline:
                raise SystemExit("the route never answered 200")
            time.sleep(0.05)
        live = json.loads(sh("docker", "exec", pname, "cat", "/etc/luma/live.json"))
        cid = p.compose("ps", "-q", "web").split()[0]
        ip = json.loads(sh("docker", "inspect", cid))[0]["NetworkSettings"]["Networks"][f"{name}_luma"]["IPAddress"]
        caddy = caddy_binary()
        env = {"XDG_CONFIG_HOME": str(tmp / "xdg-config"), "XDG_DATA_HOME": str(tmp / "xdg-data")}
        targets, pids, scrape = {}, {}, {}
        for kind in VARIANTS:
            vport, mport = free_port(), free_port()
            f = tmp / f"{kind}.json"
            f.write_text(json.dumps(variant(live, kind, vport, mport, tmp, ip)))
            proc = stack.enter_context(host_process([caddy, "run", "--config", str(f)], vport, tmp / f"{kind}.log",
                                                    env))
            targets[kind] = f"http://127.0.0.1:{vport}/"
            pids[kind] = {"peer": process_tree(proc.pid)}
            scrape[kind] = f"http://127.0.0.1:{mport}/metrics" if kind == "log+metrics" else None
        for kind in VARIANTS:  # warm up
            wrk(targets[kind], host, 1, conns[0], args.threads, str(script))
        for r in range(args.rounds):
            for c in conns:
                for kind in VARIANTS:
                    with scraping(scrape[kind]):
                        res = wrk(targets[kind], host, args.duration, c, args.threads, str(script), None, pids[kind])
                    results.setdefault((c, kind), []).append(res)
                    print(f"round {r + 1} c{c:<4d} {kind:11s}: {tail_line(res)} | {cpu_line(res)}", flush=True)
        logged = (tmp / "log.log").stat().st_size
    print(f"\nmedian of {args.rounds} round(s), wrk -t{args.threads} -d{args.duration}s; the log variant wrote "
          f"{logged / 1e6:.1f} MB of access log")
    for c in conns:
        med = {k: (statistics.median(x.rps for x in results[(c, k)]),
                   statistics.median(x.p99_ms for x in results[(c, k)]),
                   statistics.median(x.cpu_us.get("peer", 0.0) for x in results[(c, k)])) for k in VARIANTS}
        base = med["plain"]
        for k, (rps, p99, cpu) in med.items():
            print(f"  c{c:<4d} {k:11s}: {rps:8.0f} req/s  p99 {p99:7.2f} ms  proxy CPU {cpu:5.0f} us/req"
                  f"  | {rps / base[0]:.2f}x plain req/s, p99 {p99 / base[1]:.2f}x, CPU {cpu / max(base[2], 1e-9):.2f}x")
    print("  target: log+metrics >= 0.90x plain req/s, p99 <= 1.2x plain")


if __name__ == "__main__":
    main()
