"""Which services are routed, and how: read the ``x-luma`` blocks of a compose file.

Only an ``x-luma`` key written in a service's own mapping routes it. A service
that inherits one through a YAML merge key (``<<: *app``) is not routed.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, NamedTuple

from ruamel.yaml.nodes import MappingNode, Node

from .. import contract, validate
from ..errors import Problem
from .source import DataBuilder, Source, is_map, own_get, own_items


class MarkedService(NamedTuple):
    """A service with an ``x-luma`` block, with the YAML nodes render edits."""

    service: str
    node: MappingNode  # the service's mapping
    key_node: Node  # the service's key under `services`
    xluma: Node  # the x-luma value node
    hosts: list[str]  # interpolated (a placeholder when a variable is unknown)
    port: int | None  # interpolated
    health_path: str  # x-luma `health`
    #: the label texts: a `${VAR}` written in x-luma stays in the labels for Compose to interpolate at `up`
    label_hosts: tuple[str, ...] = ()
    label_port: str = ""
    label_health: str = ""
    paths: tuple[str, ...] = ()  # x-luma `paths` (prefixes)
    strip_prefix: bool = False
    redirect_from: tuple[str, ...] = ()  # lower case
    #: access control (compose/access.py): (user, bcrypt hash), admitted networks
    basic_auth: tuple[tuple[str, str], ...] = ()
    allow: tuple[str, ...] = ()
    rollout: str = "start-first"  # x-luma `rollout`
    hold: int = 0  # seconds the proxy holds requests in a stop-first roll (x-luma `hold`); 0: not stop-first
    health_interval: int = 0  # x-luma `health_interval`; 0: the proxy does not probe

    def spec(self) -> contract.RoutedService:
        """The plain description (no YAML nodes, variables interpolated): what deploy and the API see."""
        assert self.port is not None
        return contract.RoutedService(self.service, tuple(self.hosts), self.port, self.health_path,
                                      self.paths, self.strip_prefix, self.redirect_from, self.basic_auth, self.allow,
                                      self.rollout, self.hold, self.health_interval)

    def labels(self, project: str) -> dict[str, str]:
        return {**contract.route_labels(project, self.service, list(self.label_hosts or self.hosts),
                                        self.label_port or self.port, self.label_health or self.health_path,  # type: ignore[arg-type]
                                        self.paths, self.strip_prefix, self.redirect_from),
                **contract.access_labels(self.basic_auth, self.allow), **contract.hold_labels(self.hold),
                **contract.health_interval_labels(self.health_interval)}


def services_node(src: Source) -> MappingNode | None:
    _, v = own_get(src.root, "services")
    return v if is_map(v) else None


#: What an x-luma value with an unknown `${VAR}` is checked as (its real value is Compose's at `up`).
_PLACEHOLDER = {"hosts": "variable.invalid", "port": "80", "health": "/"}


def _interpolate_for_check(src: Source, xnode: Node, service: str, xdata: Any, variables: Mapping[str, str],
                           warnings: list[Problem]) -> Any:
    """``xdata`` with each `${VAR}` interpolated as Compose will (environment, then .env); a value whose
    variable is unknown is checked as a placeholder, with a warning saying so."""
    from .inputs import _VAR, interpolate

    if not isinstance(xdata, dict):
        return xdata
    out = dict(xdata)
    for key in ("hosts", "port", "health"):
        value = xdata.get(key)
        items = value if isinstance(value, list) else [value]
        if not any(isinstance(v, str) and "$" in v for v in items):
            continue
        new = []
        for v in items:
            if not (isinstance(v, str) and "$" in v):
                new.append(v)
                continue
            unknown = [m.group(2) or m.group(5) for m in _VAR.finditer(v) if not m.group(1)
                       and (m.group(2) or m.group(5)) not in variables and m.group(3) not in (":-", "-")]
            if unknown:
                warnings.append(src.problem(
                    xnode, f"service '{service}': x-luma.{key} '{v}' uses {', '.join(unknown)}, which is set "
                    "neither in the environment nor in .env: check cannot validate it here (Compose interpolates "
                    "it at `up`)", f"set {unknown[0]} in .env or in the environment to have it checked", "x-luma"))
                v2 = _PLACEHOLDER[key] if key != "hosts" else f"unset-{len(warnings)}.{_PLACEHOLDER[key]}"
            else:
                v2 = interpolate(v, variables, strict=False)
            if key == "port":
                v2 = int(v2) if v2.strip().isdigit() else v2
            new.append(v2)
        out[key] = new if isinstance(value, list) else new[0]
    return out


def find_routes(src: Source, data: dict, variables: Mapping[str, str] | None = None,
                warnings: list[Problem] | None = None,
                interpolated: bool = False, project_dir: str = ".") -> tuple[list[MarkedService], list[Problem]]:
    """The routed services, with their x-luma settings; problems with x-luma itself.

    ``variables``: what Compose interpolates with (the environment and .env), for `${VAR}` in x-luma;
    ``warnings`` gets a warning for each `${VAR}` that cannot be checked because it is unknown.
    ``interpolated``: Compose already interpolated the text (a merge), so `port: ${PORT:-8080}` reads
    as the string "8080": a port written as digits is taken as the number, as it is from one file.
    ``project_dir``: where a relative ``basic_auth`` file is read from.
    """
    from . import access, schemas

    routes: list[MarkedService] = []
    problems: list[Problem] = []
    variables = {} if variables is None else variables
    warnings = [] if warnings is None else warnings
    svcs = services_node(src)
    if svcs is None:
        return routes, problems
    for knode, snode in own_items(svcs):
        _, xnode = own_get(snode, contract.EXTENSION_KEY)
        if xnode is None:
            continue
        name = str(knode.value)
        builder = DataBuilder(src)
        written = builder.build(xnode)
        xdata = _interpolate_for_check(src, xnode, name, written, variables, warnings)
        if interpolated and isinstance(xdata, dict) and isinstance(xdata.get("port"), str) \
                and xdata["port"].isascii() and xdata["port"].isdigit():
            xdata = {**xdata, "port": int(xdata["port"])}
        errs = schemas.errors("xluma", xdata)
        if errs:
            for e in errs:
                problems.append(_xluma_problem(src, xnode, name, xdata, e))
            continue
        hosts = xdata["hosts"]
        hosts = [hosts] if isinstance(hosts, str) else list(hosts)
        port = xdata.get("port")
        expose_label = ""
        if port is None:
            port, expose_label, problem = _port_from_expose(src, knode, name, data, variables, warnings)
            if problem:
                problems.append(problem)
                continue
        health = xdata.get("health", contract.DEFAULT_HEALTH_PATH)
        # The last word is the proxy's own validator: what passes here is exactly what the proxy routes.
        strict = [validate.host_problem(h.lower()) for h in hosts] + [validate.health_path_problem(health)]
        if port is not None:
            strict.append(validate.port_problem(port))
        features = _features(xdata, hosts)
        hold, hold_problem = _hold(xdata, (data.get("services") or {}).get(name) or {})
        interval = int(xdata.get("health_interval", 0))
        strict += features_problems(features, hosts) + [
            hold_problem or (validate.hold_problem(str(hold)) if hold else None),
            validate.health_interval_problem(str(interval)) if interval else None]
        strict = [p for p in strict if p]
        if strict:
            problems += [src.problem(xnode, f"service '{name}': x-luma: {p}",
                                     "the proxy would ignore labels with this value; see the README, x-luma", "x-luma")
                         for p in strict]
            continue
        users, allow, access_problems = access.read(src, xnode, name, xdata, project_dir)
        if access_problems:
            problems += access_problems
            continue
        text_hosts = written["hosts"]
        text_hosts = [text_hosts] if isinstance(text_hosts, str) else list(text_hosts)
        label_hosts = tuple(h if "$" in h else h.lower() for h in text_hosts)
        text_port = written.get("port")
        routes.append(MarkedService(name, snode, knode, xnode, [h.lower() for h in hosts], port, health,
                                    label_hosts, str(text_port) if isinstance(text_port, str) else expose_label,
                                    str(written.get("health", health)), *features, users, allow,
                                    str(xdata.get("rollout", "start-first")), hold, interval))
    return routes, problems


def _hold(xdata: dict, service: dict) -> tuple[int, str | None]:
    """(seconds the proxy holds requests, problem): x-luma ``hold`` (default contract.DEFAULT_HOLD) for a
    stop-first service (x-luma ``rollout`` or Compose's ``deploy.update_config.order``); 0 for any other."""
    order = ((service.get("deploy") or {}).get("update_config") or {}).get("order") if isinstance(service, dict) else None
    stop_first = xdata.get("rollout") == "stop-first" or order == "stop-first"
    if not stop_first:
        return 0, ("hold applies only to a stop-first rollout (rollout: stop-first, or Compose's "
                   "deploy.update_config.order: stop-first)" if "hold" in xdata else None)
    return int(xdata.get("hold", contract.DEFAULT_HOLD)), None


def _features(xdata: dict, hosts: list[str]) -> tuple[tuple[str, ...], bool, tuple[str, ...]]:
    """(paths, strip_prefix, redirect_from) as x-luma gives them (schema-valid)."""
    def listed(key: str) -> tuple[str, ...]:
        value = xdata.get(key) or ()
        return (value,) if isinstance(value, str) else tuple(value)
    return listed("paths"), bool(xdata.get("strip_prefix", False)), tuple(h.lower() for h in listed("redirect_from"))


def features_problems(features: tuple[tuple[str, ...], bool, tuple[str, ...]], hosts: list[str]) -> list[str | None]:
    """The proxy's own rules for paths, strip_prefix and redirect_from (see luma_compose.validate)."""
    paths, strip, redirects = features
    out: list[str | None] = [validate.path_prefix_problem(p) for p in paths]
    out += [validate.host_problem(h) for h in redirects]
    if len({p.lower() for p in paths}) != len(paths):
        out.append("a path is listed twice in paths (paths compare case-insensitively, as the proxy matches them)")
    if strip and not paths:
        out.append("strip_prefix: true needs `paths` (the prefixes to strip)")
    if redirects and hosts[0].startswith("*"):
        out.append(f"redirect_from goes to the first of hosts, and '{hosts[0]}' is a wildcard: list a host name first")
    both = sorted(set(redirects) & {h.lower() for h in hosts})
    if both:
        out.append(f"'{both[0]}' is both in hosts and in redirect_from: a host is either served or redirected")
    return out


def _port_from_expose(src: Source, knode, name: str, data: dict, variables: Mapping[str, str],
                      warnings: list[Problem]) -> tuple[int | None, str, Problem | None]:
    """(port, label text, problem) from the service's one `expose` entry. A `${VAR}` there is taken as in
    `port: ${VAR}`: interpolated to check it (a placeholder, with a warning, when unknown), and kept in the
    labels for Compose to interpolate at `up`."""
    svc = (data.get("services") or {}).get(name) or {}
    expose = svc.get("expose") if isinstance(svc, dict) else None
    hint = ("add `port: <container port>` under x-luma, or give the service exactly one `expose` entry")
    if not isinstance(expose, list) or len(expose) != 1:
        n = len(expose) if isinstance(expose, list) else 0
        why = "it has no `expose` entry" if n == 0 else f"it has {n} `expose` entries"
        return None, "", src.problem(knode, f"service '{name}': x-luma needs `port` ({why} to take it from)", hint,
                                     "x-luma")
    written = str(expose[0])
    text = re.sub(r"/tcp$", "", written)
    value = text
    if "$" in text:
        checked = _interpolate_for_check(src, knode, name, {"port": text}, variables, warnings)["port"]
        value = str(checked)
    m = re.fullmatch(r"(\d+)(?:/tcp)?", value)
    if not m or not 1 <= int(m.group(1)) <= 65535:
        return None, "", src.problem(knode, f"service '{name}': x-luma cannot take the port from `expose: "
                                     f"{written}` (not a single TCP port)", hint, "x-luma")
    return int(m.group(1)), text if "$" in text else "", None


def _xluma_problem(src: Source, xnode: Node, service: str, xdata: Any, e) -> Problem:
    from .source import locate, locate_key

    sub = Source(src.name, src.text, xnode)
    sub._line_starts = src._line_starts
    node = locate_key(sub, e.path) if e.key_error else locate(sub, e.path)
    message, hint = e.message, e.hint
    if e.path and e.path[0] == "hosts":
        value = xdata.get("hosts") if isinstance(xdata, dict) else None
        if len(e.path) > 1 and isinstance(value, list):
            value = value[e.path[1]]
        if isinstance(value, str):
            message, hint = host_problem(value) or (message, hint)
        elif value == []:
            message, hint = "hosts is empty", "give at least one host name, e.g. `hosts: [app.example.com]`"
        elif e.validator == "uniqueItems":
            message, hint = "a host is listed twice in hosts", "list each host once"
    elif e.path and e.path[0] == "port":
        message = f"port must be a whole number from 1 to 65535, not {xdata.get('port')!r}"
        hint = ("write the port as a number without quotes, e.g. `port: 3000`" if e.validator == "type"
                else "use the port the container listens on, e.g. `port: 3000`")
    elif e.path and e.path[0] in ("paths", "redirect_from"):
        value = xdata.get(e.path[0]) if isinstance(xdata, dict) else None
        if len(e.path) > 1 and isinstance(value, list):
            value = value[e.path[1]]
        if isinstance(value, str) and e.path[0] == "paths":
            message = validate.path_prefix_problem(value) or message
            hint = "for example `paths: [/api, /socket]`"
        elif isinstance(value, str):
            message, hint = host_problem(value) or (message, hint)
        elif e.validator == "uniqueItems":
            message, hint = f"an entry is listed twice in {e.path[0]}", "list each once"
    elif e.path and e.path[0] == "health":
        message = f"health must be an HTTP path starting with '/', not {xdata.get('health')!r}"
        hint = "for example `health: /up`"
    elif not e.path and e.validator == "type":
        message = "x-luma must be a mapping"
        hint = "write it as `x-luma: {hosts: [app.example.com], port: 3000}` or as a block with those keys"
    # messages of our own name the key themselves; the schema's get its path
    where = "" if message != e.message else ".".join(str(p) for p in (e.path[:-1] if e.key_error else e.path))
    return src.problem(node, f"service '{service}': x-luma{'.' + where if where else ''}: {message}", hint, "x-luma")


def host_problem(host: str) -> tuple[str, str] | None:
    """A precise message for a host name that is not a DNS name (None if it looks fine)."""
    if "://" in host:
        bare = host.split("://", 1)[1].split("/", 1)[0]
        return f"host '{host}' has a scheme", f"write only the host name, e.g. '{bare}'"
    if "/" in host:
        return f"host '{host}' has a path", f"write only the host name, e.g. '{host.split('/', 1)[0]}'"
    if re.search(r":\d*$", host):
        return (f"host '{host}' has a port",
                f"write only the host name, e.g. '{host.rsplit(':', 1)[0]}'; the proxy listens on 80/443")
    if not host:
        return "host name is empty", "write a DNS name such as 'app.example.com'"
    return (f"host '{host}' is not a valid DNS name",
            "use letters, digits and hyphens in dot-separated labels (at most 63 characters each), "
            "optionally starting with '*.'")
