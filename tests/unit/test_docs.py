"""The docs are true where a machine can tell: every block is an example that runs (the e2e test
runs them: tests/e2e/test_docs_examples.py), a compose file that passes `check` and `render`, or a
synopsis; every link to a local file or heading resolves; every `luma-compose` command and option
the docs name exists in `luma-compose ... --help`. Nothing is skipped silently: a block that is not
run says why, and the counts are printed."""

from __future__ import annotations

import functools
import os
import json
import re
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
import docblocks as db  # noqa: E402

PAGES = db.pages()
REPO = db.REPO


def _luma_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "luma-compose"
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from luma_compose.cli.fast import main; main()"]


def luma(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([*_luma_cmd(), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_the_pages_are_there():
    names = {db.page_id(p) for p in PAGES}
    assert names >= {"README.md", "CONTRIBUTING.md", "docs/proxy.md", "docs/deploy.md", "docs/remote-engines.md",
                     "docs/certificates.md", "docs/swarm.md", "docs/pipelines.md", "docs/python-api.md",
                     "docs/exit-codes.md", "docs/render.md"}, names


def test_every_block_is_of_a_known_kind_and_none_is_skipped_silently():
    problems, kinds = [], Counter()
    not_run = []
    for b in db.all_blocks():
        try:
            db.validate(b)
        except db.DocError as e:
            problems.append(str(e))
            continue
        if b.not_run:
            kinds[f"{b.lang} not run"] += 1
            not_run.append(f"{b.where}: {b.not_run}")
        else:
            kinds[b.lang] += 1
    print("blocks:", dict(kinds))
    print("not run:", *not_run, sep="\n  ")
    assert not problems, "\n".join(problems)
    assert kinds["sh"] >= 5 and kinds["yaml"] >= 5, kinds  # the parser found the examples


def test_the_readme_is_a_front_door():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    for heading in ("## Quickstart", "## Marking a service: `x-luma`", "## Commands", "## Documentation"):
        assert heading in text
    # the x-luma table has a row for every key of the schema, in its order, with nothing between them
    keys = json.loads((REPO / "luma_compose/_schemas/x-luma.schema.json").read_text())["properties"]
    table = re.search(r"\| key \| type \| required \| meaning \|\n\| --- .*\n((?:\|.*\n)+)", text)
    assert table and [r.split("|")[1].strip() for r in table.group(1).splitlines()] == [f"`{k}`" for k in keys]


@pytest.mark.parametrize("page", PAGES, ids=db.page_id)
def test_each_file_block_of_a_page_is_named_once(page):
    names = Counter(b.file for b in db.blocks(page) if b.file)
    assert not [n for n, c in names.items() if c > 1], names


def _yaml_cases() -> list[db.Block]:
    return [b for b in db.all_blocks() if b.lang == "yaml" and not b.not_run]


@pytest.mark.parametrize("block", _yaml_cases(), ids=lambda b: b.where)
def test_every_compose_file_in_the_docs_passes_check_and_render(block, tmp_path):
    # a page's directory as the e2e test builds it: every file block written (so the project name
    # is the one the docs' commands get: the directory's)
    directory = tmp_path / "page"
    directory.mkdir()
    db.write_files(block.page, directory)
    path = directory / (block.file or "compose.yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(block.text)
    swarm = block.page.name == "swarm.md"
    target = ["--swarm", "-f", str(path)] if swarm else [str(path)]
    r = luma("check", *target, cwd=directory)
    assert r.returncode == block.exit, f"{block.where}: check exited {r.returncode}:\n{r.stdout}{r.stderr}"
    if block.exit == 0:
        r = luma("render", *(["--swarm"] if swarm else []), "-f", str(path), cwd=directory)
        assert r.returncode == 0, f"{block.where}: render exited {r.returncode}:\n{r.stderr}"
    else:
        assert "error:" in r.stdout + r.stderr


# -- links ----------------------------------------------------------------------------------------

_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    out, fenced = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            out.add(_slug(line.lstrip("#")))
    return out


@pytest.mark.parametrize("page", PAGES, ids=db.page_id)
def test_every_local_link_resolves(page):
    bad = []
    for target in _LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto: not ours to check here
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            bad.append(f"{target}: no heading #{anchor} in {dest.relative_to(REPO)}")
    assert not bad, f"{db.page_id(page)}:\n" + "\n".join(bad)


def test_every_docs_page_is_linked_from_the_readme():
    readme = (REPO / "README.md").read_text()
    missing = [p.name for p in (REPO / "docs").glob("*.md") if f"(docs/{p.name})" not in readme]
    assert not missing, missing


# -- commands and options -------------------------------------------------------------------------

GLOBAL_WITH_VALUE = {"-H", "--host", "-c", "--context"}


def _command_lines() -> list[tuple[str, str]]:
    """(where, text after `luma-compose`) of every invocation in a block or an inline code span."""
    out = []
    for page in PAGES:
        text = page.read_text()
        for b in db.blocks(page):
            if b.lang not in ("sh", "text") or (b.exit == 2 and not b.not_run):
                continue  # exit 2 is a usage error on purpose (the e2e test runs it)
            joined: list[str] = []
            for line in b.text.splitlines():
                line = re.sub(r"\s+#.*$", "", line)
                if b.lang == "text" and line[:1].isspace() and joined:
                    joined[-1] += " " + line.strip()  # a synopsis' continuation line
                else:
                    joined.append(line)
            for line in joined:
                for m in re.finditer(r"(?:^|[\s(`])luma-compose\s+(.*)$", line):
                    out.append((b.where, re.split(r"\s\|\s|;|&&|\)|`|\s#", m.group(1))[0]))
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        for m in re.finditer(r"`luma-compose\s+([^`]*)`", prose):
            out.append((db.page_id(page), re.split(r"\s\|\s|;|&&|\)|\s#", m.group(1))[0]))
    return out


@functools.lru_cache(maxsize=None)
def _help(path: tuple[str, ...]) -> tuple[set[str], set[str]] | None:
    """(subcommands, options) of `luma-compose PATH --help`, None when PATH is no command."""
    r = luma(*path, "--help")
    if r.returncode != 0:
        return None
    subs, opts, section = set(), set(), ""
    for line in r.stdout.splitlines():
        if re.match(r"^[A-Z][a-z]+:\s*$", line):
            section = line.strip()
            continue
        if section == "Commands:":
            m = re.match(r"^\s{2}(\S+)", line)
            if m:
                subs.add(m.group(1))
        elif section == "Options:":
            head = re.match(r"^\s{2}(-.*?)(?:\s{2,}|$)", line)
            if head:
                opts.update(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", head.group(1)))
    return subs, opts


def _invocation(words: list[str]) -> tuple[tuple[str, ...], list[str], list[str]]:
    """(command path, options used, problems) of the words after `luma-compose`."""
    path: list[str] = []
    problems: list[str] = []
    i = 0
    while i < len(words) and words[i] in GLOBAL_WITH_VALUE:
        i += 2
    while i < len(words):
        info = _help(tuple(path))
        if info is None:
            problems.append(f"`luma-compose {' '.join(path)}` is no command")
            return tuple(path), [], problems
        subs, _ = info
        if not subs or not re.match(r"^[a-z][a-z-]*$", words[i]):
            break
        if words[i] not in subs:
            problems.append(f"`luma-compose {' '.join(path + [words[i]])}`: no command {words[i]!r}")
            return tuple(path), [], problems
        path.append(words[i])
        i += 1
    options = []
    for w in words[i:]:
        for part in w.strip("[]").split("|"):
            part = part.strip("[].")
            if re.match(r"^--?[A-Za-z]", part):
                options.append(part.split("=", 1)[0])
    return tuple(path), options, problems


def _invocations() -> dict[tuple[str, ...], dict[str, list[str]]]:
    """command path -> option -> where the docs use it."""
    out: dict[tuple[str, ...], dict[str, list[str]]] = {}
    for where, rest in _command_lines():
        try:
            words = shlex.split(rest.replace("'", "").replace('"', ""))
        except ValueError:
            words = rest.split()
        path, options, _ = _invocation(words)
        entry = out.setdefault(path, {})
        for o in options or ["--help"]:
            entry.setdefault(o, []).append(where)
    return out


def _option_cases():
    cases = []
    for path, options in sorted(_invocations().items()):
        for opt, wheres in sorted(options.items()):
            cases.append(pytest.param(path, opt, wheres, id=" ".join([*path, opt])))
    return cases


def test_the_docs_name_commands_at_all():
    paths = set(_invocations())
    assert {("render",), ("check",), ("deploy",), ("down",), ("routes",), ("proxy", "up")} <= paths, paths


@pytest.mark.parametrize("path, option, wheres", _option_cases())
def test_every_command_and_option_the_docs_name_exists(path, option, wheres):
    info = _help(path)
    assert info is not None, f"`luma-compose {' '.join(path)}` is no command (used at {wheres[:3]})"
    _, opts = info
    assert option in opts | {"--help", "-h"}, (
        f"`luma-compose {' '.join(path)}` has no option {option} (used at {wheres[:3]}); it has {sorted(opts)}")


def test_no_docs_line_names_a_command_that_does_not_exist():
    problems = []
    for where, rest in _command_lines():
        words = rest.split()
        _, _, p = _invocation(words)
        problems += [f"{where}: {x}" for x in p]
    assert not problems, "\n".join(sorted(set(problems)))
