"""luma-compose: route many Docker Compose projects behind one reverse proxy.

The Python API (see README, "Python API")::

    from luma_compose import render, check
    result = render(["compose.yaml"], project="gmail")
    if result.ok:
        print(result.text)
    for problem in check(["compose.yaml"]):
        print(problem.location(), problem.message, problem.hint)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["render", "check", "render_text", "Result", "Problem", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .api import Result, check, render, render_text
    from .errors import Problem


def __getattr__(name: str) -> Any:
    # imported on first use, so `import luma_compose` (and the CLI's other commands) stay light
    if name in ("render", "check", "render_text", "Result"):
        from . import api

        return getattr(api, name)
    if name == "Problem":
        from .errors import Problem

        return Problem
    raise AttributeError(name)
