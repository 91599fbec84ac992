"""The CLI as a user runs it: a real subprocess of the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import jsonschema
import pytest

from luma_compose.compose import schemas

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "gmail", "compose.yaml")
BAD = "services:\n  web:\n    image: x\n    x-luma:\n      hots: a.example.com\n      port: 80\n"


def luma(*args: str, cwd: str | None = None, stdin: str | None = None, env: dict | None = None):
    exe = shutil.which("luma-compose") or os.path.join(os.path.dirname(sys.executable), "luma-compose")
    return subprocess.run([exe, *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_version_and_help():
    r = luma("--version")
    assert r.returncode == 0 and "luma-compose" in r.stdout
    assert luma("--help").returncode == 0


def test_render_example_from_another_directory(tmp_path):
    r = luma("render", "-f", EXAMPLE, cwd=str(tmp_path))
    assert r.returncode == 0 and r.stderr == ""
    assert "name: gmail\n" in r.stdout  # the example's directory names the project
    assert "luma.target: gmail-web:3000" in r.stdout


def test_bad_input_exits_1_with_location_and_nothing_on_stdout(tmp_path):
    f = tmp_path / "compose.yaml"
    f.write_text(BAD)
    r = luma("render", "-f", str(f))
    assert r.returncode == 1 and r.stdout == ""
    assert f"{f}:5:7: error:" in r.stderr and "did you mean 'hosts'" in r.stderr
    assert "Traceback" not in r.stderr


def test_usage_errors_exit_2():
    assert luma("render", "--bogus").returncode == 2
    r = luma("render", "-f", "/no/such/file.yaml")
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    r = luma("render", "-f", EXAMPLE, "-p", "Bad Name")
    assert r.returncode == 2 and "invalid project name" in r.stderr
    assert luma("render", "--check").returncode == 2


def test_stdin_and_default_file_lookup(tmp_path):
    text = open(EXAMPLE).read()
    r = luma("render", "-f", "-", "-p", "viastdin", stdin=text, cwd=str(tmp_path))
    assert r.returncode == 0 and "luma.project: viastdin" in r.stdout
    (tmp_path / "compose.yaml").write_text(text)
    r = luma("render", cwd=str(tmp_path))
    assert r.returncode == 0 and f"name: {tmp_path.name.lower()}" in r.stdout.replace("_", "_")
    sub = tmp_path / "sub"
    sub.mkdir()  # Compose looks in the parent directories too
    r = luma("render", cwd=str(sub))
    assert r.returncode == 0 and f"name: {tmp_path.name.lower()}" in r.stdout
    empty = tmp_path.parent / (tmp_path.name + "-empty")
    empty.mkdir()
    r = luma("render", cwd=str(empty))
    assert r.returncode == 2 and "no compose file found" in r.stderr


def test_output_file_check_and_fail_if_changed(tmp_path):
    out = tmp_path / "rendered.yaml"
    r = luma("render", "-f", EXAMPLE, "--check", "-o", str(out))
    assert r.returncode == 1 and not out.exists() and r.stdout.startswith("---")
    assert luma("render", "-f", EXAMPLE, "-o", str(out)).returncode == 0
    rendered = out.read_text()
    assert luma("render", "-f", EXAMPLE, "--check", "-o", str(out)).returncode == 0
    out.write_text(rendered.replace("gmail-web:3000", "gmail-web:9999"))
    r = luma("render", "-f", EXAMPLE, "--check", "-o", str(out))
    assert r.returncode == 1 and "-      luma.target: gmail-web:9999" in r.stdout
    assert "+      luma.target: gmail-web:3000" in r.stdout
    r = luma("render", "-f", EXAMPLE, "--fail-if-changed", "-o", str(out))
    assert r.returncode == 1 and out.read_text() == rendered
    assert luma("render", "-f", EXAMPLE, "--fail-if-changed", "-o", str(out)).returncode == 0


def test_render_failure_leaves_output_file_alone(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    out = tmp_path / "out.yaml"
    out.write_text("keep me\n")
    assert luma("render", "-f", str(bad), "-o", str(out)).returncode == 1
    assert out.read_text() == "keep me\n"


def test_diff_shows_only_what_render_adds():
    r = luma("render", "-f", EXAMPLE, "--diff")
    assert r.returncode == 0
    removed = [l for l in r.stdout.splitlines() if l.startswith("-") and not l.startswith("---")]
    added = [l for l in r.stdout.splitlines() if l.startswith("+") and not l.startswith("+++")]
    assert removed == [] and "+name: gmail" in added and "+      luma.managed: \"true\"" in added


def test_check_json_matches_its_published_schema(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    broken = tmp_path / "broken.yaml"
    broken.write_text("services:\n  web: [\n")
    r = luma("check", "--format", "json", EXAMPLE, str(bad), str(broken))
    assert r.returncode == 1
    out = json.loads(r.stdout)
    with open(os.path.join(os.path.dirname(schemas.xluma_schema_path()), "check-output.schema.json")) as fh:
        jsonschema.validate(out, json.load(fh))
    assert [x["ok"] for x in out["results"]] == [True, False, False]
    assert out["problem_count"] == 2
    assert out["results"][1]["problems"][0]["line"] == 5


def test_check_text_is_plain_when_not_a_terminal(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    r = luma("check", str(bad))
    assert r.returncode == 1 and "\x1b[" not in r.stdout + r.stderr
    assert luma("check", EXAMPLE).returncode == 0


def test_yaml_errors_never_trace(tmp_path):
    for text in ["services:\n  web: [\n", "\t- a", "services: {a: {image: x}, a: {image: y}}\n", "", "---\n...\n",
                 "services:\n  web:\n    image: x\n    x-luma: 3\n", "a: *nope\n", "services:\n  w: !!binary 3\n"]:
        f = tmp_path / "c.yaml"
        f.write_text(text)
        r = luma("check", str(f))
        assert r.returncode == 1, text
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, (text, r.stderr)


def test_shell_completion_script():
    r = luma(env={"_LUMA_COMPOSE_COMPLETE": "bash_source"})
    assert r.returncode == 0 and "complete" in r.stdout and "luma-compose" in r.stdout
    r = luma(env={"_LUMA_COMPOSE_COMPLETE": "bash_complete", "COMP_WORDS": "luma-compose ren", "COMP_CWORD": "1"})
    assert "render" in r.stdout


def test_python_api():
    from luma_compose.api import check, render

    result = render([EXAMPLE], project="api")
    assert result.ok and "luma.project: api" in result.text
    assert check([EXAMPLE]) == []
    problems = check(["-"], stdin=__import__("io").StringIO(BAD))
    assert [(p.line, p.col) for p in problems] == [(5, 7)] and "hosts" in problems[0].hint


@pytest.mark.parametrize("cmd", [["render"], ["check"]])
def test_render_and_check_do_not_import_the_docker_sdk(cmd):
    code = ("import sys; from luma_compose.cli.main import main\n"
            f"try:\n    main({cmd + ['-f', EXAMPLE]!r})\nexcept SystemExit:\n    pass\n"
            "print('docker' in sys.modules, 'jsonschema' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip().splitlines()[-1] == "False False", r.stdout + r.stderr


FAST_CASES = [
    ["render", "-f", EXAMPLE],
    ["render", "--file", EXAMPLE, "-p", "other", "--diff"],
    ["render", f"--file={EXAMPLE}", "--project-name=x"],
    ["render", "-f", EXAMPLE, "-p", "Bad Name"],
    ["render", "-f", "/no/such.yaml"],
    ["render", "--check"],
    ["check", EXAMPLE],
    ["check", "-f", EXAMPLE, "--format", "json"],
    ["check", EXAMPLE, "-f", EXAMPLE],
    ["check", "--format", "yaml", EXAMPLE],  # not a choice: the fast path hands it to click
    ["render", "-f"],
    ["render", "--bogus"],
]


@pytest.mark.parametrize("args", FAST_CASES)
def test_fast_path_and_click_agree(args, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    fast = luma(*args, cwd=str(tmp_path))
    slow = luma(*args, cwd=str(tmp_path), env={"LUMA_NO_FASTPATH": "1"})
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, slow.stderr)
    fast = luma(*[a.replace(EXAMPLE, str(bad)) for a in args], cwd=str(tmp_path))
    slow = luma(*[a.replace(EXAMPLE, str(bad)) for a in args], cwd=str(tmp_path), env={"LUMA_NO_FASTPATH": "1"})
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, slow.stderr)


def test_fast_path_does_not_import_click():
    code = ("import sys; from luma_compose.cli import fast as launcher\n"
            f"try:\n    launcher.main(['render', '-f', {EXAMPLE!r}])\nexcept SystemExit as e:\n    rc = e.code\n"
            "print(rc, 'click' in sys.modules, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stderr.strip().splitlines()[-1] == "0 False"
    assert launcher_parse(["render", "-h"]) is None and launcher_parse(["render", "-fX"]) is None


def launcher_parse(argv):
    from luma_compose.cli.fast import parse

    return parse(argv)


def test_render_works_without_a_writable_cache(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory would go")
    r = luma("render", "-f", EXAMPLE, env={"XDG_CACHE_HOME": str(blocker)})
    assert r.returncode == 0 and "luma.target: gmail-web:3000" in r.stdout and r.stderr == ""


def test_gate_cache_is_written_once_and_reused(tmp_path):
    cache = tmp_path / "cache"
    assert luma("check", EXAMPLE, env={"XDG_CACHE_HOME": str(cache)}).returncode == 0
    files = sorted(p.name for p in (cache / "luma-compose").iterdir())
    assert any(f.startswith("gate-compose-") for f in files) and any(f.startswith("gate-xluma-") for f in files)
    stamps = {p.name: p.stat().st_mtime_ns for p in (cache / "luma-compose").iterdir()}
    assert luma("check", EXAMPLE, env={"XDG_CACHE_HOME": str(cache)}).returncode == 0
    assert {p.name: p.stat().st_mtime_ns for p in (cache / "luma-compose").iterdir()} == stamps
