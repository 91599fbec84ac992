"""One render/check of a compose text in memory: parse, find routes, check, render, verify.

No files, no Docker: ``api`` reads the input (``inputs``) and hands the text here.
"""

from __future__ import annotations

import os
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
        #: what works now but fails later (they do not make ``ok`` false)
        self.warnings: list[Problem] = []
        self.routes: list[contract.RoutedService] = []

    @property
    def ok(self) -> bool:
        return not self.problems


def render_text(name: str, text: str, project: str | None = None, project_dir: str = ".",
                environ: dict[str, str] | None = None, interpolated: bool = False) -> Result:
    """Render compose text already in memory (``name`` is used in messages).

    ``interpolated``: the text is a merge Compose interpolated (its `${VAR}` already replaced, so a number
    from a variable, as in `port: ${PORT:-8080}`, is written as a quoted string)."""
    result = Result(name)
    result.input_text = text
    src, problems = parse(name, text)
    if problems:
        result.problems = problems
        return result
    builder = DataBuilder(src)
    data = builder.build(src.root)
    problems = builder.problems
    if builder.exhausted:
        result.problems = problems
        return result
    if not isinstance(data, dict) or not data.get("services"):
        result.problems = problems + rules.check(src, data, "", [])
        return result
    raw_name = data.get("name")
    result.project, origin = inputs.resolve(project, raw_name if isinstance(raw_name, str) else None,
                                            project_dir, environ)
    warnings: list[Problem] = []
    routes, route_problems = find_routes(src, data, inputs.dotenv(project_dir, os.environ if environ is None
                                                                  else environ), warnings, interpolated,
                                         project_dir=project_dir)
    result.routes = [r.spec() for r in routes]
    problems += route_problems
    problems += rules.check(src, data, result.project, routes)
    problems += _included_routes(data, project_dir, environ)
    ext_problems, extends_networks = _extends(src, data, routes, project_dir)
    problems += ext_problems
    result.warnings = warnings + rules.warnings(src, data, result.project, routes)
    if problems:
        result.problems = problems
        return result
    try:
        out, expected = _render(src, data, result.project, routes, keep_name=raw_name == result.project,
                                extends_networks=extends_networks)
    except RenderRefused as e:
        result.problems = [e.problem]
        return result
    problems += _compose_spec(src, expected)
    if not problems:
        problems += verify(src, out, expected, routes)
    result.problems = problems
    if not problems:
        result.text = out
    return result


def _included_routes(data: dict, project_dir: str, environ: dict[str, str] | None) -> list[Problem]:
    """`x-luma` in a file pulled in with `include:` would never be routed: render edits this file only."""
    out = []
    for path in inputs.included_files(data.get("include"), project_dir):
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError):
            continue  # Compose reports a missing include itself
        if contract.EXTENSION_KEY not in text:
            continue
        inc, errs = parse(path, text)
        if errs:
            continue
        data_inc = DataBuilder(inc).build(inc.root)
        services = data_inc.get("services") if isinstance(data_inc, dict) else None
        for name, svc in (services or {}).items() if isinstance(services, dict) else ():
            if isinstance(svc, dict) and contract.EXTENSION_KEY in svc:
                out.append(inc.problem(locate_key(inc, ("services", name, contract.EXTENSION_KEY)),
                                       f"service '{name}' has x-luma in a file pulled in with `include:`: render "
                                       "edits only the main file, so this service would never be routed",
                                       "move the service into the main file, or render the included file as its "
                                       "own project", "include"))
    return out


def _extends_target(svc: Any) -> tuple[str | None, str | None]:
    """(service, file or None) a service ``extends``."""
    ext = svc.get("extends") if isinstance(svc, dict) else None
    if isinstance(ext, str):
        return ext, None
    if isinstance(ext, dict) and isinstance(ext.get("service"), str):
        file = ext.get("file")
        return ext["service"], file if isinstance(file, str) else None
    return None, None


