"""The engine's list-based reads give the same records as an inspect of every object.

``DockerEngine.containers`` builds records from one list call and inspects only containers on
an ingress network it has not seen with the same endpoints; ``DockerEngine.networks`` lists
networks without inspecting each. These tests hold them to the inspect of every object (the
old, slow reader) for every state a container the proxy routes can be in.
"""

from __future__ import annotations

import contextlib
import time

import dockerkit

from luma_compose.engine import state
from luma_compose.engine.docker_engine import DockerEngine


def _inspected(eng: DockerEngine, cid: str):
    return state.container_record(eng.dc.api.inspect_container(cid))


def _compare(eng: DockerEngine, label: str) -> list[str]:
    """Fields (of records of containers with ``label``) where the list-based record differs."""
    diffs = []
    recs = eng.containers([label], all=True)
    for r in recs:
        full = _inspected(eng, r.id)
        for f in ("id", "name", "labels", "state", "health", "image", "image_ref", "ports", "volumes"):
            if getattr(r, f) != getattr(full, f):
                diffs.append(f"{r.name}.{f}: {getattr(r, f)!r} != {getattr(full, f)!r}")
        # addresses everywhere; aliases where the proxy reads them (ingress networks)
        mine = {n: (a.ip, a.aliases if n.endswith("_luma") else ()) for n, a in r.networks.items()}
        theirs = {n: (a.ip, a.aliases if n.endswith("_luma") else ()) for n, a in full.networks.items()}
        if mine != theirs:
            diffs.append(f"{r.name}.networks: {mine} != {theirs}")
        # the creation time is exact where the route table compares it (ingress networks)
        if any(n.endswith("_luma") for n in r.networks) and r.created != full.created:
            diffs.append(f"{r.name}.created: {r.created} != {full.created}")
    return diffs


def test_list_records_equal_inspect_records(busybox_image):
    u = dockerkit.unique("er")
    label = f"luma.e2e.reads={u}"
    ingress, plain = f"{u}_luma", f"{u}_default"
    with contextlib.ExitStack() as st:
        # registered first, so it runs last: after the container using the volume is gone
        st.callback(dockerkit.docker, "volume", "rm", "-f", f"{u}-vol", check=False)
        st.enter_context(dockerkit.network(ingress))
        st.enter_context(dockerkit.network(plain))
        hc = ["--health-cmd", "wget -q -O /dev/null http://127.0.0.1:3000/up", "--health-interval", "1s"]
        names = {
            "healthy": (hc, [ingress, plain]),
            "starting": (["--health-cmd", "false", "--health-interval", "1h"], [ingress]),
            "unhealthy": (["--health-cmd", "false", "--health-interval", "1s", "--health-retries", "1"], [ingress]),
            "nocheck": (["-p", "127.0.0.1::3000", "-v", f"{u}-vol:/data"], [ingress]),
            "plain": ([], [plain]),
            "stopped": (hc, [ingress]),
        }
        for kind, (args, nets) in names.items():
            st.enter_context(dockerkit.container(f"{u}-{kind}", busybox_image, "--label", label, *args,
                                                 networks=nets, aliases={ingress: [f"{u}-{kind}-alias"]}))
        dockerkit.docker("stop", "-t", "0", f"{u}-stopped")
        eng = DockerEngine()
        # until the health checks have run (unhealthy after one failed check)
        for _ in range(100):
            recs = {r.name: r for r in eng.containers([label], all=True)}
            if recs[f"{u}-healthy"].health == "healthy" and recs[f"{u}-unhealthy"].health == "unhealthy":
                break
            time.sleep(0.2)
        assert recs[f"{u}-starting"].health == "starting"
        assert recs[f"{u}-stopped"].state == "exited"
        assert f"{u}-nocheck-alias" in recs[f"{u}-nocheck"].networks[ingress].aliases
        assert _compare(eng, label) == []
        assert _compare(DockerEngine(), label) == []  # a fresh engine object: nothing cached
        # a restart makes new endpoints: the cached aliases are not reused blindly
        dockerkit.docker("restart", "-t", "0", f"{u}-nocheck")
        assert _compare(eng, label) == []
        # networks: the same members as the inspect of each network (attached now, running)
        by_list = {n.name: sorted(n.containers) for n in eng.networks([dockerkit.E2E_LABEL])
                   if n.name in (ingress, plain)}
        by_inspect = {n: sorted((dockerkit.inspect(n).get("Containers") or {}).keys()) for n in (ingress, plain)}
        assert by_list == by_inspect
        assert len(by_list[ingress]) == 4 and len(by_list[plain]) == 2


def test_a_pass_inspects_only_what_changed(busybox_image):
    """``proxy run`` keeps one engine object: after the first pass, a pass inspects only containers
    whose network endpoints changed (a restart, a new network); none on no ingress network."""
    u = dockerkit.unique("ei")
    label = f"luma.e2e.reads={u}"
    ingress, plain = f"{u}_luma", f"{u}_default"
    with contextlib.ExitStack() as st:
        # registered first, so it runs last: after the container using the volume is gone
        st.callback(dockerkit.docker, "volume", "rm", "-f", f"{u}-vol", check=False)
        st.enter_context(dockerkit.network(ingress))
        st.enter_context(dockerkit.network(plain))
        for i in range(3):
            st.enter_context(dockerkit.container(f"{u}-r{i}", busybox_image, "--label", label, networks=[ingress]))
        st.enter_context(dockerkit.container(f"{u}-plain", busybox_image, "--label", label, networks=[plain]))
        eng = DockerEngine()
        inspected: list[str] = []
        get = eng._get
        eng._get = lambda ref: inspected.append(ref) or get(ref)  # type: ignore[method-assign]
        assert len(eng.containers([label], all=True)) == 4
        assert len(inspected) == 3  # the three on the ingress network, not the other
        inspected.clear()
        assert len(eng.containers([label], all=True)) == 4
        assert inspected == []
        dockerkit.docker("restart", "-t", "0", f"{u}-r1")
        recs = {r.name: r for r in eng.containers([label], all=True)}
        assert [dockerkit.inspect(i)["Name"] for i in inspected] == [f"/{u}-r1"]
        assert recs[f"{u}-r1"].networks[ingress] == _inspected(eng, recs[f"{u}-r1"].id).networks[ingress]
