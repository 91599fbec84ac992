#!/usr/bin/env python3
"""Many projects on one server: what a change costs at N projects (issue 19).

On a PRIVATE engine (tests/support/private_engine.py: its own dockerd, its own address pool
10.254.0.0/16 in /24s, so 100 projects fit; ``--stock-pools``: dockerd's stock pools, N <= 26), brings
up N projects (each two routed single-replica services and one unrouted one) and prints per N:

* deploy: ``luma-compose deploy`` of one more project; redeploy: of one existing project;
* sync: one ``proxy sync`` pass with nothing changed and with one route changed (in-process,
  a fresh engine object each time as a CLI call has), and the config bytes its load sent;
* convergence: ``docker compose up -d`` of one more project returning -> first 200 through
  the proxy, with ``proxy run`` active (median and worst of --conv-runs);
* Caddy's RSS;
* a quiet project under load (closed-loop, --clients connections) while another project is
  redeployed --redeploys times: failed requests and requests slower than 0.5 s, without and
  with CPU load (``stress --cpu 2``).

``--baseline DIR`` (another checkout, e.g. ``git archive main | tar -x -C DIR``): its ``proxy sync``
timed beside this one's, and convergence with its ``proxy run``, alternating with this code's.
``--no-sync`` skips the sync timings. The quiet project is also measured with ``stress --cpu 2``
and nothing deployed, for as long as the stressed redeploys took: the slow requests the machine
makes alone.

``--profile RUNS``: RUNS more convergences with ``proxy run``'s loop in this process, every engine
call, config load, sync and Docker event printed with its time from ``compose up -d``'s return
(bench/_syncprofile.py): where a convergence goes.

Run as root, under the machine-wide lock (the private engine uses fixed names)::

    flock /tmp/luma-private-engine.lock .venv/bin/python bench/scale.py --n 1 25 50 100
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _load
import _syncprofile
from _proxykit import ROOT, RUN, SELECT, images, sh, status
from support.private_engine import PrivateEngine
from support.processes import background

from luma_compose.engine.docker_engine import DockerEngine
from luma_compose.proxy import caddy_config
from luma_compose.proxy.container import ProxyContainer
from luma_compose.proxy.controller import Controller

SELECT_KEY = SELECT.split("=")[0]
PROXY = f"lumascale{RUN}"
LUMA = [sys.executable, "-m", "luma_compose.cli"]
WORK = Path(tempfile.mkdtemp(prefix="luma-bench-scale-"))


#: Projects the stock pools hold in this bench, and why.
STOCK_MOST = 26
STOCK_WHY = ("dockerd's stock default pools are 31 networks: docker0 takes one, each deployed project one "
             "(P_default; deploy puts P_luma in luma-compose's own range), and two plain `docker compose up` projects "
             "two each (a plain up takes a default pool for P_luma too: N = 1's extra project and the one a "
             "convergence run brings up): 1 + 26 + 2 + 2 = 31")


def source(project: str, image: str, version: str = "a") -> str:
    from ruamel.yaml import YAML

    def svc(name: str, routed: bool) -> dict:
        s = {"image": image, "environment": {"PROJECT": project, "SERVICE": f"{name}-{version}"},
             "stop_grace_period": "1s", "labels": {SELECT_KEY: RUN}}
        if routed:
            hosts = [f"{name}.{project}.bench.test"] + ([f"{name}-{version}.{project}.bench.test"]
                                                       if version.startswith("h") else [])
            s["x-luma"] = {"hosts": hosts, "port": 3000, "health": "/up"}
        return s

    doc = {"name": project, "services": {"web": svc("web", True), "api": svc("api", True),
                                         "worker": svc("worker", False)}}
    buf = io.StringIO()
    YAML().dump(doc, buf)
    return buf.getvalue()


def write(project: str, image: str, version: str = "a") -> Path:
    f = WORK / project / "compose.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(source(project, image, version))
    return f


def deploy(project: str, image: str, version: str = "a") -> float:
    f = write(project, image, version)
    t0 = time.monotonic()
    sh(*LUMA, "deploy", "-f", str(f), "--drain", "1", "--timeout", "120", "--proxy-name", PROXY)
    return time.monotonic() - t0


def compose_up(project: str, image: str, version: str = "a", *services: str) -> float:
    """Render and ``docker compose up -d`` (no deploy): the plain Compose path; returns up's time."""
    f = write(project, image, version)
    r = WORK / project / "rendered.yaml"
    r.write_text(sh(*LUMA, "render", "-f", str(f)))
    t0 = time.monotonic()
    sh("docker", "compose", "-p", project, "-f", str(r), "up", "-d", "--quiet-pull", *services)
    return time.monotonic() - t0


