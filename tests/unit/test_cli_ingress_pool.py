"""`deploy --ingress-pool` and `$LUMA_INGRESS_POOL`: read before anything touches an engine; a bad value is a
usage error (exit 2) naming where it came from. DOCKER_HOST points at a socket that does not exist: a command
that got past the option reaches for the engine and exits 3."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

NO_ENGINE = "unix:///nonexistent/luma-compose-test.sock"
FILE = "name: shop\nservices:\n  web:\n    image: example/web:1\n    x-luma: {hosts: [shop.test], port: 3000}\n"


def luma(*args: str, cwd, env: dict | None = None):
    exe = shutil.which("luma-compose") or os.path.join(os.path.dirname(sys.executable), "luma-compose")
    base = {k: v for k, v in os.environ.items() if k != "LUMA_INGRESS_POOL"}
    r = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                       env={**base, "DOCKER_HOST": NO_ENGINE, **(env or {})})
    return r.returncode, r.stderr


@pytest.fixture
def cwd(tmp_path):
    (tmp_path / "compose.yaml").write_text(FILE)
    return tmp_path


@pytest.mark.parametrize("value, says", [("junk", "'junk' does not appear to be"),
                                         ("base=10.0.0.0/8,size=31", "size must be between")])
def test_a_bad_option_is_a_usage_error_before_any_engine(cwd, value, says):
    rc, err = luma("deploy", "--ingress-pool", value, cwd=cwd)
    assert rc == 2 and f"--ingress-pool {value!r}" in err and says in err, err


def test_a_bad_environment_variable_is_named_as_such(cwd):
    rc, err = luma("deploy", cwd=cwd, env={"LUMA_INGRESS_POOL": "10.0.0.0/33"})
    assert rc == 2 and "$LUMA_INGRESS_POOL '10.0.0.0/33'" in err, err


@pytest.mark.parametrize("env", [{}, {"LUMA_INGRESS_POOL": "base=10.9.0.0/24,size=27"}])
def test_a_good_value_gets_as_far_as_the_engine(cwd, env):
    rc, err = luma("deploy", *([] if env else ["--ingress-pool", "10.9.0.0/24"]), cwd=cwd, env=env)
    assert rc == 3 and "ingress" not in err.lower(), err


def test_the_option_is_for_compose_only_and_the_variable_does_not_stop_a_swarm_deploy(cwd):
    rc, err = luma("deploy", "--swarm", "--ingress-pool", "10.9.0.0/24", cwd=cwd)
    assert rc == 2 and "does not take --ingress-pool" in err, err
    rc, err = luma("deploy", "--swarm", cwd=cwd, env={"LUMA_INGRESS_POOL": "junk"})
    assert rc != 2 and "LUMA_INGRESS_POOL" not in err, err
