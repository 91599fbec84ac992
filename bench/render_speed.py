#!/usr/bin/env python3
"""Time `luma-compose render` against `docker compose config -q` (the reference).

Usage: python bench/render_speed.py [--runs N] [--services N] [--set-services N]

For each example in examples/ and a generated file with --services services
(default 2,000; half of them routed), runs both commands N times (default 15,
after one warm-up run each), and prints the medians and the ratio
render / compose. Targets: typical files <= 1.0x, the big file <= 2.0x, and generated three-file
sets (``-f a -f b -f c``, --set-services services; one with a ``${VAR:-./dir}`` bind mount, which Compose's own
merge would have to interpolate) <= 1.5x.
Both are whole processes, as a user runs them (interpreter start included). The CPU ratio (user + system
time of the processes, Compose's own runs included) is the same comparison, less sensitive to a loaded machine.

Measure an installed luma-compose, as users have it (an editable install adds an
import hook, and PYTHONDONTWRITEBYTECODE=1 on a source tree recompiles every run):

    python3 -m venv /tmp/lc && /tmp/lc/bin/pip install . && PATH=/tmp/lc/bin:$PATH python3 bench/render_speed.py
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def generated(n: int) -> str:
    lines = ["services:"]
    for i in range(n):
        lines += [f"  svc{i}:", f"    image: example/app:{i}", "    environment:", f"      - INDEX={i}",
                  "    labels:", f"      com.example.index: 'x{i}'", "    networks: [default, back]"]
        if i % 2 == 0:
            lines += ["    x-luma:", f"      hosts: [s{i}.example.com]", "      port: 3000"]
    lines += ["networks:", "  back:"]
    return "\n".join(lines) + "\n"


def generated_set(n: int, interpolate: bool) -> list[str]:
    """Three files as a project splits them (base, override, an extra): ~n services; ``interpolate`` puts a
    `${VAR:-./dir}` bind mount in the base, which Compose's own merge would have to interpolate."""
    base = generated(n).replace("networks:\n  back:\n", "")
    if interpolate:
        base = base.replace("    environment:\n", '    volumes: ["${DATA:-./data}:/srv"]\n    environment:\n', 1)
    base += "networks:\n  back:\n    name: ${BACK:-back-net}\n"
    over = ["services:"]
    for i in range(0, n, 3):
        over += [f"  svc{i}:", "    restart: unless-stopped", "    environment:", "      - EXTRA=1"]
    extra = ["services:"]
    for i in range(n, n + n // 10 + 1):
        extra += [f"  svc{i}:", f"    image: example/extra:{i}", "    profiles: [debug]"]
    return [base, "\n".join(over) + "\n", "\n".join(extra) + "\n"]


def timed(cmd: list[str], runs: int, cwd: str) -> tuple[list[float], list[float]]:
    """(wall times, CPU times of the process and its children) of ``runs`` runs."""
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)  # warm-up (and gate cache)
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--services", type=int, default=2000)
    ap.add_argument("--set-services", type=int, default=150, help="services of the generated -f sets")
    args = ap.parse_args()
    luma = shutil.which("luma-compose") or os.path.join(os.path.dirname(sys.executable), "luma-compose")
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        print("docker compose (v2) is needed as the reference", file=sys.stderr)
        return 2
    print(f"measuring {luma} against {shutil.which('docker')} compose; load average {os.getloadavg()[0]:.2f}")
    probe = subprocess.run([os.path.join(os.path.dirname(luma), "python"), "-c",
                            "import luma_compose, sys; print(luma_compose.__file__)"], capture_output=True, text=True,
                           cwd=tempfile.gettempdir())
    where = probe.stdout.strip()
    if where.startswith(ROOT):
        print(f"note: this luma-compose runs from the source tree ({where}): an editable install, slower than an "
              "installed one (see this script's doc)")
    cases = []
    for name in sorted(os.listdir(os.path.join(ROOT, "examples"))):
        path = os.path.join(ROOT, "examples", name, "compose.yaml")
        if os.path.exists(path):
            cases.append((f"examples/{name}", [path], 1.0))
    tmp = tempfile.mkdtemp()
    big = os.path.join(tmp, "compose.yaml")
    with open(big, "w") as fh:
        fh.write(generated(args.services))
    cases.append((f"generated {args.services} services", [big], 2.0))
    for interpolate in (False, True):
        paths = []
        for i, text in enumerate(generated_set(args.set_services, interpolate)):
            paths.append(os.path.join(tmp, f"set{int(interpolate)}-{i}.yaml"))
            with open(paths[-1], "w") as fh:
                fh.write(text)
        size = sum(os.path.getsize(p) for p in paths) // 1000
        cases.append((f"3 files, {size} kB{', interpolated' if interpolate else ''}", paths, 1.5))
    print(f"{'file':32} {'render (s)':>11} {'compose (s)':>12} {'ratio':>7} {'target':>7} {'CPU ratio':>10}")
    worst = 0.0
    try:
        for label, paths, target in cases:
            d = os.path.dirname(paths[0])
            files = [a for p in paths for a in ("-f", p)]
            runs = args.runs if "generated" not in label else max(5, args.runs // 3)
            r, r_cpu = map(statistics.median, timed([luma, "render", *files], runs, d))
            c, c_cpu = map(statistics.median, timed(["docker", "compose", *files, "config", "-q"], runs, d))
            ratio = r / c
            worst = max(worst, ratio / target)
            print(f"{label:32} {r:11.3f} {c:12.3f} {ratio:6.2f}x {target:6.1f}x {r_cpu / c_cpu:9.2f}x"
                  f"{'' if ratio <= target else '  over target'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"worst ratio against its target: {worst:.2f} (<= 1.00 meets every target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
