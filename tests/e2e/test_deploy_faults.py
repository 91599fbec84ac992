"""Issue 18: ``deploy`` under faults, on the real engine, real Compose, real Caddy, under load.

The kill-point table: a real redeploy runs while two clients load the proxy (the project being
deployed, and a quiet other project); when a phase line of the deploy's progress (stderr) appears,
a fault is injected: the deploy is SIGKILLed, or the proxy container is killed. Then the next
``deploy`` must converge with no manual step; no request of the other project may fail (except while
the proxy itself is dead), and the deployed project is only ever served by its old or new version.

Also: a project whose names would shadow another's, a new version that crashes after traffic moved to
it, a routed service renamed in the file, and a foreign lock.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator

import pytest

import dockerkit as dk
from test_deploy import SELECT, Env, block_yaml, bodies, new_project, running, source
from test_deploy import Traffic as _Traffic

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fenv(caddy_image, busybox_image, tmp_path_factory) -> Iterator[Env]:
    """One proxy and one quiet project for the module (the table's runs share them)."""
    name = dk.unique("faultproxy")
    e = Env(name, caddy_image, tmp_path_factory.mktemp("faults"))
    e.projects = []  # type: ignore[attr-defined]
    try:
        quiet, qhost = new_project(e, "quiet")
        e.deploy(quiet, source(quiet, busybox_image, qhost, "v1", replicas=1, sidecar=False))
        e.quiet = (quiet, qhost)  # type: ignore[attr-defined]
        yield e
    finally:
        dk.docker("rm", "-f", "-v", name, check=False)
        for p in e.projects:  # type: ignore[attr-defined]
            dk.force_remove_project(p)
        dk.docker("volume", "rm", "-f", f"{name}-data", check=False)


class Traffic(_Traffic):
    """test_deploy's client (one keep-alive connection, a request on a reused connection the server
    closed is sent again once); a non-200 answer is counted with the start of its body (which 503)."""

    def _loop(self) -> None:
        import http.client

        conn, used = None, False
        while not self.stop.is_set():
            if conn is None:
                conn, used = http.client.HTTPConnection("127.0.0.1", self.env.port, timeout=15), False
            try:
                conn.request("GET", "/", headers={"Host": self.host})
                r = conn.getresponse()
                body = r.read().decode(errors="replace").strip()
                used = True
                self.outcomes[body.rsplit("/", 1)[0] if r.status == 200 else f"{r.status} {body[:70]}"] += 1
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                conn.close()
                conn = None
                if used:
                    self.retried += 1
                else:
                    self.outcomes[f"error: {type(e).__name__}"] += 1
            except OSError as e:
                conn.close()
                conn = None
                self.outcomes[f"error: {type(e).__name__}"] += 1
        if conn is not None:
            conn.close()


def deploy_cmd(env: Env, project: str, text: str, *extra: str) -> list[str]:
    f = dk.write(env.workdir / project / "compose.yaml", text)
    return [*dk.luma_compose_cmd(), "deploy", "-f", str(f), "--drain", "0.5", "--settle", "1", "--timeout", "30",
            "--proxy-name", env.proxy, "--proxy-image", env.caddy, "--proxy-http-port", "127.0.0.1:0",
            "--proxy-https-port", "127.0.0.1:0", "--proxy-tls", "off", "--proxy-select", SELECT, *extra]


def deploy_until(cmd: list[str], phase: str, fault: Callable[[subprocess.Popen], None]) -> tuple[int, str]:
    """Run a deploy; when a progress line containing ``phase`` appears, call ``fault(process)``.
    Returns (exit code, stderr). The phase must appear (else the test is not testing anything)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen, lines = False, []
    assert p.stderr is not None
    for line in p.stderr:
        lines.append(line)
        if not seen and phase in line:
            seen = True
            fault(p)
    code = p.wait(timeout=300)
    err = "".join(lines)
    assert seen, f"phase {phase!r} never appeared:\n{err}"
    return code, err


def sigkill(p: subprocess.Popen) -> None:
    os.kill(p.pid, signal.SIGKILL)


def own(project: str, outcomes) -> dict:
    """Outcomes that are not an answer of this project's own web service (old or new version)."""
    return {k: v for k, v in outcomes.items() if not str(k).startswith(f"{project}/web-")}


# The phases, by the progress line that ends them (deploy prints a line when a step finishes).
PHASES = [
    "Bring the routes up to date",  # before anything changed
    "Roll web: start",  # new containers started, not checked yet
    "Wait for web: each new container healthy",  # checked; the old ones are being renamed draining
    "Move traffic of web",  # renamed, routes moved: the drain runs
    "Drain ",  # drained; the old ones are being stopped
    "Stop and remove",  # old ones gone; replicas being reconciled
]


@pytest.mark.parametrize("phase", PHASES)
def test_kill_point_table_deploy_sigkilled(fenv, busybox_image, phase):
    project, host = new_project(fenv, "kp")
    quiet, qhost = fenv.quiet  # type: ignore[attr-defined]
    fenv.deploy(project, source(project, busybox_image, host, "v1", sidecar=False))
    with Traffic(fenv, host) as mine, Traffic(fenv, qhost) as other:
        code, err = deploy_until(deploy_cmd(fenv, project, source(project, busybox_image, host, "v2", sidecar=False)),
                                 phase, sigkill)
        assert code == -signal.SIGKILL, err
        again = fenv.deploy(project, source(project, busybox_image, host, "v2", sidecar=False), check=False)
    assert again.returncode == 0, again.stderr
    assert "internal error" not in again.stderr
    names = dk.docker("ps", "-a", "--filter", f"label=com.docker.compose.project={project}", "--format", "{{.Names}}")
    assert "draining" not in names and len(running(project)) == 2, names
    assert {b.rsplit("/", 1)[0] for _, b in bodies(fenv, host, 10)} == {f"{project}/web-v2"}
    assert set(other.outcomes) == {f"{quiet}/web-v1"}, other.outcomes
    assert sum(mine.outcomes.values()) > 10 and not own(project, mine.outcomes), mine.outcomes


@pytest.mark.parametrize("phase", ["Roll web: start", "Create project"])
def test_kill_point_table_proxy_killed(fenv, busybox_image, phase):
    project, host = new_project(fenv, "pk")
    first = phase == "Create project"
    if not first:
        fenv.deploy(project, source(project, busybox_image, host, "v1", sidecar=False))
    text = source(project, busybox_image, host, "v2", sidecar=False)
    code, err = deploy_until(deploy_cmd(fenv, project, text), phase,
                             lambda p: dk.docker("kill", fenv.proxy, check=False))
    assert code == 3, err  # documented: the engine or the proxy became unavailable
    assert "internal error" not in err and "stopped during the deploy" in err, err
    if not first:
        names = dk.docker("ps", "-a", "--filter", f"label=com.docker.compose.project={project}", "--format",
                          "{{.Names}}")
        assert len(names.split()) == 2 and "draining" not in names, "the new containers must be removed"
    again = fenv.deploy(project, text, check=False)  # starts the proxy again, adopts or rolls
    assert again.returncode == 0, again.stderr
    assert {b.rsplit("/", 1)[0] for _, b in bodies(fenv, host, 10)} == {f"{project}/web-v2"}
    quiet, qhost = fenv.quiet  # type: ignore[attr-defined]
    assert {b.rsplit("/", 1)[0] for _, b in bodies(fenv, qhost, 10)} == {f"{quiet}/web-v1"}


def test_a_new_version_that_dies_after_traffic_moved_brings_the_old_one_back(fenv, busybox_image):
    project, host = new_project(fenv, "crash")
    fenv.deploy(project, source(project, busybox_image, host, "v1", sidecar=False))
    v1 = running(project)

    def crash(_p):  # the new version passed its check; now it dies
        for cid in running(project) - v1:
            dk.docker("kill", cid, check=False)

    cmd = deploy_cmd(fenv, project, source(project, busybox_image, host, "v2", sidecar=False))
    cmd[cmd.index("--settle") + 1] = "30"  # watched for 30 s: the kill lands inside
    with Traffic(fenv, host) as t:
        code, err = deploy_until(cmd, "Move traffic of web", crash)
    assert code == 1, err
    assert "stopped after traffic moved to it; the old containers serve again" in err
    assert "deployed" not in err.split("\n")[-2]
    assert running(project) == v1
    names = dk.docker("ps", "-a", "--filter", f"label=com.docker.compose.project={project}", "--format", "{{.Names}}")
    assert "draining" not in names and len(names.split()) == 2, names
    assert {b.rsplit("/", 1)[0] for _, b in bodies(fenv, host, 10)} == {f"{project}/web-v1"}
    # the new version died with requests in flight to it: those may wait and get 503 (one client: one
    # request at a time), until the old version is back; never another project's answer
    failed = own(project, t.outcomes)
    assert all(str(k).startswith(("502", "503")) for k in failed) and sum(failed.values()) <= 2, t.outcomes


def test_a_routed_service_renamed_in_the_file_moves_its_host_and_leaves_no_orphan(fenv, busybox_image):
    project, host = new_project(fenv, "rename")
    fenv.deploy(project, source(project, busybox_image, host, "v1", sidecar=False))
    text = source(project, busybox_image, host, "v2", sidecar=False).replace("  web:\n", "  www:\n")
    assert "  www:\n" in text
    f = dk.write(fenv.workdir / project / "compose.yaml", text)
    plan = dk.run([*dk.luma_compose_cmd(), "deploy", "--dry-run", "-f", str(f), "--proxy-name", fenv.proxy],
                  check=False)
    assert plan.returncode == 4 and f"orphan container {project}-web-1: would be removed" in plan.stdout, plan.stdout
    with Traffic(fenv, host) as t:
        fenv.deploy(project, text)
    assert running(project, "web") == set() and len(running(project, "www")) == 2
    assert dk.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}",
                     "--filter", "label=com.docker.compose.service=web").split() == []
    got = {b.rsplit("/", 1)[0] for _, b in bodies(fenv, host, 10)}
    assert got == {f"{project}/web-v2"}  # www's SERVICE env still says web-v2: the new containers answer
    assert {b.rsplit("/", 1)[1] for _, b in bodies(fenv, host, 10)} <= {c[:12] for c in running(project, "www")}
    assert all(str(k).startswith(f"{project}/web-") for k in t.outcomes), t.outcomes
    again = dk.run([*dk.luma_compose_cmd(), "deploy", "--dry-run", "-f", str(f), "--proxy-name", fenv.proxy],
                   check=False)
    assert again.returncode == 0, again.stdout  # the plan and the deploy agree: nothing left to do
    fenv.deploy(project, text)  # and the next deploy works


