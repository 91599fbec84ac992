"""The swarm engine's only reader of inspect JSON and only writer of argv (engine/swarm_state.py): the
records it reads, and the command lines the swarm proxy's specs become. Pure."""

from __future__ import annotations

import sys

import pytest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.fake_swarm import FakeSwarm  # noqa: E402

from luma_compose import contract  # noqa: E402
from luma_compose.engine import swarm_state as ss  # noqa: E402
from luma_compose.records import (Mount, OverlayView, PlainEndpoint, Publish, ServiceNetwork,  # noqa: E402
                                  ServiceSpec, ServiceUpdate)
from luma_compose.swarm import proxy as swarm_proxy  # noqa: E402
from luma_compose.swarm import routes  # noqa: E402

INSPECT = {
    "ID": "abc", "Version": {"Index": 42}, "CreatedAt": "2026-01-01T00:00:00.1Z",
    "Spec": {"Name": "shop_web", "Labels": {"com.docker.stack.namespace": "shop", "luma.managed": "true"},
             "Mode": {"Replicated": {"Replicas": 3}},
             "TaskTemplate": {"ContainerSpec": {"Image": "app:1@sha256:x", "Sysctls": {"net.a": "1"},
                                                "Configs": [{"ConfigName": "c1", "File": {"Name": "/etc/x"}},
                                                            {"ConfigName": "runtime", "Runtime": {}}]},
                              "Placement": {"Constraints": ["node.role==manager"]},
                              "Networks": [{"Target": "n1", "Aliases": ["shop-web", "web"]}, {"Target": "n2"}]}},
    "UpdateStatus": {"State": "rollback_completed", "StartedAt": "t1", "Message": "rolled back"},
}


def test_a_service_record_has_what_decisions_read():
    r = ss.service_record(INSPECT)
    assert (r.name, r.id, r.version, r.created, r.image, r.stack) == (
        "shop_web", "abc", 42, "2026-01-01T00:00:00.1Z", "app:1@sha256:x", "shop")
    assert r.configs == {"/etc/x": "c1"} and r.sysctls == {"net.a": "1"} and r.constraints == ("node.role==manager",)
    assert r.networks == (ServiceNetwork("n1", ("shop-web", "web")), ServiceNetwork("n2"))
    assert r.replicas == 3 and (r.update_state, r.update_started, r.update_message) == (
        "rollback_completed", "t1", "rolled back")


def test_a_service_never_updated_or_global_reads_as_such():
    r = ss.service_record({"Spec": {"Name": "px", "Mode": {"Global": {}}}})
    assert r.replicas is None and r.update_started is None and r.update_state == "" and r.networks == ()


def test_tasks_overlays_and_plain_containers():
    t = ss.task_record({"DesiredState": "running", "Status": {"State": "running",
                                                              "ContainerStatus": {"ContainerID": "c9"}}})
    assert (t.desired, t.state, t.container_id) == ("running", "running", "c9")
    assert ss.task_record({}).state == ""
    view = ss.overlay_view({"Containers": {"x": {"EndpointID": "e1"}},
                            "Services": {"": {"Tasks": [{"Name": "sneaky", "EndpointID": "e2",
                                                         "Info": {"Host IP": "10.0.0.2"}}]}}})
    assert view == OverlayView(("e1",), (PlainEndpoint("sneaky", "e2", "10.0.0.2"),))
    c = ss.plain_container({"Name": "/w", "State": {"Running": True},
                            "NetworkSettings": {"Networks": {"a_luma": {"EndpointID": "e1"}}}})
    assert (c.name, c.running, dict(c.endpoints)) == ("w", True, {"a_luma": "e1"})


def pairs(argv: list[str]) -> tuple[set[tuple[str, str]], list[str]]:
    """(the flags with their values, what follows them: image and command)."""
    out, i = set(), 2
    while i < len(argv) and argv[i].startswith("--"):
        if argv[i] == "--detach":
            i += 1
            continue
        out.add((argv[i], argv[i + 1]))
        i += 2
    return out, argv[i:]


def test_the_edge_spec_is_the_command_line_it_always_was(monkeypatch):
    fake = FakeSwarm()
    fake.kernel = "6.1.0"
    p = swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None)
    monkeypatch.setattr(swarm_proxy.time, "sleep", lambda s: None)
    p.up("caddy:2", 8080, "label=edge=true", routes.EdgeTLS("acme", 8443, "me@x.test"), "/srv/shared")
    flags, rest = pairs(ss.create_argv(fake.specs["px"]))
    assert rest == ["caddy:2", "caddy", "run", "--config", routes.BOOT_TARGET]
    want = {("--name", "px"), ("--mode", "global"), ("--label", f"{contract.SWARM_ROLE_LABEL}=edge"),
            ("--label", f"{contract.SWARM_PROXY_LABEL}=px"), ("--label", f"{contract.PROXY_HTTP_LABEL}=8080"),
            ("--label", f"{contract.SWARM_NODES_LABEL}=label=edge=true"), ("--label", f"{contract.PROXY_TLS_LABEL}=acme"),
            ("--label", f"{contract.SWARM_STORAGE_LABEL}=/srv/shared"),
            ("--publish", "mode=host,target=8080,published=8080,protocol=tcp"),
            ("--publish", "mode=host,target=8443,published=8443,protocol=tcp"),
            ("--publish", "mode=host,target=8443,published=8443,protocol=udp"),
            ("--update-order", "stop-first"), ("--update-parallelism", "1"), ("--update-delay", "1s"),
            ("--update-failure-action", "rollback"), ("--restart-condition", "any"), ("--network", "px_edge"),
            ("--constraint", "node.labels.edge==true"), ("--sysctl", "net.ipv4.tcp_migrate_req=1"),
            ("--mount", "type=bind,source=/srv/shared,target=/data")}
    assert want - flags == set(), sorted(want - flags)
    assert sum(1 for f, v in flags if f == "--config" and v.endswith(",mode=0444")) == 2


