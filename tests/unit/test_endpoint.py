"""Issue 12.1: one engine per command, resolved as the Docker CLI resolves it (pure: files only).

tests/e2e/test_remote_engine.py compares the same cases with the real docker CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from luma_compose.engine.client import DEFAULT_HOST, Endpoint, resolve
from luma_compose.engine.compose_cli import Compose
from luma_compose.errors import UsageError


def make_context(config: Path, name: str, host: str, skip_tls: bool = False, tls: bool = False) -> None:
    sha = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / sha
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps(
        {"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip_tls}}}))
    if tls:
        d = config / "contexts" / "tls" / sha / "docker"
        d.mkdir(parents=True)
        for f in ("ca", "cert", "key"):
            (d / f"{f}.pem").write_text("x")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    make_context(tmp_path, "prod", "ssh://deploy@prod.example:2222")
    make_context(tmp_path, "lab", "tcp://10.0.0.5:2376", tls=True)
    make_context(tmp_path, "insecure", "tcp://10.0.0.6:2376", skip_tls=True, tls=True)
    return tmp_path


def env(config: Path, **kw: str) -> dict[str, str]:
    return {"DOCKER_CONFIG": str(config), **kw}


def test_default_is_the_local_socket(config):
    ep = resolve(environ=env(config))
    assert ep.url == DEFAULT_HOST and ep.context == "default" and ep.is_local
    assert ep.docker_cli() == ("docker", "--host", DEFAULT_HOST)


def test_precedence_flag_context_host_env_context_env_current(config):
    (config / "config.json").write_text(json.dumps({"currentContext": "lab"}))
    assert resolve(environ=env(config)).url == "tcp://10.0.0.5:2376"
    assert resolve(environ=env(config)).source.startswith("currentContext")
    e = env(config, DOCKER_CONTEXT="prod")
    assert resolve(environ=e).url == "ssh://deploy@prod.example:2222"
    e = env(config, DOCKER_CONTEXT="prod", DOCKER_HOST="tcp://1.2.3.4:2375")
    assert (resolve(environ=e).url, resolve(environ=e).source) == ("tcp://1.2.3.4:2375", "DOCKER_HOST")
    assert resolve(context="lab", environ=e).url == "tcp://10.0.0.5:2376"  # --context beats DOCKER_HOST
    assert resolve(host="unix:///x.sock", environ=e).url == "unix:///x.sock"
    with pytest.raises(UsageError, match="both --host and --context"):
        resolve(host="unix:///x.sock", context="lab", environ=e)


def test_empty_variables_count_as_unset_and_default_context_means_docker_host(config):
    assert resolve(environ=env(config, DOCKER_HOST="", DOCKER_CONTEXT="")).url == DEFAULT_HOST
    assert resolve(context="default", environ=env(config, DOCKER_HOST="tcp://9.9.9.9:1")).url == "tcp://9.9.9.9:1"
    assert resolve(environ=env(config, DOCKER_CONTEXT="default")).url == DEFAULT_HOST


def test_unknown_context_is_a_usage_error_naming_it(config):
    with pytest.raises(UsageError, match="'nope' \\(from DOCKER_CONTEXT\\) does not exist"):
        resolve(environ=env(config, DOCKER_CONTEXT="nope"))


def test_tls_material_of_a_context_reaches_the_cli(config):
    ep = resolve(context="lab", environ=env(config))
    assert ep.tls_verify and ep.ca.endswith("ca.pem")
    argv = ep.docker_cli()
    assert argv[:4] == ("docker", "--host", "tcp://10.0.0.5:2376", "--tlsverify")
    assert "--tlscacert" in argv and "--tlskey" in argv
    ep = resolve(context="insecure", environ=env(config))
    assert ep.tls and not ep.tls_verify and "--tls" in ep.docker_cli() and "--tlsverify" not in ep.docker_cli()


def test_docker_tls_verify_with_docker_host(config, tmp_path):
    ep = resolve(environ=env(config, DOCKER_HOST="tcp://h:2376", DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH="/certs"))
    assert ep.tls_verify and ep.ca == "/certs/ca.pem" and ep.key == "/certs/key.pem"


def test_compose_gets_the_same_endpoint_explicitly(config):
    ep = resolve(environ=env(config, DOCKER_CONTEXT="prod"))
    cmd = Compose("p", "/srv/p", "services: {}\n", docker=ep.docker_cli()).command("up", "-d")
    assert cmd.argv[:4] == ("docker", "--host", "ssh://deploy@prod.example:2222", "compose")


def test_describe_says_where_it_came_from(config):
    ep = resolve(environ=env(config, DOCKER_CONTEXT="prod"))
    assert ep.describe() == "ssh://deploy@prod.example:2222 (context prod, from DOCKER_CONTEXT)"
    assert not ep.is_local and ep.scheme == "ssh"
    assert Endpoint().describe().startswith("the local Docker engine")
