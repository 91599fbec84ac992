"""``logs --follow`` stopped by SIGTERM (a supervisor, ``timeout``, ``kill``) stops its reader's child
process too: on a swarm that is ``docker service logs -f`` through the manager, which otherwise kept
running, reparented, after luma-compose was gone. The reader here is the same shape as
``SwarmEngine.service_log_lines`` (a generator that owns a child and kills it in ``finally``), with
``sleep`` as the child; the command, its options and its signal handling are the real ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

PROGRAM = textwrap.dedent("""
    import subprocess, sys
    from luma_compose.cli import logs as cli_logs

    def reader(name, since_t, follow):
        def lines():
            p = subprocess.Popen(["sleep", "300"], stdout=subprocess.PIPE, text=True)
            try:  # told inside the try: a SIGTERM sent once the test reads it finds the cleanup armed
                sys.stderr.write(f"child {p.pid}\\n")
                sys.stderr.flush()
                yield from p.stdout
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        return lines(), False, "the edges"

    cli_logs._swarm_lines = reader
    cli_logs.logs.main(["--swarm", "--follow"], prog_name="luma-compose logs")
""")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is gone for this purpose
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_sigterm_stops_the_follow_and_its_child():
    p = subprocess.Popen([sys.executable, "-c", PROGRAM], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    child = 0
    try:
        assert p.stderr is not None
        line = p.stderr.readline()
        assert line.startswith("child "), line + p.stderr.read()
        child = int(line.split()[1])
        assert alive(child)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 60  # a generous bound: the child is killed before the exit
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child), "the reader's child outlived `logs --follow`"
    finally:
        if p.poll() is None:
            p.kill()
        if child and alive(child):
            os.kill(child, signal.SIGKILL)
