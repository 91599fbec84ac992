"""The e2e gating in tests/conftest.py, run for real in a child pytest with no docker on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

SAMPLE = """
import pytest

@pytest.mark.e2e
def test_needs_docker():
    pass

@pytest.mark.e2e
def test_needs_docker_too():
    pass

def test_plain():
    pass
"""


def _run(tmp_path: Path, path_dirs: list[Path], mode: str | None) -> subprocess.CompletedProcess[str]:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "pytest.ini").write_text('[pytest]\nmarkers =\n    e2e: e2e\naddopts = -ra -p no:cacheprovider\n')
    env = {k: v for k, v in os.environ.items() if k not in ("LUMA_E2E", "PYTEST_ADDOPTS")}
    env["PATH"] = os.pathsep.join(str(d) for d in path_dirs)
    if mode is not None:
        env["LUMA_E2E"] = mode
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def no_docker_path(tmp_path: Path) -> list[Path]:
    empty = tmp_path / "bin"
    empty.mkdir()
    return [empty]


def test_without_docker_e2e_tests_skip_with_one_clear_reason(tmp_path, no_docker_path):
    p = _run(tmp_path, no_docker_path, None)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1 passed, 2 skipped" in p.stdout
    header = [line for line in p.stdout.splitlines() if line.startswith("e2e:")]
    assert len(header) == 1 and "no 'docker' command on PATH" in header[0], p.stdout


def test_required_without_docker_fails_instead_of_skipping(tmp_path, no_docker_path):
    p = _run(tmp_path, no_docker_path, "required")
    assert p.returncode == 1, p.stdout + p.stderr
    # pytest.fail in setup: reported as errors, and the run exits 1.
    assert "1 passed, 2 errors" in p.stdout
    assert "LUMA_E2E=required" in p.stdout and "no 'docker' command on PATH" in p.stdout


def test_engine_that_does_not_answer_is_reported(tmp_path, no_docker_path):
    fake = no_docker_path[0] / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\nexit 1\n")
    fake.chmod(0o755)
    p = _run(tmp_path, no_docker_path + [Path("/bin"), Path("/usr/bin")], None)
    assert "2 skipped" in p.stdout
    assert "does not answer 'docker info': Cannot connect to the Docker daemon" in p.stdout, p.stdout


def test_skip_on_purpose(tmp_path, no_docker_path):
    p = _run(tmp_path, no_docker_path, "skip")
    assert p.returncode == 0 and "1 passed, 2 skipped" in p.stdout
