"""Zero downtime under load: `hey` (keep-alive, 16+ connections) through the proxy while a routed
service with 2 replicas, whose app needs ~5 s to boot, is redeployed N times alternating two versions.

Prints measured figures only: total requests, every non-2xx status, every connection error, and
for each deploy the time from its start to the last old container leaving (its `destroy` event).

    python3 bench/zero_downtime.py [--deploys 5] [--concurrency 16] [--boot 5] [--drain 5]

Everything it creates (images, proxy, volume, project) has a unique name and is removed at exit.
"""

from __future__ import annotations

import argparse
import io
import re
import secrets
import shutil
import signal
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


def parse_hey(text: str) -> tuple[int, dict[str, int], dict[str, int]]:
    statuses = {m.group(1): int(m.group(2)) for m in re.finditer(r"\[(\d{3})\]\s+(\d+) responses", text)}
    errors: dict[str, int] = {}
    if "Error distribution:" in text:
        for m in re.finditer(r"^\s+\[(\d+)\]\s+(.+)$", text.split("Error distribution:", 1)[1], re.M):
            errors[m.group(2).strip()] = int(m.group(1))
    return sum(statuses.values()) + sum(errors.values()), statuses, errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deploys", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--boot", type=float, default=5.0, help="seconds the app sleeps before it listens")
    ap.add_argument("--drain", type=float, default=5.0)
    a = ap.parse_args()
    if not shutil.which("hey"):
        print("hey is not installed (apt-get install hey)", file=sys.stderr)
        return 3

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
        f.write_text(source(project, tags["a"], host, "a", a.boot))
        t0 = time.monotonic()
        sh(*deploy)
        print(f"first deploy (not under load): {time.monotonic() - t0:.1f}s")
        ports = sh("docker", "port", proxy, "80/tcp").stdout.split()[0]
        url = f"http://{ports}/"
        hey = subprocess.Popen(["hey", "-z", "3600s", "-c", str(a.concurrency), "-host", host, url],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(2)
        events = Destroys(project)
        rollouts = []
        for i in range(a.deploys):
            v = "b" if i % 2 == 0 else "a"
            f.write_text(source(project, tags[v], host, v, a.boot))
            old = running_ids(project)
            start_wall, start = time.time(), time.monotonic()
            p = sh(*deploy, check=False)
            took = time.monotonic() - start
            if p.returncode != 0:
                print(p.stderr, file=sys.stderr)
                raise SystemExit(f"deploy {i + 1} failed (exit {p.returncode})")
            time.sleep(0.5)  # let the last destroy event arrive
            gone = [events.times.get(c) for c in old]
            last_old = max(gone) - start_wall if all(gone) else float("nan")
            rollouts.append((v, took, last_old))
        time.sleep(2)
        hey.send_signal(signal.SIGINT)
        out, _ = hey.communicate(timeout=60)
        total, statuses, errors = parse_hey(out)
        print(f"load: hey, {a.concurrency} keep-alive connections, app boot {a.boot:g}s, 2 replicas, "
              f"drain {a.drain:g}s, {a.deploys} redeploys alternating two versions")
        for i, (v, took, last_old) in enumerate(rollouts, 1):
            print(f"deploy {i} (-> {v}): deploy command {took:.1f}s, start to last old container gone {last_old:.1f}s")
        print(f"total requests: {total}")
        for code, n in sorted(statuses.items()):
            print(f"  status {code}: {n}")
        non2xx = sum(n for c, n in statuses.items() if not c.startswith("2"))
        print(f"non-2xx responses: {non2xx}")
        print(f"connection errors: {sum(errors.values())}")
        for e, n in errors.items():
            print(f"  {n} x {e}")
        rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if rps:
            print(f"throughput: {rps.group(1)} requests/s")
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
