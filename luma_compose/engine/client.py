"""The one endpoint: which Docker engine a command talks to, for the SDK and the ``docker`` CLI alike.

Resolved once per command (:func:`resolve`), exactly as the Docker CLI resolves it, and
used for both paths, so ``docker compose`` and the SDK can never talk to two different
engines. The Docker CLI's precedence (docker/cli ``cli/command/cli.go``)::

    --host/-H  >  --context/-c  >  DOCKER_HOST  >  DOCKER_CONTEXT  >  currentContext in
    $DOCKER_CONFIG/config.json (default ~/.docker)  >  the default socket

(``--host`` and ``--context`` together are an error, as in the CLI; an empty variable counts
as unset). A context is read from ``$DOCKER_CONFIG/contexts/meta/<sha256 of its name>/meta.json``
(``Endpoints.docker.Host``, ``SkipTLSVerify``) with its TLS files under
``contexts/tls/<sha256>/docker/``: no ``docker context inspect`` subprocess per command.
The context ``default`` is ``DOCKER_HOST`` (with ``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``)
or the default socket. tests/unit/test_endpoint.py proves equality with the docker CLI.

``ssh://[user@]host[:port]`` works for both paths through the system ``ssh`` (for the SDK through
:mod:`.ssh_tunnel`, as the docker CLI does it), so ``~/.ssh/config``, ``known_hosts`` and the
agent apply; the remote needs the ``docker`` CLI (``docker system dial-stdio``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import UnavailableError, UsageError, short_error

if TYPE_CHECKING:  # pragma: no cover
    import docker

DEFAULT_HOST = "unix:///var/run/docker.sock"
DEFAULT_CONTEXT = "default"


@dataclass(frozen=True)
class Endpoint:
    """``host``: a ``DOCKER_HOST``-style URL, or "" for the engine's default socket.

    ``context``: the Docker context it came from ("default" for none); ``source``: what
    selected it (``--host``, ``--context``, ``DOCKER_HOST``, ``DOCKER_CONTEXT``, ``config.json``
    or "" for the default). TLS: ``tls_verify`` verifies the server with ``ca``; ``cert``/``key``
    is the client certificate; ``tls`` without verify is the context's ``SkipTLSVerify``."""

    host: str = ""
    context: str = DEFAULT_CONTEXT
    source: str = ""
    tls: bool = False
    tls_verify: bool = False
    ca: str = ""
    cert: str = ""
    key: str = ""

    @property
    def url(self) -> str:
        return self.host or DEFAULT_HOST

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def is_local(self) -> bool:
        """A socket on this machine (published ports on 127.0.0.1 are this machine's); tcp:// and ssh://
        are taken as another machine."""
        return self.scheme not in ("tcp", "ssh", "http", "https")

    def docker_cli(self) -> tuple[str, ...]:
        """The docker CLI with the global options that select exactly this engine.

        Always explicit (``--host``, never the context name), so the CLI can't pick another
        engine from its own environment (``DOCKER_CONTEXT``) or config."""
        argv = ["docker", "--host", self.url]
        if self.tls_verify:
            argv.append("--tlsverify")
        elif self.tls:
            argv.append("--tls")
        for flag, path in (("--tlscacert", self.ca), ("--tlscert", self.cert), ("--tlskey", self.key)):
            if path and (self.tls or self.tls_verify):
                argv += [flag, path]
        return tuple(argv)

    def describe(self) -> str:
        if not self.host:
            what = f"the local Docker engine ({DEFAULT_HOST})"
        else:
            what = self.host
        how = []
        if self.context != DEFAULT_CONTEXT:
            how.append(f"context {self.context}")
        if self.source:
            how.append(f"from {self.source}")
        return what + (f" ({', '.join(how)})" if how else "")

    def to_json(self) -> dict[str, str]:
        return {"host": self.url, "context": self.context, "source": self.source or "default"}


def config_dir(environ: Mapping[str, str]) -> str:
    return environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def _context_hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _env(environ: Mapping[str, str], key: str) -> str:
    return (environ.get(key) or "").strip()


def resolve(host: str | None = None, context: str | None = None,
            environ: Mapping[str, str] | None = None) -> Endpoint:
    """The engine the Docker CLI would use with these global options in this environment."""
    env = os.environ if environ is None else environ
    if host and context:
        raise UsageError("conflicting options: cannot specify both --host and --context", "give one of them")
    if host:
        return _from_host(host, "--host", env)
    if context:
        return _from_context(context, "--context", env)
    if _env(env, "DOCKER_HOST"):
        return _from_host(_env(env, "DOCKER_HOST"), "DOCKER_HOST", env)
    if _env(env, "DOCKER_CONTEXT"):
        return _from_context(_env(env, "DOCKER_CONTEXT"), "DOCKER_CONTEXT", env)
    current = _current_context(env)
    if current and current != DEFAULT_CONTEXT:
        return _from_context(current, f"currentContext in {os.path.join(config_dir(env), 'config.json')}", env)
    return Endpoint()


def _from_host(host: str, source: str, env: Mapping[str, str]) -> Endpoint:
    verify = bool(_env(env, "DOCKER_TLS_VERIFY"))
    certs = _env(env, "DOCKER_CERT_PATH") or config_dir(env)
    if not verify:
        return Endpoint(host, DEFAULT_CONTEXT, source)
    return Endpoint(host, DEFAULT_CONTEXT, source, tls=True, tls_verify=True,
                    ca=os.path.join(certs, "ca.pem"), cert=os.path.join(certs, "cert.pem"),
                    key=os.path.join(certs, "key.pem"))