def compose_down(project: str) -> None:
    sh(*LUMA, "down", "-p", project, "--proxy-name", PROXY, check=False)


class LoadCounter:
    """Counts the bytes of every config load in this process."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        orig = ProxyContainer.load
        counter = self

        def load(self_, config, **kw):  # type: ignore[no-untyped-def]
            counter.sizes.append(len(caddy_config.dumps(config).encode()))
            return orig(self_, config, **kw)

        ProxyContainer.load = load  # type: ignore[method-assign]


def timed_sync() -> float:
    t0 = time.monotonic()
    Controller(DockerEngine(), PROXY).sync()
    return time.monotonic() - t0


def run_in(root: Path, *args: str) -> list[str]:
    """The CLI of the checkout at ``root`` (``python -m`` puts the working directory first)."""
    return ["sh", "-c", 'cd "$0" && exec "$@"', str(root), *LUMA, *args]


def cli_sync(root: Path) -> float:
    """Wall time of ``luma-compose proxy sync`` run from the code in ``root`` (its own process,
    Python's start included)."""
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "luma_compose.cli", "proxy", "sync", "--name", PROXY], cwd=root,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"proxy sync ({root}) failed: {p.stderr}")
    return time.monotonic() - t0


def compare_cli_sync(baseline: Path | None) -> str:
    """``proxy sync`` with nothing changed, this code and ``baseline``'s, alternating (same state)."""
    if baseline is None:
        return ""
    here, there = [], []
    for _ in range(3):
        here.append(cli_sync(ROOT))
        there.append(cli_sync(baseline))
    return (f"\nproxy sync CLI, nothing changed  this code {statistics.median(here) * 1000:.0f} ms, "
            f"baseline ({baseline}) {statistics.median(there) * 1000:.0f} ms (medians of 3, alternating)")


def measure_sync(counter: LoadCounter, image: str, changed_project: str, round_: int) -> tuple[float, float, int]:
    """(nothing changed, one route changed, bytes loaded for that change); proxy run is not running."""
    timed_sync()  # settle
    idle = statistics.median(timed_sync() for _ in range(3))
    # one change: one routed service gets one more host (Compose recreates its container)
    compose_up(changed_project, image, f"h{round_}", "web")
    before = len(counter.sizes)
    one = timed_sync()
    sent = sum(counter.sizes[before:])
    return idle, one, sent


def convergence(addr: tuple[str, int], image: str, runs: int, n: int) -> list[float]:
    out = []
    for i in range(runs):
        p = f"conv{RUN}n{n}r{i}"
        host = f"web.{p}.bench.test"
        compose_up(p, image)
        t0 = time.monotonic()
        while status(addr[1], host, addr[0]) != 200:
            if time.monotonic() - t0 > 60:
                raise SystemExit(f"convergence: no 200 for {host} within 60 s")
            time.sleep(0.005)
        out.append(time.monotonic() - t0)
        compose_down(p)
    return out


def profile_convergence(addr: tuple[str, int], image: str, runs: int, n: int) -> str:
    """Convergence with ``proxy run`` in this process, every engine call and event timestamped."""
    out = []
    with _syncprofile.ProfiledRun(PROXY) as prof:
        time.sleep(3)
        for i in range(runs):
            p = f"prof{RUN}n{n}r{i}"
            host = f"web.{p}.bench.test"
            write(p, image)
            r = WORK / p / "rendered.yaml"
            r.write_text(sh(*LUMA, "render", "-f", str(WORK / p / "compose.yaml")))
            t_up = time.monotonic()
            sh("docker", "compose", "-p", p, "-f", str(r), "up", "-d", "--quiet-pull")
            t0 = time.monotonic()
            while status(addr[1], host, addr[0]) != 200:
                if time.monotonic() - t0 > 60:
                    raise SystemExit(f"profile: no 200 for {host} within 60 s")
                time.sleep(0.005)
            served = time.monotonic()
            time.sleep(1)
            out.append(f"profile run {i} (N = {n}):\n" + prof.report(t_up, t0, served))
            compose_down(p)
    return "\n".join(out)


