#!/usr/bin/env python3
"""Which part of a route makes Caddy's config load slow? (issue 19 item 3)

Starts the caddy binary on this machine (no Docker) and ``POST /load``s the config the proxy
really loads (``Controller.desired``'s pieces: ``build_config`` + the access log of
``observe.apply``) for R routes, each part left out in turn: the wall time of the load and the
CPU seconds Caddy spent on it (from /proc: the machine may be loaded), medians of --rounds. Every
route has Caddy's active probes on (x-luma ``health_interval: 1``; routes have none unless x-luma asks),
so that "no active health checks" shows their share.

    .venv/bin/python bench/caddy_load_parts.py [--routes 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

import _proxykit  # noqa: F401  (puts the project on sys.path)
from caddy_load_size import caddy_on_host, free_port, request

from luma_compose.proxy import caddy_config, observe
from luma_compose.routing.claims import Member, Route, RouteTable


def base(routes: int, backend: int, admin: int, http_port: int, version: int, probes: int = 1) -> dict:
    """``probes``: every route's x-luma ``health_interval`` (the parts are measured with Caddy's probes
    on, so that "no active health checks" shows their share; 0: none, the default config)."""
    rs = []
    for i in range(routes):
        m = Member(f"p{i}-web-1", f"id{i}", f"127.0.0.1:{backend}", "none", True, "", f"h{version}", "running")
        rs.append(Route(f"p{i // 2}", f"s{i % 2}", (f"s{i % 2}-v{version if i == 0 else 0}.p{i // 2}.test",), 3000,
                        "/up", f"p{i // 2}_luma", (m,), "2026-01-01T00:00:00Z", health_interval=probes))
    table = RouteTable(tuple(rs))
    cfg = caddy_config.build_config(table, tls="off", http_port=http_port, https_port=free_port(), http3=False)
    cfg = observe.apply(cfg, table.routes, access_log=True)
    cfg["admin"] = {"listen": f"127.0.0.1:{admin}"}
    cfg["storage"] = {"module": "file_system", "root": tempfile.mkdtemp(prefix="luma-caddy-parts-")}
    return cfg


def proxies(cfg: dict):
    for r in cfg["apps"]["http"]["servers"][caddy_config.SERVER_NAME]["routes"]:
        for h in r.get("handle", []):
            if h.get("handler") == "reverse_proxy":
                yield r, h


def drop(*keys: str):
    def f(cfg: dict) -> None:
        for _, h in proxies(cfg):
            node = h
            for k in keys[:-1]:
                node = node.get(k, {})
            node.pop(keys[-1], None)
    return f


def no_log(cfg: dict) -> None:
    cfg.pop("logging", None)
    for s in cfg["apps"]["http"]["servers"].values():
        s.pop("logs", None)
    for r, _ in proxies(cfg):
        r["handle"] = [h for h in r["handle"] if h["handler"] not in ("vars", "log_append")]


def no_errors(cfg: dict) -> None:
    cfg["apps"]["http"]["servers"][caddy_config.SERVER_NAME].pop("errors", None)


def bare(cfg: dict) -> None:
    no_log(cfg)
    no_errors(cfg)
    for r, h in proxies(cfg):
        r["handle"] = [{"handler": "reverse_proxy", "upstreams": h["upstreams"]}]


VARIANTS = {
    "as loaded": lambda c: None,
    "no active health checks": drop("health_checks", "active"),
    "no health checks": drop("health_checks"),
    "no transport resolver": drop("transport", "resolver"),
    "default transport": drop("transport"),
    "no header ops": drop("headers"),
    "no access log/vars": no_log,
    "no error routes": no_errors,
    "bare reverse_proxy": bare,
}


def cpu(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routes", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--caddy", default="caddy")
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    with caddy_on_host(args.caddy, lambda b, a, h: base(1, b, a, h, 0), "luma-caddy-parts-") as (backend, admin,
                                                                                                 http_port, proc):
        print(f"{args.routes} routes; medians of {args.rounds}; load avg {os.getloadavg()[0]:.1f}")
        print(f"{'variant':<26} {'config':>8} {'wall':>7} {'caddy CPU':>10}")
        v = 1
        for name, mutate in VARIANTS.items():
            if args.only and name not in args.only:
                continue
            walls, cpus = [], []
            for _ in range(args.rounds):
                cfg = base(args.routes, backend, admin, http_port, v)
                v += 1
                mutate(cfg)
                body = caddy_config.dumps(cfg).encode()
                c0 = cpu(proc.pid)
                walls.append(request(admin, "POST", "/load", body))
                cpus.append(cpu(proc.pid) - c0)
                time.sleep(0.3)
            print(f"{name:<26} {len(body) / 1024:>6.0f}kB {statistics.median(walls) * 1000:>5.0f}ms "
                  f"{statistics.median(cpus) * 1000:>8.0f}ms", flush=True)


if __name__ == "__main__":
    main()
