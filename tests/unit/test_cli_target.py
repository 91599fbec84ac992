"""`--target swarm` / `--swarm` on render, check, deploy and down: each spelling does the same, and an option
for the other target is a usage error.

Every comparison is against another spelling, never against text this code printed. No Docker engine is
used: DOCKER_HOST points at a socket that does not exist (a command that wrongly reached an engine exits 3,
not the 0/1/2 asserted here), and deploy/down are checked with their engine-side functions recorded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from luma_compose.cli.fast import parse
from luma_compose.cli.main import main

NO_ENGINE = "unix:///nonexistent/luma-compose-test.sock"

# a routed service with `build` (Swarm ignores it: a warning) and a plain one
GOOD = """\
name: shop
services:
  web:
    image: example/web:1
    build: .
    x-luma: {hosts: [shop.test], port: 3000}
  worker:
    image: example/worker:1
"""
# `depends_on` with a condition: `docker stack deploy` rejects it (an error), plain compose takes it
BAD = """\
name: shop
services:
  web:
    image: example/web:1
    x-luma: {hosts: [shop.test], port: 3000}
  worker:
    image: example/worker:1
    depends_on:
      web: {condition: service_healthy}
"""

SWARM = [["--swarm"], ["--target", "swarm"], ["--target=swarm"]]


def luma(*args: str, cwd: str, env: dict | None = None):
    """The installed console script, as tests/unit/test_cli.py runs it (so the fast path is in the way)."""
    exe = shutil.which("luma-compose") or os.path.join(os.path.dirname(sys.executable), "luma-compose")
    r = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "DOCKER_HOST": NO_ENGINE, **(env or {})})
    return r.returncode, r.stdout, r.stderr


@pytest.fixture
def files(tmp_path):
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    return tmp_path


def run(*args: str):
    """In-process, for the cases that record what deploy/down would do."""
    r = CliRunner().invoke(main, list(args), env={"DOCKER_HOST": NO_ENGINE})
    return r.exit_code, r.stdout, r.stderr


# ---------------------------------------------------------------- render and check: same bytes, every spelling


@pytest.mark.parametrize("spelling", SWARM, ids=" ".join)
def test_render_swarm_spellings_agree(files, spelling):
    ref = luma("render", "--target", "swarm", "-f", "good.yaml", cwd=str(files))
    assert ref[0] == 0 and ref[1]
    assert luma("render", *spelling, "-f", "good.yaml", cwd=str(files)) == ref
    assert luma("render", "-f", "good.yaml", *spelling, cwd=str(files)) == ref  # anywhere on the line
    assert luma("render", "-f", "good.yaml", cwd=str(files))[1] != ref[1]  # the compose render is another file
    assert "driver: overlay" in ref[1] and "deploy:" in ref[1]  # the stack file
    # -p and -o too
    ref = luma("render", "--target", "swarm", "-f", "good.yaml", "-p", "other", "-o", "a.yaml", cwd=str(files))
    assert luma("render", *spelling, "-f", "good.yaml", "-p", "other", "-o", "b.yaml", cwd=str(files)) == ref
    assert (files / "a.yaml").read_bytes() == (files / "b.yaml").read_bytes()


@pytest.mark.parametrize("spelling", SWARM, ids=" ".join)
def test_render_swarm_refuses_the_same_way_every_spelling(files, spelling):
    ref = luma("render", "--target", "swarm", "-f", "bad.yaml", cwd=str(files))
    assert ref[0] == 1 and ref[1] == ""
    assert luma("render", *spelling, "-f", "bad.yaml", cwd=str(files)) == ref


@pytest.mark.parametrize("spelling", SWARM, ids=" ".join)
@pytest.mark.parametrize("name", ["good.yaml", "bad.yaml"])
def test_check_swarm_spellings_agree(files, spelling, name):
    ref = luma("check", "--target", "swarm", "-f", name, cwd=str(files))
    assert luma("check", *spelling, "-f", name, cwd=str(files)) == ref
    assert luma("check", "-f", name, cwd=str(files)) != ref  # the compose check says something else


def test_the_swarm_check_cases_are_what_they_claim(files):
    """The fixtures above exercise a Swarm warning and a Swarm error that the compose check does not report."""
    code, _, err = luma("check", "--swarm", "-f", "good.yaml", cwd=str(files))
    assert code == 0 and "warning" in err and "`build`" in err
    code, _, err = luma("check", "--swarm", "-f", "bad.yaml", cwd=str(files))
    assert code == 1 and "error" in err and "depends_on" in err and "rejected" in err
    assert luma("check", "bad.yaml", cwd=str(files))[0] == 0


# ---------------------------------------------------------------- --target compose is the default


@pytest.mark.parametrize("args", [
    ["render", "-f", "good.yaml"],
    ["render", "-f", "good.yaml", "--diff"],
    ["check", "good.yaml", "bad.yaml"],
    ["check", "-f", "good.yaml", "--format", "json"],
])
@pytest.mark.parametrize("fastpath", [True, False], ids=["fast", "click"])
def test_target_compose_is_the_default(files, args, fastpath):
    env = {} if fastpath else {"LUMA_NO_FASTPATH": "1"}
    ref = luma(*args, cwd=str(files), env=env)
    assert ref[0] == 0
    assert luma(*args, "--target", "compose", cwd=str(files), env=env) == ref
    assert luma(args[0], "--target=compose", *args[1:], cwd=str(files), env=env) == ref


def test_the_fast_path_runs_only_the_compose_target():
    plain = parse(["render", "-f", "x.yaml"])
    assert plain is not None
    assert parse(["render", "--target", "compose", "-f", "x.yaml"]) == plain
    assert parse(["render", "-f", "x.yaml", "--target=compose"]) == plain
    assert parse(["render", "--target", "swarm", "--target", "compose", "-f", "x.yaml"]) == plain  # click: last wins
    for argv in (["render", "--swarm", "-f", "x.yaml"], ["render", "--target", "swarm", "-f", "x.yaml"],
                 ["render", "--target=swarm"], ["check", "--swarm", "x.yaml"], ["check", "--target", "swarm"],
                 ["render", "--target"], ["render", "--target", "Swarm"], ["check", "--target", "bogus", "x.yaml"]):
        assert parse(argv) is None, argv


# ---------------------------------------------------------------- an option for the other target: exit 2


CONFLICTS = [
    (["render", "--swarm", "--check", "-o", "out.yaml"], "--check"),
    (["render", "--target", "swarm", "--diff"], "--diff"),
    (["render", "--swarm", "--fail-if-changed", "-o", "out.yaml"], "--fail-if-changed"),
    (["render", "--swarm", "--target", "compose"], "--target compose"),
    (["check", "--swarm", "--format", "json"], "--format"),
    (["check", "--swarm", "--format", "text"], "--format"),
    (["deploy", "--swarm", "--drain", "10"], "--drain"),  # the default value, given: still refused
    (["deploy", "--swarm", "--format", "json"], "--format"),
    (["deploy", "--swarm", "--proxy-tls", "off"], "--proxy-tls"),
    (["deploy", "--swarm", "--proxy-https-port", "443"], "--proxy-https-port"),
    (["deploy", "--swarm", "--proxy-select", "a=b"], "--proxy-select"),
    (["deploy", "--swarm", "--proxy-http-port", "127.0.0.1:8080"], "--proxy-http-port"),
    (["deploy", "--resolve-image", "never"], "--resolve-image"),
    (["deploy", "--target", "compose", "--proxy-nodes", "label=edge=true"], "--proxy-nodes"),
    (["deploy", "--dry-run", "--proxy-nodes", "all"], "--proxy-nodes"),
    (["down", "--swarm", "-v"], "--volumes"),
    (["down", "--target", "swarm", "--volumes", "-p", "shop"], "--volumes"),
]


@pytest.mark.parametrize("args, option", CONFLICTS, ids=lambda a: " ".join(a) if isinstance(a, list) else a)
def test_an_option_for_the_other_target_is_a_usage_error(files, monkeypatch, args, option):
    monkeypatch.chdir(files)
    code, out, err = run(*args, "-f", "good.yaml")
    assert code == 2, err
    assert out == "" and option in err and "hint:" in err and "Traceback" not in err
    assert not (files / "out.yaml").exists()


def test_check_swarm_takes_files_with_f_not_paths(files):
    (files / "compose.yaml").write_text(GOOD)  # what a check ignoring the PATH would check instead
    code, out, err = luma("check", "--swarm", "bad.yaml", cwd=str(files))
    assert code == 2 and out == "" and "PATH" in err and "-f" in err and "hint:" in err


# ---------------------------------------------------------------- deploy and down: the same calls, every spelling


@pytest.fixture
def recorded(monkeypatch):
    """What the swarm deploy and down would do on the engine, instead of doing it."""
    from luma_compose.swarm import deploy as sd

    calls = []

    def deploy(engine, project, stack_text, routed, log, **kw):
        log("(recorded)")
        calls.append(("deploy", engine.endpoint.describe(), project, stack_text, routed, kw))
        return sd.StackResult(project, urls=[f"http://{h}/" for r in routed for h in r.hosts])

    def down(engine, project, proxy_name="luma-proxy", log=None, **kw):
        log("(recorded)")
        calls.append(("down", engine.endpoint.describe(), project, proxy_name, kw))

    monkeypatch.setattr(sd, "deploy", deploy)
    monkeypatch.setattr(sd, "down", down)
    return calls


DEPLOY_OPTIONS = [
    [],
    ["-p", "other", "--timeout", "30", "--resolve-image", "never", "--proxy-name", "edge", "--proxy-image", "img:1",
     "--proxy-http-port", "8080", "--proxy-nodes", "label=edge=true", "--maintenance"],
]


@pytest.mark.parametrize("spelling", SWARM, ids=" ".join)
@pytest.mark.parametrize("options", DEPLOY_OPTIONS, ids=["defaults", "every-option"])
def test_deploy_swarm_spellings_agree(files, monkeypatch, recorded, spelling, options):
    monkeypatch.chdir(files)
    ref = run("deploy", "--target", "swarm", "-f", "good.yaml", *options)
    assert ref[0] == 0 and len(recorded) == 1
    assert run("deploy", *spelling, "-f", "good.yaml", *options) == ref
    assert len(recorded) == 2 and recorded[1] == recorded[0]
    assert run("deploy", *spelling, "-f", "bad.yaml", *options) == run("deploy", "--target", "swarm", "-f", "bad.yaml", *options)
    assert len(recorded) == 2  # refused before the engine, both ways


def test_deploy_swarm_forwards_every_option(files, monkeypatch, recorded):
    """Both spellings could drop an option alike: the options reach the swarm deploy."""
    monkeypatch.chdir(files)
    assert run("deploy", "--swarm", "-f", "good.yaml", *DEPLOY_OPTIONS[1])[0] == 0
    assert run("deploy", "--swarm", "-f", "good.yaml")[0] == 0
    (_, _, project, _, _, kw), (_, _, default_project, _, _, default_kw) = recorded
    assert (project, default_project) == ("other", "shop")
    assert kw == {"timeout": 30, "resolve_image": "never", "proxy_name": "edge", "proxy_image": "img:1",
                  "proxy_http_port": 8080, "proxy_nodes": "label=edge=true", "maintenance": True}
    assert all(kw[k] != default_kw[k] for k in kw)


def test_swarm_commands_use_the_global_host(files, monkeypatch, recorded):
    monkeypatch.chdir(files)
    assert run("-H", "unix:///nonexistent/other.sock", "deploy", "--swarm", "-f", "good.yaml")[0] == 0
    assert run("-H", "unix:///nonexistent/other.sock", "down", "--swarm", "-p", "shop")[0] == 0
    assert [c[1] for c in recorded] == ["unix:///nonexistent/other.sock (from --host)"] * 2


@pytest.mark.parametrize("spelling", SWARM, ids=" ".join)
def test_down_swarm_finds_the_project_as_down_does(files, monkeypatch, recorded, spelling):
    monkeypatch.chdir(files)
    ref = run("down", "--target", "swarm", "-p", "shop")  # `name: shop` in the file
    assert ref[0] == 0
    assert run("down", *spelling, "-f", "good.yaml") == ref
    assert run("down", *spelling, "-f", "good.yaml", "-p", "shop") == ref
    (files / "compose.yaml").write_text(GOOD)
    assert run("down", *spelling) == ref  # the compose file found as render finds it
    assert len(set(map(repr, recorded))) == 1 and len(recorded) == 4
    ref = run("down", "--target", "swarm", "-p", "other", "--proxy-name", "edge")
    assert run("down", *spelling, "-p", "other", "--proxy-name", "edge") == ref
    assert recorded[-1] == recorded[-2] and recorded[-1][2:4] == ("other", "edge")


def test_down_swarm_with_no_file_needs_p(tmp_path, monkeypatch, recorded):
    empty = tmp_path.parent / (tmp_path.name + "-empty")  # Compose looks in the parent directories too
    empty.mkdir()
    monkeypatch.chdir(empty)
    ref = run("down", "--target", "swarm", "-p", "gone")
    assert run("down", "--swarm", "-p", "gone") == ref and ref[0] == 0
    code, out, err = run("down", "--swarm")
    assert code == 2 and "no compose file found" in err and len(recorded) == 2


def test_down_swarm_from_a_broken_file_needs_p(files, monkeypatch, recorded):
    monkeypatch.chdir(files)
    (files / "broken.yaml").write_text("services:\n  web:\n    image: x\n    x-luma: {hots: a.test, port: 80}\n")
    code, _, err = run("down", "--swarm", "-f", "broken.yaml")
    assert code == 1 and "-p NAME" in err and recorded == []
    assert run("down", "--swarm", "-f", "broken.yaml", "-p", "shop") == run("down", "--target", "swarm", "-p", "shop")


# ---------------------------------------------------------------- deploy and down: --target compose is the default


def test_deploy_and_down_target_compose_is_the_default(files, monkeypatch):
    from luma_compose.cli import deploy as cli_deploy
    from luma_compose.deploy import teardown

    calls = []
    monkeypatch.chdir(files)
    monkeypatch.setattr(cli_deploy, "_dry_run", lambda *a: calls.append(("dry-run", a)) or 4)
    monkeypatch.setattr(cli_deploy, "docker_engine", lambda: "engine")
    monkeypatch.setattr(teardown, "down", lambda *a, **kw: calls.append(("down", a[:-1])) or [])  # not the Progress
    for args in (["deploy", "--dry-run", "-f", "good.yaml", "--format", "json", "--proxy-name", "p"],
                 ["down", "-f", "good.yaml", "-v", "--proxy-name", "p"], ["down", "-p", "x"]):
        ref = run(*args)
        assert run(*args, "--target", "compose") == ref
        assert calls[-1] == calls[-2]
    assert [c[0] for c in calls] == ["dry-run", "dry-run", "down", "down", "down", "down"]
