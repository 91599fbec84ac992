"""Where a ``proxy run`` convergence goes: ``proxy run``'s loop in this process, every engine call,
config load, sync and Docker event timestamped (bench/scale.py --profile)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from luma_compose.engine.docker_engine import DockerEngine
from luma_compose.proxy import watcher
from luma_compose.proxy.container import ProxyContainer
from luma_compose.proxy.controller import Controller

#: DockerEngine methods that talk to the engine on a sync's path.
CALLS = ("containers", "container", "networks", "network", "connect", "disconnect", "exec", "put_file",
         "remove_network")


class Recorder:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.rows: list[tuple[float, float, str]] = []  # (start, seconds, what)
        self.lock = threading.Lock()

    def mark(self, start: float, what: str, secs: float = 0.0) -> None:
        with self.lock:
            self.rows.append((start, secs, what))

    def wrap(self, fn: Callable[..., Any], what: str) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*a: Any, **kw: Any) -> Any:
            t = time.monotonic()
            try:
                return fn(*a, **kw)
            finally:
                self.mark(t, what, time.monotonic() - t)
        return timed

    def since(self, t: float) -> list[tuple[float, float, str]]:
        with self.lock:
            return sorted(r for r in self.rows if r[0] + r[1] >= t)


class ProfiledRun:
    """``proxy run`` for ``name`` on a thread of this process, instrumented."""

    def __init__(self, name: str) -> None:
        self.rec = Recorder()
        eng = DockerEngine()
        for call in CALLS:
            setattr(eng, call, self.rec.wrap(getattr(eng, call), call))
        events = eng.events

        def timed_events(stop: threading.Event, since: int) -> Iterator[dict[str, Any]]:
            for ev in events(stop, since):
                attrs = (ev.get("Actor") or {}).get("Attributes") or {}
                self.rec.mark(time.monotonic(), f"event {ev.get('Type')} {ev.get('Action')} {attrs.get('name', '')}")
                yield ev
        eng.events = timed_events  # type: ignore[method-assign]
        self.ctl = Controller(eng, name)
        self.ctl.sync = self.rec.wrap(self.ctl.sync, "SYNC")  # type: ignore[method-assign]
        self.ctl.proxy.load = self.rec.wrap(self.ctl.proxy.load, "LOAD")  # type: ignore[method-assign]
        self.ctl.proxy.stage = self.rec.wrap(self.ctl.proxy.stage, "STAGE (the copy)")  # type: ignore[method-assign]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=watcher.run, args=(self.ctl, self.stop), daemon=True)

    def __enter__(self) -> "ProfiledRun":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(10)

    def report(self, up_started: float, up_returned: float, served: float) -> str:
        """Every record from ``compose up`` on, times relative to up's return."""
        lines = [f"  compose up -d took {up_returned - up_started:.2f} s; first 200 at "
                 f"{(served - up_returned) * 1000:+.0f} ms after it returned"]
        for start, secs, what in self.rec.since(up_started):
            if start > served + 0.5:
                break
            dur = f"{secs * 1000:7.0f} ms" if secs else " " * 10
            lines.append(f"  {(start - up_returned) * 1000:+8.0f} ms {dur}  {what}")
        return "\n".join(lines)