def test_force_unlock_removes_a_foreign_lock_and_says_whose_it_was(fenv, busybox_image):
    from luma_compose import contract

    project, host = new_project(fenv, "lock")
    fenv.deploy(project, source(project, busybox_image, host, "v1", replicas=1, sidecar=False))
    lock = contract.lock_name(project)

    def foreign():
        dk.docker("create", "--name", lock, "--label", f"{contract.LOCK_LABEL}={project}",
                  "--label", f"{contract.LOCK_HOST_LABEL}=ci-runner-7", "--label", f"{contract.LOCK_PID_LABEL}=4242",
                  fenv.caddy, "true")

    foreign()
    try:
        r = fenv.deploy(project, source(project, busybox_image, host, "v2", replicas=1, sidecar=False),
                        "--force-unlock")
        assert f"removed the lock {lock} held by ci-runner-7 pid 4242" in r.stderr
        foreign()
        d = fenv.down(project, "--force-unlock")
        assert d.returncode == 0 and "held by ci-runner-7 pid 4242" in d.stderr, d.stderr
        assert dk.project_containers(project) == []
    finally:
        dk.docker("rm", "-f", lock, check=False)


# ------------------------------------------------------------------------ item 1: shadowing names


def evil_source(evil: str, image: str, victim: str, how: str) -> str:
    """A project whose routed service would answer to the victim's container name on evil_luma;
    its health path never answers (the deploy would wait, with the proxy attached, before the fix)."""
    web = {"image": image, "environment": {"PROJECT": evil, "SERVICE": "evil"}, "stop_grace_period": "1s",
           "labels": {"lumatest.run": dk.RUN_ID},
           "x-luma": {"hosts": [f"{evil}.example.test"], "port": 3000, "health": "/never"}}
    name = f"{victim}-web-1" if how == "service-name" else "web"
    if how == "container_name":
        web["container_name"] = f"{victim}-web-2"
    return block_yaml({"name": evil, "services": {name: web}})


