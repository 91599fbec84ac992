"""Zero downtime and the latency tail under load: 16 keep-alive connections (bench/_load.py, closed
loop like `hey -c 16`) through the proxy to a routed service with 2 replicas (busybox httpd, whose
app needs ~5 s to boot), first in steady state, then while it is redeployed N times alternating two
versions. Both on two paths:

- published: the port the proxy publishes on 127.0.0.1, through Docker's userland docker-proxy:
  what a client on this machine sees;
- direct: the proxy container's own IP, no docker-proxy: the path remote clients take (the engine
  forwards their packets to the container in the kernel), so this is the figure users see.

Prints measured figures only: per path and phase the requests, p50/p99/p99.9/p99.99/max, how many
took over 0.5 s, every non-2xx status and connection error, new connections and retries; for each
deploy the time from its start to the last old container leaving (its `destroy` event). Targets
(issue 14): no request over 0.5 s in steady state; during deploys p99.9 within 2x of steady state;
0 failed requests.

    python3 bench/zero_downtime.py [--steady 60] [--deploys 2] [--concurrency 16] [--boot 5] [--drain 2]

Each load run lasts at most 60 s. Everything it creates (images, proxy, volume, project) has a
unique name and is removed at exit.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "images"))

import build as image_build  # noqa: E402  (tests/images/build.py)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _load  # noqa: E402  (bench/_load.py)

RUN = secrets.token_hex(3)
SELECT_KEY = "lumabench.run"


def sh(*cmd: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(cmd, capture_output=True, text=True, input=input)
    if check and p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p


def source(project: str, image: str, host: str, version: str, boot: float) -> str:
    from ruamel.yaml import YAML

    doc = {"name": project, "services": {"web": {
        "image": image,
        "command": ["sh", "-c", f"sleep {boot:g}; exec serve"],
        "environment": {"PROJECT": project, "SERVICE": f"web-{version}"},
        "deploy": {"replicas": 2},
        "stop_grace_period": "2s",
        "labels": {SELECT_KEY: RUN},
        "x-luma": {"hosts": [host], "port": 3000, "health": "/up"},
    }}}
    yaml = YAML()
    yaml.default_flow_style = False
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return buf.getvalue()


class Destroys:
    """`docker events` destroy times of this project's containers (engine clock, ns)."""

    def __init__(self, project: str):
        self.times: dict[str, float] = {}
        self.proc = subprocess.Popen(
            ["docker", "events", "--filter", f"label=com.docker.compose.project={project}",
             "--filter", "event=destroy", "--format", "{{.ID}} {{.TimeNano}}"],
            stdout=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            cid, _, ns = line.strip().partition(" ")
            if ns.isdigit():
                self.times[cid] = int(ns) / 1e9

    def close(self) -> None:
        self.proc.terminate()


def running_ids(project: str) -> set[str]:
    out = sh("docker", "ps", "-q", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}").stdout
    return set(out.split())


MAX_LOAD = 60.0  # seconds: no load run lasts longer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steady", type=float, default=60.0, help="seconds of steady load per path (at most 60)")
    ap.add_argument("--deploys", type=int, default=2, help="redeploys per path, under one load run of at most 60 s "
                    "(each takes ~20 s here)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--boot", type=float, default=5.0, help="seconds the app sleeps before it listens")
    ap.add_argument("--drain", type=float, default=2.0)
    ap.add_argument("--paths", default="direct,published", help="comma-separated: direct, published")
    a = ap.parse_args()
    paths = [x.strip() for x in a.paths.split(",") if x.strip()]
    if not paths or set(paths) - {"direct", "published"}:
        ap.error("--paths takes direct and/or published")

    app, caddy = f"lumabench-zd-app:{RUN}", f"lumabench-zd-caddy:{RUN}"
    tags = {"a": f"lumabench-zd-app:{RUN}-a", "b": f"lumabench-zd-app:{RUN}-b"}
    proxy, project = f"lumabench-zd-proxy-{RUN}", f"lumabenchzd{RUN}"
    host = f"{project}.bench.test"
    work = Path(tempfile.mkdtemp(prefix="luma-bench-zd-"))
    f = work / "compose.yaml"
    luma = [sys.executable, "-m", "luma_compose.cli"]
    deploy = [*luma, "deploy", "-f", str(f), "--drain", f"{a.drain:g}", "--timeout", "60",
              "--proxy-name", proxy, "--proxy-image", caddy, "--proxy-http-port", "127.0.0.1:0",
              "--proxy-https-port", "127.0.0.1:0", "--proxy-tls", "off", "--proxy-select", f"{SELECT_KEY}={RUN}"]
    events = None
    try:
        image_build.build_busybox_image(app)
        image_build.build_caddy_image(caddy)
        for t in tags.values():
            sh("docker", "tag", app, t)
        version = "a"
        f.write_text(source(project, tags[version], host, version, a.boot))
        t0 = time.monotonic()
        sh(*deploy)
        print(f"first deploy (not under load): {time.monotonic() - t0:.1f}s", flush=True)
        published = sh("docker", "port", proxy, "80/tcp").stdout.split()[0].rsplit(":", 1)
        proxy_ip = json.loads(sh("docker", "inspect", proxy).stdout)[0]["NetworkSettings"]["IPAddress"]
        addrs = {"published": (published[0], int(published[1])), "direct": (proxy_ip, 80)}
        events = Destroys(project)
        rows: list[tuple[str, str, _load.Tail]] = []
        errors: collections.Counter[str] = collections.Counter()
        statuses: collections.Counter[int] = collections.Counter()
        print(f"load: {a.concurrency} keep-alive connections, 2 replicas, app boot {a.boot:g}s, drain {a.drain:g}s",
              flush=True)
        for path in paths:
            addr = addrs[path]
            res, secs = _load.run(addr, host, a.concurrency, min(a.steady, MAX_LOAD))
            rows.append((path, "steady", _load.tail(res, secs)))
            print(f"{path:9s} steady : {rows[-1][2].line()}", flush=True)
            errors.update(r.error for r in res if r.error)
            statuses.update(r.status for r in res if r.status)

            stop = threading.Event()
            box: list[tuple[list[_load.Result], float]] = []
            load = threading.Thread(target=lambda: box.append(_load.run(addr, host, a.concurrency, MAX_LOAD, stop)))
            load.start()
            time.sleep(1)
            for i in range(a.deploys):
                version = "b" if version == "a" else "a"
                f.write_text(source(project, tags[version], host, version, a.boot))
                old = running_ids(project)
                start_wall, start = time.time(), time.monotonic()
                p = sh(*deploy, check=False)
                took = time.monotonic() - start
                if p.returncode != 0:
                    stop.set()
                    print(p.stderr, file=sys.stderr)
                    raise SystemExit(f"deploy {i + 1} failed (exit {p.returncode})")
                time.sleep(0.5)  # let the last destroy event arrive
                gone = [events.times.get(c) for c in old]
                last_old = max(gone) - start_wall if all(gone) else float("nan")
                under_load = "" if load.is_alive() else "  (the load run had already ended)"
                print(f"{path:9s} deploy {i + 1} (-> {version}): deploy command {took:.1f}s, "
                      f"start to last old container gone {last_old:.1f}s{under_load}", flush=True)
            stop.set()
            load.join()
            res, secs = box[0]
            rows.append((path, "deploys", _load.tail(res, secs)))
            print(f"{path:9s} deploys: {rows[-1][2].line()}", flush=True)
            errors.update(r.error for r in res if r.error)
            statuses.update(r.status for r in res if r.status)

        print("\nsummary (direct = what users see: remote clients do not go through docker-proxy):")
        for path, phase, t in rows:
            print(f"  {path:9s} {phase:7s}: {t.line()}")
        total = sum(t.requests for _, _, t in rows)
        failed = sum(t.errors + t.non2xx for _, _, t in rows)
        print(f"  statuses: {dict(sorted(statuses.items()))}")
        for e, n in errors.most_common():
            print(f"  {n} x {e}")
        print("targets:")
        for path in paths:
            steady = next(t for p_, ph, t in rows if p_ == path and ph == "steady")
            during = next(t for p_, ph, t in rows if p_ == path and ph == "deploys")
            ratio = during.p999 / steady.p999 if steady.p999 else float("inf")
            print(f"  {path:9s}: steady requests over {_load.SLOW:g}s: {steady.slow} (target 0: "
                  f"{'met' if steady.slow == 0 else 'NOT met'}); deploy p99.9 / steady p99.9 = "
                  f"{1000 * during.p999:.1f} / {1000 * steady.p999:.1f} ms = {ratio:.2f}x (target <= 2x: "
                  f"{'met' if ratio <= 2 else 'NOT met'})")
        print(f"  failed requests (errors + non-2xx): {failed} of {total} (target 0: {'met' if failed == 0 else 'NOT met'})")
        return 0
    finally:
        if events:
            events.close()
        sh(*luma, "down", "-f", str(f), "-p", project, "--proxy-name", proxy, check=False)
        sh("docker", "rm", "-f", "-v", proxy, check=False)
        sh("docker", "volume", "rm", "-f", f"{proxy}-data", check=False)
        for t in [*tags.values(), app, caddy]:
            sh("docker", "rmi", "-f", t, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
