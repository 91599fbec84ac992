"""The one ``docker compose`` wrapper: argv built as data, one runner, one Compose v2 check.

Commands are :class:`ComposeCommand` values (argv, stdin, cwd) that tests assert on
without running anything; :func:`run` executes one. A project's commands come from
:class:`Compose`, which feeds the rendered file on stdin (``-f -``). Merging several
``-f`` files (``render -f a -f b``) goes through :func:`merge_files`: it needs the
``docker compose`` binary but no engine.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import LumaError, UnavailableError, UsageError

#: What Compose v1 or a docker CLI without the plugin says when given v2 syntax.
_NOT_V2 = ("is not a docker command", "unknown command", "unknown shorthand flag", "unknown flag: --project-directory")


@dataclass(frozen=True)
class ComposeCommand:
    argv: tuple[str, ...]
    stdin: str | None = None
    cwd: str | None = None
    env: Mapping[str, str] | None = field(default=None, compare=False)

    def describe(self) -> str:
        return "docker compose " + " ".join(self.argv[self.argv.index("compose") + 1:])


def is_not_v2(stderr: str) -> bool:
    return any(s in stderr for s in _NOT_V2)


def run(cmd: ComposeCommand, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run one command; raise UnavailableError when docker or Compose v2 is missing, or on timeout."""
    env = None if cmd.env is None else {**os.environ, **cmd.env}
    try:
        return subprocess.run(list(cmd.argv), input=cmd.stdin, capture_output=True, text=True, timeout=timeout,
                              cwd=cmd.cwd if cmd.cwd and os.path.isdir(cmd.cwd) else None, env=env)
    except FileNotFoundError:
        raise UnavailableError("`docker` is not installed", "install Docker and the compose plugin (Compose v2)") from None
    except subprocess.TimeoutExpired:
        raise UnavailableError(f"`{cmd.describe()}` did not finish within {timeout:.0f}s") from None


def check_v2(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode != 0 and is_not_v2((proc.stderr or "") + (proc.stdout or "")):
        raise UnavailableError(f"{what} needs Docker Compose v2 (`docker compose`)",
                               "install the compose plugin (Compose v2)")


def merge_command(files: Sequence[str], project: str | None, project_directory: str | None,
                  docker: Sequence[str] = ("docker",), interpolate: bool = False,
                  model: bool = False) -> ComposeCommand:
    """``docker compose config`` of ``files``: the merged file (``${VAR}`` kept unless ``interpolate``), or
    with ``model`` Compose's own model as JSON (interpolated, paths resolved), to compare two inputs."""
    argv = [*docker, "compose"]
    for f in files:
        argv += ["-f", f]
    if project:
        argv += ["-p", project]
    if project_directory:
        argv += ["--project-directory", project_directory]
    if model:
        argv += ["config", "--format", "json"]
    else:
        argv += ["config", *([] if interpolate else ["--no-interpolate"]), "--no-path-resolution", "--no-normalize"]
    return ComposeCommand(tuple(argv))


def merge_files(files: Sequence[str], project: str | None, project_directory: str | None,
                environ: Mapping[str, str] | None = None) -> str:
    """Several files merged by Compose's own rules (``docker compose config``); no engine is needed."""
    return merge_files_checked(files, project, project_directory, environ)[0]


def merge_files_checked(files: Sequence[str], project: str | None, project_directory: str | None,
                        environ: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """(merged text, note): several files merged by Compose's own rules, never with another meaning.

    The merge keeps ``${VAR}`` (``--no-interpolate``) when Compose reads the merged file exactly as it
    reads the files themselves. Merging before interpolation can change the meaning (Compose reads
    ``${DATA:-./data}:/srv`` as a named volume, and refuses ``depends_on: ["${DB:-db}"]``): then the
    merge is interpolated, and the note says so (the environment's values are written into the file).

    ``environ``: the environment Compose sees (default: this process's); given, ``COMPOSE_*`` variables
    of this process do not leak into it.
    """
    env = None
    if environ is not None:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}, **environ}

    def config(cmd: ComposeCommand, stdin: str | None = None) -> subprocess.CompletedProcess:
        proc = run(ComposeCommand(cmd.argv, stdin, cmd.cwd, env), timeout=120)
        check_v2(proc, "merging several -f files")
        return proc

    raw = config(merge_command(files, project, project_directory))
    if raw.returncode == 0:
        directory = project_directory or os.path.dirname(os.path.abspath(files[0]))
        theirs = config(merge_command(files, project, project_directory, model=True))
        ours = config(merge_command(["-"], project, directory, model=True), raw.stdout)
        if theirs.returncode == 0 and ours.returncode == 0 and theirs.stdout == ours.stdout:
            return raw.stdout, None
    merged = config(merge_command(files, project, project_directory, interpolate=True))
    if merged.returncode != 0:
        raise UsageError(f"docker compose could not merge {', '.join(files)}: {merged.stderr.strip()}",
                         "fix the files as it says")
    return merged.stdout, ("these files cannot be merged before interpolation without changing their meaning "
                           "(e.g. `${VAR:-./dir}:/path` would become a named volume), so they were merged with "
                           "this environment's values: the output holds those values instead of ${...}")


@dataclass(frozen=True)
class Compose:
    """``docker compose`` for one project, with its rendered file on stdin.

    ``docker``: the docker CLI and its global options that select the engine
    (see :mod:`luma_compose.engine.client`).
    """

    project: str
    directory: str
    text: str  # the rendered compose file, fed through -f -
    docker: tuple[str, ...] = ("docker",)
    env: Mapping[str, str] | None = field(default=None, compare=False)

    def command(self, *args: str, with_file: bool = True) -> ComposeCommand:
        argv = [*self.docker, "compose", "-p", self.project, "--project-directory", self.directory]
        if with_file:
            argv += ["-f", "-"]
        return ComposeCommand((*argv, *args), self.text if with_file else None, self.directory, self.env)

    def run(self, *args: str, timeout: float = 600, check: bool = True, with_file: bool = True) -> str:
        cmd = self.command(*args, with_file=with_file)
        p = run(cmd, timeout)
        check_v2(p, "deploy")
        if check and p.returncode != 0:
            err = (p.stderr or p.stdout).strip()
            raise LumaError(f"`docker compose {' '.join(args)}` failed (exit {p.returncode}):\n{err}",
                            "fix what Compose reports; the running version was not changed by this step")
        return p.stdout