@pytest.mark.parametrize("how", ["service-name", "container_name"])
def test_a_project_whose_names_shadow_another_is_refused_before_the_proxy_joins_it(fenv, busybox_image, how):
    victim, host = new_project(fenv, "victim")
    evil, _ = new_project(fenv, "aevil")
    fenv.deploy(victim, source(victim, busybox_image, host, "v1", sidecar=False))
    text = evil_source(evil, busybox_image, victim, how)
    f = dk.write(fenv.workdir / evil / "compose.yaml", text)
    plan = dk.run([*dk.luma_compose_cmd(), "deploy", "--dry-run", "-f", str(f), "--proxy-name", fenv.proxy],
                  check=False)
    assert plan.returncode == 1 and f"the name the proxy dials for {victim}/web" in plan.stdout, plan.stdout
    with Traffic(fenv, host) as t:
        r = fenv.deploy(evil, text, check=False)
    assert r.returncode == 1 and "internal error" not in r.stderr, r.stderr
    assert f"the name the proxy dials for {victim}/web" in r.stderr and "nothing was changed" in r.stderr
    assert dk.project_containers(evil) == []
    nets = dk.inspect(fenv.proxy)["NetworkSettings"]["Networks"]
    assert f"{evil}_luma" not in nets
    assert {b.rsplit("/", 1)[0] for _, b in bodies(fenv, host, 20)} == {f"{victim}/web-v1"}
    assert set(t.outcomes) == {f"{victim}/web-v1"}, t.outcomes


