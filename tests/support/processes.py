"""Background processes for e2e tests and benchmarks (``proxy run`` and the like), always stopped."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator, Sequence


@contextlib.contextmanager
def background(argv: Sequence[str], capture: bool = True) -> Iterator[subprocess.Popen]:
    """Run ``argv`` while the block runs; then SIGTERM it (and SIGKILL after 10 s), also on failure.

    ``capture``: keep stdout/stderr readable as text from the Popen; else discard them."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    p = subprocess.Popen(list(argv), stdout=out, stderr=out, text=True)
    try:
        yield p
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
