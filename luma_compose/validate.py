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


def hold_problem(value: str) -> str | None:
    """A ``luma.hold`` label: whole seconds, 1 to contract.MAX_HOLD (written digits only)."""
    from . import contract

    return _seconds_problem("hold", value, contract.MAX_HOLD)


def health_interval_problem(value: str) -> str | None:
    """A ``luma.health.interval`` label: whole seconds, 1 to contract.MAX_HEALTH_INTERVAL (digits only)."""
    from . import contract

    return _seconds_problem("health_interval", value, contract.MAX_HEALTH_INTERVAL)


def _seconds_problem(key: str, value: str, most: int) -> str | None:
    if not (isinstance(value, str) and value.isascii() and value.isdigit() and 1 <= int(value) <= most):
        return f"{key} {_shown(str(value))} is not a whole number of seconds from 1 to {most}"
    return None


def strip_prefix_problem(value: str) -> str | None:
    if value not in ("true", "false"):
        return f"strip_prefix {_shown(value)} is not true or false"
    return None


# --------------------------------------------------------------------------- access control
# ``basic_auth`` and ``allow`` (docs/access.md): the same rules for ``check`` (x-luma and the
# htpasswd file it names) and for the proxy (the ``luma.auth.basic`` and ``luma.allow`` labels).

#: At most this many users in one route's basic auth, and CIDRs in one allow list: a label is
#: anyone's to write, and every entry is work for the proxy on each request.
MAX_USERS = 64
MAX_ALLOW = 64
#: What ``htpasswd -B`` writes (``$2y$``), and the other bcrypt spellings (``$2b$``, ``$2a$``).
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
#: A user name the proxy accepts: no ``:`` (htpasswd's separator), ``,`` (the label's), space or placeholder.
_USER = re.compile(r"[A-Za-z0-9._@+-]{1,64}")
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
HTPASSWD_FIX = "make it with `htpasswd -B FILE USER` (bcrypt)"


def user_problem(user: str) -> str | None:
    if not _USER.fullmatch(user or ""):
        return (f"user name {_shown(user)} is not accepted (1-64 letters, digits, '.', '_', '@', '+', '-'; "
                "no ':', ',', space or placeholder)")
    return None


def hash_kind(hashed: str) -> str:
    """What kind of htpasswd hash this is: 'bcrypt', or a name for one the proxy refuses."""
    if _BCRYPT.fullmatch(hashed):
        return "bcrypt"
    if hashed.startswith("$2"):
        return "a malformed bcrypt hash"
    if hashed.startswith("$apr1$"):
        return "an MD5 hash ($apr1$)"
    if hashed.startswith("{SHA}"):
        return "a SHA-1 hash ({SHA})"
    if re.fullmatch(r"\$(1|5|6|md5|sha1|y|7)\$.*", hashed):
        return "a crypt(3) hash"
    if re.fullmatch(r"[./A-Za-z0-9]{13}", hashed):
        return "a DES crypt hash (or a plain-text password)"
    return "a plain-text password (or a hash of an unknown kind)"


def htpasswd_entries(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(user, bcrypt hash) of each entry of an htpasswd file, and a problem per entry the proxy
    refuses (naming the line and the user, never the hash). Blank lines and ``#`` comments are skipped."""
    entries: list[tuple[str, str]] = []
    problems: list[str] = []
    seen: set[str] = set()
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep:
            problems.append(f"line {n}: not `user:hash`; {HTPASSWD_FIX}")
            continue
        problem = user_problem(user)
        if problem:
            problems.append(f"line {n}: {problem}")
            continue
        kind = hash_kind(hashed)
        if kind != "bcrypt":
            problems.append(f"line {n}: user {user!r} has {kind}, which the proxy refuses: only bcrypt; "
                            f"set it again with `htpasswd -B FILE {user}`")
            continue
        if user in seen:
            problems.append(f"line {n}: user {user!r} is listed twice; keep one entry")
            continue
        seen.add(user)
        entries.append((user, hashed))
    if not entries and not problems:
        problems.append(f"it has no user; {HTPASSWD_FIX}")
    if len(entries) > MAX_USERS:
        problems.append(f"it has {len(entries)} users, more than {MAX_USERS}; keep at most {MAX_USERS}")
    return entries, problems


def basic_auth_problem(value: str) -> str | None:
    """A ``luma.auth.basic`` label: ``user:base64(bcrypt hash)``, comma-separated (what render writes)."""
    import base64
    import binascii

    items = value.split(",")
    if len(items) > MAX_USERS:
        return f"has {len(items)} users, more than {MAX_USERS}"
    users: set[str] = set()
    for item in items:
        user, sep, b64 = item.partition(":")
        problem = user_problem(user)
        if problem or not sep:
            return problem or f"entry {_shown(item)} is not user:hash"
        if user in users:
            return f"user {user!r} is listed twice"
        users.add(user)
        try:
            hashed = base64.b64decode(b64, validate=True).decode("ascii") if _B64.fullmatch(b64) else ""
        except (binascii.Error, UnicodeDecodeError):
            hashed = ""
        if not hashed:
            return f"the hash of user {user!r} is not base64 (render writes it so); re-render the compose file"
        kind = hash_kind(hashed)
        if kind != "bcrypt":
            return f"user {user!r} has {kind}; only bcrypt is accepted ({HTPASSWD_FIX}, then re-render)"
    return None


def cidr(entry: str) -> tuple[str | None, str | None]:
    """(normalised network, problem) of one allow-list entry: an IPv4/IPv6 network or address."""
    import ipaddress

    if not isinstance(entry, str) or not entry or not entry.isascii() or any(ch in entry for ch in " ${},\\\"'"):
        return None, f"allow entry {_shown(str(entry))} is not an IP network (e.g. 203.0.113.0/24 or 2001:db8::/32)"
    try:
        net = ipaddress.ip_network(entry, strict=True)
    except ValueError as e:
        if "host bits set" in str(e):
            fixed = ipaddress.ip_network(entry, strict=False)
            return None, f"allow entry {_shown(entry)} has host bits set: write {fixed}"
        return None, f"allow entry {_shown(entry)} is not an IP network (e.g. 203.0.113.0/24 or 2001:db8::/32)"
    return str(net), None


def allow_problem(entries: list[str]) -> str | None:
    """An allow list (x-luma ``allow`` or the ``luma.allow`` label split at commas)."""
    if not entries:
        return "the allow list is empty (leave `allow` out to admit everyone)"
    if len(entries) > MAX_ALLOW:
        return (f"the allow list has {len(entries)} entries, more than {MAX_ALLOW}: merge them into "
                "wider networks (e.g. one /24 for neighbouring addresses)")
    for e in entries:
        problem = cidr(e)[1]
        if problem:
            return problem
    return None