def _spread(runs: list[float]) -> str:
    if not runs:
        return "not measured (--conv-runs 0)"
    return f"median {statistics.median(runs) * 1000:.0f} ms, worst {max(runs) * 1000:.0f} ms ({len(runs)} runs)"


def caddy_rss() -> str:
    """Caddy's resident memory, and of it what Caddy allocated (RssAnon): the rest is the mapped
    binary's pages (RssFile, ~39 MB of caddy 2.11.7 with no routes at all), shared and reclaimable."""
    out = sh("docker", "exec", PROXY, "sh", "-c", "grep -E '^(VmRSS|RssAnon):' /proc/1/status", check=False)
    got = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    rss, anon = (" ".join(got.get(k, "?").split()) for k in ("VmRSS", "RssAnon"))
    return f"{rss} ({anon} allocated)"


def quiet_under_load(addr: tuple[str, int], quiet: str, busy: str, image: str, redeploys: int,
                     clients: int, stress: bool, secs: float = 0.0) -> str:
    """Load quiet's web while busy is redeployed; '<failed> failed, <slow> slow of <n>'. With no
    redeploys: the load alone for ``secs`` (nothing deployed)."""
    host = f"web.{quiet}.bench.test"
    stop = threading.Event()
    res: list = []
    t = threading.Thread(target=lambda: res.append(_load.run(addr, host, clients, 3600, stop=stop)))
    cpu = background(["stress", "--cpu", "2"], capture=False) if stress else contextlib.nullcontext()
    with cpu:
        t.start()
        try:
            time.sleep(1)
            for i in range(redeploys):
                deploy(busy, image, version=f"v{i}{'s' if stress else ''}")
            time.sleep(1 if redeploys else max(secs - 1, 1))
        finally:  # a failed deploy too: the load stops (else the process waits for it, holding the lock)
            stop.set()
            t.join()
    results, secs = res[0]
    failed = sum(1 for r in results if r.status != 200)
    slow = sum(1 for r in results if r.latency > 0.5)
    worst = max((r.latency for r in results), default=0)
    why = sorted({f"{r.status or r.error}" for r in results if r.status != 200})
    return (f"{failed} failed, {slow} slow (>0.5 s) of {len(results)} (worst {worst * 1000:.0f} ms)"
            + (f"; failed: {', '.join(why)}" if why else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1, 25, 50, 100])
    ap.add_argument("--conv-runs", type=int, default=5)
    ap.add_argument("--redeploys", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--profile", type=int, default=0, metavar="RUNS",
                    help="also time every engine call, load and event of RUNS convergences (proxy run in-process)")
    ap.add_argument("--no-quiet", action="store_true", help="skip the quiet-project-under-load part")
    ap.add_argument("--no-sync", action="store_true", help="skip the sync timings (convergence and the quiet "
                    "project only: a shorter run under the lock)")
    ap.add_argument("--engine", default="lumascale", help="private engine name (at most 11 characters)")
    ap.add_argument("--stock-pools", action="store_true",
                    help="the private engine with dockerd's stock address pools (31 networks) instead of its own "
                         "/16 in /24s; the bulk is then deployed (one default pool per project), so N <= 26")
    ap.add_argument("--baseline", type=Path, help="a checkout of another version (e.g. `git worktree add "
                    "/tmp/base main`): its `proxy sync` is timed beside this one's on the same projects")
    args = ap.parse_args()
    if args.stock_pools and max(args.n) > STOCK_MOST:
        ap.error(f"--stock-pools holds at most {STOCK_MOST} projects: {STOCK_WHY}")
    counter = LoadCounter()
    with images() as (bb, cd), PrivateEngine.started(args.engine, stock_pools=args.stock_pools) as eng, \
            contextlib.ExitStack() as stack:
        eng.load_image(bb)
        eng.load_image(cd)
        before = os.environ.get("DOCKER_HOST")
        # every CLI and SDK call below: the private engine; images() then cleans up on the shared one
        stack.callback(lambda: os.environ.update(DOCKER_HOST=before) if before else os.environ.pop("DOCKER_HOST"))
        os.environ["DOCKER_HOST"] = eng.host
        sh(*LUMA, "proxy", "up", "--name", PROXY, "--image", cd, "--http-port", "0", "--tls", "off",
           "--select", SELECT)
        port = int(sh("docker", "inspect", "-f", '{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}',
                      PROXY).strip())
        addr = (eng.ns_ip, port)
        have = 0
        print(f"private engine {eng.name}; proxy {PROXY} at {addr[0]}:{addr[1]}", flush=True)
        for n in sorted(args.n):
            t0 = time.monotonic()
            # the bulk: plain compose, a few at a time (deploy of the last one is measured); on the stock
            # pools by deploy, whose P_luma takes no default pool
            bring_up = (lambda p: deploy(p, bb)) if args.stock_pools else (lambda p: compose_up(p, bb))
            with ThreadPoolExecutor(max_workers=4) as pool:
                list(pool.map(lambda i: bring_up(f"s{RUN}p{i}"), range(have, n - 1)))
            have = max(have, n - 1)
            timed_sync()
            bulk = time.monotonic() - t0
            first = deploy(f"s{RUN}p{have}", bb)
            have += 1
            redeploy = deploy(f"s{RUN}p{have - 1}", bb, version="b")
            # measure_sync needs the rendered file of a plain-compose project
            changed = f"s{RUN}p0" if have > 1 else None
            if changed is None:
                compose_up(f"s{RUN}extra", bb)
                changed = f"s{RUN}extra"
            idle = one = sent = 0
            if not args.no_sync:
                idle, one, sent = measure_sync(counter, bb, changed, n)
            versus = "" if args.no_sync else compare_cli_sync(args.baseline)
            if args.profile:
                print(profile_convergence(addr, bb, args.profile, n), flush=True)
            calm = loaded = idle_loaded = "skipped (--no-quiet)"
            conv, base_conv = [], []
            for _ in range(2 if args.baseline else 1):  # this code's proxy run and the baseline's, alternating
                with background([*LUMA, "proxy", "run", "--name", PROXY], capture=False):
                    time.sleep(2)
                    conv += convergence(addr, bb, args.conv_runs, n)
                if args.baseline:
                    with background(run_in(args.baseline, "proxy", "run", "--name", PROXY), capture=False):
                        time.sleep(2)
                        base_conv += convergence(addr, bb, args.conv_runs, n)
            with background([*LUMA, "proxy", "run", "--name", PROXY], capture=False):
                time.sleep(2)
                quiet = f"s{RUN}p{have - 1}"
                busy = f"s{RUN}p0" if have > 1 else f"s{RUN}extra"
                if not args.no_quiet:
                    calm = quiet_under_load(addr, quiet, busy, bb, args.redeploys, args.clients, stress=False)
                    t0 = time.monotonic()
                    loaded = quiet_under_load(addr, quiet, busy, bb, args.redeploys, args.clients, stress=True)
                    # the same load for as long, nothing deployed: what the machine alone does
                    idle_loaded = quiet_under_load(addr, quiet, busy, bb, 0, args.clients, stress=True,
                                                   secs=time.monotonic() - t0)
            if base_conv:
                versus += f"\nconvergence, baseline proxy run  {_spread(base_conv)}, alternating with this code's"
            print(f"\n== N = {n} projects ({3 * n} containers; bulk setup {bulk:.0f} s)\n"
                  f"deploy (one more project)      {first:6.2f} s\n"
                  f"redeploy (one project)         {redeploy:6.2f} s\n"
                  f"sync, nothing changed          {idle * 1000:6.0f} ms\n"
                  f"sync, one route changed        {one * 1000:6.0f} ms   config sent {sent} B{versus}\n"
                  f"convergence (compose up -d)    {_spread(conv)} (target < 1000 ms)\n"
                  f"Caddy RSS                      {caddy_rss()}\n"
                  f"quiet project, {args.redeploys} redeploys of another:\n"
                  f"  no CPU load                  {calm}\n"
                  f"  stress --cpu 2               {loaded}\n"
                  f"  stress --cpu 2, no deploy    {idle_loaded}", flush=True)


if __name__ == "__main__":
    main()
