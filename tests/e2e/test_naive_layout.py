"""Why luma-compose gives each project its own ingress network: the naive layout misroutes.

The naive layout, built by hand here: ONE external network shared by the proxy and every
project, each routed service joined to it under its plain compose name. Docker's DNS answers a
container's lookup from its networks in name order; for a project whose default network sorts
after the shared network (``zeta_default`` > ``luma``), ``web`` is answered on the shared network,
where every project's ``web`` lives, and Docker rotates through all of them.

Measured on this engine (Docker 20.10, Compose v2.40), 100 requests from zeta's routed ``api`` to
``web:3000``: 53 reached zeta's web, 47 reached gmail's. gmail (``gmail_default`` < ``luma``)
and the non-routed worker (not on the shared network) were never misrouted. The test asserts
only that misrouting happens at all; with a ~50% rate, 100 requests without one would happen
with probability ~2^-100.
"""

from __future__ import annotations

import contextlib
from collections import Counter

import pytest

import dockerkit as dk

N = 100

NAIVE = """\
services:
  web:
    image: {image}
    environment: {{PROJECT: {project}, SERVICE: web}}
    networks: [default, proxy]
  api:
    image: {image}
    environment: {{PROJECT: {project}, SERVICE: api}}
    networks: [default, proxy]
  worker:
    image: {image}
    environment: {{PROJECT: {project}, SERVICE: worker}}
networks:
  proxy:
    external: true
    name: {network}
"""


def _projects(bodies: list[str]) -> Counter[str]:
    return Counter(b.split("/", 1)[0] for b in bodies)


@pytest.fixture(scope="module")
def naive(busybox_image, tmp_path_factory):
    shared = dk.unique("luma")
    gmail, zeta = dk.unique("gmail"), dk.unique("zeta")
    # The whole point depends on this order of network names.
    assert f"{gmail}_default" < shared < f"{zeta}_default"
    with contextlib.ExitStack() as stack:
        stack.enter_context(dk.network(shared))
        projects = {}
        for name in (gmail, zeta):
            d = tmp_path_factory.mktemp(name)
            f = dk.write(d / "compose.yaml", NAIVE.format(image=busybox_image, project=name, network=shared))
            projects[name] = stack.enter_context(dk.compose_project(name, f))
        for p in projects.values():
            dk.wait_http(p.container("worker"), "http://web:3000/")
        yield projects[gmail], projects[zeta], shared


def test_shared_network_misroutes_internal_calls_of_a_project_sorting_after_it(naive):
    gmail, zeta, shared = naive
    got = _projects(dk.http_many(zeta.container("api"), "http://web:3000/", N))
    assert got[zeta.name] + got[gmail.name] == N, got
    # zeta's api asked for ITS web and got gmail's: this is the bug our layout avoids.
    assert got[gmail.name] > 0, f"no misrouting seen in {N} requests: {got}"
    # DNS shows why: `web` answers with both projects' webs on the shared network.
    ips = set(dk.nslookup(zeta.container("api"), "web") or [])
    assert dk.container_ips(gmail.container("web"))[shared] in ips
    assert dk.container_ips(zeta.container("web"))[shared] in ips


def test_shared_network_does_not_misroute_the_other_cases(naive):
    """gmail sorts before the shared network, and worker is not on it: both stay correct,
    which is why this bug hides until a project with the wrong name shows up."""
    gmail, zeta, _ = naive
    assert _projects(dk.http_many(gmail.container("api"), "http://web:3000/", N)) == {gmail.name: N}
    assert _projects(dk.http_many(zeta.container("worker"), "http://web:3000/", N)) == {zeta.name: N}
