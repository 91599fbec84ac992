"""The pre-commit hooks, run by the real `pre-commit` tool on a throwaway git repository.

pre-commit clones this repository at its current commit and installs it into a
hook environment from PyPI, exactly as a user's pre-commit would.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import sys

import pytest

PRE_COMMIT = shutil.which("pre-commit") or os.path.join(os.path.dirname(sys.executable), "pre-commit")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOOD = """\
services:
  web:
    image: example/web:1
    x-luma:
      hosts: [app.example.com]
      port: 3000
"""
BAD = GOOD.replace("hosts:", "hots:")


def git(*args: str, cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t.invalid",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t.invalid"})


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    if not os.access(PRE_COMMIT, os.X_OK):
        pytest.fail("pre-commit is not installed (it is a test extra: pip install -e '.[test]')")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    shown = subprocess.run(["git", "show", f"{head}:.pre-commit-hooks.yaml"], cwd=ROOT, capture_output=True)
    assert shown.returncode == 0, "commit .pre-commit-hooks.yaml first: pre-commit uses the committed hooks"
    d = tmp_path_factory.mktemp("hooked")
    os.environ.setdefault("PRE_COMMIT_HOME", str(tmp_path_factory.mktemp("pre-commit-home")))
    git("init", "-q", "-b", "main", cwd=str(d))
    (d / ".pre-commit-config.yaml").write_text(f"""\
repos:
  - repo: {ROOT}
    rev: {head}
    hooks:
      - id: luma-compose-check
      - id: luma-compose-render
        args: [-f, compose.yaml, -p, hooked, -o, compose.rendered.yaml]
""")
    r = subprocess.run([PRE_COMMIT, "install"], cwd=str(d), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return d


def commit(d, message: str) -> subprocess.CompletedProcess:
    git("add", "-A", cwd=str(d))
    return git("commit", "-m", message, cwd=str(d))


def test_clean_commit_passes_and_rendered_file_is_made(repo):
    (repo / "compose.yaml").write_text(GOOD)
    first = commit(repo, "add compose")  # the render hook writes the rendered file and fails once
    assert first.returncode != 0 and "compose.rendered.yaml was out of date" in first.stdout + first.stderr
    assert "luma.target: hooked-web:3000" in (repo / "compose.rendered.yaml").read_text()
    second = commit(repo, "add compose and its rendered file")
    assert second.returncode == 0, second.stdout + second.stderr


def test_bad_xluma_is_rejected_with_file_line(repo):
    (repo / "compose.yaml").write_text(BAD)
    r = commit(repo, "typo")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "compose.yaml:5:7:" in out and "did you mean 'hosts'" in out
    git("checkout", "--", "compose.yaml", cwd=str(repo))
    git("reset", "-q", cwd=str(repo))


def test_stale_rendered_file_is_caught(repo):
    (repo / "compose.yaml").write_text(GOOD.replace("3000", "4000"))
    r = commit(repo, "port change without re-render")
    assert r.returncode != 0 and "compose.rendered.yaml was out of date" in r.stdout + r.stderr
    assert "hooked-web:4000" in (repo / "compose.rendered.yaml").read_text()
    assert commit(repo, "with the re-rendered file").returncode == 0
