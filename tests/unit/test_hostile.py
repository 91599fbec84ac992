"""Hostile input is bounded (issue 9, item 10): a clear error (exit 1 or 2) within 2 s and under 300 MB,
never a hang, a traceback or an internal error."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

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
    p = subprocess.run([sys.executable, "-c", code, *cli, *args], input=stdin, capture_output=True, timeout=60,
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


@pytest.mark.parametrize("cli", ["click", "fast"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_input_is_a_clear_error_within_bounds(tmp_path, case, cli):
    args, stdin, words = CASES[case]
    rc, out, err, secs, mb = measured(args, stdin, tmp_path, LUMA if cli == "click" else FAST)
    assert rc in (1, 2), (rc, err)
    assert words in err or words in out, err
    assert "Traceback" not in err and "internal error" not in err
    assert secs < 2.0 or os.getloadavg()[0] > 4, f"took {secs:.2f} s"  # a loaded shared machine: memory still holds
    assert mb < 300, f"peak {mb} MB"
    if args[0] == "render":
        assert out == "", "nothing on stdout when render fails"


@pytest.mark.parametrize("cli", ["click", "fast"])
def test_a_closed_output_pipe_is_a_clear_error(tmp_path, cli):
    big = "services:\n" + "".join(f"  s{i}:\n    image: x\n" for i in range(5000))
    (tmp_path / "compose.yaml").write_text(big)
    argv = LUMA if cli == "click" else [FAST[0], "-c", f"'{FAST[2]}'"]
    r = subprocess.run(" ".join(argv) + " render -p x | true; echo \"rc=${PIPESTATUS[0]}\"", shell=True,
                       executable="/bin/bash", cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "rc=1" in r.stdout, r.stdout + r.stderr
    assert "output pipe was closed" in r.stderr and "internal error" not in r.stderr