def _extends(src: Source, data: dict, routes: list[MarkedService], project_dir: str) -> tuple[list[Problem], frozenset]:
    """Routing must not leak through `extends`: a service extending a routed one would take its labels and
    alias (refused, as with anchors). And the routed services that take `networks` through `extends`
    (they must not gain `default`)."""
    services = data.get("services")
    if not isinstance(services, dict):
        return [], frozenset()
    routed = {r.service for r in routes}
    problems = []
    for name, svc in services.items():
        base, file = _extends_target(svc)
        if base in routed and file is None and name not in routed:
            problems.append(src.problem(
                locate_key(src, ("services", name, "extends")),
                f"service '{name}' extends routed service '{base}': Compose would give it '{base}''s routing "
                f"labels and ingress alias, so the proxy would route '{name}' as '{base}'",
                f"move what both share into a service without x-luma (or an `x-` block with an anchor), and "
                f"extend that from '{name}' and '{base}'", "extends"))
        elif base in routed and file is None:
            problems.append(src.problem(
                locate_key(src, ("services", name, "extends")),
                f"routed service '{name}' extends routed service '{base}': it would take '{base}''s routing labels",
                "extend a service without x-luma instead", "extends"))
    with_networks = set()
    for r in routes:
        found = _networks_through_extends(services, r.service, project_dir, 0)
        if found is None:
            problems.append(src.problem(
                locate_key(src, ("services", r.service, "extends")),
                f"routed service '{r.service}' extends a service render cannot read, so it cannot tell which "
                "networks it inherits", "make the extended file readable from the project directory", "extends"))
        elif found:
            with_networks.add(r.service)
    return problems, frozenset(with_networks)


def _networks_through_extends(services: dict, name: str, project_dir: str, depth: int) -> bool | None:
    """Does ``name`` take `networks` (or `network_mode`) through `extends`? None when the base is unreadable."""
    svc = services.get(name)
    base, file = _extends_target(svc)
    if base is None or depth > 20:
        return False
    if file is not None:
        path = file if os.path.isabs(file) else os.path.join(project_dir, file)
        try:
            with open(path, encoding="utf-8") as fh:
                other, errs = parse(path, fh.read())
        except (OSError, UnicodeDecodeError):
            return None
        if errs:
            return None
        other_data = DataBuilder(other).build(other.root)
        services = (other_data or {}).get("services") if isinstance(other_data, dict) else None
        if not isinstance(services, dict):
            return None
        project_dir = os.path.dirname(path)
    base_svc = services.get(base)
    if not isinstance(base_svc, dict):
        return None if file is not None else False
    if base_svc.get("networks") is not None or "network_mode" in base_svc:
        return True
    return _networks_through_extends(services, base, project_dir, depth + 1)


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


def same(a: Any, b: Any) -> bool:
    """Plain-data equality where NaN equals NaN (a `.nan` in the file reads back as NaN)."""
    if a == b:
        return True
    if isinstance(a, float) and isinstance(b, float):
        return a != a and b != b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return False


def verify(src: Source, out: str, expected: dict, routes: list[MarkedService]) -> list[Problem]:
    """Read the output back: it must be exactly the intended data (the input plus the contract's additions).

    Every render does this, so a rewrite that reads differently (a key spliced at the wrong depth, an
    edit that changed an anchored node other services share) is never written.
    """
    out_src, errs = parse(src.name, out)
    builder = DataBuilder(out_src) if not errs else None
    got = builder.build(out_src.root) if builder is not None else None
    if builder is not None and not builder.problems and same(got, expected):
        return []
    if routes and _edits_shared_nodes(src, routes):
        problems = _shared_problems(src, got, expected, routes)
        if problems:
            return problems
    services = (got or {}).get("services") if isinstance(got, dict) else None
    differ = [n for n in expected.get("services", {}) if not isinstance(services, dict)
              or not same(services.get(n), expected["services"][n])]
    what = (f"service(s) {', '.join(repr(n) for n in differ[:5])} would read differently" if differ and got
            else "the output would not read back as YAML" if errs else "the output would read differently")
    return [src.problem(src.root, f"internal error: render's output does not read back as intended ({what}); "
                        "nothing was written", "this is a bug in luma-compose: please report it with this file",
                        "internal")]


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


def _shared_problems(src: Source, got: Any, expected: dict, routes: list[MarkedService]) -> list[Problem]:
    """With anchors in play: which services the edits of shared nodes changed."""
    routed = {r.service for r in routes}
    problems = []
    services = got.get("services") if isinstance(got, dict) else None
    names = ", ".join(f"'{r}'" for r in sorted(routed))
    if not isinstance(services, dict):
        return []
    for name, body in expected["services"].items():
        if same(services.get(name), body):
            continue
        what = "routed service" if name in routed else "service"
        problems.append(src.problem(
            locate_key(src, ("services", name)),
            f"{what} '{name}' shares YAML content (an anchor, alias or `<<` merge) with routed service(s) "
            f"{names}: routing them would also change '{name}'",
            "put what the services share in an `x-` block with its own anchor (`x-app: &app ...`), merge it into "
            "each with `<<: *app`, and write x-luma, labels and networks in the routed service itself", "anchors"))
    return problems