def _current_context(env: Mapping[str, str]) -> str:
    path = os.path.join(config_dir(env), "config.json")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return ""
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read the Docker CLI configuration {path}: {e}", "fix or remove that file") from None
    return (data.get("currentContext") or "") if isinstance(data, dict) else ""


def _from_context(name: str, source: str, env: Mapping[str, str]) -> Endpoint:
    if name == DEFAULT_CONTEXT:
        h = _env(env, "DOCKER_HOST")
        ep = _from_host(h, source, env) if h else Endpoint("", DEFAULT_CONTEXT, source)
        return ep
    base = config_dir(env)
    sha = _context_hash(name)
    meta_path = os.path.join(base, "contexts", "meta", sha, "meta.json")
    try:
        with open(meta_path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except FileNotFoundError:
        raise UsageError(f"Docker context {name!r} (from {source}) does not exist (looked for {meta_path})",
                         "list them with: docker context ls") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read Docker context {name!r}: {e}", "see: docker context inspect " + name) from None
    ep = ((meta.get("Endpoints") or {}).get("docker") or {}) if isinstance(meta, dict) else {}
    host = ep.get("Host") or ""
    if not host:
        raise UsageError(f"Docker context {name!r} has no docker endpoint", "see: docker context inspect " + name)
    skip = bool(ep.get("SkipTLSVerify"))
    tls_dir = os.path.join(base, "contexts", "tls", sha, "docker")
    files = {f: os.path.join(tls_dir, f + ".pem") for f in ("ca", "cert", "key")}
    files = {f: p if os.path.isfile(p) else "" for f, p in files.items()}
    has_tls = any(files.values())
    return Endpoint(host, name, source, tls=has_tls or skip, tls_verify=has_tls and not skip, **files)


def _ssh_preflight(endpoint: Endpoint, timeout: int) -> None:
    """One ``ssh`` to the engine's host with no prompt, so a wrong host key, key or missing
    docker CLI there is reported plainly (the SDK's own ssh would write to the terminal and wait)."""
    u = urlsplit(endpoint.url)
    argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={timeout}"]
    if u.username:
        argv += ["-l", u.username]
    if u.port:
        argv += ["-p", str(u.port)]
    argv += ["--", u.hostname or "", "docker", "version", "--format", "{{.Server.APIVersion}}"]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 30, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise UnavailableError(f"cannot reach {endpoint.describe()}: the `ssh` client is not installed",
                               "install OpenSSH's client (Debian: openssh-client)") from None
    except subprocess.TimeoutExpired:
        raise UnavailableError(f"cannot reach {endpoint.describe()}: ssh did not finish within {timeout + 30}s") from None
    if p.returncode == 0:
        return
    err = "\n".join(ln for ln in (p.stderr or p.stdout).strip().splitlines() if ln.strip()) or f"exit {p.returncode}"
    low = err.lower()
    if "host key verification failed" in low or "remote host identification has changed" in low:
        hint = ("the server's host key is not in known_hosts or differs from it: verify it and add it "
                f"(ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts, or ssh {u.hostname} once)")
    elif "permission denied" in low:
        hint = "the key was refused: check the user, IdentityFile in ~/.ssh/config, ssh-agent and authorized_keys there"
    elif "docker" in low and ("not found" in low or "no such file" in low):
        hint = "the server needs the docker CLI on the PATH of that user (ssh runs `docker system dial-stdio` there)"
    elif p.returncode == 255:
        hint = "ssh could not connect; try: ssh " + (f"-p {u.port} " if u.port else "") + (u.netloc.rsplit(':', 1)[0] if u.port else u.netloc)
    else:
        hint = "the docker CLI on the server could not reach its engine; run `docker version` there"
    raise UnavailableError(f"cannot reach the Docker engine {endpoint.describe()} over ssh:\n  {err}", hint)


def connect(endpoint: Endpoint, timeout: int | None = 60) -> "docker.DockerClient":
    """An SDK client for ``endpoint``, checked with a ping."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as e:  # pragma: no cover - it is a dependency
        raise UnavailableError("the docker Python SDK is not installed", "pip install luma-compose") from e
    ssh = endpoint.scheme == "ssh"
    if ssh:
        _ssh_preflight(endpoint, 15)
    try:
        tls = None
        if endpoint.tls or endpoint.tls_verify:
            from docker.tls import TLSConfig

            cert = (endpoint.cert, endpoint.key) if endpoint.cert and endpoint.key else None
            tls = TLSConfig(client_cert=cert, ca_cert=endpoint.ca or None, verify=endpoint.tls_verify)
        base_url = endpoint.url
        if ssh:
            from .ssh_tunnel import SshTunnel

            base_url = SshTunnel(endpoint.url).base_url
        c = docker.DockerClient(base_url=base_url, tls=tls, version="auto", max_pool_size=10, timeout=timeout)
        c.ping()
        return c
    except DockerException as e:
        raise UnavailableError(f"cannot reach the Docker engine {endpoint.describe()}: {short_error(e)}",
                               "is dockerd running there, and may this user use it? (`docker version` "
                               "with the same DOCKER_HOST/DOCKER_CONTEXT shows the same)") from e
