"""The one endpoint: which Docker engine a command talks to, for the SDK and the ``docker`` CLI alike.

Resolved once per command (:func:`resolve`) and used for both paths, so ``docker compose``
and the SDK can never talk to two different engines.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UnavailableError, short_error

if TYPE_CHECKING:  # pragma: no cover
    import docker


@dataclass(frozen=True)
class Endpoint:
    """``host``: a ``DOCKER_HOST``-style URL, or "" for the engine's default socket."""

    host: str = ""

    def docker_cli(self) -> tuple[str, ...]:
        """The docker CLI with the global options that select this engine."""
        return ("docker", "--host", self.host) if self.host else ("docker",)

    def describe(self) -> str:
        return self.host or "the local Docker engine (default socket)"


def resolve(environ: Mapping[str, str] | None = None) -> Endpoint:
    env = os.environ if environ is None else environ
    return Endpoint(env.get("DOCKER_HOST", ""))


def connect(endpoint: Endpoint, timeout: int | None = 60) -> "docker.DockerClient":
    """An SDK client for ``endpoint``, checked with a ping."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as e:  # pragma: no cover - it is a dependency
        raise UnavailableError("the docker Python SDK is not installed", "pip install luma-compose") from e
    try:
        env = {**os.environ, "DOCKER_HOST": endpoint.host} if endpoint.host else None
        c = docker.from_env(timeout=timeout, environment=env)
        c.ping()
        return c
    except DockerException as e:
        raise UnavailableError(f"cannot reach the Docker engine ({endpoint.describe()}): {short_error(e)}",
                               "is dockerd running, and may this user use /var/run/docker.sock (or DOCKER_HOST)?") from e
