"""How render finds its input, judged against Compose itself (issue 9, item 3): `.env` values, the
project name, COMPOSE_FILE and the default file lookup with its override file."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from support.compose_oracle import compose_argv, compose_model
from luma_compose import api
from luma_compose.compose import inputs

# (line of .env, the variable it sets)
ENV_CASES = [
    ("A=inline # comment", "A"),
    ('B="quoted # not a comment"', "B"),
    ("C='single $X ${A}'", "C"),
    ("export D=exported", "D"),
    ('E=with"quote', "E"),
    ('F="multi\nline"', "F"),
    ("G=${A}-x", "G"),
    ("H=a#b", "H"),
    ("I=  spaced  ", "I"),
    ('J="esc\\nnl"', "J"),
    ("K='esc\\nnl'", "K"),
    ("L=${UNSET_X:-dflt}", "L"),
    ("M=", "M"),
    ('O="dq ${A}"', "O"),
    ("Q=`bt`", "Q"),
    ('S="a\\"b"', "S"),
    ("T=a=b=c", "T"),
    (" U = padded ", "U"),
    ("V=#notcomment", "V"),
    ('W="x" # c', "W"),
    ("COMPOSE_PROJECT_NAME=fromdotenv", "COMPOSE_PROJECT_NAME"),
]


def test_dotenv_values_equal_composes(tmp_path):
    (tmp_path / ".env").write_text("\n".join(line for line, _ in ENV_CASES) + "\n")
    names = [name for _, name in ENV_CASES]
    env_lines = "".join(f"      {n}: ${{{n}-UNSET}}\n" for n in names)
    text = "services:\n  s:\n    image: x\n    environment:\n" + env_lines
    rc, model = compose_model(text, str(tmp_path))
    assert rc == 0, model
    theirs = {k: v.replace("$$", "$") for k, v in model["services"]["s"]["environment"].items()}
    ours = inputs.env_file(str(tmp_path), {})
    assert {n: ours.get(n, "UNSET") for n in names} == theirs


def render_in(path, files=(), environ=None, project=None):
    old = os.getcwd()
    os.chdir(path)
    try:
        return api.render(list(files), project, None, None, environ or {})
    finally:
        os.chdir(old)


def test_compose_project_name_in_dotenv_names_the_project(tmp_path):
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: a\n"
                                           "    x-luma: {hosts: a.example.com, port: 80}\n")
    (tmp_path / ".env").write_text("COMPOSE_PROJECT_NAME=stack1\n")
    r = render_in(tmp_path)
    assert r.ok and r.project == "stack1"
    _, model = compose_model("", str(tmp_path), files=["compose.yaml"])
    assert model["name"] == r.project
    assert "luma.network: stack1_luma" in r.text
    # the environment wins over .env, as in Compose
    assert render_in(tmp_path, environ={"COMPOSE_PROJECT_NAME": "envwins"}).project == "envwins"


def test_default_lookup_reads_the_override_file_too(tmp_path):
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: a\n  db:\n    image: pg\n")
    (tmp_path / "compose.override.yaml").write_text(
        "services:\n  web:\n    x-luma: {hosts: a.example.com, port: 80}\n    environment: {SECRET: s}\n")
    assert inputs.find_files([], str(tmp_path), {}) == [str(tmp_path / "compose.yaml"),
                                                       str(tmp_path / "compose.override.yaml")]
    r = render_in(tmp_path, project="ov")
    assert r.ok, r.problems
    assert [x.service for x in r.routes] == ["web"]
    assert "SECRET" in r.text


@pytest.mark.parametrize("main,override", [("docker-compose.yml", "docker-compose.override.yml"),
                                           ("compose.yml", "compose.override.yaml")])
def test_default_lookup_pairs_as_compose_does(tmp_path, main, override):
    (tmp_path / main).write_text("services:\n  web:\n    image: a\n")
    (tmp_path / override).write_text("services:\n  web:\n    image: b\n")
    assert [os.path.basename(f) for f in inputs.find_files([], str(tmp_path), {})] == [main, override]
    p = subprocess.run([*compose_argv(), "config", "--format", "json"], cwd=tmp_path, capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")})
    assert json.loads(p.stdout)["services"]["web"]["image"] == "b"  # Compose reads the override too


def test_compose_file_comes_from_environ_and_dotenv_not_os_environ(tmp_path, monkeypatch):
    (tmp_path / "a.yaml").write_text("services:\n  a:\n    image: a\n")
    (tmp_path / "b.yaml").write_text("services:\n  b:\n    image: b\n")
    monkeypatch.setenv("COMPOSE_FILE", "a.yaml")
    r = render_in(tmp_path, environ={"COMPOSE_FILE": "b.yaml"}, project="x")
    assert r.ok and "  b:" in r.text and "  a:" not in r.text
    (tmp_path / ".env").write_text("COMPOSE_FILE=a.yaml|b.yaml\nCOMPOSE_PATH_SEPARATOR=|\n")
    assert inputs.find_files([], str(tmp_path), {}) == ["a.yaml", "b.yaml"]


def test_an_interpolated_name_uses_dotenv(tmp_path):
    (tmp_path / "compose.yaml").write_text("name: ${STACK:-app}\nservices:\n  web:\n    image: a\n")
    (tmp_path / ".env").write_text("STACK=Blue # the colour\n")
    r = render_in(tmp_path)
    assert r.ok and r.project == "blue" and r.text.startswith("name: blue\n")
    _, model = compose_model("", str(tmp_path), files=["compose.yaml"])
    assert model["name"] == "blue"


def test_compose_profiles_from_dotenv_start_the_same_services_from_the_output(tmp_path):
    """COMPOSE_PROFILES (in .env) is Compose's to apply at `up`: render keeps every profile's services, and
    Compose, reading the rendered file with the same .env, selects exactly the services it selects from the input."""
    text = ("services:\n  web:\n    image: nginx\n    x-luma: {hosts: a.example.com, port: 80}\n"
            "  dbg:\n    image: busybox\n    profiles: [debug]\n"
            "  tool:\n    image: busybox\n    profiles: [other]\n    x-luma: {hosts: t.example.com, port: 80}\n")
    (tmp_path / "compose.yaml").write_text(text)
    (tmp_path / ".env").write_text("COMPOSE_PROFILES=debug\n")
    r = api.render([str(tmp_path / "compose.yaml")])
    assert r.ok, [p.message for p in r.problems]
    from ruamel.yaml import YAML

    assert set(YAML(typ="safe").load(r.text)["services"]) == {"web", "dbg", "tool"}

    def started(src: str) -> list[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
        p = subprocess.run([*compose_argv(), "--project-directory", str(tmp_path), "-f", "-", "config", "--services"],
                           input=src, capture_output=True, text=True, cwd=tmp_path, timeout=60, env=base)
        assert p.returncode == 0, p.stderr
        return sorted(p.stdout.split())

    assert started(text) == started(r.text) == ["dbg", "web"]