def test_specs_and_updates_as_argv():
    spec = ServiceSpec("gw", "caddy:2", ("caddy", "run"), {"a": "b"}, replicas=2, endpoint_mode="dnsrr",
                       publish=(Publish(80, 8080),), networks=("e", "p"), configs={"/t": "cfg"},
                       secrets={"key.pem": "sec"}, mounts=(Mount("volume", "v", "/data"),),
                       placement_prefs=("spread=node.id",), stop_grace_period="1s", update_monitor="200ms")
    flags, rest = pairs(ss.create_argv(spec))
    assert rest == ["caddy:2", "caddy", "run"]
    assert flags == {("--name", "gw"), ("--replicas", "2"), ("--label", "a=b"), ("--endpoint-mode", "dnsrr"),
                     ("--publish", "mode=host,target=80,published=8080,protocol=tcp"), ("--network", "e"),
                     ("--network", "p"), ("--config", "source=cfg,target=/t,mode=0444"),
                     ("--secret", "source=sec,target=key.pem,mode=0400"), ("--mount", "type=volume,source=v,target=/data"),
                     ("--placement-pref", "spread=node.id"), ("--stop-grace-period", "1s"),
                     ("--update-monitor", "200ms")}
    argv = ss.update_argv("gw", ServiceUpdate(image="caddy:3", config_rm=("old",), config_add={"/t": "new"},
                                              network_add=("n",), sysctl_add={"k": "v"}, label_add={"l": "1"}))
    assert argv[:3] == ["service", "update", "--detach"] and argv[-1] == "gw"
    assert pairs(argv[:-1])[0] == {("--image", "caddy:3"), ("--config-rm", "old"), ("--network-add", "n"),
                                   ("--config-add", "source=new,target=/t,mode=0444"), ("--sysctl-add", "k=v"),
                                   ("--label-add", "l=1")}
    assert not ServiceUpdate() and ServiceUpdate(image="x")


@pytest.mark.parametrize("stderr", [
    "Cannot connect to the Docker daemon at unix:///nope.sock. Is the docker daemon running?",
    "error during connect: Get \"http://10.0.0.9:2375/v1.47/services\": dial tcp 10.0.0.9:2375: connect: no route",
])
def test_an_engine_the_cli_cannot_reach_is_exit_3_for_every_swarm_call_and_a_failed_call_is_not(monkeypatch, stderr):
    import subprocess

    from luma_compose.engine.client import Endpoint
    from luma_compose.engine.swarm import SwarmEngine
    from luma_compose.errors import SwarmError, UnavailableError

    def run(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, "", stderr)

    monkeypatch.setattr(subprocess, "run", run)
    engine = SwarmEngine(Endpoint(host="unix:///nope.sock", source="DOCKER_HOST"))
    with pytest.raises(UnavailableError) as e:
        engine.services([])
    assert e.value.exit_code == 3 and "cannot reach the Docker engine" in e.value.message
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "no such service"))
    with pytest.raises(SwarmError) as e2:
        engine.services([])
    assert not isinstance(e2.value, UnavailableError)


def test_a_task_pruned_between_listing_and_inspecting_is_left_out_not_an_error(monkeypatch):
    """``docker service ps`` lists a task that Swarm prunes from the service's history before the
    inspect (a stack being removed beside a sync): docker prints the others and exits 1 with
    "No such object". That is an engine state normal operation meets: the task is simply gone.
    (A `proxy sync --swarm` failed on exactly this in CI.)"""
    import json
    import subprocess

    from luma_compose.engine.client import Endpoint
    from luma_compose.engine.swarm import SwarmEngine
    from luma_compose.errors import SwarmError

    task = {"DesiredState": "running", "Status": {"State": "running", "ContainerStatus": {"ContainerID": "c1"}}}
    calls = []

    def run(cmd, **kw):
        args = cmd[cmd.index("service") if "service" in cmd else cmd.index("inspect"):]
        calls.append(args)
        if args[:2] == ["service", "ps"]:
            return subprocess.CompletedProcess(cmd, 0, "t1\nt2\n", "")
        assert args[0] == "inspect", args  # tasks have no `docker task inspect`: the generic one
        return subprocess.CompletedProcess(cmd, 1, json.dumps([task]) + "\n", "Error: No such object: t2\n")

    monkeypatch.setattr(subprocess, "run", run)
    engine = SwarmEngine(Endpoint(host="unix:///x.sock", source="DOCKER_HOST"))
    tasks = engine.tasks("px_gw")
    assert [(t.desired, t.state, t.container_id) for t in tasks] == [("running", "running", "c1")]
    assert calls[-1] == ["inspect", "t1", "t2"]
    # anything else from the inspect is still an error, never a silently empty list
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 1, "", "Error response from daemon: rpc error: code = Unavailable") if "inspect" in cmd
        else subprocess.CompletedProcess(cmd, 0, "t1\n", ""))
    with pytest.raises(SwarmError):
        engine.tasks("px_gw")
