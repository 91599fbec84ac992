#!/usr/bin/env python3
"""Hostile input: how long `luma-compose` takes to refuse each case, and its peak memory.

    python3 bench/hostile_input.py [--runs 5]

Cases (tests/support/hostile.py): an alias bomb (each level referencing the previous nine times),
10,000 and 600 nested levels, garbage bytes on stdin; on the click CLI and on the fast path.
Targets (issue 9): a clear error within 2 s and under 300 MB. Prints the median and worst time
and the peak memory of each; exit 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.hostile import CASES, FAST, LUMA, measured  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} (other work on the machine lengthens every time)")
    print(f"{'case':<24} {'cli':<6} {'median s':>9} {'worst s':>8} {'peak MB':>8}  target <2 s, <300 MB")
    missed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case in sorted(CASES):
            argv, stdin, _ = CASES[case]
            for name, cli in (("click", LUMA), ("fast", FAST)):
                runs = [measured(argv, stdin, tmp, cli) for _ in range(args.runs)]
                secs = [r[3] for r in runs]
                mb = max(r[4] for r in runs)
                ok = max(secs) < 2.0 and mb < 300
                missed += not ok
                print(f"{case:<24} {name:<6} {statistics.median(secs):9.3f} {max(secs):8.3f} {mb:8d}  "
                      f"{'ok' if ok else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