def test_the_proxy_does_not_join_an_ingress_network_where_a_hand_made_alias_shadows_a_dialled_name(fenv,
                                                                                               busybox_image):
    victim, host = new_project(fenv, "victim")
    evil, ehost = new_project(fenv, "aevil")
    fenv.deploy(victim, source(victim, busybox_image, host, "v1", replicas=1, sidecar=False))
    fenv.deploy(evil, source(evil, busybox_image, ehost, "v1", replicas=1, sidecar=False))
    sneaky = dk.unique("sneaky")
    dk.docker("run", "-d", "--name", sneaky, "--network", f"{evil}_luma", "--network-alias", f"{victim}-web-1",
              "-e", f"PROJECT={evil}", "-e", "SERVICE=sneaky", busybox_image)
    try:
        # Until a sync looks (`proxy run` does within a second; it does not run here), the proxy is on
        # evil_luma with the shadow: the deploy's first sync leaves it, and it refuses to join again.
        r = fenv.deploy(evil, source(evil, busybox_image, ehost, "v2", replicas=1, sidecar=False), check=False)
        assert r.returncode == 1 and "internal error" not in r.stderr, r.stderr
        assert sneaky in r.stderr and f"{evil}_luma" in r.stderr, r.stderr
        assert f"{evil}_luma" not in dk.inspect(fenv.proxy)["NetworkSettings"]["Networks"]
        with Traffic(fenv, host) as t:
            assert {b.rsplit("/", 1)[0] for _, b in bodies(fenv, host, 20)} == {f"{victim}/web-v1"}
        assert set(t.outcomes) == {f"{victim}/web-v1"}, t.outcomes
    finally:
        dk.docker("rm", "-f", sneaky, check=False)
