"""One render/check of a compose text in memory: parse, find routes, check, render, verify.

No files, no Docker: ``api`` reads the input (``inputs``) and hands the text here.
"""

from __future__ import annotations

from typing import Any

from .. import contract
from ..errors import Problem
from . import inputs, rules, schemas
from .render import RenderRefused, render as _render
from .source import DataBuilder, Source, locate, locate_key, own_get, parse, shared_nodes
from .xluma import MarkedService, find_routes


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
        self.routes: list[contract.RoutedService] = []

    @property
    def ok(self) -> bool:
        return not self.problems


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
    result.project, origin = inputs.resolve(project, raw_name if isinstance(raw_name, str) else None,
                                            project_dir, environ)
    routes, route_problems = find_routes(src, data)
    result.routes = [r.spec() for r in routes]
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


def _edits_shared_nodes(src: Source, routes: list[MarkedService]) -> bool:
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


def _verify_shared(src: Source, out: str, expected: dict, routes: list[MarkedService]) -> list[Problem]:
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
