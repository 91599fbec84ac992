"""``git`` in the project directory: where a release comes from (deploy/releases.py). Read only."""

from __future__ import annotations

import os
import subprocess


def git(directory: str, *args: str) -> str:
    """``git -C directory ARGS``'s output, "" when it fails (no git, not a repository, no remote)."""
    if not os.path.isdir(directory):
        return ""
    try:
        p = subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return p.stdout.strip() if p.returncode == 0 else ""
