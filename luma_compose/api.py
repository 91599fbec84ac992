"""The Python API: ``render``, ``check`` and ``render_text``. The CLI is a thin layer over these.

>>> from luma_compose import api
>>> result = api.render(["compose.yaml"])          # doctest: +SKIP
>>> result.ok, result.project, result.text[:40]    # doctest: +SKIP

A façade: the input is found as Compose finds it (:mod:`.compose.inputs`), several
``-f`` files are merged (:mod:`.compose.merge`, else ``docker compose config``) and read back by
Compose (:mod:`.engine.compose_cli`, no engine needed), and the text is rendered by
:mod:`.compose.pipeline`.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from .compose import inputs
from .compose.pipeline import Result, render_text
from .errors import Problem

__all__ = ["Result", "check", "render", "render_text"]


def render(files: Sequence[str] = (), project: str | None = None, project_directory: str | None = None,
           stdin: Any = None, environ: dict[str, str] | None = None) -> Result:
    """Render compose ``files`` (``"-"`` reads ``stdin``); see docs/render.md for what is written.

    Raises UsageError for bad arguments (unknown file, invalid -p name) and
    UnavailableError when several files need ``docker compose`` and it is absent.
    Problems with the input are returned in ``Result.problems`` (then ``text`` is None).
    """
    found = inputs.find_files(files, project_directory, environ)
    project_dir = inputs.project_dir_of(found, project_directory)
    if len(found) == 1:
        name, text = inputs.read_file(found[0], stdin)
        result = render_text(name, text, project, project_dir, environ)
    else:
        from .engine import compose_cli

        inputs.check_mergeable(found)

        def render_merged(name: str, text: str, interpolated: bool) -> Result:
            return render_text(name, text, project, project_dir, environ, interpolated=interpolated)

        result = compose_cli.MergedRender(found, project, project_dir, environ, render_merged).run()
    result.project_directory = os.path.abspath(project_dir)
    return result


def check(files: Sequence[str] = (), project: str | None = None, project_directory: str | None = None,
          stdin: Any = None, environ: dict[str, str] | None = None) -> list[Problem]:
    """Every problem of the input and of its rendered result ([] when clean)."""
    return render(files, project, project_directory, stdin, environ).problems
