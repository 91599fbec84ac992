"""deploy's progress: one line per finished step, with its duration (stderr)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .plan import format_step


class Progress:
    """One line per finished step, with its duration (stderr)."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stderr
        enc = (getattr(self.stream, "encoding", "") or "").lower()
        self.fancy = "utf" in enc

    def line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    @contextmanager
    def step(self, label: str) -> Iterator[list[str]]:
        """``with progress.step("x") as note:``; append to ``note`` to amend the label,
        append ``Progress.FAILED`` to mark the step failed without raising."""
        t0 = time.monotonic()
        note: list[str] = []
        try:
            yield note
        except BaseException:
            self.line(format_step(" ".join([label, *note]), time.monotonic() - t0, False, self.fancy))
            raise
        ok = self.FAILED not in note
        words = [w for w in note if w is not self.FAILED]
        self.line(format_step(" ".join([label, *words]), time.monotonic() - t0, ok, self.fancy))

    FAILED = "\0failed"
