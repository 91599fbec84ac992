"""``basic_auth`` and ``allow`` of an x-luma block: read, check, ready for the labels (docs/access.md).

``basic_auth: ./users.htpasswd`` names an htpasswd file, relative to the project directory (the compose
file's, as Compose reads relative paths); render puts each user's bcrypt hash into the
``luma.auth.basic`` label, so the proxy has them with no luma-compose process and no file to mount.
Only bcrypt (``htpasswd -B``) passes: plain text, MD5 (``$apr1$``), SHA-1 (``{SHA}``) and crypt are
refused, naming the file's line and the user, never the hash. ``allow`` is a list of IPv4/IPv6
networks. The rules are :mod:`luma_compose.validate`'s, the ones the proxy applies to the labels.
"""

from __future__ import annotations

import os
from typing import Any

from ruamel.yaml.nodes import Node

from .. import validate
from ..errors import Problem
from .source import Source, own_get

KEYS = ("basic_auth", "allow")


def read(src: Source, xnode: Node, service: str, xdata: dict[str, Any],
         project_dir: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...], list[Problem]]:
    """(users with their bcrypt hashes, normalised allow list, problems) of one x-luma block."""
    problems: list[Problem] = []

    def problem(key: str, message: str, hint: str) -> None:
        _, node = own_get(xnode, key)
        problems.append(src.problem(node if node is not None else xnode,
                                    f"service '{service}': x-luma.{key}: {message}", hint, "x-luma"))

    users: tuple[tuple[str, str], ...] = ()
    path = xdata.get("basic_auth")
    if isinstance(path, str) and "$" in path:
        problem("basic_auth", f"{path!r} uses a variable; the file is read when render runs",
                "write the path itself, e.g. `basic_auth: ./users.htpasswd`")
    elif isinstance(path, str):
        full = path if os.path.isabs(path) else os.path.join(project_dir or ".", path)
        try:
            with open(full, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as e:
            problem("basic_auth", f"cannot read the htpasswd file {path} ({full}): {getattr(e, 'strerror', e)}",
                    "the path is relative to the compose file's directory; create it with "
                    "`htpasswd -B -c FILE USER`")
            text = None
        if text is not None:
            entries, bad = validate.htpasswd_entries(text)
            for b in bad:
                problem("basic_auth", f"{path}: {b}", "only bcrypt entries are accepted: `htpasswd -B FILE USER` "
                        "writes one (Debian/Ubuntu: apache2-utils)")
            if not bad:
                users = tuple(entries)
    allow: tuple[str, ...] = ()
    value = xdata.get("allow")
    if value is not None:
        entries_in = [value] if isinstance(value, str) else list(value)
        p = validate.allow_problem(entries_in)
        if p:
            problem("allow", p, "list IPv4/IPv6 networks in CIDR form, e.g. `allow: [203.0.113.0/24, 2001:db8::/32]`")
        else:
            allow = tuple(dict.fromkeys(validate.cidr(e)[0] for e in entries_in))  # type: ignore[misc]
    return users, allow, problems
