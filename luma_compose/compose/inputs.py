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

    ``file_name`` is the raw top-level ``name:`` of the file.
    """
    env = os.environ if environ is None else environ
    if explicit:
        return check_explicit(explicit, "-p"), "-p"
    if env.get("COMPOSE_PROJECT_NAME"):
        return check_explicit(env["COMPOSE_PROJECT_NAME"], "COMPOSE_PROJECT_NAME"), "env"
    if file_name:
        name = normalize(interpolate(str(file_name), dotenv(project_dir, env)))
        if name:
            return name, "file"
    name = normalize(os.path.basename(os.path.abspath(project_dir)))
    if not name:
        raise UsageError("project name must not be empty",
                         "set one with -p NAME, COMPOSE_PROJECT_NAME or a top-level `name:`")
    return name, "dir"


def dotenv(project_dir: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables Compose interpolates with: the project's ``.env`` file, then the environment."""
    values: dict[str, str] = {}
    try:
        with open(os.path.join(project_dir, ".env"), encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                key, _, value = line.removeprefix("export ").partition("=")
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                    value = value[1:-1]
                values[key.strip()] = value
    except OSError:
        pass
    values.update(environ)
    return values


_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose-style ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:+alt}``, ``$$``."""

    def sub(m: re.Match) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4) or ""
        val = variables.get(name)
        if op in (":-", "-"):
            if val is None or (op == ":-" and val == ""):
                return interpolate(arg, variables)
            return val
        if op in (":+", "+"):
            if val is not None and (op == "+" or val != ""):
                return interpolate(arg, variables)
            return ""
        if op in (":?", "?"):
            if val is None or (op == ":?" and val == ""):
                raise UsageError(f"required variable {name} is missing a value: {arg}".rstrip(": "),
                                 f"set {name} in the environment or in .env")
            return val
        return val or ""

    return _VAR.sub(sub, value)


# ----------------------------------------------------------------------------- files

#: Compose's default file names, in its lookup order.
DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")


def find_files(files: Sequence[str], project_directory: str | None,
               environ: Mapping[str, str] | None = None) -> list[str]:
    """The compose files Compose would read: ``-f`` files, else ``COMPOSE_FILE``, else the default lookup."""
    env = os.environ if environ is None else environ
    if files:
        return list(files)
    env_files = env.get("COMPOSE_FILE")
    if env_files:
        return env_files.split(env.get("COMPOSE_PATH_SEPARATOR", os.pathsep))
    base = project_directory or "."
    found = next((f for f in DEFAULT_FILES if os.path.exists(os.path.join(base, f))), None)
    if found is None:
        raise UsageError(f"no compose file found in {os.path.abspath(base)} "
                         f"(looked for {', '.join(DEFAULT_FILES)})", "name one with -f FILE, or -f - for stdin")
    return [os.path.join(base, found)] if project_directory else [found]


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
