"""How Compose finds a project's input: files, ``.env``, interpolation and the project name.

Project naming, exactly as Docker Compose v2 does it.

Precedence: ``-p``, then ``COMPOSE_PROJECT_NAME``, then the top-level ``name:``
of the file (interpolated, then normalized), then the basename of the project
directory (normalized). An explicit name (``-p`` or the environment variable)
is not normalized: if it is not already valid it is an error, as in Compose.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Mapping, Sequence

from ..errors import UsageError

_VALID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_KEEP = re.compile(r"[a-z0-9_-]")
_INVALID_MSG = ("must consist only of lowercase alphanumeric characters, hyphens, and underscores "
                "as well as start with a letter or number")


def normalize(name: str) -> str:
    """Compose's NormalizeProjectName: lowercase, drop other characters, trim leading '_' and '-'."""
    return "".join(_KEEP.findall(name.lower())).lstrip("_-")


def is_valid(name: str) -> bool:
    return bool(_VALID.match(name))


def check_explicit(name: str, origin: str) -> str:
    if not is_valid(name):
        raise UsageError(f'invalid project name "{name}" (from {origin}): {_INVALID_MSG}',
                         f'use for example "{normalize(name) or "myproject"}"')
    return name


def resolve(explicit: str | None, file_name: str | None, project_dir: str,
            environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The project name Compose would use, and where it came from ("-p", "env", "file", "dir").

    ``file_name`` is the raw top-level ``name:`` of the file. ``COMPOSE_PROJECT_NAME`` counts from the
    environment and from the project's ``.env``, as in Compose.
    """
    env = os.environ if environ is None else environ
    if explicit:
        return check_explicit(explicit, "-p"), "-p"
    variables = dotenv(project_dir, env)
    if variables.get("COMPOSE_PROJECT_NAME"):
        origin = "COMPOSE_PROJECT_NAME" + ("" if env.get("COMPOSE_PROJECT_NAME") else " in .env")
        return check_explicit(variables["COMPOSE_PROJECT_NAME"], origin), "env"
    if file_name:
        name = normalize(interpolate(str(file_name), variables))
        if name:
            return name, "file"
    name = normalize(os.path.basename(os.path.abspath(project_dir)))
    if not name:
        raise UsageError("project name must not be empty",
                         "set one with -p NAME, COMPOSE_PROJECT_NAME or a top-level `name:`")
    return name, "dir"


def env_file(project_dir: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of the project's ``.env``, read as Compose reads it.

    The syntax is python-dotenv's (comments, quotes, ``export``, multi-line values), which matches
    Compose's on the cases in tests/unit/test_inputs.py. Expansion follows Compose, not python-dotenv:
    ``${VAR}`` in unquoted and double-quoted values (the environment first, then earlier lines),
    none in single-quoted values; a line with a name and no ``=`` takes the variable from the environment.
    """
    path = os.path.join(project_dir, ".env")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError):
        return {}
    from dotenv.parser import parse_stream  # only when there is a .env

    import io

    values: dict[str, str] = {}
    for b in parse_stream(io.StringIO(text)):
        if b.error:
            raise UsageError(f"{path}:{b.original.line}: cannot read this line: {b.original.string.strip()!r}",
                             "write NAME=value, one per line (quote values with spaces or #)")
        if b.key is None:
            continue
        if b.value is None:
            if b.key in environ:
                values[b.key] = environ[b.key]
            continue
        raw = b.original.string.split("=", 1)[1].lstrip() if "=" in b.original.string else ""
        if raw.startswith("'"):
            values[b.key] = b.value
        else:
            values[b.key] = interpolate(b.value, {**values, **environ}, strict=False)
    return values


def dotenv(project_dir: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables Compose interpolates with: the project's ``.env`` file, then the environment."""
    values = env_file(project_dir, environ)
    values.update(environ)
    return values


_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: str, variables: Mapping[str, str], strict: bool = True) -> str:
    """Compose-style ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:+alt}``, ``$$``."""

    def sub(m: re.Match) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4) or ""
        val = variables.get(name)
        if op in (":-", "-"):
            if val is None or (op == ":-" and val == ""):
                return interpolate(arg, variables, strict)
            return val
        if op in (":+", "+"):
            if val is not None and (op == "+" or val != ""):
                return interpolate(arg, variables, strict)
            return ""
        if op in (":?", "?"):
            if strict and (val is None or (op == ":?" and val == "")):
                raise UsageError(f"required variable {name} is missing a value: {arg}".rstrip(": "),
                                 f"set {name} in the environment or in .env")
            return val or ""
        return val or ""

    return _VAR.sub(sub, value)


