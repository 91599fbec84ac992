"""The one place that runs systemd's tools: write a unit file and enable it (``proxy install``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def have_systemctl() -> bool:
    return shutil.which("systemctl") is not None


def write_unit(path: Path, text: str) -> None:
    """Write the unit whole (a temporary file renamed over it): systemd never reads half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def enable_now(unit: str) -> str | None:
    """systemctl daemon-reload, then enable --now the unit. None when done, else what failed and why."""
    for cmd in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", unit]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            return f"{' '.join(cmd)} failed: {(r.stderr or r.stdout).strip()}"
    return None
