"""One deploy (or down) of a project at a time, per engine.

The lock is a container that is created and never started: ``luma-deploy-lock-<project>``.
Creating a container with a given name is atomic on the engine, so two deploys of one
project serialize even from two machines that deploy to the same engine; the second one
says whose deploy it waits for and waits (up to a timeout), instead of colliding inside
Compose. The lock records who holds it (host, pid, start time); a lock whose holder was a
process on this machine that no longer exists is stale and taken over.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ..errors import LumaError
from ..records import ContainerSpec

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.protocols import Engine
    from .progress import Progress

from ..contract import LOCK_HOST_LABEL as HOST_LABEL
from ..contract import LOCK_LABEL, lock_name
from ..contract import LOCK_PID_LABEL as PID_LABEL
from ..contract import LOCK_SINCE_LABEL as SINCE_LABEL

__all__ = ["HOST_LABEL", "LOCK_LABEL", "PID_LABEL", "ProjectLock", "SINCE_LABEL", "lock_name"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ProjectLock:
    def __init__(self, engine: "Engine", project: str, image_from: str, timeout: float = 300,
                 progress: "Progress | None" = None, sleep: Callable[[float], None] = time.sleep):
        self.engine = engine
        self.project = project
        self.name = lock_name(project)
        self.image_from = image_from  # a container whose image the lock uses (the proxy's: it is local)
        self.timeout = timeout
        self.progress = progress
        self.sleep = sleep
        self.held = False

    def _spec(self) -> ContainerSpec:
        src = self.engine.container(self.image_from)
        image = src.image_ref if src is not None else "caddy:2"
        return ContainerSpec(
            name=self.name, image=image, command=("true",), restart="",
            labels={LOCK_LABEL: self.project, HOST_LABEL: socket.gethostname(), PID_LABEL: str(os.getpid()),
                    SINCE_LABEL: datetime.now(timezone.utc).isoformat(timespec="seconds")})

    def _holder(self) -> str:
        c = self.engine.container(self.name)
        if c is None:
            return ""
        lb = c.labels
        return f"{lb.get(HOST_LABEL, '?')} pid {lb.get(PID_LABEL, '?')} since {lb.get(SINCE_LABEL, '?')}"

    def _stale(self) -> bool:
        c = self.engine.container(self.name)
        if c is None:
            return False
        lb = c.labels
        try:
            pid = int(lb.get(PID_LABEL, ""))
        except ValueError:
            return False
        return lb.get(HOST_LABEL) == socket.gethostname() and pid != os.getpid() and not _pid_alive(pid)

    def acquire(self, note: list[str] | None = None) -> None:
        deadline = time.monotonic() + self.timeout
        said = False
        spec = self._spec()
        while True:
            try:
                self.engine.create(spec)
                self.held = True
                if note is not None and said:
                    note.append("(after waiting)")
                return
            except LumaError as e:
                # A name conflict: held. (The engine reserves the name before the container is
                # visible, so a lock being created right now conflicts but is not found yet.)
                conflict = "already in use" in e.message or "Conflict" in e.message
                if not conflict and self.engine.container(self.name) is None:
                    raise  # the engine refused for another reason
            if self._stale():
                self.engine.remove(self.name)
                continue
            if not said and self.progress is not None:
                self.progress.line(f"another deploy of {self.project} is running ({self._holder()}); waiting for it")
                said = True
            if time.monotonic() >= deadline:
                raise LumaError(f"another deploy of {self.project} is still running ({self._holder()}) "
                                f"after {self.timeout:.0f}s; nothing was changed",
                                "wait for it, or if no deploy or down of it is running anywhere: run the same command "
                                f"again with --force-unlock (it removes {self.name} and says whose it was)")
            self.sleep(0.5)

    def force(self, note: list[str] | None = None) -> str:
        """``--force-unlock``: remove the lock whoever holds it (a deploy that died on another machine);
        says whose it was. "" when there was none."""
        holder = self._holder()
        if holder:
            self.engine.remove(self.name)
            msg = f"removed the lock {self.name} held by {holder} (--force-unlock)"
            if self.progress is not None:
                self.progress.line(f"   {msg}")
            if note is not None:
                note.append("(forced)")
        return holder

    def release(self) -> None:
        if self.held:
            self.engine.remove(self.name)
            self.held = False
