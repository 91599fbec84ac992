#!/usr/bin/env python3
"""Route convergence: from ``docker compose up -d`` returning to the first 200 through the proxy,
with ``luma-compose proxy run`` active. Prints every sample, the median and the worst.

    python3 bench/proxy_convergence.py [--runs 20]

Target (issue 4): under 1 s. Needs a Docker engine; builds its own images; cleans up after itself.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _proxykit import RUN, images, project, proxy, proxy_run, status


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=30.0, help="give up on one run after this many seconds")
    args = ap.parse_args()
    samples: list[float] = []
    with images() as (bb, cd), proxy(cd) as (pname, port), proxy_run(pname):
        time.sleep(1.0)  # let proxy run do its first sync
        for i in range(args.runs):
            name = f"conv{RUN}{i}"
            host = f"{name}.bench.test"
            with project(name, bb, [host], pname) as p:
                assert status(port, host) == 404
                p.up()
                t0 = time.monotonic()
                while status(port, host) != 200:
                    if time.monotonic() - t0 > args.timeout:
                        raise SystemExit(f"run {i}: no 200 for {host} within {args.timeout}s")
                    time.sleep(0.005)
                dt = time.monotonic() - t0
                samples.append(dt)
                print(f"run {i + 1:2d}: {dt * 1000:7.1f} ms", flush=True)
    print(f"convergence over {len(samples)} runs: median {statistics.median(samples) * 1000:.1f} ms, "
          f"worst {max(samples) * 1000:.1f} ms, best {min(samples) * 1000:.1f} ms (target: < 1000 ms)")


if __name__ == "__main__":
    main()
