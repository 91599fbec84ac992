"""The Python API: ``render`` and ``check``. The CLI is a thin layer over these.

>>> from luma_compose import api
>>> result = api.render(["compose.yaml"])          # doctest: +SKIP
>>> result.ok, result.project, result.text[:40]    # doctest: +SKIP

Nothing here talks to Docker, except merging several ``-f`` files, which is
delegated to ``docker compose config`` so Compose's own merge rules apply.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Sequence

from . import naming, rules, schemas
from .errors import Problem, UnavailableError, UsageError
from .render import RenderRefused, render as _render
from .routing import Route, find_routes
from .yamlsrc import DataBuilder, Source, locate, locate_key, own_get, parse, shared_nodes

#: Compose's default file names, in its lookup order.
DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")


class Result:
    """What render/check found: the rendered text (when there are no problems) and every problem.

    ``source``: the input's name; ``project``: the resolved project name; ``text``: the rendered
    file (None when there are problems); ``input_text``: what was read; ``problems``: every problem;
    ``routes``: the routed services found; ``project_directory``: where relative paths and ``.env``
    are read from (absolute).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.project_directory = ""
        self.project: str | None = None
        self.text: str | None = None
        self.input_text = ""
        self.problems: list[Problem] = []
        self.routes: list[Route] = []

    @property
    def ok(self) -> bool:
        return not self.problems


def render(files: Sequence[str] = (), project: str | None = None, project_directory: str | None = None,
           stdin: Any = None, environ: dict[str, str] | None = None) -> Result:
    """Render compose ``files`` (``"-"`` reads ``stdin``); see the README for what is written.

    Raises UsageError for bad arguments (unknown file, invalid -p name) and
    UnavailableError when several files need ``docker compose`` and it is absent.
    Problems with the input are returned in ``Result.problems`` (then ``text`` is None).
    """
    name, text, project_dir = _read_input(list(files), project, project_directory, stdin)
    result = render_text(name, text, project, project_dir, environ)
    result.project_directory = os.path.abspath(project_dir)
    return result


def check(files: Sequence[str] = (), project: str | None = None, project_directory: str | None = None,
          stdin: Any = None, environ: dict[str, str] | None = None) -> list[Problem]:
    """Every problem of the input and of its rendered result ([] when clean)."""
    return render(files, project, project_directory, stdin, environ).problems


def render_text(name: str, text: str, project: str | None = None, project_dir: str = ".",
                environ: dict[str, str] | None = None) -> Result:
    """Render compose text already in memory (``name`` is used in messages)."""
    result = Result(name)
    result.input_text = text
    src, problems = parse(name, text)
    if problems:
        result.problems = problems
        return result
    builder = DataBuilder(src)
    data = builder.build(src.root)
    problems = builder.problems
    if not isinstance(data, dict) or not data.get("services"):
        result.problems = problems + rules.check(src, data, "", [])
        return result
    raw_name = data.get("name")
    result.project, origin = naming.resolve(project, raw_name if isinstance(raw_name, str) else None,
                                            project_dir, environ)
    routes, route_problems = find_routes(src, data)
    result.routes = routes
    problems += route_problems
    problems += rules.check(src, data, result.project, routes)
    if problems:
        result.problems = problems
        return result
    try:
        out, expected = _render(src, data, result.project, routes, keep_name=origin == "file"
                                and isinstance(raw_name, str))
    except RenderRefused as e:
        result.problems = [e.problem]
        return result
    problems += _compose_spec(src, expected)
    if not problems and routes and "&" in text and _edits_shared_nodes(src, routes):
        problems += _verify_shared(src, out, expected, routes)
    result.problems = problems
    if not problems:
        result.text = out
    return result


def _compose_spec(src: Source, expected: dict) -> list[Problem]:
    """The rendered data against the official compose-spec schema, located in the input."""
    out = []
    for e in schemas.errors("compose", expected):
        value = _get(expected, e.path)
        if isinstance(value, str) and "$" in value:
            continue  # interpolated by Compose at deploy time; it checks the result then
        node = locate_key(src, e.path) if e.key_error else locate(src, e.path)
        where = "/".join(map(str, e.path)) or "top level"
        out.append(src.problem(node, f"compose-spec: {where}: {e.message}", e.hint, "compose-spec"))
    return out