# ----------------------------------------------------------------------------- files

#: Compose's default file names, in its lookup order.
DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
#: ... and the override file it adds to the one it found, in its lookup order.
OVERRIDE_FILES = ("compose.override.yml", "compose.override.yaml", "docker-compose.override.yml",
                  "docker-compose.override.yaml")


def find_files(files: Sequence[str], project_directory: str | None,
               environ: Mapping[str, str] | None = None) -> list[str]:
    """The compose files Compose would read: ``-f`` files, else ``COMPOSE_FILE`` (from the environment or
    the ``.env`` of the working or project directory), else the default lookup: the first default name
    found in the directory or its parents, plus that directory's override file when there is one."""
    env = os.environ if environ is None else environ
    if files:
        return list(files)
    base = project_directory or "."
    variables = dotenv(base, env)
    env_files = variables.get("COMPOSE_FILE")
    if env_files:
        sep = variables.get("COMPOSE_PATH_SEPARATOR") or os.pathsep
        return [f for f in env_files.split(sep) if f]
    here = os.path.abspath(base)
    while True:
        found = next((f for f in DEFAULT_FILES if os.path.isfile(os.path.join(here, f))), None)
        if found is not None:
            override = next((f for f in OVERRIDE_FILES if os.path.isfile(os.path.join(here, f))), None)
            names = [found] + ([override] if override else [])
            if here == os.path.abspath(".") and not project_directory:
                return names
            return [os.path.join(here, n) for n in names]
        parent = os.path.dirname(here)
        if parent == here:
            break
        here = parent
    raise UsageError(f"no compose file found in {os.path.abspath(base)} or its parents "
                     f"(looked for {', '.join(DEFAULT_FILES)})", "name one with -f FILE, or -f - for stdin")


def read_file(path: str, stdin: Any = None) -> tuple[str, str]:
    """(name for messages, text) of one compose file; ``-`` reads ``stdin``."""
    if path == "-":
        stream = stdin if stdin is not None else sys.stdin
        raw = getattr(stream, "buffer", None)
        if raw is None:
            return "<stdin>", stream.read()
        data = raw.read()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise UsageError(f"<stdin>: not UTF-8 text (byte {e.start} is {data[e.start:e.start + 1]!r})",
                             "pipe a compose file (UTF-8 YAML) into -f -") from None
        return "<stdin>", text.replace("\r\n", "\n").replace("\r", "\n")  # as text-mode stdin reads it
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return path, fh.read()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file", "check the path given with -f") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read it: {e}", "give a readable UTF-8 compose file") from None


def project_dir_of(files: Sequence[str], project_directory: str | None) -> str:
    """Where ``.env`` and relative paths are read from: ``--project-directory``, else the first file's directory."""
    if project_directory:
        return project_directory
    if not files or files[0] == "-":
        return "."
    return os.path.dirname(os.path.abspath(files[0]))


def check_mergeable(files: Sequence[str]) -> None:
    if "-" in files:
        raise UsageError("-f - (stdin) cannot be combined with other -f files", "merge the files first, or pass files")
    for f in files:
        if not os.path.exists(f):
            raise UsageError(f"{f}: no such file", "check the paths given with -f")


def included_files(include: Any, project_dir: str) -> list[str]:
    """The local files a top-level ``include:`` pulls in (short form, or ``path`` as a string or list)."""
    out: list[str] = []
    for entry in include if isinstance(include, list) else []:
        paths = entry.get("path") if isinstance(entry, dict) else entry
        for p in paths if isinstance(paths, list) else [paths]:
            if isinstance(p, str) and p and "://" not in p and "$" not in p:
                out.append(p if os.path.isabs(p) else os.path.join(project_dir, p))
    return out
