"""The one ``docker compose`` wrapper: argv built as data, one runner, one Compose v2 check.

Commands are :class:`ComposeCommand` values (argv, stdin, cwd) that tests assert on
without running anything; :func:`run` executes one. A project's commands come from
:class:`Compose`, which feeds the rendered file on stdin (``-f -``). Rendering several
``-f`` files (``render -f a -f b``) goes through :class:`MergedRender`: it needs the
``docker compose`` binary but no engine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import LumaError, Problem, UnavailableError, UsageError

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


#: Where the docker CLI finds its plugins (docker/cli's default search path, user's own first).
_PLUGIN_DIRS = ("~/.docker/cli-plugins", "/usr/local/lib/docker/cli-plugins", "/usr/local/libexec/docker/cli-plugins",
                "/usr/lib/docker/cli-plugins", "/usr/libexec/docker/cli-plugins")


def compose_binary(docker: Sequence[str] = ("docker",)) -> tuple[str, ...]:
    """How to run Compose for ``config``: the compose plugin itself when the plain docker CLI would run it
    (the same binary, without the CLI's own start, about half the time of ``docker compose config``), else
    ``docker compose``. ``config`` reads files only, so no engine or context is involved."""
    if tuple(docker) == ("docker",) and shutil.which("docker") and not os.environ.get("DOCKER_CONFIG"):
        for d in _PLUGIN_DIRS:
            path = os.path.join(os.path.expanduser(d), "docker-compose")
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return (path,)
    return (*docker, "compose")


def config_command(files: Sequence[str], project: str | None, project_directory: str | None,
                   kind: str, stdin: str | None = None, compose: Sequence[str] = ("docker", "compose"),
                   env: Mapping[str, str] | None = None) -> ComposeCommand:
    """``config`` of ``files`` with every profile active. ``kind``: ``model`` (Compose's model as JSON:
    interpolated, paths resolved, to compare two inputs), ``raw`` (the merged file, ``${VAR}`` kept) or
    ``interpolated`` (the merged file with this environment's values), ``normalized`` (that, normalized)."""
    argv = [*compose, "--profile", "*"]
    for f in files:
        argv += ["-f", f]
    if project:
        argv += ["-p", project]
    if project_directory:
        argv += ["--project-directory", project_directory]
    if kind == "model":
        argv += ["config", "--format", "json"]
    else:
        argv += ["config", *(["--no-interpolate"] if kind == "raw" else []), "--no-path-resolution",
                 *([] if kind == "normalized" else ["--no-normalize"])]
    return ComposeCommand(tuple(argv), stdin, None, env)


_INTERPOLATED_NOTE = ("these files cannot be merged before interpolation without changing their meaning (e.g. "
                      "`${VAR:-./dir}:/path` would become a named volume), so they were merged with this "
                      "environment's values: the output holds those values instead of ${...}")


#: The merges tried in turn, the first that reads back as the files wins: ``${VAR}`` kept, then interpolated,
#: then interpolated and normalized (Compose leaves out some parts, such as a renamed `default` network,
#: from an interpolated merge it does not normalize).
_MERGES = ("raw", "interpolated", "normalized")
_KEEP_VARIABLES = ("write the values as Compose reads them before merging (e.g. the long volume syntax with "
                   "`type: bind`) to keep ${...}")


class MergedRender:
    """Render several ``-f`` files: they are merged, render edits the merged text, and Compose's model of
    the output must be its model of the files (every profile) plus exactly the contract's additions.

    First the merge made in Python (:mod:`..compose.merge`): Compose's model of the merged text must be exactly
    its model of the files, and that text is rendered as one file is (render verifies its own output against
    the text's data plus the contract's additions). Both Compose runs and the render run side by side (one round
    of Compose runs). When that merge does not handle the files, or does not read back exactly, Compose merges
    them and Compose reads the output back (below).

    Compose's merge keeps ``${VAR}`` (``--no-interpolate``) when that reads back right; merging before
    interpolation can change the meaning (Compose reads ``${DATA:-./data}:/srv`` as a named volume, and
    refuses ``depends_on: ["${DB:-db}"]``), then the merge is interpolated (a warning says so). A merge that
    reads back differently either way is refused, naming where. When the first merge reads back right,
    Compose runs twice in a row: the merge beside the model of the files, then the model of the output.

    ``render(name, text, interpolated)`` renders one text (a pipeline Result); ``environ``: the environment
    Compose sees (default: this process's); given, ``COMPOSE_*`` variables of this process do not leak into it.
    """

    def __init__(self, files: Sequence[str], project: str | None, project_directory: str,
                 environ: Mapping[str, str] | None, render, docker: Sequence[str] = ("docker",)):
        self.files, self.project, self.directory, self.render = list(files), project, project_directory, render
        self.env = None
        if environ is not None:
            self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}, **environ}
        self.compose = compose_binary(docker)
        self.name = "<merged: " + ", ".join(self.files) + ">"

    def _run(self, kind: str, files: Sequence[str] | None = None,
             stdin: str | None = None) -> subprocess.CompletedProcess:
        # a short run: Go's collector at 4x its default target saves a fifth of Compose's CPU (measured on the
        # bench's 30 kB sets: 0.17 s -> 0.14 s), for about twice the memory
        env = {"GOGC": os.environ.get("GOGC", "400"), **(self.env or {})}
        cmd = config_command(self.files if files is None else files, self.project, self.directory,
                             kind, stdin, self.compose, env)
        proc = run(cmd, timeout=120)
        check_v2(proc, "merging several -f files")
        return proc

    def _refuse_input(self, proc: subprocess.CompletedProcess) -> None:
        raise UsageError(f"docker compose could not merge {', '.join(self.files)}: {proc.stderr.strip()}",
                         "fix the files as it says")

    def run(self):
        from ..compose import merge
        from ..compose.readback import first_difference

        with ThreadPoolExecutor(3) as pool:
            model_f = pool.submit(self._run, "model")  # first: the longest run
            texts = []
            for f in self.files:
                with open(f, encoding="utf-8", errors="replace") as fh:
                    texts.append(fh.read())
            merged = merge.merge_texts(texts)
            if merged is None:
                return self._merged_by_compose(texts, pool, model_f)
            merged_f = pool.submit(self._run, "model", ["-"], merged)
            result = self.render(self.name, merged, False)  # beside both Compose runs
            model = model_f.result()
            if model.returncode != 0:
                self._refuse_input(model)
            model_in = json.loads(model.stdout)
            read = merged_f.result()
            if result.ok and read.returncode == 0 and first_difference(model_in, json.loads(read.stdout)) is None:
                return result
            return self._merged_by_compose(texts, pool, model_f)  # this merge was wrong: Compose's is not

    def _merged_by_compose(self, texts: list[str], pool: ThreadPoolExecutor, model_f):
        """Compose merges the files (its merge made beside the model of the files, when that still runs)."""
        from ..compose import inputs, readback

        # a `${VAR:-./dir}` bind mount: the merge keeping ${VAR} will likely not read back; merge interpolated too
        likely = any(readback.PATH_DEFAULT.search(t) for t in texts)
        merges = {kind: pool.submit(self._run, kind) for kind in ("raw", "interpolated")[:1 + likely]}
        model = model_f.result()
        merges = {kind: f.result() for kind, f in merges.items()}
        if model.returncode != 0:
            self._refuse_input(model)
        model_in = json.loads(model.stdout)
        variables = inputs.dotenv(self.directory, os.environ if self.env is None else self.env) if likely else {}
        first = where = failed = None
        for kind in _MERGES:
            merged = merges[kind] if kind in merges else self._run(kind)
            if kind == "raw" and likely and merged.returncode == 0 \
                    and readback.binds_read_as_volumes(merged.stdout, variables):
                continue
            if merged.returncode != 0:  # Compose refuses this merge of files it reads (`depends_on: ["${DB:-db}"]`
                failed = merged           # with `${VAR}` kept; a `default` network left out when not normalized)
                continue
            result = self.render(self.name, merged.stdout, kind != "raw")
            first = first or result
            if not result.ok:
                continue
            found = self._difference(result, model_in)
            if found is None:
                if kind != "raw":
                    result.warnings.insert(0, Problem(self.name, 0, 0, _INTERPOLATED_NOTE, _KEEP_VARIABLES, "merge"))
                return result
            if where is None or kind == "interpolated":  # the interpolated merge's difference says most
                where = found
        if first is None:
            self._refuse_input(failed)
        if where is None:  # no merge rendered: the problems of the one closest to the files
            return first
        first.problems = [Problem(self.name, 0, 0, "these files cannot be merged into one file that Compose reads "
                                  f"as it reads them: {where}; nothing was written", "merge them by hand into one "
                                  "compose file, or write that part in the form Compose writes it back (as "
                                  "`docker compose config` shows it)", "merge")]
        first.text = None
        return first

    def _difference(self, result, model_in: dict, out: subprocess.CompletedProcess | None = None) -> str | None:
        """Where Compose's model of the rendered text (``out``: already run) is not the files' model plus the
        contract (None: equal)."""
        from ..compose import readback

        out = out or self._run("model", ["-"], result.text)
        if out.returncode != 0:
            return f"Compose refuses the merged file: {out.stderr.strip()}"
        exact = not any(w.rule == "x-luma" for w in result.warnings)
        return readback.difference(model_in, json.loads(out.stdout), result.project, result.routes, exact)


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
