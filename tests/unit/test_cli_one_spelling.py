"""One spelling for each action: `--swarm` (short for `--target swarm`) on every command both targets have,
a bad option exit 2 on both targets, and the options of render/check defined once (spec.py) for the click
CLI and the fast path alike.

No Docker engine is used: DOCKER_HOST points at a socket that does not exist, so a command that wrongly
reached an engine before refusing its options would exit 3, not the 2 asserted here.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from luma_compose.cli import spec
from luma_compose.cli.fast import parse
from luma_compose.cli.main import main

NO_ENGINE = "unix:///nonexistent/luma-compose-test.sock"
GOOD = "name: shop\nservices:\n  web:\n    image: example/web:1\n    x-luma: {hosts: [shop.test], port: 3000}\n"

# every command that exists for both targets
SHARED = [["render"], ["check"], ["deploy"], ["down"], ["routes"], ["proxy", "up"], ["proxy", "sync"],
          ["proxy", "run"], ["proxy", "install"], ["proxy", "down"], ["maintenance", "on"], ["maintenance", "off"]]


def run(*args: str):
    r = CliRunner().invoke(main, list(args), env={"DOCKER_HOST": NO_ENGINE})
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def files(tmp_path, monkeypatch):
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "root.pem").write_text("not a certificate\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("cmd", SHARED, ids=" ".join)
def test_every_shared_command_takes_swarm_and_target(cmd):
    code, out, _ = run(*cmd, "--help")
    assert code == 0 and "--swarm" in out and "--target [compose|swarm]" in out


# A bad option with --swarm, for each shared command: exit 2 with a hint, before any engine is asked (which
# would be exit 3 here, or 1 for the swarm engine's own errors, as it was).
BAD_WITH_SWARM = [
    ["render", "--swarm", "-f", "good.yaml", "-p", "Bad Name"],
    ["render", "--swarm", "-f", "good.yaml", "--diff"],
    ["check", "--swarm", "-f", "missing.yaml"],
    ["check", "--swarm", "-f", "good.yaml", "--format", "json"],
    ["deploy", "--swarm", "-f", "good.yaml", "--proxy-nodes", "edge"],
    ["deploy", "--swarm", "-f", "good.yaml", "--proxy-nodes", "label=edge"],
    ["deploy", "--swarm", "-f", "good.yaml", "--proxy-http-port", "99999"],
    ["deploy", "--swarm", "-f", "good.yaml", "--proxy-name", "bad name"],
    ["deploy", "--swarm", "-f", "good.yaml", "--dry-run", "--format", "json"],
    ["down", "--swarm", "-f", "good.yaml", "--proxy-name", "../x"],
    ["down", "--swarm", "-f", "good.yaml", "--volumes"],
    ["routes", "--swarm", "--name", "bad name"],
    ["proxy", "up", "--swarm", "--nodes", "somewhere"],
    ["proxy", "up", "--swarm", "--tls", "acme"],  # no --storage: each edge would get its own certificates
    ["proxy", "up", "--swarm", "--tls", "acme", "--storage", "not a volume!"],
    ["proxy", "up", "--swarm", "--http-port", "127.0.0.1:8080"],
    ["proxy", "up", "--swarm", "--email", "me@example.com"],  # TLS is off
    ["proxy", "up", "--swarm", "--tls", "internal", "--storage", "/srv/x", "--acme-ca-root", "root.pem"],
    ["proxy", "up", "--swarm", "--volume", "certs"],
    ["proxy", "up", "--swarm", "--select", "a=b"],
    ["proxy", "sync", "--swarm", "--name", "bad name"],
    ["proxy", "run", "--swarm", "--name", "-x"],
    ["proxy", "install", "--swarm", "--name", "bad/name", "--print"],
    ["proxy", "down", "--swarm", "--name", "bad name"],
    ["maintenance", "on", "--swarm", "-p", "shop", "--proxy-name", "bad name"],
    ["maintenance", "off", "--swarm", "-p", "Bad Name"],
]


@pytest.mark.parametrize("args", BAD_WITH_SWARM, ids=" ".join)
def test_a_bad_option_with_swarm_is_a_usage_error(files, args):
    code, out, err = run(*args)
    assert code == 2, err
    assert out == "" and "Traceback" not in err and ("hint:" in err or "Error:" in err)
    assert {" ".join(a[:2]) if a[0] in ("proxy", "maintenance") else a[0] for a in BAD_WITH_SWARM} == {" ".join(c) for c in SHARED}


# An option of one target given to the other: exit 2, naming the option and --swarm.
WRONG_TARGET = [
    (["proxy", "up", "--nodes", "all"], "--nodes"),
    (["proxy", "up", "--storage", "/srv/x"], "--storage"),
    (["proxy", "up", "--target", "compose", "--nodes", "label=a=b"], "--nodes"),
    (["proxy", "run", "--interval", "2"], "--interval"),
    (["proxy", "up", "--swarm", "--volume", "v"], "--volume"),
    (["proxy", "up", "--target", "swarm", "--select", "a=b"], "--select"),
    (["proxy", "sync", "--swarm", "--target", "compose"], "--target compose"),
]


@pytest.mark.parametrize("args, option", WRONG_TARGET, ids=lambda a: " ".join(a) if isinstance(a, list) else a)
def test_an_option_for_the_other_target_names_it_and_swarm(args, option):
    code, out, err = run(*args)
    assert code == 2 and out == "" and option in err and "--swarm" in err and "hint:" in err, err


def test_proxy_status_has_no_swarm_twin():
    for spelling in (["--swarm"], ["--target", "swarm"]):
        code, out, err = run("proxy", "status", *spelling)
        assert code == 2 and out == "" and "--swarm" in err and "routes --swarm" in err, err


def test_the_old_spellings_are_gone():
    code, _, err = run("swarm", "deploy", "-f", "good.yaml")
    assert code == 2 and "deploy --swarm" in err
    assert run("deploy", "--plan", "-f", "good.yaml")[0] == 2  # --dry-run is the one spelling
    assert "--plan" not in run("deploy", "--help")[1]
    code, out, _ = run("--help")
    assert code == 0 and " swarm " not in out


# ---------------------------------------------------------------- render/check options: defined once


@pytest.mark.parametrize("command", sorted(spec.COMMANDS))
def test_the_click_commands_take_exactly_the_spec_options(command):
    cmd = main.get_command(None, command)
    params = {p.name: tuple(p.opts) for p in cmd.params if p.param_type_name == "option"}
    assert params == {o.dest: o.flags for o in spec.COMMANDS[command].options}
    args = [p.name for p in cmd.params if p.param_type_name == "argument"]
    assert args == ([spec.COMMANDS[command].arguments] if spec.COMMANDS[command].arguments else [])


def test_the_fast_path_reads_every_spec_option():
    """Each option of spec.py, in each spelling, reaches the commands the same as click passes it."""
    for name, command in spec.COMMANDS.items():
        for o in command.options:
            for flag in o.flags:
                if o.dest in ("target", "swarm_flag"):
                    continue
                value = "json" if o.choices else "x.yaml"
                argv = [name, flag] if o.kind == "flag" else [name, flag, value]
                parsed = parse(argv)
                assert parsed is not None, argv
                want = True if o.kind == "flag" else ([value] if o.kind == "multiple" else value)
                assert parsed[1][o.dest] == want, argv
                if flag.startswith("--") and o.kind != "flag":
                    assert parse([name, f"{flag}={value}"]) == parsed


def test_the_fast_path_leaves_to_click_what_click_would_refuse(tmp_path):
    (tmp_path / "f").write_text("")
    for argv in (["render", "--project-directory", str(tmp_path / "f")],  # a file where a directory goes
                 ["render", "-o", str(tmp_path)],  # a directory where a file goes
                 ["check", "--format", "yaml"], ["render", "--check=yes"], ["render", "x.yaml"], ["render", "--"]):
        assert parse(argv) is None, argv
