"""Several -f files: render delegates the merge to `docker compose config` (Compose's own rules).

Needs the docker CLI with Compose v2 (no engine: `config` does not talk to it); scripts/test installs both.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys

import pytest
from ruamel.yaml import YAML

LUMA = shutil.which("luma-compose") or os.path.join(os.path.dirname(sys.executable), "luma-compose")


@pytest.fixture(scope="module", autouse=True)
def compose_v2():
    r = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("docker compose v2 is needed for merging -f files (bash scripts/test installs it)")


def test_override_file_is_merged_by_compose_rules(tmp_path):
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: app:1\n    labels: {team: core}\n"
        "    x-luma: {hosts: [a.example.com], port: 3000}\n  db:\n    image: pg\n")
    (tmp_path / "compose.override.yaml").write_text(
        "services:\n  web:\n    image: app:2\n    labels: {tier: front}\n")
    r = subprocess.run([LUMA, "render", "-f", "compose.yaml", "-f", "compose.override.yaml", "-p", "merged"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = YAML(typ="safe").load(io.StringIO(r.stdout))
    web = out["services"]["web"]
    labels = web["labels"] if isinstance(web["labels"], dict) else dict(x.split("=", 1) for x in web["labels"])
    assert web["image"] == "app:2"  # the later file wins
    assert labels["team"] == "core" and labels["tier"] == "front"  # labels merge by key
    assert labels["luma.target"] == "merged-web:3000"
    assert web["networks"]["luma"] == {"aliases": ["merged-web"]}
    assert "luma" not in (out["services"]["db"].get("networks") or {})
    assert out["name"] == "merged"


def test_merge_errors_are_reported_cleanly(tmp_path):
    (tmp_path / "a.yaml").write_text("services:\n  web:\n    image: a\n")
    (tmp_path / "b.yaml").write_text("services:\n  web: [\n")
    r = subprocess.run([LUMA, "render", "-f", "a.yaml", "-f", "b.yaml"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == "" and "could not merge" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([LUMA, "render", "-f", "a.yaml", "-f", "missing.yaml"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "missing.yaml: no such file" in r.stderr


def test_without_docker_the_merge_says_so(tmp_path):
    (tmp_path / "a.yaml").write_text("services:\n  web:\n    image: a\n")
    (tmp_path / "b.yaml").write_text("services:\n  web:\n    image: b\n")
    r = subprocess.run([LUMA, "render", "-f", "a.yaml", "-f", "b.yaml"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60, env={**os.environ, "PATH": os.path.dirname(sys.executable)})
    assert r.returncode == 3 and "docker" in r.stderr and "Traceback" not in r.stderr
