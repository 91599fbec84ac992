"""Hostile inputs (alias bombs, deep nesting, garbage bytes) and a runner that measures the CLI on them.

Shared by tests/unit/test_hostile.py (clear errors, bounded memory) and bench/hostile_input.py (time)."""

from __future__ import annotations

import subprocess
import sys

LUMA = [sys.executable, "-m", "luma_compose.cli"]  # the click CLI
FAST = [sys.executable, "-c", "from luma_compose.cli.fast import main; main()"]  # the plain render/check path


def bomb(levels: int = 10, fan: int = 9) -> str:
    lines = ["x-a0: &a0 [" + ", ".join(["lol"] * fan) + "]"]
    for i in range(1, levels):
        lines.append(f"x-a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]")
    lines += ["services:", "  web:", "    image: x", "    x-luma: {hosts: a.example.com, port: 80}",
              f"    x-bomb: *a{levels - 1}"]
    return "\n".join(lines) + "\n"


def measured(args, stdin: bytes, cwd, cli=LUMA):
    """Run in a child that reports its own peak memory (ru_maxrss of the CLI process)."""
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "p = subprocess.run(sys.argv[1:], input=sys.stdin.buffer.read(), capture_output=True); "
            "d = time.perf_counter() - t; "
            "m = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024; "
            "sys.stdout.write(f'{p.returncode} {d:.3f} {m}\\n'); "
            "sys.stdout.write(p.stdout.decode(errors='replace') + '\\0' + p.stderr.decode(errors='replace'))")
    p = subprocess.run([sys.executable, "-c", code, *cli, *args], input=stdin, capture_output=True, timeout=30,
                       cwd=cwd)
    head, _, rest = p.stdout.decode().partition("\n")
    rc, secs, mb = head.split()
    out, _, err = rest.partition("\0")
    return int(rc), out, err, float(secs), int(mb)


CASES = {
    "alias bomb": (["check", "-f", "-"], bomb().encode(), "alias bomb"),
    "alias bomb render": (["render", "-f", "-", "-p", "x"], bomb().encode(), "alias bomb"),
    "10,000 nested levels": (["render", "-f", "-", "-p", "x"],
                             ("services:\n  web:\n    image: x\n    x-deep: " + "[" * 10000 + "]" * 10000 + "\n").encode(),
                             "nests"),
    "600 nested levels": (["check", "-f", "-"],
                          ("services:\n  web:\n    image: x\n    x-deep: " + "[" * 600 + "]" * 600 + "\n").encode(),
                          "nests"),
    "garbage on stdin": (["render", "-f", "-"], bytes(range(256)) * 8, "not UTF-8"),
}
