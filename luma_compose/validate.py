"""Strict validation of routing values: one implementation for ``check`` and the proxy.

``check``/``render`` validate what a compose file says (``x-luma``); the proxy validates
what the labels of a container say, which anyone who can start a container can write.
Both must apply exactly these rules, so both call this module.

What passes here can be put into Caddy's JSON as it is: no value that passes contains
``$``, ``{`` or ``}`` (Caddy placeholders, Compose interpolation), white space, a quote,
a backslash or a control character. A value with ``${...}`` in a compose file is left to
Compose; what Compose makes of it reaches the proxy as a label and is checked here.

Pure: no Docker, no YAML, imports nothing of luma_compose.
"""

from __future__ import annotations

import re

#: A DNS name (labels of letters, digits and inner hyphens), optionally ``*.`` first.
_HOST = re.compile(r"(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
#: Compose's project name rule.
_PROJECT = re.compile(r"[a-z0-9][a-z0-9_-]*")
#: Compose's service name rule (compose-spec: ``^[a-zA-Z0-9._-]+$``).
_SERVICE = re.compile(r"[a-zA-Z0-9._-]+")
#: An absolute path (and optional query) of RFC 3986 characters, without ``$``.
_PATH = re.compile(r"/[A-Za-z0-9._~!&'()*+,;=:@%/-]*(\?[A-Za-z0-9._~!&'()*+,;=:@%/?-]*)?")
#: A Docker container name.
_CONTAINER = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")

MAX_HOST = 253


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def host_problem(host: str) -> str | None:
    """Why ``host`` is not a host name the proxy may route (None when it is one).

    Lower case only: render lowercases hosts, and a label is compared as written.
    """
    if not isinstance(host, str) or not host:
        return "an empty host name"
    if len(host) > MAX_HOST:
        return f"host {_shown(host)} is longer than {MAX_HOST} characters"
    if not _HOST.fullmatch(host):
        if _HOST.fullmatch(host.lower()):
            return f"host {_shown(host)} is not lower case"
        return (f"host {_shown(host)} is not a DNS name (letters, digits, '-' and '.', optionally '*.' "
                "first; no scheme, port, path, placeholder or ${...})")
    return None


def hosts_problem(value: str) -> str | None:
    """A ``luma.hosts`` label: comma-separated hosts, at least one, every one valid."""
    hosts = [h.strip() for h in value.split(",")]
    if not any(hosts):
        return "names no host"
    for h in hosts:
        p = host_problem(h)
        if p:
            return p
    return None


def project_problem(project: str) -> str | None:
    if not _PROJECT.fullmatch(project or ""):
        return (f"project name {_shown(project)} is not a Compose project name "
                "(lower-case letters, digits, '-' and '_', starting with a letter or digit)")
    return None


def service_problem(service: str) -> str | None:
    if not _SERVICE.fullmatch(service or ""):
        return f"service name {_shown(service)} is not a Compose service name (letters, digits, '.', '_', '-')"
    return None


def port_problem(port: str | int) -> str | None:
    s = str(port)
    if not re.fullmatch(r"[1-9][0-9]{0,4}", s) or int(s) > 65535:
        return f"port {_shown(s)} is not a port number (1-65535)"
    return None


def health_path_problem(path: str) -> str | None:
    if not _PATH.fullmatch(path or ""):
        return (f"health path {_shown(path)} is not an absolute URL path (starts with '/'; RFC 3986 characters "
                "only: no space, '$', '{', '}', quote or backslash)")
    return None


def container_name_problem(name: str) -> str | None:
    if not _CONTAINER.fullmatch(name or ""):
        return f"container name {_shown(name)} is not a Docker container name"
    return None


def safe_for_caddy(value: str) -> bool:
    """The last line of defence: a string that can never be a Caddy placeholder."""
    return not any(ch in value for ch in "${}\\\"'") and value.isprintable() and not any(ch.isspace() for ch in value)


def dns_name_key(name: str) -> str:
    """A name as Docker's embedded DNS compares it: case-insensitive, a trailing dot ignored
    (``VICTIM-WEB.`` and ``victim-web`` answer the same query)."""
    return name.strip().rstrip(".").lower()


#: A path prefix (``paths``): ``/`` then segments of unreserved characters (RFC 3986: letters, digits,
#: ``-``, ``.``, ``_``, ``~``) joined by ``/``; no trailing ``/``, no ``.``/``..`` segment, no ``*``, ``%``,
#: ``?``, ``{``/``}`` (a Caddy placeholder or matcher can never be written with these characters).
_PREFIX = re.compile(r"(/[A-Za-z0-9._~-]+)+")
MAX_PREFIX = 200
MAX_PATHS = 32


def path_prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` is not a path prefix the proxy may route (None when it is one)."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix) or len(prefix) > MAX_PREFIX \
            or any(seg in (".", "..") for seg in prefix.split("/")[1:]):
        return (f"path {_shown(prefix)} is not a path prefix ('/' then segments of letters, digits, '-', '.', "
                f"'_' and '~' joined by '/', at most {MAX_PREFIX} characters; no trailing '/', no '.' or '..' "
                "segment, no '*', '%', '?', placeholder or ${...})")
    return None


def paths_problem(value: str) -> str | None:
    """A ``luma.paths`` label: comma-separated prefixes, at least one, each valid, none twice (paths
    compare case-insensitively, as Caddy's path matcher does)."""
    paths = [p.strip() for p in value.split(",")]
    if not any(paths):
        return "names no path"
    if len(paths) > MAX_PATHS:
        return f"names {len(paths)} paths (at most {MAX_PATHS})"
    for p in paths:
        problem = path_prefix_problem(p)
        if problem:
            return problem
    if len({p.lower() for p in paths}) != len(paths):
        return "names a path twice (paths compare case-insensitively)"
    return None


def strip_prefix_problem(value: str) -> str | None:
    if value not in ("true", "false"):
        return f"strip_prefix {_shown(value)} is not true or false"
    return None
