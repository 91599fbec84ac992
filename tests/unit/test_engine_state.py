"""engine.state.row_record: a record from a row of the container list, with what only an
inspect gives (aliases, exact creation time) taken from an earlier inspect of the same
container when its network endpoints are the same (row_signature)."""

from __future__ import annotations

from luma_compose.engine import state


def row(status: str = "Up 3 seconds", st: str = "running", endpoint: str = "e1", **kw) -> dict:
    r = {
        "Id": "c1", "Names": ["/p-web-1"], "Image": "img:1", "ImageID": "sha256:abc", "Created": 1796603174,
        "Labels": {"a": "b"}, "State": st, "Status": status,
        "Ports": [{"PrivatePort": 3000, "Type": "tcp"},
                  {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}],
        "NetworkSettings": {"Networks": {"p_luma": {"Aliases": None, "EndpointID": endpoint,
                                                    "IPAddress": "10.0.0.2" if endpoint else ""}}},
        "Mounts": [{"Type": "volume", "Name": "v1"}, {"Type": "bind", "Source": "/x"}],
    }
    r.update(kw)
    return r


def inspected(health: str | None = None) -> dict:
    st = {"Status": "running", "ExitCode": 0}
    if health:
        st["Health"] = {"Status": health, "Log": [{"Output": "ok\n"}]}
    return {
        "Id": "c1", "Name": "/p-web-1", "Created": "2026-12-07T00:26:14.123456789Z", "State": st,
        "Config": {"Labels": {"a": "b"}, "Image": "img:1"}, "Image": "sha256:abc",
        "NetworkSettings": {"Networks": {"p_luma": {"Aliases": ["p-web", "c1short"], "IPAddress": "10.0.0.2"}},
                            "Ports": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "3000/tcp": None}},
        "Mounts": [{"Type": "volume", "Name": "v1"}],
    }


def test_health_from_the_status_text():
    for status, health in (("Up 3 seconds", None), ("Up 3 seconds (health: starting)", "starting"),
                           ("Up 2 minutes (healthy)", "healthy"), ("Up 1 second (unhealthy)", "unhealthy")):
        assert state.row_record(row(status)).health == health, status


def test_stopped_container_exit_code_and_last_health():
    r = row("Exited (137) 5 seconds ago", st="exited", endpoint="")
    rec = state.row_record(r, state.container_record(inspected("unhealthy")))
    assert (rec.state, rec.exit_code, rec.health) == ("exited", 137, "unhealthy")
    assert rec.networks["p_luma"].ip == ""


def test_with_the_inspect_the_record_equals_the_inspect_record():
    full = state.container_record(inspected("healthy"))
    rec = state.row_record(row("Up 2 minutes (healthy)"), full)
    assert rec == full


def test_without_an_inspect_no_aliases_and_creation_in_seconds():
    rec = state.row_record(row())
    assert rec.networks["p_luma"].aliases == ()
    assert rec.created == "2026-12-07T00:26:14Z"
    assert rec.ports == {"80/tcp": ("127.0.0.1", 8080)} and rec.volumes == ("v1",)
    assert (rec.name, rec.image, rec.image_ref, rec.labels) == ("p-web-1", "sha256:abc", "img:1", {"a": "b"})


def test_signature_changes_with_the_endpoints():
    a = state.row_signature(row(endpoint="e1"))
    assert a == state.row_signature(row(endpoint="e1", Status="Up 1 hour"))
    assert a != state.row_signature(row(endpoint="e2"))  # restarted: new endpoint, new aliases maybe
    two = row()
    two["NetworkSettings"]["Networks"]["q_luma"] = {"EndpointID": "e9"}
    assert a != state.row_signature(two)  # connected to one more network