def _get(data: Any, path: tuple) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _edits_shared_nodes(src: Source, routes: list[Route]) -> bool:
    """Does render edit a node that also appears elsewhere through an alias?"""
    shared = shared_nodes(src.root)
    if not shared:
        return False
    touched = [src.root, own_get(src.root, "networks")[1]]
    for r in routes:
        touched += [r.node, own_get(r.node, "labels")[1]]
        _, nets = own_get(r.node, "networks")
        touched += [nets, own_get(nets, "luma")[1]]
    return any(id(n) in shared for n in touched if n is not None)


def _verify_shared(src: Source, out: str, expected: dict, routes: list[Route]) -> list[Problem]:
    """With anchors in play, read the output back: no other service may have changed."""
    out_src, errs = parse(src.name, out)
    got = DataBuilder(out_src).build(out_src.root) if not errs else None
    if got == expected:
        return []
    routed = {r.service for r in routes}
    problems = []
    services = (got or {}).get("services") or {}
    names = ", ".join(f"'{r}'" for r in sorted(routed))
    for name, body in expected["services"].items():
        if services.get(name) == body:
            continue
        what = "routed service" if name in routed else "service"
        problems.append(src.problem(
            locate_key(src, ("services", name)),
            f"{what} '{name}' shares YAML content (an anchor, alias or `<<` merge) with routed service(s) "
            f"{names}: routing them would also change '{name}'",
            "put what the services share in an `x-` block with its own anchor (`x-app: &app ...`), merge it into "
            "each with `<<: *app`, and write x-luma, labels and networks in the routed service itself", "anchors"))
    if not problems:
        problems.append(src.problem(src.root, "rendering would change more than the routed services",
                                    "please report this file as a bug", "anchors"))
    return problems


# -------------------------------------------------------------------- input

def _read_input(files: list[str], project: str | None, project_directory: str | None,
                stdin: Any) -> tuple[str, str, str]:
    if not files:
        env_files = os.environ.get("COMPOSE_FILE")
        if env_files:
            files = env_files.split(os.environ.get("COMPOSE_PATH_SEPARATOR", os.pathsep))
        else:
            base = project_directory or "."
            found = next((f for f in DEFAULT_FILES if os.path.exists(os.path.join(base, f))), None)
            if found is None:
                raise UsageError(f"no compose file found in {os.path.abspath(base)} "
                                 f"(looked for {', '.join(DEFAULT_FILES)})", "name one with -f FILE, or -f - for stdin")
            files = [os.path.join(base, found)] if project_directory else [found]
    if len(files) == 1:
        f = files[0]
        if f == "-":
            stream = stdin if stdin is not None else sys.stdin
            return "<stdin>", stream.read(), project_directory or "."
        try:
            with open(f, encoding="utf-8", newline="") as fh:
                text = fh.read()
        except FileNotFoundError:
            raise UsageError(f"{f}: no such file", "check the path given with -f") from None
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"{f}: cannot read it: {e}", "give a readable UTF-8 compose file") from None
        return f, text, project_directory or os.path.dirname(os.path.abspath(f))
    if "-" in files:
        raise UsageError("-f - (stdin) cannot be combined with other -f files", "merge the files first, or pass files")
    return _merge(files, project, project_directory)


def _merge(files: list[str], project: str | None, project_directory: str | None) -> tuple[str, str, str]:
    """Several files: Compose merges them with its own rules (`docker compose config`)."""
    for f in files:
        if not os.path.exists(f):
            raise UsageError(f"{f}: no such file", "check the paths given with -f")
    cmd = ["docker", "compose"]
    for f in files:
        cmd += ["-f", f]
    if project:
        cmd += ["-p", project]
    if project_directory:
        cmd += ["--project-directory", project_directory]
    cmd += ["config", "--no-interpolate", "--no-path-resolution", "--no-normalize"]
    import subprocess

    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise UnavailableError("merging several -f files needs `docker compose`, and `docker` is not installed",
                               "install Docker Compose v2, or pass a single file") from None
    except subprocess.TimeoutExpired:
        raise UnavailableError("`docker compose config` did not answer within 120 s", "") from None
    if proc.returncode != 0:
        err = proc.stderr.strip()
        if "is not a docker command" in err or "unknown command" in err or "unknown shorthand flag" in err:
            raise UnavailableError("merging several -f files needs Docker Compose v2 (`docker compose`)",
                                   "install the compose plugin, or pass a single file")
        raise UsageError(f"docker compose could not merge {', '.join(files)}: {err}", "fix the files as it says")
    name = "<merged: " + ", ".join(files) + ">"
    return name, proc.stdout, project_directory or os.path.dirname(os.path.abspath(files[0]))
