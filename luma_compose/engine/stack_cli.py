"""The read-back of a stack file: ``docker stack config`` (argv as data; files only, no engine or swarm).

``render --swarm`` writes a stack file only when ``docker stack config`` reads it as what was meant:
its model of render's output (without ``name``) plus exactly the swarm additions
(:func:`..compose.stack.intended`). Both texts are read by the same CLI in the same environment, so
what the CLI makes of the user's own text (interpolation, normalized forms) is on both sides.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..compose import stack
from ..compose.readback import first_difference
from ..errors import Problem

#: What a docker CLI without ``stack config`` (before 20.10) says.
_NO_STACK_CONFIG = ("unknown command", "is not a docker command", "unknown flag")
READBACK_RULE = "swarm-readback"


@dataclass(frozen=True)
class StackConfig:
    """One ``docker stack config -c -`` of ``stdin``."""

    stdin: str
    argv: tuple[str, ...] = ("docker", "stack", "config", "-c", "-")


@dataclass(frozen=True)
class Read:
    """A model (None when the CLI refused the text: ``error`` says why); ``missing``: no such CLI/command."""

    model: dict[str, Any] | None
    error: str = ""
    missing: bool = False


def read(cmd: StackConfig, timeout: float = 120) -> Read:
    from ruamel.yaml import YAML

    try:
        p = subprocess.run(list(cmd.argv), input=cmd.stdin, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return Read(None, "the docker CLI is not installed", missing=True)
    except subprocess.TimeoutExpired:
        return Read(None, f"`{' '.join(cmd.argv)}` did not finish within {timeout:.0f}s", missing=True)
    err = (p.stderr or "").strip()
    if p.returncode != 0:
        return Read(None, err or p.stdout.strip(), missing=any(s in err for s in _NO_STACK_CONFIG))
    model = YAML(typ="safe").load(p.stdout) or {}
    if isinstance(model, dict):
        model.pop("version", None)
    return Read(model if isinstance(model, dict) else {})


def read_back(out: stack.StackRender, name: str, project: str, routes: list) -> stack.StackRender:
    """``out`` with its text withdrawn (and a problem) when ``docker stack config`` reads it otherwise than
    meant; with a warning when it cannot be read back here (no such CLI, or the CLI refuses the input)."""
    if out.text is None or out.single_host is None:
        return out
    with ThreadPoolExecutor(2) as pool:
        got_in, got_out = pool.map(read, [StackConfig(stack.without_name(name, out.single_host)), StackConfig(out.text)])
    if got_in.missing or got_in.model is None:
        why = "this docker CLI has no `docker stack config`" if got_in.missing else \
            f"docker stack config refuses the input: {got_in.error}"
        out.warnings.append(Problem(name, 0, 0, f"the stack file was not read back ({why})",
                                    "docker CLI 20.10 or later reads it back before writing", READBACK_RULE))
        return out
    if got_out.model is None:
        diff = f"it refuses the file: {got_out.error}"
    else:
        diff = first_difference(stack.intended(got_in.model, project, routes), got_out.model,
                                names=("what was meant", "the stack file"))
    if diff:
        out.problems.append(Problem(name, 0, 0, f"render --swarm: docker stack config reads the stack file "
                                    f"otherwise than meant, so nothing was written: {diff}",
                                    "a bug of luma-compose: please report it with the input file", READBACK_RULE))
        out.text = None
    return out
