"""``proxy run``: sync now, then on every relevant Docker event, until stopped.

Events are read on a thread of their own (reconnecting with backoff when the engine goes
away); the main loop debounces them and runs one sync at a time, and a full sync every
``resync_every`` seconds of quiet catches anything an event stream could have missed.
A pass costs a few list calls whatever the number of projects: the controller's engine keeps
its inspects and repeats one only for a container whose network endpoints changed (a new,
restarted or reconnected container), so what an event changed is all that is re-read.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from .. import contract
from ..errors import LumaError, short_error
from .controller import Controller, SyncResult, log

#: Container events that can change the route table.
RELEVANT_ACTIONS = ("start", "die", "destroy", "pause", "unpause", "rename", "health_status")


class Backoff:
    """Waits that double from 0.25 s up to 5 s while something keeps failing; reset on success."""

    def __init__(self, first: float = 0.25, most: float = 5.0):
        self.first, self.most, self.next = first, most, first

    def reset(self) -> None:
        self.next = self.first

    def wait(self, stop: threading.Event) -> None:
        stop.wait(self.next)
        self.next = min(self.next * 2, self.most)


def _next_event(events: "queue.Queue[str]", stop: threading.Event, timeout: float) -> str | None:
    """The next event, or None after ``timeout``; returns early when ``stop`` is set (SIGTERM)."""
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        try:
            return events.get(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            if time.monotonic() >= deadline:
                return None
    return None


def run(ctl: Controller, stop: threading.Event | None = None, debounce: float = 0.05, max_delay: float = 0.25,
        resync_every: float = 30.0, on_sync: Callable[[SyncResult], None] | None = None) -> None:
    """Sync now, then on every relevant event, until ``stop`` is set."""
    stop = stop or threading.Event()
    events: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_read_events, args=(ctl, events, stop), daemon=True)
    reader.start()
    backoff = Backoff()
    pending = True
    while not stop.is_set():
        if pending:
            try:
                res = ctl.sync()
                backoff.reset()
                if on_sync:
                    on_sync(res)
            except Exception as e:  # LumaError, or the daemon went away mid-sync
                why = e.message if isinstance(e, LumaError) else f"sync failed: {short_error(e)}"
                log(f"proxy run: {why} (retrying in {backoff.next:.2f}s)")
                ctl.forget()
                backoff.wait(stop)
                continue
            pending = False
        ev = _next_event(events, stop, resync_every)
        if ev is None:  # quiet for resync_every (or stopping): a full sync
            pending = True
            continue
        # Debounce: wait for a short quiet period, never longer than max_delay.
        first = time.monotonic()
        kinds = {ev}
        while time.monotonic() - first < max_delay:
            try:
                kinds.add(events.get(timeout=debounce))
            except queue.Empty:
                break
        if "proxy" in kinds or "reconnected" in kinds:
            ctl.forget()
        pending = True


def classify(ctl: Controller, ev: dict) -> str | None:
    """"proxy", "managed" or None (irrelevant) for one Docker event."""
    action = (ev.get("Action") or ev.get("status") or "").split(":")[0]
    attrs = (ev.get("Actor") or {}).get("Attributes") or {}
    if ev.get("Type") == "network":
        # A container attached to an ingress network (by hand): it may answer to a routed
        # container's name there (DNS shadowing), which sync detects.
        if action not in ("connect", "disconnect") or not (attrs.get("name") or "").endswith("_" + contract.NETWORK_KEY):
            return None
        # The proxy's own attach or detach: the sync that made it has accounted for it already.
        return None if ctl.proxy_id and attrs.get("container") == ctl.proxy_id else "managed"
    if action not in RELEVANT_ACTIONS:
        return None
    if attrs.get("name") == ctl.proxy.name:
        return "proxy"
    # --select as of the last sync (this thread makes no API calls of its own)
    if attrs.get(contract.LABEL_MANAGED) == "true" and ctl.settings.selects(attrs):
        return "managed"
    return None


def _read_events(ctl: Controller, out: "queue.Queue[str]", stop: threading.Event) -> None:
    """Push "managed", "proxy" or "reconnected" for each relevant event; reconnect forever."""
    backoff = Backoff()
    while not stop.is_set():
        try:
            # Replay the last second too: nothing between a sync and the subscription is lost.
            for ev in ctl.engine.events(stop, since=int(time.time()) - 1):
                backoff.reset()
                kind = classify(ctl, ev)
                if kind:
                    out.put(kind)
            if stop.is_set():
                return
            log("proxy run: the Docker event stream ended; reconnecting")
        except Exception as e:  # daemon restarting, socket closed, ...
            if stop.is_set():
                return
            log(f"proxy run: lost the Docker event stream ({short_error(e)}); reconnecting in {backoff.next:.2f}s")
        backoff.wait(stop)
        # Whatever happened while we were away is picked up by a full sync.
        out.put("reconnected")
