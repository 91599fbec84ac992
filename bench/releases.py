#!/usr/bin/env python3
"""What recording a release costs a deploy (issue 23, item 2).

1. ``record``: the bookkeeping deploy runs last (deploy/releases.py: list the project's releases,
   tag each service's image, create the release volume, forget the ones past --keep-releases),
   called directly on the real engine, ``--records`` times for one project of ``--services``
   services (the first ``--keep`` create only; after that each also forgets one). Prints the median
   and the max in ms, and the size of the labels of one release.
2. ``deploy``: ``luma-compose deploy`` of a one-service project, first deploy then ``--redeploys``
   rolls, through a proxy of the bench's own; prints each deploy's time and the time its
   "Record the release" step took (progress lines, 0.1 s resolution).

    python3 bench/releases.py [--records 20] [--services 3] [--keep 10] [--redeploys 3]

Everything it creates has a unique name and is removed at exit.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _proxykit import RUN, SELECT, images, proxy  # noqa: E402

from luma_compose.deploy import releases as rel  # noqa: E402
from luma_compose.engine.docker_engine import DockerEngine  # noqa: E402


def bench_record(image: str, records: int, services: int, keep: int) -> None:
    engine = DockerEngine()
    project = f"lumabenchrel{RUN}"
    cfg = {"name": project, "services": {f"s{i}": {"image": image, "environment": {"N": str(i)}}
                                         for i in range(services)}}
    who = rel.origin(".")
    times = []
    try:
        for _ in range(records):
            t0 = time.perf_counter()
            rel.record(engine, project, cfg, [], who, keep)
            times.append((time.perf_counter() - t0) * 1000)
        size = sum(len(k) + len(v) for k, v in rel.to_labels(rel.releases(engine, project)[-1]).items())
    finally:
        rel.forget(engine, project)
    print(f"record ({services} services, keep {keep}): median {statistics.median(times):.0f} ms, "
          f"max {max(times):.0f} ms over {records}; labels of one release {size} bytes")


def bench_deploy(busybox: str, caddy: str, redeploys: int, workdir: Path) -> None:
    project = f"lumabenchreldep{RUN}"
    text = lambda v: json.dumps({"services": {"web": {  # noqa: E731
        "image": busybox, "environment": {"V": str(v)}, "stop_grace_period": "1s", "labels": {SELECT.split("=")[0]:
                                                                                                SELECT.split("=")[1]},
        "x-luma": {"hosts": [f"{project}.bench.test"], "port": 3000, "health": "/up"}}}})
    f = workdir / "compose.yaml"
    with proxy(caddy) as (name, _):
        try:
            for i in range(redeploys + 1):
                f.write_text(text(i))
                p = subprocess.run([sys.executable, "-m", "luma_compose.cli", "deploy", "-f", str(f), "-p", project,
                                    "--proxy-name", name, "--drain", "0.5", "--settle", "0"],
                                   capture_output=True, text=True)
                if p.returncode != 0:
                    raise SystemExit(p.stderr)
                total = re.search(r"deployed \S+ in ([0-9.]+)s", p.stderr)
                step = re.search(r"Record the release.*?([0-9.]+)s\s*$", p.stderr, re.M)
                print(f"deploy {i + 1} ({'first' if i == 0 else 'roll'}): {total.group(1) if total else '?'} s, "
                      f"of which recording the release {step.group(1) if step else '?'} s")
        finally:
            subprocess.run([sys.executable, "-m", "luma_compose.cli", "down", "-f", str(f), "-p", project,
                            "--proxy-name", name], capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20)
    ap.add_argument("--services", type=int, default=3)
    ap.add_argument("--keep", type=int, default=10)
    ap.add_argument("--redeploys", type=int, default=3)
    a = ap.parse_args()
    import tempfile

    with images() as (busybox, caddy), tempfile.TemporaryDirectory(prefix="luma-bench-rel-") as d:
        bench_record(busybox, a.records, a.services, a.keep)
        bench_deploy(busybox, caddy, a.redeploys, Path(d))


if __name__ == "__main__":
    main()
